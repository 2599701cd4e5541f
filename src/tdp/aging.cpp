// Aging: what reclaim asks of the MMU (KVM's clear_young / test_young notifiers).
#include "page_tables.hpp"
#include "vmmu/core/rcu.hpp"
#include "vmmu/tdp/tdp_mmu.hpp"

namespace vmmu::tdp {

std::uint64_t TdpMmu::age(Range<Gfn> gfns) {
  Range<Gpa> range{gpa_of(gfns.begin), gpa_of(gfns.end)};
  if (range.end.raw() > gpa_limit()) range.end = Gpa(gpa_limit());
  if (!(range.begin < range.end)) return 0;
  // Exclusive: no access is in flight, so A bits are cleared with plain stores.
  ReaderLock::Exclusive exclusive(lock_);
  rcu::ReadGuard rcu;
  pt::TlbFlush<Gpa> flush(&memory_);
  std::uint64_t young = 0;
  for (Root* root : roots_->valid_roots()) {
    if (format_.ad_bits()) {
      // No invalidation (KVM 6.13+): a stale young TLB entry only delays the next aging.
      using Entry = TdpFormat::Entry;
      const Entry a = format_.accessed_bit();
      detail::for_each_leaf(
          format_, memory_, root->tables.root(), range,
          [&](Entry* e, std::uint64_t) {
            for (unsigned i = 0; i < 512; ++i) {
              std::atomic_ref<Entry> slot(e[i]);
              const Entry old = slot.load(std::memory_order_relaxed);
              if ((old & a) != 0 && format_.present(old, 1)) {
                slot.store(old & ~a, std::memory_order_relaxed);
                ++young;
              }
            }
          },
          [&](pt::TableIterator<TdpFormat, pt::HostTableMemory>& it) {
            if ((it.entry() & a) != 0) {
              std::atomic_ref<Entry>(*pt::HostTableMemory::pointer<Entry>(it.entry_address()))
                  .store(it.entry() & ~a, std::memory_order_relaxed);
              ++young;
            }
            return true;
          });
    } else {
      // Without A/D bits a mapping is the only sign of use: zap it; a refault marks it young.
      std::uint64_t leaves = 0;
      root->tables.for_each_leaf(range, [&](const TdpTables::Mapping&) { ++leaves; });
      if (auto r = root->tables.unmap(range)) flush.merge(std::move(*r));
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
  Range<Gpa> range{gpa_of(gfns.begin), gpa_of(gfns.end)};
  if (range.end.raw() > gpa_limit()) range.end = Gpa(gpa_limit());
  if (!(range.begin < range.end)) return false;
  rcu::ReadGuard rcu;  // lock-free, as KVM's test_young
  bool young = false;
  for (Root* root : roots_->valid_roots()) {
    young = young || root->tables.test_age(range);
    roots_->put(root);
  }
  return young;
}

}  // namespace vmmu::tdp
