// Dirty logging under shadow paging, with the TDP MMU's signatures and meaning: starting it
// write-protects the slot's leaves through the rmaps; a write fault logs the page into the
// slot's bitmap before its leaf becomes writable (fault.cpp); harvesting takes the bits and
// write-protects the pages they name.
//
// Completeness: a leaf becomes writable only in a fault that logged its page first, and
// faults, accesses (their `use` included) and harvests all hold the lock, so no harvest falls
// between "logged" and "writable".

#include "vmmu/core/rcu.hpp"
#include "vmmu/memory/slot_dirty_log.hpp"
#include "vmmu/shadow/shadow_mmu.hpp"

namespace vmmu::shadow {

void ShadowMmu::start_dirty_logging_locked(Range<Gfn> gfns, pt::TlbFlush<Gva>& flush) {
  // Huge leaves: kept for reads, write-protected (the first write splits one, fault.cpp), or
  // dropped, as KVM did before "lazily drop large spte".
  if (config_.huge_on_dirty_log == tdp::HugeOnDirtyLog::Drop) {
    for (const LeafRef& l : leaves_over(gfns)) {
      if (l.level == 1) continue;
      zap_leaf(l.gfn, l.entry, flush);
      ++stats_.huge_dropped;
    }
  }
  write_protect_locked(gfns, flush);
}

void ShadowMmu::reprotect_masked(Gfn first, std::span<const std::uint64_t> words, pt::TlbFlush<Gva>& flush) {
  // Word by word through the frame-indexed rmaps (KVM's kvm_mmu_write_protect_pt_masked):
  // zero words cost nothing, and one flush covers the call. Only 4 KiB leaves can be
  // writable here: logging write-protected the huge ones and faults map logged frames small
  // (the invariants check both).
  bool changed = false;
  auto protect = [&](Hpa entry) { changed |= clear_write(entry); };
  for (std::size_t w = 0; w < words.size(); ++w) {
    if (words[w] != 0) pages_.for_each_rmap_masked(first + w * 64, words[w], protect);
  }
  if (changed) flush.add_all();
}

Result<std::vector<std::uint64_t>, MemslotError> ShadowMmu::get_dirty_log(SlotId id) {
  return get_dirty_log_reprotecting(slots_, id, mutex_, [&](Gfn first, std::span<const std::uint64_t> words) {
    reprotect_and_flush(first, words, "get_dirty_log");
  });
}

Result<std::vector<std::uint64_t>, MemslotError> ShadowMmu::peek_dirty_log(SlotId id) {
  const rcu::ReadGuard rcu;
  const Result<SlotDirtyLog, MemslotError> log = slot_dirty_log(slots_, id);  // before the lock
  if (!log) return Unexpected{log.error()};
  return log->bitmap->peek(0, log->spec.pages);
}

Status<MemslotError> ShadowMmu::clear_dirty_log(SlotId id, std::uint64_t first_page, std::uint64_t pages,
                                                std::span<const std::uint64_t> mask) {
  return clear_dirty_log_reprotecting(slots_, id, first_page, pages, mask, mutex_,
                                      [&](Gfn first, std::span<const std::uint64_t> words) {
                                        reprotect_and_flush(first, words, "clear_dirty_log");
                                      });
}

void ShadowMmu::reprotect_and_flush(Gfn first, std::span<const std::uint64_t> words, const char* what) {
  pt::TlbFlush<Gva> flush(&memory_);
  reprotect_masked(first, words, flush);
  finish(std::move(flush));
  checked(what);
}

}  // namespace vmmu::shadow
