// Prefetch (issue 12 item 4, KVM's pte_prefetch): after a fault installs a 4 KiB leaf in a
// page shadowing a guest page table, the empty entries of its aligned group of 8 whose guest
// entries are present, valid and already accessed get their leaves too -- a guest touching a
// page soon touches its neighbours, and the guest set their A bits itself, so mapping them
// early changes nothing it can see. Below a guest huge page (direct pages) nothing is
// prefetched: the guest's D bit of the huge leaf is not at hand there.

#include <bit>
#include <cassert>
#include <type_traits>

#include "allowed_leaf.hpp"

namespace vmmu::shadow {

void ShadowMmu::prefetch(const x86::GuestPaging& paging, ShadowPage& sp, std::uint64_t input) {
  const Role role = sp.role();
  if (role.level() != 1 || role.direct()) return;
  std::byte* guest_table = ram_.page(sp.gfn());
  if (guest_table == nullptr) return;
  const pt::Geometry& g = format_.geometry();
  const unsigned faulted = g.index(input, 1);
  const unsigned first = faulted & ~(kPrefetchEntries - 1);
  paging.with_format([&](const auto& f, Gpa) {
    using F = std::remove_cvref_t<decltype(f)>;
    // The candidates first, with no branch per neighbour (a branch each, mispredicted, cost a
    // fault ~10 ns, and most faults find none): empty shadow entries whose guest entries are
    // present and accessed. allowed_leaf decides on each.
    unsigned empty = 0, used = 0;
    for (unsigned k = 0; k < kPrefetchEntries; ++k) {
      const typename F::Entry e = guest_leaf_entry<F>(sp, guest_table, first + k);
      const Hpa entry = pt::entry_address<ShadowFormat>(sp.table(), first + k);
      empty |= static_cast<unsigned>(memory_.read<std::uint64_t>(entry).value_or(1) == 0) << k;
      used |= static_cast<unsigned>(f.present(e, 1) && f.accessed(e)) << k;
    }
    for (unsigned c = empty & used & ~(1U << (faulted - first)); c != 0; c &= c - 1) {
      const unsigned i = first + static_cast<unsigned>(std::countr_zero(c));
      const Hpa entry = pt::entry_address<ShadowFormat>(sp.table(), i);
      const std::optional<AllowedLeaf> a = allowed_leaf(f, sp, guest_table, i);
      if (!a) continue;
      // Found empty above, under the lock: the fill cannot find it taken.
      [[maybe_unused]] const bool filled =
          pt::ops::fill<ShadowFormat>(entry, ShadowFormat::leaf_entry(Hpa(reinterpret_cast<std::uintptr_t>(a->host)), 1, a->rights));
      assert(filled);
      sp.set_leaf(i, {a->frame, kPageSize});
      pages_.rmap_add(a->frame, entry);
      ++stats_.prefetched;
    }
  });
}

}  // namespace vmmu::shadow
