// L1 being migrated: L0 dirty-logs L1's memory, and the nested MMU keeps the log complete with
// the shadow and TDP MMUs' scheme. Starting to log (memslot_events) and harvesting write-protect
// the shadow leaves over the frames concerned; an L2 write then faults, logs its frame, and
// makes the leaf writable (fault.cpp). Leaves are all 4 KiB: L1's huge leaves are shadowed page
// by page, so a frame is logged alone, never its neighbours.
//
// Completeness: a leaf becomes writable only in a fault that logged its frame first, and
// faults, accesses and harvests all hold the lock, so no harvest falls between the two.

#include "vmmu/memory/slot_dirty_log.hpp"
#include "vmmu/nested/ept_kind.hpp"
#include "vmmu/nested/nested_mmu.hpp"
#include "vmmu/nested/npt_kind.hpp"
#include "vmmu/pt/ops/install.hpp"

namespace vmmu::nested {

using Ops = pt::ops::EntryOps<tdp::TdpFormat>;

template <class K>
bool NestedMmu<K>::protect_leaf(Hpa entry, Flush& flush) {
  Iterator it = entry_at(entry, 1);
  if (!it.is_leaf() || (it.entry() & format5_.write_bit()) == 0) return false;
  Ops ops(format5_, memory_, tlb_, Hpa(0));  // a leaf replaces a leaf: no subtree, no root needed
  [[maybe_unused]] const pt::ops::Installed done = ops.install(it, it.entry() & ~format5_.write_bit(), flush);
  flush.add_all();  // a shadow page does not know the L2 gpa it is linked at
  return true;
}

template <class K>
void NestedMmu<K>::write_protect_range(Range<Gfn> gfns, Flush& flush) {
  for (const Gfn gfn : pages_.rmapped(gfns)) {
    for (const Hpa e : pages_.rmap(gfn)) protect_leaf(e, flush);
  }
}

template <class K>
void NestedMmu<K>::reprotect_masked(Gfn first, std::span<const std::uint64_t> words, Flush& flush) {
  // Word by word through the frame-indexed rmaps: zero words cost nothing.
  for (std::size_t w = 0; w < words.size(); ++w) {
    if (words[w] != 0) pages_.for_each_rmap_masked(first + w * 64, words[w], [&](Hpa e) { protect_leaf(e, flush); });
  }
}

template <class K>
Result<std::vector<std::uint64_t>, MemslotError> NestedMmu<K>::get_dirty_log(SlotId id) {
  return get_dirty_log_reprotecting(slots_, id, lock_, [&](Gfn first, std::span<const std::uint64_t> words) {
    reprotect_and_flush(first, words, "get_dirty_log");
  });
}

template <class K>
Status<MemslotError> NestedMmu<K>::clear_dirty_log(SlotId id, std::uint64_t first_page, std::uint64_t pages,
                                                   std::span<const std::uint64_t> mask) {
  return clear_dirty_log_reprotecting(slots_, id, first_page, pages, mask, lock_,
                                      [&](Gfn first, std::span<const std::uint64_t> words) {
                                        reprotect_and_flush(first, words, "clear_dirty_log");
                                      });
}

template <class K>
void NestedMmu<K>::reprotect_and_flush(Gfn first, std::span<const std::uint64_t> words, const char* what) {
  Flush flush(&memory_);
  reprotect_masked(first, words, flush);
  finish(std::move(flush));
  checked(what);
}

#define VMMU_NESTED_DIRTY_LOG(K)                                                                              \
  template bool NestedMmu<K>::protect_leaf(Hpa, Flush&);                                                     \
  template void NestedMmu<K>::write_protect_range(Range<Gfn>, Flush&);                                       \
  template void NestedMmu<K>::reprotect_masked(Gfn, std::span<const std::uint64_t>, Flush&);                 \
  template Result<std::vector<std::uint64_t>, MemslotError> NestedMmu<K>::get_dirty_log(SlotId);             \
  template Status<MemslotError> NestedMmu<K>::clear_dirty_log(SlotId, std::uint64_t, std::uint64_t,          \
                                                              std::span<const std::uint64_t>);               \
  template void NestedMmu<K>::reprotect_and_flush(Gfn, std::span<const std::uint64_t>, const char*);
VMMU_NESTED_DIRTY_LOG(EptKind)
VMMU_NESTED_DIRTY_LOG(NptKind)
#undef VMMU_NESTED_DIRTY_LOG

}  // namespace vmmu::nested
