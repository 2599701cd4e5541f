#pragma once
// The engine's single-address walk: from the root down to a leaf, one entry per level.
//
// The caller's visitor sees every entry on the path (level, where it lives, its value) and may
// stop the walk, check it (permissions, reserved bits), or update it atomically through the
// table memory (A/D bits) and hand the new value back in `step.entry`. The walk itself knows
// only what the Format tells it: present, leaf, next table.

#include <cstdint>

#include "vmmu/pt/format.hpp"

namespace vmmu::pt {

enum class Visit : std::uint8_t { Continue, Stop };

template <class F>
struct Step {
  unsigned level;
  typename F::Output entry_address;
  typename F::Entry entry;
};

enum class WalkEnd : std::uint8_t {
  Leaf,        // reached a present leaf at `level`
  NotPresent,  // the entry at `level` is not present
  Unreadable,  // the table at `level` is not backed by memory
  Stopped,     // the visitor stopped at `level`
};

template <class F>
struct WalkResult {
  WalkEnd end;
  unsigned level;
  typename F::Output entry_address;
  typename F::Entry entry;
};

// What a walk reads its entries through: the memory's per-walk reader where it has one (one
// that keeps the walk's state in registers, as GuestMemory's does), else the memory itself.
template <class M>
decltype(auto) walk_reader(M& memory) {
  if constexpr (requires { memory.walk_reader(); }) {
    return memory.walk_reader();
  } else {
    return (memory);
  }
}

// Address of entry `index` of the table at `table`.
template <class F>
constexpr typename F::Output entry_address(typename F::Output table, unsigned index) {
  return table + std::uint64_t{index} * sizeof(typename F::Entry);
}

template <Format F, class M, class Visitor>
  requires TableMemory<M, typename F::Output>
inline WalkResult<F> walk(const F& format, M& memory, typename F::Output root, std::uint64_t input,
                          Visitor&& visit) {
  using Entry = typename F::Entry;
  const Geometry& g = format.geometry();
  typename F::Output table = root;
  auto&& reader = walk_reader(memory);
  // Unrolled where the format's depth is a constant (the x86 formats): each level's shift,
  // index mask and masks become immediates, and nothing but the entry loads is left on the
  // dependency chain. Level 1 always returns.
#pragma GCC unroll 6
  for (unsigned level = g.root_level(); level >= 1; --level) {
    Step<F> step{level, entry_address<F>(table, g.index(input, level)), Entry{}};
    std::optional<Entry> value = reader.template read<Entry>(step.entry_address);
    if (!value) return {WalkEnd::Unreadable, level, step.entry_address, Entry{}};
    step.entry = *value;
    if (visit(step) == Visit::Stop) return {WalkEnd::Stopped, level, step.entry_address, step.entry};
    if (!format.present(step.entry, level)) return {WalkEnd::NotPresent, level, step.entry_address, step.entry};
    if (level == 1 || format.leaf(step.entry, level)) return {WalkEnd::Leaf, level, step.entry_address, step.entry};
    table = format.table_address(step.entry, level);
  }
  return {WalkEnd::NotPresent, 0, table, Entry{}};  // no level: an empty geometry
}

}  // namespace vmmu::pt
