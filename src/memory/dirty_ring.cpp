#include "vmmu/memory/dirty_ring.hpp"

#include <bit>

namespace vmmu {

DirtyRing::DirtyRing(std::uint32_t size, std::uint32_t reserve) {
  const std::uint32_t n = std::bit_ceil(size < 16 ? 16u : size);
  mask_ = n - 1;
  limit_ = reserve < n ? n - reserve : n;
  entries_ = std::make_unique<Entry[]>(n);
}

std::size_t DirtyRing::harvest(std::vector<DirtyGfn>& out, std::size_t max) {
  std::uint64_t h = harvested_.load(std::memory_order_relaxed);
  const std::uint64_t end = pushed_.load(std::memory_order_acquire);
  std::size_t n = 0;
  for (; h != end && n < max; ++h, ++n) {
    Entry& e = entries_[h & mask_];
    // pushed_ was stored after the entry, so its state is already "dirty".
    out.push_back({e.slot, e.page});
    e.state.store(kHarvested, std::memory_order_relaxed);
  }
  harvested_.store(h, std::memory_order_release);
  return n;
}

std::size_t DirtyRing::reset(const std::function<void(const DirtyGfn&)>& fn) {
  std::uint64_t r = reset_.load(std::memory_order_relaxed);
  const std::uint64_t end = harvested_.load(std::memory_order_acquire);
  std::size_t n = 0;
  for (; r != end; ++r, ++n) {
    Entry& e = entries_[r & mask_];
    fn({e.slot, e.page});
    e.state.store(kEmpty, std::memory_order_relaxed);
  }
  // Release: the producer reuses these entries only after seeing the new reset index.
  reset_.store(r, std::memory_order_release);
  return n;
}

std::vector<DirtyGfn> DirtyRing::pending() const {
  std::vector<DirtyGfn> out;
  const std::uint64_t end = pushed_.load(std::memory_order_acquire);
  for (std::uint64_t r = reset_.load(std::memory_order_acquire); r != end; ++r) {
    const Entry& e = entries_[r & mask_];
    out.push_back({e.slot, e.page});
  }
  return out;
}

}  // namespace vmmu
