// Prefetch (issue 12 item 4, KVM's pte_prefetch): after a fault installs a 4 KiB leaf in a
// page shadowing a guest page table, the empty entries of its aligned group of 8 whose guest
// entries are present, valid and already accessed get their leaves too -- a guest touching a
// page soon touches its neighbours, and the guest set their A bits itself, so mapping them
// early changes nothing it can see. Below a guest huge page (direct pages) nothing is
// prefetched: the guest's D bit of the huge leaf is not at hand there.

#include <atomic>
#include <type_traits>

#include "vmmu/shadow/shadow_mmu.hpp"

namespace vmmu::shadow {
namespace {

namespace gpte = x86::gpte;
using Iterator = pt::TableIterator<ShadowFormat, pt::OwnedTableMemory>;

}  // namespace

void ShadowMmu::prefetch(const x86::GuestPaging& paging, ShadowPage& sp, Hpa root, std::uint64_t input,
                         pt::TlbFlush<Gva>& flush) {
  const Role role = sp.role();
  if (role.level() != 1 || role.direct()) return;
  std::byte* guest_table = ram_.page(sp.gfn());
  if (guest_table == nullptr) return;
  const pt::Geometry& g = format_.geometry();
  const unsigned faulted = g.index(input, 1);
  const unsigned first = faulted & ~(kPrefetchEntries - 1);
  const std::uint64_t table_base = input & ~(g.span(2) - 1);
  // A 1024-entry guest table's half this page shadows (quadrant), else the whole table.
  const unsigned guest_first = role.gpte4() ? role.quadrant() * kShadowEntries : 0;
  pt::ops::EntryOps<ShadowFormat> ops(format_, memory_, tlb_, root);
  paging.with_format([&](const auto& f, Gpa) {
    using E = typename std::decay_t<decltype(f)>::Entry;
    for (unsigned i = first; i < first + kPrefetchEntries; ++i) {
      if (i == faulted) continue;
      const std::uint64_t gva = table_base | (std::uint64_t{i} << kPageShift);
      Iterator it = Iterator::at(format_, memory_, sp.table(), 1, gva);
      if (it.entry() != 0) continue;  // mapped already (or being changed)
      // Guest tables are naturally aligned in page-aligned host pages.
      E* slot = reinterpret_cast<E*>(guest_table) + guest_first + i;  // NOLINT
      const E e = std::atomic_ref<E>(*slot).load(std::memory_order_acquire);
      if (!f.present(e, 1) || f.reserved(e, 1) || !f.accessed(e)) continue;
      const Gfn frame = gfn_of(f.leaf_address(e, 1));
      const HostFrame backing = host_frame(frame);
      if (backing.host == nullptr || invalidating(frame)) continue;
      // The path's rights, without W while the guest's D bit is clear, the frame is a shadowed
      // table, read-only or logged dirty (as on a fault, which logs the page on its write; a
      // prefetched leaf never takes CR0.WP=0's widening).
      auto rights = static_cast<std::uint8_t>(role.access() & f.access(e, 1));
      if (!gpte::D::get(e) || write_tracked(frame) || !backing.writable ||
          (backing.region != nullptr && backing.region->flags.is_log_dirty())) {
        rights &= static_cast<std::uint8_t>(~gpte::kAccWrite);
      }
      const std::uint64_t leaf = ShadowFormat::leaf_entry(Hpa(reinterpret_cast<std::uintptr_t>(backing.host)), 1,
                                                          {rights, static_cast<std::uint8_t>(f.protection_key(e))});
      if (ops.install(it, leaf, flush) != pt::ops::Installed::Done) continue;
      sp.set_leaf(i, {frame, kPageSize});
      pages_.rmap_add(frame, it.entry_address());
      ++stats_.prefetched;
    }
  });
}

}  // namespace vmmu::shadow
