// Huge pages: eager splitting, merging in place, and the zap-and-refault recovery it replaces.
#include "vmmu/core/rcu.hpp"
#include "vmmu/tdp/tdp_mmu.hpp"

namespace vmmu::tdp {
namespace {

Range<Gpa> gpa_range(Range<Gfn> r) { return {gpa_of(r.begin), gpa_of(r.end)}; }

}  // namespace

Result<std::uint64_t, pt::HostError> TdpMmu::split(Range<Gfn> gfns) {
  Range<Gpa> range = gpa_range(gfns);
  if (range.end.raw() > gpa_limit()) range.end = Gpa(gpa_limit());
  if (!(range.begin < range.end)) return 0;
  ReaderLock::Exclusive exclusive(lock_);
  rcu::ReadGuard rcu;
  pt::TlbFlush<Gpa> flush(&memory_);
  std::uint64_t n = 0;
  std::optional<pt::HostError> error;
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

std::uint64_t TdpMmu::merge_root(Root& root, Range<Gpa> range, unsigned level, pt::TlbFlush<Gpa>& flush) {
  using Entry = TdpFormat::Entry;
  const pt::Geometry& g = format_.geometry();
  const unsigned child_level = level - 1;
  const std::uint64_t n = g.entries(child_level);
  std::vector<Entry> seen(n);
  std::uint64_t merged = 0;
  pt::TableIterator it(format_, memory_, root.tables.root(), range.begin.raw(), range.end.raw(), level);
  while (it.valid()) {
    if (it.level() != level || !it.is_table() || it.address() < range.begin.raw() ||
        range.end.raw() - it.address() < it.span()) {
      it.next();
      continue;
    }
    // May this span be one huge leaf? Same rule as the fault path.
    const Gfn base = gfn_of(Gpa(it.address()));
    const MemslotRegion* region = slots_.find(base);
    if (region == nullptr || max_level(*region, base) < level) {
      it.next_sibling();
      continue;
    }
    const Hpa out = region->hpa_of(base);
    const Entry* child = pt::HostTableMemory::pointer<Entry>(format_.table_address(it.entry(), level));
    // Every child must equal the first one's bits but for its address (one page further
    // each) and the bits that may differ: W, A, D. One compare per entry.
    const Entry vary = format_.write_bit() | format_.accessed_bit() | format_.dirty_bit();
    const Entry first = std::atomic_ref<const Entry>(child[0]).load(std::memory_order_acquire);
    const std::uint64_t step = g.span(child_level);
    bool ok = format_.present(first, child_level) && format_.leaf(first, child_level) &&
              format_.leaf_address(first, child_level) == out;
    Entry all = ~Entry{0}, any = 0;
    for (std::uint64_t i = 0; i < n && ok; ++i) {
      const Entry e = std::atomic_ref<const Entry>(child[i]).load(std::memory_order_acquire);
      seen[i] = e;
      ok = (e & ~vary) == (first & ~vary) + i * step;
      all &= e;
      any |= e;
    }
    pt::LeafAttrs attrs = format_.leaf_attrs(first, child_level);
    // Writable only if every page was (otherwise the next write faults and relaxes it);
    // accessed / dirty if any page was.
    attrs.write = (all & format_.write_bit()) != 0;
    attrs.accessed = format_.accessed_bit() == 0 || (any & format_.accessed_bit()) != 0;
    attrs.dirty = (any & format_.dirty_bit()) != 0;
    if (!ok) {
      it.next_sibling();
      continue;
    }
    const Hpa child_table = format_.table_address(it.entry(), level);
    // One compare-exchange swaps the table for the huge leaf: every walker sees one or the
    // other, and both map the same memory -- the range is never unmapped.
    if (!it.try_set(format_.make_leaf(out, level, attrs))) continue;  // changed: decide again
    ++merged;
    // A fault that entered the table before the swap may still upgrade a child's permission
    // or the hardware set its A/D bit there; harmless (the vCPU faults again on the huge
    // leaf), but counted.
    for (std::uint64_t i = 0; i < n; ++i) {
      if (std::atomic_ref<const Entry>(child[i]).load(std::memory_order_acquire) != seen[i]) {
        merge_races_.fetch_add(1, std::memory_order_relaxed);
        break;
      }
    }
    flush.add({Gpa(it.address()), Gpa(it.address() + it.span())});
    flush.add_retired({child_table, child_level});  // freed after the flush and RCU readers
    it.next_sibling();
  }
  return merged;
}

std::uint64_t TdpMmu::merge(Range<Gfn> gfns) {
  Range<Gpa> range = gpa_range(gfns);
  if (range.end.raw() > gpa_limit()) range.end = Gpa(gpa_limit());
  if (!(range.begin < range.end)) return 0;
  pt::TlbFlush<Gpa> flush(&memory_);
  std::uint64_t n = 0;
  {
    // Shared: faults go on while tables are merged (their entries are compare-exchanged).
    ReaderLock::Shared shared(lock_, lock_.new_reader_slot());
    rcu::ReadGuard rcu;
    for (Root* root : roots_->valid_roots()) {
      for (unsigned level = 2; level <= 3 && format_.block_allowed(level); ++level) {
        n += merge_root(*root, range, level, flush);
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
  checked_shared("merge");
  return n;
}

std::uint64_t TdpMmu::zap_collapsible(Range<Gfn> gfns) {
  Range<Gpa> range = gpa_range(gfns);
  if (range.end.raw() > gpa_limit()) range.end = Gpa(gpa_limit());
  if (!(range.begin < range.end)) return 0;
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
      if (auto z = root->tables.unmap(r)) flush.merge(std::move(*z));
    }
    n += spans.size();
    roots_->put(root);
  }
  recovered_by_zap_.fetch_add(n, std::memory_order_relaxed);
  finish(std::move(flush));
  checked("zap_collapsible");
  return n;
}

}  // namespace vmmu::tdp
