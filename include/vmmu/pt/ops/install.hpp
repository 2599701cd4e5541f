#pragma once
// The one place a owned-table entry changes, and the entry-sized building blocks every range
// operation uses (split a block into a child table, recognise a collapsible table, list the
// tables below an entry).
//
// install(it, desired):
//   old present and the format says "break before make" (arm64: new output address, new
//   block size, table <-> block; Arm ARM D8.16.1 "Using break-before-make when updating
//   translation table entries"):
//       old ──cmpxchg──► frozen ──TLBI (address, or range for a table)──► store desired
//   otherwise:
//       old ──cmpxchg──► desired, and the caller's flush token grows by the entry's span
//   A lost compare-exchange reports Lost and leaves the iterator holding the new value: the
//   caller re-decides (retry) -- KVM's -EAGAIN. A replaced table's subtree is listed before it
//   is unlinked and travels with the flush token to be freed after readers are done.
//
// Replacing a table (unmap, coalesce, collapse) is only allowed to exclusive callers: listing
// its subtree needs it to be stable.

#include <atomic>
#include <cassert>
#include <cstdint>
#include <optional>
#include <thread>
#include <vector>

#include "vmmu/core/result.hpp"
#include "vmmu/pt/owned_format.hpp"
#include "vmmu/pt/owned_table_memory.hpp"
#include "vmmu/pt/tlb_log.hpp"
#include "vmmu/pt/ops/entry_pair.hpp"
#include "vmmu/pt/ops/leaf_bits.hpp"
#include "vmmu/pt/ops/mode.hpp"
#include "vmmu/pt/table_iterator.hpp"
#include "vmmu/pt/walk.hpp"

namespace vmmu::pt::ops {

enum class Installed : std::uint8_t { Done, Lost };

// Which leaves collapse into a block: Equal -- equal attributes (arm64 stage 2: a block must
// not widen any page's permission); WriteAndAgeMerged -- also leaves differing in write,
// accessed and dirty: the block is writable if every leaf was, accessed / dirty if any was
// (the TDP MMU's merge in place: a write to a page that was read-only faults and relaxes).
enum class LeafMerge : std::uint8_t { Equal, WriteAndAgeMerged };

template <OwnedFormat F>
class EntryOps {
 public:
  using Entry = typename F::Entry;
  using Input = typename F::Input;
  using Iterator = TableIterator<F, OwnedTableMemory>;
  using Flush = TlbFlush<Input>;

  EntryOps(const F& format, OwnedTableMemory& memory, TlbLog<Input>& tlb, Hpa root)
      : f_(format), memory_(memory), tlb_(tlb), root_(root) {}

  [[nodiscard]] bool frozen(const Iterator& it) const { return it.entry() == f_.frozen_entry(); }

  // Another thread is between break and make on this entry: let it finish, then re-read.
  static void wait(Iterator& it) {
    std::this_thread::yield();
    it.refresh();
  }

  Installed install(Iterator& it, Entry desired, Flush& flush) {
    const Entry old = it.entry();
    if (old == f_.frozen_entry()) return Installed::Lost;
    // Filling an empty entry (a fault's common case): nothing to invalidate or retire. Kept
    // small enough to inline into a fault; replacing a present entry is out of line.
    if (!f_.present(old, it.level())) return it.try_set(desired) ? Installed::Done : Installed::Lost;
    return replace(it, desired, flush);
  }

  // install() into the empty entry a look-up `w` ended on (OwnedTables::look_up), without an
  // iterator -- a fault's common case: nothing to invalidate or retire, one compare-exchange
  // against the value read (shared mode; exclusive callers have ops::fill). Lost when another
  // thread changed the entry first.
  Installed install_empty(const WalkResult<F>& w, Entry desired) {
    assert(!f_.present(w.entry, w.level) && w.entry != f_.frozen_entry());
    Entry expected = w.entry;
    return memory_.template compare_exchange<Entry>(w.entry_address, expected, desired) ? Installed::Done
                                                                                         : Installed::Lost;
  }

  // install() of a present entry.
  [[gnu::noinline]] Installed replace(Iterator& it, Entry desired, Flush& flush) {
    const Entry old = it.entry();
    const unsigned level = it.level();
    const std::uint64_t addr = it.address(), span = it.span();
    const bool was_table = it.is_table();
    // A level-2 table's subtree is its one page table (a collapse's common case: no walk, no
    // allocation); higher tables are listed by a walk of the subtree.
    std::optional<RetiredTable> page_table;
    std::vector<RetiredTable> unlinked;
    if (was_table && level == 2) {
      page_table = RetiredTable{f_.table_address(old, 2), 1};
    } else if (was_table) {
      list_subtree(addr, level, unlinked);
    }
    if (f_.needs_break_before_make(old, desired, level)) {
      if (!it.try_set(f_.frozen_entry())) return Installed::Lost;
      tlb_.count_break_before_make();
      if (was_table) {
        tlb_.invalidate_range({Input(addr), Input(addr + span)});
      } else {
        tlb_.invalidate_address(Input(addr), span, level);
      }
      // Nobody but the freezer writes a frozen entry, so this cannot fail.
      [[maybe_unused]] const bool ok = it.try_set(desired);
      assert(ok);
    } else {
      if (!it.try_set(desired)) return Installed::Lost;
      flush.add({Input(addr), Input(addr + span)});
    }
    if (page_table) flush.add_retired(*page_table);
    for (const RetiredTable& t : unlinked) flush.add_retired(t);
    return Installed::Done;
  }

