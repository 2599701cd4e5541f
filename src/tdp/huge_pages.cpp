// Huge pages: eager splitting, merging in place, and the zap-and-refault recovery it replaces.
#include "vmmu/core/rcu.hpp"
#include "vmmu/tdp/tdp_mmu.hpp"

namespace vmmu::tdp {

Result<std::uint64_t, pt::TableError> TdpMmu::split(Range<Gfn> gfns) {
  const std::optional<Range<Gpa>> clamped = clamp(gfns);
  if (!clamped) return 0;
  const Range<Gpa> range = *clamped;
  ReaderLock::Exclusive exclusive(lock_);
  rcu::ReadGuard rcu;
  pt::TlbFlush<Gpa> flush(&memory_);
  std::uint64_t n = 0;
  std::optional<pt::TableError> error;
  for (Root* root : roots_->valid_roots()) {
    n += count_huge(*root, range);
    auto r = root->tables.split(range, 1);
    if (r) {
      flush.merge(std::move(*r));
    } else {
      error = r.error();
    }
    roots_->put(root);
  }
  eager_splits_.fetch_add(n, std::memory_order_relaxed);
  finish(std::move(flush));
  checked("split");
  if (error) return Unexpected{*error};
  return n;
}

std::uint64_t TdpMmu::collapse(Range<Gfn> gfns) {
  const std::optional<Range<Gpa>> clamped = clamp(gfns);
  if (!clamped) return 0;
  const Range<Gpa> range = *clamped;
  pt::TlbFlush<Gpa> flush(&memory_);
  std::uint64_t n = 0;
  {
    // Shared: faults go on while tables are merged (their entries are compare-exchanged).
    ReaderLock::Shared shared(lock_, lock_.new_reader_slot());
    rcu::ReadGuard rcu;
    // May this span be one huge leaf? Same rule as the fault path.
    auto may_be_huge = [&](Range<Gpa> span, unsigned level) {
      const Gfn base = gfn_of(span.begin);
      const MemslotRegion* region = slots_.find(base);
      return region != nullptr && max_level(*region, base) >= level;
    };
    for (Root* root : roots_->valid_roots()) {
      // Leaves may differ in W / A / D: the huge leaf is writable only if every page was
      // (otherwise the next write faults and relaxes it), accessed / dirty if any page was.
      auto r = root->tables.collapse(range, {.max_level = 3, .merge = pt::ops::LeafMerge::WriteAndAgeMerged},
                                     pt::Shared{}, may_be_huge);
      if (r) {
        n += r->count;
        // A fault (or the hardware's A/D update) inside a table after it was read: harmless
        // (the vCPU faults again on the huge leaf), but counted.
        merge_races_.fetch_add(r->raced, std::memory_order_relaxed);
        flush.merge(std::move(r->flush));
      }
      roots_->put(root);
    }
  }
  merges_.fetch_add(n, std::memory_order_relaxed);
  // Faults walk without RCU: the unlinked tables are freed only after every shared holder
  // that may have entered them has left (a lock barrier), and after RCU readers (lookups).
  if (flush.unlinked_tables() != 0) {
    ReaderLock::Exclusive barrier(lock_);
  }
  finish(std::move(flush));
  checked_shared("collapse");
  return n;
}

std::uint64_t TdpMmu::unmap_collapsible(Range<Gfn> gfns) {
  const std::optional<Range<Gpa>> clamped = clamp(gfns);
  if (!clamped) return 0;
  const Range<Gpa> range = *clamped;
  ReaderLock::Exclusive exclusive(lock_);
  rcu::ReadGuard rcu;
  pt::TlbFlush<Gpa> flush(&memory_);
  std::uint64_t n = 0;
  for (Root* root : roots_->valid_roots()) {
    std::vector<Range<Gpa>> spans;
    pt::TableIterator it(format_, memory_, root->tables.root(), range.begin.raw(), range.end.raw(), 2);
    while (it.valid()) {
      const bool inside = it.address() >= range.begin.raw() && range.end.raw() - it.address() >= it.span();
      if (it.is_table() && inside && it.level() <= 3) {
        const Gfn base = gfn_of(Gpa(it.address()));
        const MemslotRegion* region = slots_.find(base);
        if (region != nullptr && max_level(*region, base) >= it.level()) {
          spans.push_back({Gpa(it.address()), Gpa(it.address() + it.span())});
          it.next_sibling();
          continue;
        }
      }
      it.next();
    }
    for (const Range<Gpa>& r : spans) {
      flush.merge(root->tables.unmap(r, pt::WholeLeaves{}));
    }
    n += spans.size();
    roots_->put(root);
  }
  recovered_by_zap_.fetch_add(n, std::memory_order_relaxed);
  finish(std::move(flush));
  checked("unmap_collapsible");
  return n;
}

}  // namespace vmmu::tdp
