// Unmapping (KVM: zapping): gfn ranges (memslot changes, MMU notifiers), everything (a root
// generation bump), and the huge-page bans that force smaller mappings.
#include <algorithm>

#include "vmmu/core/rcu.hpp"
#include "vmmu/tdp/tdp_mmu.hpp"

namespace vmmu::tdp {

void TdpMmu::unmap_locked(Range<Gfn> gfns, pt::TlbFlush<Gpa>& flush, std::int64_t moved_by) {
  const std::optional<Range<Gpa>> clamped = clamp(gfns);
  if (!clamped) return;
  const Range<Gpa> range = *clamped;
  rcu::ReadGuard rcu;
  // A zapped dirty leaf takes its D bit with it: log its pages first (dirty-bit tracking).
  fold_dirty_bits(range, nullptr, moved_by);
  for (Root* root : roots_->valid_roots()) {
    std::uint64_t leaves = 0;
    root->tables.for_each_leaf(range, [&](const TdpTables::Mapping&) { ++leaves; });
    zapped_leaves_.fetch_add(leaves, std::memory_order_relaxed);
    // Huge leaves straddling an edge go whole (faults map what is still needed), so zapping
    // needs no table memory and cannot fail.
    flush.merge(root->tables.unmap(range, pt::WholeLeaves{}));
    roots_->put(root);
  }
}

Status<pt::TableError> TdpMmu::unmap(Range<Gfn> gfns) {
  if (gpa_of(gfns.end).raw() > gpa_limit() || gfns.end < gfns.begin) return Unexpected{pt::TableError::OutOfRange};
  unmap_clamped(gfns, "unmap");
  return {};
}

void TdpMmu::unmap_clamped(Range<Gfn> gfns, const char* what) {
  ReaderLock::Exclusive exclusive(lock_);
  pt::TlbFlush<Gpa> flush(&memory_);
  unmap_locked(gfns, flush);
  zaps_.fetch_add(1, std::memory_order_relaxed);
  finish(std::move(flush));
  checked(what);
}

void TdpMmu::unmap_all() {
  ReaderLock::Exclusive exclusive(lock_);
  {
    rcu::ReadGuard rcu;
    fold_dirty_bits({Gpa(0), Gpa(gpa_limit())}, nullptr);  // invalid roots are never read again
  }
  roots_invalidated_.fetch_add(roots_->invalidate_all(), std::memory_order_relaxed);
  zaps_.fetch_add(1, std::memory_order_relaxed);
  // vCPUs stop using the old roots at their next access (they check `invalid` under the
  // lock); one flush of everything covers whatever a TLB still holds.
  tlb_.invalidate_all();
  flushes_.fetch_add(1, std::memory_order_relaxed);
  flush_generation_.fetch_add(1, std::memory_order_release);
  checked("unmap_all");
}

void TdpMmu::invalidate_begin(Range<Gfn> gfns) {
  ReaderLock::Exclusive exclusive(lock_);
  invalidations_.fetch_add(1, std::memory_order_relaxed);
  // Several invalidations may overlap: keep the hull of their ranges (as KVM does).
  if (invalidate_in_progress_.load(std::memory_order_relaxed) == 0) {
    invalidate_begin_gfn_.store(gfns.begin.raw(), std::memory_order_relaxed);
    invalidate_end_gfn_.store(gfns.end.raw(), std::memory_order_relaxed);
  } else {
    invalidate_begin_gfn_.store(std::min(invalidate_begin_gfn_.load(std::memory_order_relaxed), gfns.begin.raw()),
                                std::memory_order_relaxed);
    invalidate_end_gfn_.store(std::max(invalidate_end_gfn_.load(std::memory_order_relaxed), gfns.end.raw()),
                              std::memory_order_relaxed);
  }
  invalidate_in_progress_.fetch_add(1, std::memory_order_release);
  pt::TlbFlush<Gpa> flush(&memory_);
  unmap_locked(gfns, flush);
  zaps_.fetch_add(1, std::memory_order_relaxed);
  finish(std::move(flush));
  checked("invalidate_begin");
}

void TdpMmu::invalidate_end(Range<Gfn>) {
  // The sequence moves first: a fault that saw "in progress" retries either way, and one that
  // started before the begin sees the new sequence.
  invalidate_seq_.fetch_add(1, std::memory_order_acq_rel);
  invalidate_in_progress_.fetch_sub(1, std::memory_order_acq_rel);
}

void TdpMmu::disallow_huge(Range<Gfn> gfns) {
  if (!(gfns.begin < gfns.end)) return;
  {
    std::lock_guard g(disallow_mutex_);
    for (unsigned level = 2; level <= 3; ++level) {
      const unsigned shift = format_.geometry().shift(level) - kPageShift;
      for (std::uint64_t f = gfns.begin.raw() >> shift; f <= (gfns.end.raw() - 1) >> shift; ++f) ++disallowed_[level][f];
    }
    any_disallowed_.fetch_add(1, std::memory_order_release);
  }
  // Huge leaves over the range are split, not dropped: the rest of each stays mapped, and
  // only the leaves touching the range get smaller. Out of table memory, they are zapped
  // whole instead (that cannot fail): no huge leaf may stay over a disallowed gfn.
  if (!split(gfns)) unmap_clamped(gfns, "disallow_huge");
}

void TdpMmu::allow_huge(Range<Gfn> gfns) {
  if (!(gfns.begin < gfns.end)) return;
  std::lock_guard g(disallow_mutex_);
  for (unsigned level = 2; level <= 3; ++level) {
    const unsigned shift = format_.geometry().shift(level) - kPageShift;
    for (std::uint64_t f = gfns.begin.raw() >> shift; f <= (gfns.end.raw() - 1) >> shift; ++f) {
      auto it = disallowed_[level].find(f);
      if (it != disallowed_[level].end() && --it->second == 0) disallowed_[level].erase(it);
    }
  }
  any_disallowed_.fetch_sub(1, std::memory_order_release);
}

}  // namespace vmmu::tdp