  // Where reach() stopped: `it` stands on the entry, it.entry() is its value.
  struct Reached {
    bool split = false;  // a leaf above the target level was split on the way
  };

  // Look-up: moves `it` (an iterator over the address to find) down through tables to the
  // first entry that is not one -- the leaf mapping the address, or the empty entry (or a
  // format's not-present marker) where its mapping would go. Frozen entries are waited out.
  void settle(Iterator& it) const {
    for (;;) {
      if (frozen(it)) {
        wait(it);
      } else if (it.is_table()) {
        it.next();
      } else {
        return;
      }
    }
  }

  // Walk-and-build: settle(), then while the entry reached is above `level`, replace it with
  // install() by a table -- an empty one, or the leaf split into equal smaller leaves -- and go
  // on into it; a lost race re-reads (the winner's table is used). Stops at the first entry
  // at or below `level` that is not a table: a table at `level` is descended, since
  // replacing it would unlink a subtree (callers map smaller there). The caller decides on
  // it.entry() and install()s; when that loses, reach() again from where `it` stands.
  // Errors: OutOfMemory, Unsupported (a leaf that cannot be split: see split_block); what was
  // built stays (valid, empty or equal to the leaf split).
  Result<Reached, TableError> reach(Iterator& it, unsigned level, Flush& flush) {
    settle(it);
    if (it.level() <= level) return Reached{};  // nothing to build: a fault's common case, inlined
    return build(it, level, flush);
  }

  // reach() from a settled entry above `level`.
  [[gnu::noinline]] Result<Reached, TableError> build(Iterator& it, unsigned level, Flush& flush) {
    Reached r;
    for (; it.level() > level; settle(it)) {
      const unsigned at = it.level();
      const bool leaf = f_.present(it.entry(), at);
      Result<Entry, TableError> table = leaf ? split_block(it.entry(), at) : empty_table(at);
      if (!table) return Unexpected{table.error()};
      if (install(it, *table, flush) == Installed::Lost) {
        discard(*table, at);
        continue;
      }
      r.split = r.split || leaf;
      it.next();  // into the new table
    }
    return r;
  }

  // A table entry for `level` whose child maps exactly what the block `block` mapped, with
  // the same attributes; the child is complete before anyone can see it.
  // Errors: OutOfMemory; Unsupported when level - 1 may not hold blocks.
  Result<Entry, TableError> split_block(Entry block, unsigned level) {
    const Geometry& g = f_.geometry();
    const unsigned child_level = level - 1;
    if (child_level > 1 && !f_.block_allowed(child_level)) return Unexpected{TableError::Unsupported};
    Result<Hpa, TableError> child = memory_.allocate(child_level);
    if (!child) return Unexpected{child.error()};
    const LeafAttrs attrs = f_.leaf_attrs(block, level);
    const Hpa base = f_.leaf_address(block, level);
    // OwnedFormat: a leaf is its address OR attribute bits fixed by (level, attrs), so the
    // i-th child is the first one plus i spans. Unpublished: plain stores; the publishing
    // compare-exchange (acq_rel) orders them.
    const Entry first = f_.make_leaf(base, child_level, attrs);
    const Entry step = static_cast<Entry>(g.span(child_level));
    Entry* e = OwnedTableMemory::pointer<Entry>(*child);
    for (unsigned i = 0; i < g.entries(child_level); ++i) e[i] = static_cast<Entry>(first + i * step);
    return f_.make_table(*child, level);
  }

  // A table entry for `level` pointing to a fresh, empty child.
  // Errors: OutOfMemory.
  Result<Entry, TableError> empty_table(unsigned level) {
    Result<Hpa, TableError> child = memory_.allocate(level - 1);
    if (!child) return Unexpected{child.error()};
    return f_.make_table(*child, level);
  }

