#pragma once
// DirtyRing: one vCPU's log of the pages it dirtied (KVM's dirty ring, KVM_CAP_DIRTY_LOG_RING),
// an alternative to the per-slot bitmap whose cost grows with the pages written, not with
// the size of memory.
//
//   vCPU (one producer)        collector (any one thread)         MMU
//   push(slot, page) ──► [ D D D H H . . . ] ──► harvest(out) ──► reset(fn): fn(entry) for
//                           ^reset   ^harvest ^push                each harvested entry, then
//                                                                   the slots are free again
//
// Each entry carries a state word (empty -> dirty -> harvested -> empty); the producer
// publishes an entry with a release store of "dirty", so the collector reading "dirty" sees
// the entry's contents. The ring is "full" when pushed - reset > size - reserve: the vCPU must
// exit (KVM_EXIT_DIRTY_RING_FULL) and wait for harvest + reset, keeping `reserve` entries
// for writes already in flight.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "vmmu/memory/memslot_types.hpp"

namespace vmmu {

struct DirtyGfn {
  SlotId slot;
  std::uint64_t page = 0;  // page in the slot
  friend constexpr bool operator==(const DirtyGfn&, const DirtyGfn&) = default;
};

class DirtyRing {
 public:
  // `size` is rounded up to a power of two (at least 16); `reserve` < size.
  explicit DirtyRing(std::uint32_t size, std::uint32_t reserve = 8);

  [[nodiscard]] std::uint32_t size() const { return mask_ + 1; }

  // Producer only. False (nothing recorded) when the ring is full.
  bool push(SlotId slot, std::uint64_t page) {
    const std::uint64_t p = pushed_.load(std::memory_order_relaxed);
    if (p - reset_.load(std::memory_order_acquire) >= limit_) return false;
    Entry& e = entries_[p & mask_];
    e.slot = slot;
    e.page = page;
    e.state.store(kDirty, std::memory_order_release);
    pushed_.store(p + 1, std::memory_order_release);
    return true;
  }
  [[nodiscard]] bool full() const {
    return pushed_.load(std::memory_order_acquire) - reset_.load(std::memory_order_acquire) >= limit_;
  }

  // Collector: appends every published, not yet harvested entry to `out` (at most `max`) and
  // marks it harvested. Returns how many.
  std::size_t harvest(std::vector<DirtyGfn>& out, std::size_t max = ~std::size_t{0});

  // Collector, after the pages harvested so far are write-protected again (the MMU does it in
  // `fn`): frees every harvested entry, oldest first; returns how many.
  std::size_t reset(const std::function<void(const DirtyGfn&)>& fn);

  // Entries pushed and not yet reset (the invariant check reads them).
  [[nodiscard]] std::vector<DirtyGfn> pending() const;
  [[nodiscard]] std::uint64_t pushed() const { return pushed_.load(std::memory_order_acquire); }

 private:
  static constexpr std::uint32_t kEmpty = 0, kDirty = 1, kHarvested = 2;
  struct Entry {
    std::atomic<std::uint32_t> state{kEmpty};
    SlotId slot;
    std::uint64_t page = 0;
  };

  std::uint32_t mask_;
  std::uint32_t limit_;
  std::unique_ptr<Entry[]> entries_;
  alignas(64) std::atomic<std::uint64_t> pushed_{0};  // producer
  alignas(64) std::atomic<std::uint64_t> harvested_{0};
  std::atomic<std::uint64_t> reset_{0};
};

}  // namespace vmmu
