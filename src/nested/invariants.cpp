// Nested MMU invariants (checked after every operation when VMMU_CHECK_INVARIANTS is defined):
//   - every shadow leaf agrees with L1's walk composed with L1's memory: same host page, no
//     right the walk denies, no W while L1's D bit is clear (A/D on), the L1 frame and page
//     size recorded for it;
//   - no frame holding an L1 table that is shadowed is writable through a shadow leaf;
//   - over L1's memslots, no leaf is writable over a read-only L1 frame, nor over a dirty-logged
//     L1 frame not marked dirty (an L2 write through it would be lost from L1's log);
//   - every link is recorded as its child's parent.

#include <fmt/format.h>

#include <algorithm>

#include "vmmu/core/rcu.hpp"
#include "vmmu/nested/ept_kind.hpp"
#include "vmmu/nested/nested_mmu.hpp"
#include "vmmu/nested/npt_kind.hpp"

namespace vmmu::nested {

template <class K>
std::optional<std::string> NestedMmu<K>::invariants_locked() const {
  const rcu::ReadGuard rcu;  // keeps the regions check_leaf looks at
  std::optional<std::string> bad;
  pages_.for_each([&](const shadow::ShadowPage& p) {
    // Trees are checked from their roots: pages nothing links to (a level-5 or level-4 root).
    if (bad || !p.parents().empty() || p.role().direct() || p.role().level() < 4) return;
    auto ctx = K::context_of(p.gfn(), p.role(), caps_);
    if (!ctx) {
      bad = fmt::format("root {} has no valid root pointer", shadow::to_string(p.role()));
      return;
    }
    const tdp::TdpFormat& f = format(p.role().level());
    for (Iterator it(f, memory_, p.table(), 0, f.geometry().input_limit()); it.valid() && !bad; it.next()) {
      if (it.is_leaf()) {
        bad = check_leaf(it, *ctx);
      } else if (it.is_table()) {
        const shadow::ShadowPage* c = pages_.by_table(f.table_address(it.entry(), it.level()));
        if (c == nullptr) {
          bad = fmt::format("L2 gpa {:#x} level {}: link to no shadow page", it.address(), it.level());
        } else if (std::find(c->parents().begin(), c->parents().end(), it.entry_address()) == c->parents().end()) {
          bad = fmt::format("L2 gpa {:#x} level {}: link not among the child's parents", it.address(), it.level());
        }
      }
    }
  });
  return bad;
}

template <class K>
std::optional<std::string> NestedMmu<K>::check_leaf(const Iterator& it, const typename K::Context& ctx) const {
  const std::uint64_t input = it.address(), e = it.entry();
  if (it.level() != 1) return fmt::format("L2 gpa {:#x}: a level-{} shadow leaf", input, it.level());
  const pt::LeafAttrs at = format5_.leaf_attrs(e, 1);
  // L1's walk of the same L2 gpa, without setting anything.
  shadow::GuestRamTables tables(const_cast<shadow::GuestRam&>(l1_));  // reads only: no A/D updates
  const AccessKind probe = at.read ? AccessKind::Read : AccessKind::Fetch;
  typename K::Path path;
  const auto t = K::walk(ctx, tables, Gpa(input), probe, {.update_accessed_dirty = false}, path);
  if (!t) return fmt::format("L2 gpa {:#x}: shadow leaf but L1's walk faults", input);
  const Gfn frame = gfn_of(t->address);
  const L1Frame backing = l1_frame(frame);
  const std::byte* host = backing.host;
  const Hpa mapped = format5_.leaf_address(e, 1);
  if (reinterpret_cast<std::uintptr_t>(host) != mapped.raw()) {
    return fmt::format("L2 gpa {:#x}: shadow leaf maps {:#x}, L1 gpa {:#x} is elsewhere", input, mapped.raw(),
                       t->address.raw());
  }
  if ((at.read && !t->readable) || (at.write && !t->writable) || (at.exec && !t->executable)) {
    return fmt::format("L2 gpa {:#x}: shadow leaf allows more than L1's tables", input);
  }
  if (at.write && t->clean) return fmt::format("L2 gpa {:#x}: writable while L1's D is clear", input);
  if (at.write && pages_.tracked(frame)) {
    return fmt::format("L2 gpa {:#x}: L1 table frame {:#x} writable", input, frame.raw());
  }
  if (const MemslotRegion* region = backing.region; at.write && region != nullptr) {
    if (!region->writable()) return fmt::format("L2 gpa {:#x}: read-only L1 frame {:#x} writable", input, frame.raw());
    if (region->dirty != nullptr && !region->dirty->test(region->dirty_first + (frame.raw() - region->gfn_begin))) {
      return fmt::format("L2 gpa {:#x}: writable over dirty-logged L1 frame {:#x} not marked dirty", input,
                         frame.raw());
    }
  }
  const shadow::GuestLeaf l = pages_.holding(it.entry_address())->leaf(format5_.geometry().index(input, 1));
  if (l.gfn != frame || l.page_size != t->page_size) {
    return fmt::format("L2 gpa {:#x}: recorded L1 frame {:#x}, L1's walk says {:#x}", input, l.gfn.raw(), frame.raw());
  }
  return std::nullopt;
}

#define VMMU_NESTED_INVARIANTS(K)                                                       \
  template std::optional<std::string> NestedMmu<K>::invariants_locked() const;         \
  template std::optional<std::string> NestedMmu<K>::check_leaf(const Iterator&, const K::Context&) const;
VMMU_NESTED_INVARIANTS(EptKind)
VMMU_NESTED_INVARIANTS(NptKind)
#undef VMMU_NESTED_INVARIANTS

}  // namespace vmmu::nested
