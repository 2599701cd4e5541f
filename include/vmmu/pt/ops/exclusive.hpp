#pragma once
// Entry writes for a caller that holds the tables' lock exclusively (pt::Exclusive, mode.hpp):
// no other writer exists, so a plain release store does what install()'s compare-exchange does
// for concurrent writers. Lock-free readers (the modelled hardware's walk) see the old entry or
// the new one, both valid.
//
//   fill(entry, e)          empty ──store──► e         nothing to record: no TLB holds a
//                                                       not-present entry, nothing is unlinked
//   PageRewrite(table)      present leaf ──store──► leaf or empty, any number of entries of
//     .set(i, e)            one table; the flush they need is recorded once, by record() /
//     .record(flush, ...)   record_all(), for every entry changed -- a sync re-reading a whole
//                           page table pays no compare-exchange and no bookkeeping per entry
//
// Neither replaces a present table entry: its subtree must be listed and retired (install()).
// Under the shared mode every change stays install()'s compare-exchange.

#include <atomic>
#include <cassert>
#include <cstdint>

#include "vmmu/core/address.hpp"
#include "vmmu/pt/owned_format.hpp"
#include "vmmu/pt/owned_table_memory.hpp"
#include "vmmu/pt/tlb_log.hpp"

namespace vmmu::pt::ops {

// Fills the empty entry at `entry` with `desired` (a leaf, or a table entry whose child is
// complete: the release store publishes the child's contents). Returns false, writing
// nothing, when the entry is not empty: a present entry is replaced through install() or a
// PageRewrite, which record its flush.
template <OwnedFormat F>
[[nodiscard]] bool fill(Hpa entry, typename F::Entry desired) {
  using Entry = typename F::Entry;
  std::atomic_ref<Entry> slot(*OwnedTableMemory::pointer<Entry>(entry));
  // relaxed: no other writer; the value only decides whether we write.
  if (slot.load(std::memory_order_relaxed) != Entry{}) return false;
  slot.store(desired, std::memory_order_release);
  return true;
}

// Leaf rewrites in the one table `table` at level `level` (see the header comment). Changing
// an entry makes record() or record_all() an obligation, checked in debug builds.
template <OwnedFormat F>
class PageRewrite {
 public:
  using Entry = typename F::Entry;
  using Input = typename F::Input;

  PageRewrite(const F& format, Hpa table, unsigned level)
      : f_(format), entries_(OwnedTableMemory::pointer<Entry>(table)), level_(level) {}
  ~PageRewrite() { assert(first_ > last_ && "PageRewrite changed entries but recorded no flush"); }
  PageRewrite(const PageRewrite&) = delete;
  PageRewrite& operator=(const PageRewrite&) = delete;

  // relaxed: under the lock no other writer exists.
  [[nodiscard]] Entry entry(unsigned i) const {
    return std::atomic_ref<Entry>(entries_[i]).load(std::memory_order_relaxed);
  }

  // Entry i (empty or a present leaf) becomes `desired` (a leaf or empty). Returns false,
  // writing nothing, for a present table entry.
  [[nodiscard]] bool set(unsigned i, Entry desired) {
    const Entry old = entry(i);
    if (f_.present(old, level_) && !f_.leaf(old, level_)) return false;
    if (old == desired) return true;
    std::atomic_ref<Entry>(entries_[i]).store(desired, std::memory_order_release);
    // Filling an empty entry needs no invalidation: only replaced present ones widen the range.
    if (f_.present(old, level_)) {
      first_ = i < first_ ? i : first_;
      last_ = i > last_ ? i : last_;
    }
    return true;
  }

  // Whether a set() replaced a present entry not recorded yet.
  [[nodiscard]] bool pending() const { return first_ <= last_; }

  // Records in `flush` the inputs of the replaced entries, the table mapping `base` onwards.
  void record(TlbFlush<Input>& flush, Input base) {
    if (!pending()) return;
    const std::uint64_t span = f_.geometry().span(level_);
    flush.add({Input(base.raw() + first_ * span), Input(base.raw() + (std::uint64_t{last_} + 1) * span)});
    reset();
  }
  // Records a flush of everything (the table is reached at several inputs, as a shadow page
  // linked from several parents).
  void record_all(TlbFlush<Input>& flush) {
    if (!pending()) return;
    flush.add_all();
    reset();
  }

 private:
  void reset() {
    first_ = ~0u;
    last_ = 0;
  }

  const F& f_;
  Entry* entries_;
  unsigned level_;
  unsigned first_ = ~0u;  // replaced entries not recorded yet: [first_, last_], empty when first_ > last_
  unsigned last_ = 0;
};

}  // namespace vmmu::pt::ops
