// Aging: what reclaim asks of the MMU (KVM's clear_young / test_young notifiers).
#include "vmmu/core/rcu.hpp"
#include "vmmu/tdp/tdp_mmu.hpp"

namespace vmmu::tdp {

std::uint64_t TdpMmu::age(Range<Gfn> gfns) {
  const std::optional<Range<Gpa>> range = clamp(gfns);
  if (!range) return 0;
  // Exclusive: no access is in flight, so A bits are cleared with plain stores.
  ReaderLock::Exclusive exclusive(lock_);
  rcu::ReadGuard rcu;
  pt::TlbFlush<Gpa> flush(&memory_);
  std::uint64_t young = 0;
  for (Root* root : roots_->valid_roots()) {
    if (format_.ad_bits()) {
      if (auto r = root->tables.age(*range, pt::Exclusive{})) {
        young += r->count;
        // No invalidation (KVM 6.13+): a stale young TLB entry only delays the next aging.
        std::move(r->flush).drop();
      }
    } else {
      // Without A/D bits a mapping is the only sign of use: zap it; a refault marks it young.
      std::uint64_t leaves = 0;
      root->tables.for_each_leaf(*range, [&](const TdpTables::Mapping&) { ++leaves; });
      flush.merge(root->tables.unmap(*range, pt::WholeLeaves{}));
      young += leaves;
      zapped_leaves_.fetch_add(leaves, std::memory_order_relaxed);
    }
    roots_->put(root);
  }
  aged_.fetch_add(young, std::memory_order_relaxed);
  finish(std::move(flush));
  checked("age");
  return young;
}

bool TdpMmu::test_age(Range<Gfn> gfns) {
  const std::optional<Range<Gpa>> range = clamp(gfns);
  if (!range) return false;
  rcu::ReadGuard rcu;  // lock-free, as KVM's test_young
  bool young = false;
  for (Root* root : roots_->valid_roots()) {
    young = young || root->tables.test_age(*range);
    roots_->put(root);
  }
  return young;
}

}  // namespace vmmu::tdp
