#pragma once
// What the owned-table layer needs from a format on top of pt::Format: how to build entries
// from neutral attributes, where blocks may live, and when a change must break before make.
//
// Owned tables are tables vmmu owns and the (modelled) hardware walks: TDP (EPT/NPT) and arm64
// stage 2. Their Output is always vmmu::Hpa -- in user space the host virtual address of
// vmmu's own table pages and of the guest RAM the caller lent through memslots.
//
// Entry states the layer distinguishes:
//   0                    empty
//   frozen_entry()       not present, reserved: a break-before-make is in progress; only the
//                        thread that froze it writes it again (KVM arm64 "LOCKED", x86 "FROZEN")
//   present, table       points to the next level's table
//   present, leaf        maps a page (level 1) or a block (block_allowed(level))

#include <concepts>
#include <cstdint>

#include "vmmu/core/access.hpp"
#include "vmmu/core/address.hpp"
#include "vmmu/pt/format.hpp"

namespace vmmu::pt {

// Neutral leaf attributes: what every second-stage format can express.
struct LeafAttrs {
  bool read = true;
  bool write = false;
  bool exec = false;
  bool accessed = true;  // arm64 AF, x86 A bit (software-tracked when the hardware cannot)
  bool device = false;   // device memory type (never executable at arm64 stage 2)
  bool dirty = false;    // x86 D bit where the format tracks it (EPT with A/D, NPT); else false

  friend constexpr bool operator==(const LeafAttrs&, const LeafAttrs&) = default;

  // Whether a leaf with these attributes lets `a` through (the kind only: second-stage
  // formats do not check privilege).
  [[nodiscard]] constexpr bool allows(Access a) const {
    switch (a.kind) {
      case AccessKind::Read: return read;
      case AccessKind::Write: return write;
      case AccessKind::Fetch: return exec;
    }
    return false;
  }

  // Union of permissions (used by relax: permissions are only ever added).
  [[nodiscard]] constexpr LeafAttrs plus(const LeafAttrs& o) const {
    return {read || o.read, write || o.write, exec || o.exec, accessed || o.accessed, device, dirty || o.dirty};
  }
  [[nodiscard]] constexpr LeafAttrs without_write() const {
    LeafAttrs a = *this;
    a.write = false;
    return a;
  }
  [[nodiscard]] constexpr LeafAttrs old() const {
    LeafAttrs a = *this;
    a.accessed = false;
    return a;
  }
  [[nodiscard]] constexpr LeafAttrs clean() const {
    LeafAttrs a = *this;
    a.dirty = false;
    return a;
  }
};

// Beyond the concept, a OwnedFormat promises that a leaf is the bits of its output address OR
// attribute bits that depend only on (level, attrs): page-table-wide updates reuse the
// attribute bits computed for one entry.
template <class F>
concept OwnedFormat = Format<F> && std::same_as<typename F::Output, Hpa> &&
    requires(const F& f, typename F::Entry e, unsigned level, Hpa a, LeafAttrs attrs) {
  // A leaf at `level` (a page at level 1, a block above) mapping `a` with `attrs`.
  { f.make_leaf(a, level, attrs) } -> std::same_as<typename F::Entry>;
  // A table entry at `level` pointing to the table at `a` (which is one level lower).
  { f.make_table(a, level) } -> std::same_as<typename F::Entry>;
  // Only asked of present leaves.
  { f.leaf_attrs(e, level) } -> std::same_as<LeafAttrs>;
  // May `level` (> 1) hold a block?
  { f.block_allowed(level) } -> std::same_as<bool>;
  // Must replacing the present entry `old` by `e` go through invalid + TLB invalidation first?
  { f.needs_break_before_make(e, e, level) } -> std::same_as<bool>;
  // The not-present marker of an entry in the middle of a break-before-make.
  { f.frozen_entry() } -> std::same_as<typename F::Entry>;
};

}  // namespace vmmu::pt
