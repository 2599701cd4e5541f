#pragma once
// ShadowFormat: the shadow tables' entries -- x86 4/5-level entries (the guest entry layout of
// x86/guest_entry.hpp, which is what the hardware walks under shadow paging) whose addresses
// are host addresses: gva -> Hpa. A pt::OwnedFormat, so shadow pages are owned tables
// changed only through the engine (pt::ops::EntryOps::install).
//
//   table entry   P | RW | US | A | address of the child shadow page (all rights: the leaf
//                 carries the path's rights, as KVM's shadow entries do)
//   leaf          P | A | D | RW? | US? | XD? | PS above level 1 | protection key | address
//
// A and D are always set: the guest's own A/D bits are kept by the fault path, and a leaf is
// made writable only once the guest's D bit is set.

#include <cstdint>

#include "vmmu/core/address.hpp"
#include "vmmu/pt/geometry.hpp"
#include "vmmu/pt/owned_format.hpp"
#include "vmmu/x86/guest_entry.hpp"

namespace vmmu::shadow {

// What a shadow leaf allows, beyond its address: x86::gpte::kAcc* rights and the key.
struct LeafRights {
  std::uint8_t access = 0;  // kAccExec | kAccWrite | kAccUser
  std::uint8_t protection_key = 0;
};

class ShadowFormat {
 public:
  using Entry = std::uint64_t;
  using Input = Gva;
  using Output = Hpa;

  explicit constexpr ShadowFormat(unsigned levels)
      : geometry_(pt::Geometry::uniform(levels, kPageShift, 9, 9, sizeof(Entry))) {}

  [[nodiscard]] constexpr const pt::Geometry& geometry() const { return geometry_; }
  [[nodiscard]] static constexpr bool present(Entry e, unsigned) { return x86::gpte::P::get(e); }
  [[nodiscard]] static constexpr bool leaf(Entry e, unsigned level) { return level == 1 || x86::gpte::PS::get(e); }
  [[nodiscard]] static constexpr Hpa table_address(Entry e, unsigned) { return Hpa(x86::gpte::Addr::bits(e)); }
  [[nodiscard]] constexpr Hpa leaf_address(Entry e, unsigned level) const {
    return Hpa(x86::gpte::Addr::bits(e) & ~(geometry_.span(level) - 1));
  }

  // The shadow-specific leaf: rights and protection key from the guest's path.
  [[nodiscard]] static constexpr Entry leaf_entry(Hpa page, unsigned level, LeafRights r) {
    namespace g = x86::gpte;
    Entry e = g::Addr::bits(page.raw()) | g::P::mask | g::A::mask | g::D::mask;
    e = g::RW::set(e, (r.access & g::kAccWrite) != 0);
    e = g::US::set(e, (r.access & g::kAccUser) != 0);
    e = g::XD::set(e, (r.access & g::kAccExec) == 0);
    e = g::PS::set(e, level > 1);
    return g::ProtKey::set(e, r.protection_key);
  }
  [[nodiscard]] static constexpr LeafRights leaf_rights(Entry e) {
    namespace g = x86::gpte;
    return {static_cast<std::uint8_t>((g::RW::get(e) ? g::kAccWrite : 0) | (g::US::get(e) ? g::kAccUser : 0) |
                                      (g::XD::get(e) ? 0 : g::kAccExec)),
            static_cast<std::uint8_t>(g::ProtKey::get(e))};
  }

  // pt::OwnedFormat: neutral attributes have no user bit: such leaves are supervisor-only.
  [[nodiscard]] static constexpr Entry make_leaf(Hpa a, unsigned level, pt::LeafAttrs attrs) {
    const auto acc = static_cast<std::uint8_t>((attrs.write ? x86::gpte::kAccWrite : 0) |
                                               (attrs.exec ? x86::gpte::kAccExec : 0));
    return leaf_entry(a, level, {acc, 0});
  }
  [[nodiscard]] static constexpr Entry make_table(Hpa a, unsigned) {
    namespace g = x86::gpte;
    return g::Addr::bits(a.raw()) | g::P::mask | g::RW::mask | g::US::mask | g::A::mask;
  }
  [[nodiscard]] static constexpr pt::LeafAttrs leaf_attrs(Entry e, unsigned) {
    namespace g = x86::gpte;
    return {.read = true, .write = g::RW::get(e), .exec = !g::XD::get(e), .accessed = true, .device = false,
            .dirty = true};
  }
  [[nodiscard]] static constexpr bool block_allowed(unsigned level) { return level == 2 || level == 3; }
  [[nodiscard]] static constexpr bool needs_break_before_make(Entry, Entry, unsigned) { return false; }
  // Not present (P = 0), never written by anything else: KVM's FROZEN_SPTE value.
  [[nodiscard]] static constexpr Entry frozen_entry() { return 0x5a0; }

 private:
  pt::Geometry geometry_;
};

static_assert(pt::OwnedFormat<ShadowFormat>);

}  // namespace vmmu::shadow