  // A table entry for `level` whose child (at level 1) maps `out`, `out + page`, ... with
  // `attrs`: a whole page table built before anyone can see it, published by one install.
  // Errors: OutOfMemory.
  Result<Entry, TableError> page_table(Hpa out, LeafAttrs attrs) {
    const Geometry& g = f_.geometry();
    Result<Hpa, TableError> child = memory_.allocate(1);
    if (!child) return Unexpected{child.error()};
    Entry* e = OwnedTableMemory::pointer<Entry>(*child);
    // Unpublished: plain stores; the publishing compare-exchange (acq_rel) orders them.
    const Entry first = f_.make_leaf(out, 1, attrs);
    const Entry step = static_cast<Entry>(g.span(1));
    for (unsigned i = 0; i < g.entries(1); ++i) e[i] = static_cast<Entry>(first + i * step);
    return f_.make_table(*child, 2);
  }

  // Frees the child of a table entry that lost its race (never published; holds no tables).
  void discard(Entry table, unsigned level) { memory_.free_unpublished(f_.table_address(table, level), level - 1); }

  // Clears `clear`'s bits in every present leaf of the level-1 table `table`; returns how
  // many leaves had them. Exclusive: entries are stored, not compare-exchanged (no other
  // writer exists; lock-free readers see the old or the new entry, both valid -- a
  // permission-only change needs no break-before-make). Shared: each change is a
  // compare-exchange against the value read, so a bit another thread sets meanwhile (a
  // fault's W, the hardware's A/D) is never lost, and an entry that stopped being a present
  // leaf (a frozen one) is left alone.
  template <Mode M>
  std::uint64_t update_page_table(Hpa table, const ClearFlag<F>& clear, M) {
    const Geometry& g = f_.geometry();
    const Entry mask = clear.mask(1);
    Entry* e = OwnedTableMemory::pointer<Entry>(table);
    if constexpr (std::same_as<M, Shared> && kPairCas && sizeof(Entry) == 8) {
      return update_page_table_pairs(e, static_cast<unsigned>(g.entries(1)), mask);
    }
    std::uint64_t changed = 0;
    for (unsigned i = 0; i < g.entries(1); ++i) {
      std::atomic_ref<Entry> slot(e[i]);
      // relaxed: the caller's lock release and TLB flush order the update for everyone else.
      Entry old = slot.load(std::memory_order_relaxed);
      // A lost compare-exchange leaves the new value in `old`: decide again.
      while ((old & mask) != 0 && f_.present(old, 1)) {
        if constexpr (std::same_as<M, Exclusive>) {
          slot.store(old & ~mask, std::memory_order_relaxed);
        } else if (!slot.compare_exchange_weak(old, old & ~mask, std::memory_order_relaxed)) {
          continue;
        }
        ++changed;
        break;
      }
    }
    return changed;
  }

  // update_page_table's Shared mode, two entries per compare-exchange (see entry_pair.hpp).
  // `n` is even: tables are whole pages.
  std::uint64_t update_page_table_pairs(Entry* e, unsigned n, Entry mask) {
    auto changes = [&](Entry x) { return (x & mask) != 0 && f_.present(x, 1); };
    std::uint64_t changed = 0;
    for (unsigned i = 0; i < n; i += 2) {
      // relaxed, and possibly torn between the two: the compare-exchange checks both.
      Entry lo = std::atomic_ref<Entry>(e[i]).load(std::memory_order_relaxed);
      Entry hi = std::atomic_ref<Entry>(e[i + 1]).load(std::memory_order_relaxed);
      for (;;) {  // a lost compare-exchange leaves the current values in lo / hi: decide again
        const bool l = changes(lo), h = changes(hi);
        if (!l && !h) break;
        if (compare_exchange_pair(&e[i], lo, hi, l ? lo & ~mask : lo, h ? hi & ~mask : hi)) {
          changed += (l ? 1u : 0u) + (h ? 1u : 0u);
          break;
        }
      }
    }
    return changed;
  }

  // The same for some entries of the level-1 table `table`: entry offset + i for each set
  // bit i of `bits` (offset may wrap: only the bits naming entries of this table are set).
  // Exclusive only, as above.
  std::uint64_t update_page_table_masked(Entry* table, std::uint64_t offset, std::uint64_t bits,
                                         const ClearFlag<F>& clear) {
    const Entry mask = clear.mask(1);
    std::uint64_t changed = 0;
    for (; bits != 0; bits &= bits - 1) {
      std::atomic_ref<Entry> slot(table[offset + static_cast<unsigned>(__builtin_ctzll(bits))]);
      // relaxed: as update_page_table's Exclusive mode.
      const Entry old = slot.load(std::memory_order_relaxed);
      if ((old & mask) == 0 || !f_.present(old, 1)) continue;
      slot.store(old & ~mask, std::memory_order_relaxed);
      ++changed;
    }
    return changed;
  }

