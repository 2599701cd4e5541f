// Prefetch (issue 12 item 4, KVM's pte_prefetch): after a fault installs a 4 KiB leaf in a
// page shadowing a guest page table, the empty entries of its aligned group of 8 whose guest
// entries are present, valid and already accessed get their leaves too -- a guest touching a
// page soon touches its neighbours, and the guest set their A bits itself, so mapping them
// early changes nothing it can see. Below a guest huge page (direct pages) nothing is
// prefetched: the guest's D bit of the huge leaf is not at hand there.

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
    for (unsigned i = first; i < first + kPrefetchEntries; ++i) {
      if (i == faulted) continue;
      // Mapped already? Most neighbours are (or their guest entries are not accessed).
      const Hpa entry = pt::entry_address<ShadowFormat>(sp.table(), i);
      if (memory_.read<std::uint64_t>(entry).value_or(1) != 0) continue;
      const std::optional<AllowedLeaf> a = allowed_leaf(f, sp, guest_table, i);
      if (!a) continue;
      fill_empty(entry, ShadowFormat::leaf_entry(Hpa(reinterpret_cast<std::uintptr_t>(a->host)), 1, a->rights));
      sp.set_leaf(i, {a->frame, kPageSize});
      pages_.rmap_add(a->frame, entry);
      ++stats_.prefetched;
    }
  });
}

}  // namespace vmmu::shadow
