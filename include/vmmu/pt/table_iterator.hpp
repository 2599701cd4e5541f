#pragma once
// Pre-order iteration over every entry of a radix table that covers an input range.
//
//        root            visits: root[i], then (if root[i] is a table and above min_level)
//       /  |  \                  every entry of that table, recursively, then root[i+1] ...
//     t0  t1  t2
//
// Every range operation -- listing mappings, invariant checks, zap, write-protect, age,
// dirty-clear, split, merge -- is a loop over this iterator; nobody writes a private recursion.
// The iterator holds the path of tables from the root (`tables_`), the current entry's value
// as last read (`entry()`), and can replace that entry with a compare-exchange (`try_set`).
// After a successful try_set the iterator descends into the new value if it is a table.

#include <array>
#include <cstdint>
#include <optional>

#include "vmmu/pt/format.hpp"
#include "vmmu/pt/walk.hpp"

namespace vmmu::pt {

template <Format F, class M>
  requires TableMemory<M, typename F::Output>
class TableIterator {
 public:
  using Entry = typename F::Entry;
  using Output = typename F::Output;

  // Iterate over entries whose input range intersects [begin, end), not below `min_level`.
  TableIterator(const F& format, M& memory, Output root, std::uint64_t begin, std::uint64_t end,
                unsigned min_level = 1)
      : format_(format), memory_(memory), end_(end), min_level_(min_level) {
    const Geometry& g = format_.geometry();
    level_ = g.root_level();
    tables_[level_] = root;
    if (begin >= end || begin >= g.input_limit()) {
      valid_ = false;
      return;
    }
    target_ = begin;
    address_ = begin & ~(g.span(level_) - 1);
    load();
  }

  // An iterator standing on the entry for `input` in `table`, a table at `level` (over
  // [input, input + 1)): how a reverse map that stores an entry's table reaches the entry
  // without walking from the root. The path above `level` is unknown (tables above it unset).
  static TableIterator at(const F& format, M& memory, Output table, unsigned level, std::uint64_t input) {
    return TableIterator(AtEntry{}, format, memory, table, level, input);
  }

  [[nodiscard]] bool valid() const { return valid_; }
  [[nodiscard]] unsigned level() const { return level_; }
  // Input address of the first byte the current entry covers.
  [[nodiscard]] std::uint64_t address() const { return address_; }
  [[nodiscard]] std::uint64_t span() const { return format_.geometry().span(level_); }
  [[nodiscard]] Entry entry() const { return entry_; }
  [[nodiscard]] Output entry_address() const { return entry_address_; }
  // False when the current table is not backed by memory: entry() is then 0.
  [[nodiscard]] bool readable() const { return readable_; }
  // Table holding the entry at `level` of the current path (level >= level()).
  [[nodiscard]] Output table(unsigned level) const { return tables_[level]; }

  [[nodiscard]] bool is_table() const {
    return readable_ && level_ > 1 && format_.present(entry_, level_) && !format_.leaf(entry_, level_);
  }
  [[nodiscard]] bool is_leaf() const {
    return readable_ && format_.present(entry_, level_) && (level_ == 1 || format_.leaf(entry_, level_));
  }

  // Advance in pre-order: into the current entry's table if it is one (and above
  // min_level), otherwise to the next entry.
  void next() {
    if (is_table() && level_ > min_level_) {
      step_down();
    } else {
      next_sibling();
    }
  }

  // Advance past the current entry and everything below it.
  void next_sibling() {
    const Geometry& g = format_.geometry();
    for (;;) {
      const std::uint64_t span = g.span(level_);
      const std::uint64_t next = address_ + span;
      if (next < address_ || next >= end_ || next >= g.input_limit()) {
        valid_ = false;
        return;
      }
      if (level_ == g.root_level() || g.index(next, level_) != 0) {
        address_ = next;
        target_ = next;
        load();
        return;
      }
      ++level_;  // finished this table: continue with the parent's next entry
      address_ &= ~(g.span(level_) - 1);
    }
  }

  // Re-read the current entry (after losing a race, or after yielding).
  void refresh() { load(); }

  // Replace the current entry if it still holds entry(); on failure entry() is the new value.
  bool try_set(Entry desired) {
    Entry expected = entry_;
    if (memory_.template compare_exchange<Entry>(entry_address_, expected, desired)) {
      entry_ = desired;
      return true;
    }
    entry_ = expected;
    return false;
  }

 private:
  struct AtEntry {};
  TableIterator(AtEntry, const F& format, M& memory, Output table, unsigned level, std::uint64_t input)
      : format_(format), memory_(memory), end_(input + 1), min_level_(1), level_(level), target_(input) {
    tables_[level_] = table;
    address_ = input & ~(format_.geometry().span(level_) - 1);
    load();
  }

  void step_down() {
    const Geometry& g = format_.geometry();
    const Output child = format_.table_address(entry_, level_);
    --level_;
    tables_[level_] = child;
    const std::uint64_t from = target_ > address_ ? target_ : address_;
    address_ = from & ~(g.span(level_) - 1);
    load();
  }

  void load() {
    const Geometry& g = format_.geometry();
    entry_address_ = pt::entry_address<F>(tables_[level_], g.index(address_, level_));
    std::optional<Entry> value = memory_.template read<Entry>(entry_address_);
    readable_ = value.has_value();
    entry_ = value.value_or(Entry{});
  }

  const F& format_;
  M& memory_;
  std::uint64_t end_;
  unsigned min_level_;
  unsigned level_ = 0;
  std::uint64_t address_ = 0;
  std::uint64_t target_ = 0;
  Entry entry_{};
  Output entry_address_{};
  bool readable_ = false;
  bool valid_ = true;
  std::array<Output, kMaxLevels + 1> tables_{};
};

}  // namespace vmmu::pt
