#pragma once
// The fault path's walk: from a root down to one entry for one address, building missing
// tables and splitting huge leaves on the way with compare-exchange (concurrent faults may
// do the same; the loser frees what it built and re-reads), then replacing the target entry
// with what `decide(old, level)` returns (nullopt: keep it).
//
// If the target level holds a table, a huge leaf cannot replace it without unlinking a
// subtree (not allowed to a shared-lock caller): the walk goes on to the next level and the
// caller maps smaller there (merge in place may make it huge later).

#include <atomic>
#include <cstdint>
#include <optional>
#include <thread>

#include "vmmu/pt/host_memory.hpp"
#include "vmmu/pt/ops/install.hpp"
#include "vmmu/pt/walk.hpp"
#include "vmmu/tdp/tdp_format.hpp"

namespace vmmu::tdp::detail {

struct Descended {
  bool installed = false;      // decide() returned a value and it was stored
  std::uint64_t old = 0;       // the entry decide() saw last
  unsigned level = 0;          // level of the target entry
  bool split = false;          // a huge leaf was split on the way
};

template <class Decide>
Result<Descended, pt::HostError> descend(const TdpFormat& f, pt::ops::EntryOps<TdpFormat>& ops, Hpa root,
                                          std::uint64_t addr, unsigned level, Decide&& decide) {
  using Entry = TdpFormat::Entry;
  const pt::Geometry& g = f.geometry();
  Descended out;
  Hpa table = root;
  for (unsigned l = g.root_level();; --l) {
    std::atomic_ref<Entry> slot(*pt::HostTableMemory::pointer<Entry>(pt::entry_address<TdpFormat>(table, g.index(addr, l))));
    Entry e = slot.load(std::memory_order_acquire);
    for (;;) {
      if (e == f.frozen_entry()) {  // another thread is replacing it: let it finish
        std::this_thread::yield();
        e = slot.load(std::memory_order_acquire);
        continue;
      }
      const bool present = f.present(e, l);
      const bool is_table = present && l > 1 && !f.leaf(e, l);
      if (l <= level && !is_table) {
        out.level = l;
        out.old = e;
        const std::optional<Entry> want = decide(e, l);
        if (!want) return out;
        if (slot.compare_exchange_strong(e, *want, std::memory_order_acq_rel)) {
          out.installed = true;
          return out;
        }
        continue;  // e holds the new value: decide again
      }
      if (is_table) {
        table = f.table_address(e, l);
        break;
      }
      // Above the target: a huge leaf to split, or nothing (or an MMIO marker) to build on.
      Result<Entry, pt::HostError> child = present ? ops.split_block(e, l) : ops.empty_table(l);
      if (!child) return Unexpected{child.error()};
      if (slot.compare_exchange_strong(e, *child, std::memory_order_acq_rel)) {
        out.split = out.split || present;
        table = f.table_address(*child, l);
        break;
      }
      ops.discard(*child, l);
    }
  }
}

}  // namespace vmmu::tdp::detail
