#pragma once
// The one place a host-table entry changes, and the entry-sized building blocks every range
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
#include "vmmu/pt/host_format.hpp"
#include "vmmu/pt/host_memory.hpp"
#include "vmmu/pt/host_tlb.hpp"
#include "vmmu/pt/table_iterator.hpp"

namespace vmmu::pt::ops {

enum class Installed : std::uint8_t { Done, Lost };

template <HostFormat F>
class EntryOps {
 public:
  using Entry = typename F::Entry;
  using Input = typename F::Input;
  using Iterator = TableIterator<F, HostTableMemory>;
  using Flush = TlbFlush<Input>;

  EntryOps(const F& format, HostTableMemory& memory, TlbLog<Input>& tlb, Hpa root)
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
    const unsigned level = it.level();
    const std::uint64_t addr = it.address(), span = it.span();
    const bool was_present = f_.present(old, level);
    const bool was_table = it.is_table();
    std::vector<RetiredTable> unlinked;
    if (was_table) list_subtree(addr, level, unlinked);
    if (was_present && f_.needs_break_before_make(old, desired, level)) {
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
      if (was_present) flush.add({Input(addr), Input(addr + span)});
    }
    for (const RetiredTable& t : unlinked) flush.add_retired(t);
    return Installed::Done;
  }

  // A table entry for `level` whose child maps exactly what the block `block` mapped, with
  // the same attributes; the child is complete before anyone can see it.
  // Errors: OutOfMemory; Unsupported when level - 1 may not hold blocks.
  Result<Entry, HostError> split_block(Entry block, unsigned level) {
    const Geometry& g = f_.geometry();
    const unsigned child_level = level - 1;
    if (child_level > 1 && !f_.block_allowed(child_level)) return Unexpected{HostError::Unsupported};
    Result<Hpa, HostError> child = memory_.allocate(child_level);
    if (!child) return Unexpected{child.error()};
    const LeafAttrs attrs = f_.leaf_attrs(block, level);
    const Hpa base = f_.leaf_address(block, level);
    // HostFormat: a leaf is its address OR attribute bits fixed by (level, attrs), so the
    // i-th child is the first one plus i spans. Unpublished: plain stores; the publishing
    // compare-exchange (acq_rel) orders them.
    const Entry first = f_.make_leaf(base, child_level, attrs);
    const Entry step = static_cast<Entry>(g.span(child_level));
    Entry* e = HostTableMemory::pointer<Entry>(*child);
    for (unsigned i = 0; i < g.entries(child_level); ++i) e[i] = static_cast<Entry>(first + i * step);
    return f_.make_table(*child, level);
  }

  // A table entry for `level` pointing to a fresh, empty child.
  // Errors: OutOfMemory.
  Result<Entry, HostError> empty_table(unsigned level) {
    Result<Hpa, HostError> child = memory_.allocate(level - 1);
    if (!child) return Unexpected{child.error()};
    return f_.make_table(*child, level);
  }

  // A table entry for `level` whose child (at level 1) maps `out`, `out + page`, ... with
  // `attrs`: a whole page table built before anyone can see it, published by one install.
  // Errors: OutOfMemory.
  Result<Entry, HostError> page_table(Hpa out, LeafAttrs attrs) {
    const Geometry& g = f_.geometry();
    Result<Hpa, HostError> child = memory_.allocate(1);
    if (!child) return Unexpected{child.error()};
    Entry* e = HostTableMemory::pointer<Entry>(*child);
    // Unpublished: plain stores; the publishing compare-exchange (acq_rel) orders them.
    const Entry first = f_.make_leaf(out, 1, attrs);
    const Entry step = static_cast<Entry>(g.span(1));
    for (unsigned i = 0; i < g.entries(1); ++i) e[i] = static_cast<Entry>(first + i * step);
    return f_.make_table(*child, 2);
  }

  // Applies `change` to the attributes of every present leaf of the level-1 table `table`;
  // returns how many changed. Exclusive callers only: entries are stored, not
  // compare-exchanged, as KVM does without KVM_PGTABLE_WALK_SHARED (no other writer exists;
  // vmmu's stage-2 tables run with hardware AF/dirty updates off). Lock-free readers see the
  // old or the new entry, both valid (a permission-only change needs no break-before-make).
  template <class Change>
  std::uint64_t update_page_table(Hpa table, Change&& change) {
    const Geometry& g = f_.geometry();
    Entry* e = HostTableMemory::pointer<Entry>(table);
    std::uint64_t changed = 0;
    // The entries of one page table nearly always share their attribute bits: remember the
    // last old -> new attribute bits and reuse them (HostFormat: a leaf is its address bits
    // OR attribute bits that do not depend on the address).
    Entry memo_old = 0, memo_new = 0;
    bool memo = false;
    for (unsigned i = 0; i < g.entries(1); ++i) {
      std::atomic_ref<Entry> slot(e[i]);
      // relaxed: the caller's lock release and TLB flush order the update for everyone else.
      const Entry old = slot.load(std::memory_order_relaxed);
      if (old == Entry{}) continue;
      const Entry address = static_cast<Entry>(f_.leaf_address(old, 1).raw());
      if (!(memo && (old & ~address) == memo_old)) {
        if (!f_.present(old, 1)) continue;
        const LeafAttrs now = f_.leaf_attrs(old, 1);
        const Entry next = f_.make_leaf(f_.leaf_address(old, 1), 1, change(now));
        memo = true;
        memo_old = old & ~address;
        memo_new = next & ~address;
      }
      if (memo_new == memo_old) continue;
      slot.store(address | memo_new, std::memory_order_relaxed);
      ++changed;
    }
    return changed;
  }

  // Frees the child of a table entry that lost its race (never published; holds no tables).
  void discard(Entry table, unsigned level) { memory_.free_unpublished(f_.table_address(table, level), level - 1); }

  // The block that can replace the table `child` (at level - 1) under a level-`level` entry:
  // every entry a present leaf, physically contiguous from a `level`-aligned base, equal
  // attributes. nullopt otherwise.
  std::optional<Entry> collapsed(Hpa child, unsigned level) const {
    const Geometry& g = f_.geometry();
    const unsigned cl = level - 1;
    if (!f_.block_allowed(level)) return std::nullopt;
    std::optional<Hpa> base;
    LeafAttrs attrs;
    for (unsigned i = 0; i < g.entries(cl); ++i) {
      const Entry e = memory_.read<Entry>(entry_address<F>(child, i)).value_or(Entry{});
      if (!f_.present(e, cl) || (cl > 1 && !f_.leaf(e, cl))) return std::nullopt;
      const Hpa out = f_.leaf_address(e, cl);
      if (i == 0) {
        if (!out.aligned_to(g.span(level))) return std::nullopt;
        base = out;
        attrs = f_.leaf_attrs(e, cl);
      } else if (out != *base + i * g.span(cl) || !(f_.leaf_attrs(e, cl) == attrs)) {
        return std::nullopt;
      }
    }
    return f_.make_leaf(*base, level, attrs);
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
  HostTableMemory& memory_;
  TlbLog<Input>& tlb_;
  Hpa root_;
};

}  // namespace vmmu::pt::ops