  // The block that can replace the table `child` (at level - 1) under a level-`level` entry:
  // every entry a present leaf, physically contiguous from a `level`-aligned base, attributes
  // equal (or merged, see LeafMerge). nullopt otherwise. One compare per entry: each must be
  // the first one's bits plus i spans, but for the bits allowed to differ. `seen`, when given
  // (entries(level - 1) slots), receives every entry as read, for a race check after the swap
  // without a second read before it.
  std::optional<Entry> collapsed(Hpa child, unsigned level, LeafMerge merge = LeafMerge::Equal,
                                 Entry* seen = nullptr) const {
    const Geometry& g = f_.geometry();
    const unsigned cl = level - 1;
    if (!f_.block_allowed(level)) return std::nullopt;
    const Entry* e = OwnedTableMemory::pointer<const Entry>(child);
    const Entry first = std::atomic_ref<const Entry>(e[0]).load(std::memory_order_acquire);
    if (!f_.present(first, cl) || (cl > 1 && !f_.leaf(first, cl))) return std::nullopt;
    const Hpa base = f_.leaf_address(first, cl);
    if (!base.aligned_to(g.span(level))) return std::nullopt;
    LeafAttrs attrs = f_.leaf_attrs(first, cl);
    Entry vary = 0;
    if (merge == LeafMerge::WriteAndAgeMerged) {
      LeafAttrs on = attrs, off = attrs;
      on.write = on.accessed = on.dirty = true;
      off.write = off.accessed = off.dirty = false;
      vary = f_.make_leaf(base, cl, on) ^ f_.make_leaf(base, cl, off);
    }
    const Entry keep = static_cast<Entry>(~vary);  // the bits every entry must have as expected
    Entry all = ~Entry{0}, any = 0;
    const bool ok = seen != nullptr ? contiguous<true>(e, g.entries(cl), keep, first & keep, g.span(cl), seen, all, any)
                                    : contiguous<false>(e, g.entries(cl), keep, first & keep, g.span(cl), seen, all, any);
    if (!ok) return std::nullopt;
    if (merge == LeafMerge::WriteAndAgeMerged) {
      attrs.write = f_.leaf_attrs(all | (first & ~vary), cl).write;
      const LeafAttrs some = f_.leaf_attrs(any, cl);
      attrs.accessed = some.accessed;
      attrs.dirty = some.dirty;
    }
    return f_.make_leaf(base, level, attrs);
  }

  // collapsed()'s loop: whether e[i] & fixed == want + i * step for every i < n, ANDing /
  // ORing the entries into all / any (and copying them to seen when kSeen). Its own function
  // with every bound in a local: inlined into a large caller, the loop re-read the geometry and
  // its state from memory on every entry (a store to seen may alias them), which made the TDP
  // MMU's merge in place of 1 GiB slower than its private loop before the engine had it. One
  // branch per block of 8 entries (a cache line of 8-byte entries). Out of line: inlined, it
  // changed how GCC inlined the rest of a file (stage 2's write-protect loop grew and slowed).
  template <bool kSeen>
  [[gnu::noinline]] static bool contiguous(const Entry* e, std::uint64_t n, Entry fixed, Entry want, std::uint64_t span, Entry* seen,
                         Entry& all, Entry& any) {
    const Entry step = static_cast<Entry>(span);
    Entry a = all, o = any;
    std::uint64_t i = 0;
    auto one = [&](Entry& diff) {
      const Entry now = std::atomic_ref<const Entry>(e[i]).load(std::memory_order_acquire);
      if constexpr (kSeen) seen[i] = now;
      diff |= (now & fixed) ^ want;
      want = static_cast<Entry>(want + step);
      a &= now;
      o |= now;
      ++i;
    };
    for (; i + 8 <= n;) {
      Entry diff = 0;
      for (unsigned j = 0; j < 8; ++j) one(diff);
      if (diff != 0) return false;
    }
    Entry diff = 0;
    while (i < n) one(diff);
    all = a;
    any = o;
    return diff == 0;
  }

  // True when every entry of the table `child` (at `child_level`) is empty.
  bool empty(Hpa child, unsigned child_level) const {
    const Geometry& g = f_.geometry();
    for (unsigned i = 0; i < g.entries(child_level); ++i) {
      if (memory_.read<Entry>(entry_address<F>(child, i)).value_or(Entry{}) != Entry{}) return false;
    }
    return true;
  }

  // Adds every table below the level-`level` table entry covering `addr` to `out`.
  void list_subtree(std::uint64_t addr, unsigned level, std::vector<RetiredTable>& out) {
    const std::uint64_t span = f_.geometry().span(level);
    for (Iterator it(f_, memory_, root_, addr, addr + span, 2); it.valid(); it.next()) {
      if (it.level() <= level && it.is_table()) out.push_back({f_.table_address(it.entry(), it.level()), it.level() - 1});
    }
  }

 private:
  const F& f_;
  OwnedTableMemory& memory_;
  TlbLog<Input>& tlb_;
  Hpa root_;
};

}  // namespace vmmu::pt::ops
