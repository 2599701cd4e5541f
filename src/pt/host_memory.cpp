#include "vmmu/pt/host_memory.hpp"

#include <bit>
#include <cstring>
#include <new>

#include "vmmu/core/rcu.hpp"

namespace vmmu::pt {

HostTableMemory::HostTableMemory(const Geometry& geometry, std::uint64_t page_budget, std::size_t min_align)
    : geometry_(geometry), min_align_(min_align), budget_(page_budget) {}

HostTableMemory::~HostTableMemory() = default;

std::size_t HostTableMemory::bytes(unsigned level) const {
  return static_cast<std::size_t>(geometry_.table_bytes(level));
}

std::size_t HostTableMemory::alignment(unsigned level) const {
  const std::size_t b = std::bit_ceil(bytes(level));
  return b > min_align_ ? b : min_align_;
}

std::uint64_t HostTableMemory::tables_in_use() const { return total_.load(std::memory_order_relaxed); }

Result<Hpa, HostError> HostTableMemory::allocate(unsigned level) {
  // Reserve a slot of the budget first so concurrent allocators never overshoot it.
  std::uint64_t used = total_.load(std::memory_order_relaxed);
  do {
    if (used >= budget_.load(std::memory_order_relaxed)) return Unexpected{HostError::OutOfMemory};
  } while (!total_.compare_exchange_weak(used, used + 1, std::memory_order_relaxed));
  const std::size_t align = alignment(level);
  const std::size_t size = std::max(bytes(level), align);
  void* p = ::operator new(size, std::align_val_t{align}, std::nothrow);
  if (p == nullptr) {
    total_.fetch_sub(1, std::memory_order_relaxed);
    return Unexpected{HostError::OutOfMemory};
  }
  std::memset(p, 0, size);
  in_use_[level].fetch_add(1, std::memory_order_relaxed);
  return Hpa(reinterpret_cast<std::uintptr_t>(p));  // NOLINT: an Hpa is a host VA
}

void HostTableMemory::free_unpublished(Hpa table, unsigned level) {
  in_use_[level].fetch_sub(1, std::memory_order_relaxed);
  total_.fetch_sub(1, std::memory_order_relaxed);
  ::operator delete(pointer<std::byte>(table), std::align_val_t{alignment(level)});
}

void HostTableMemory::retire(RetiredTable t) {
  in_use_[t.level].fetch_sub(1, std::memory_order_relaxed);
  total_.fetch_sub(1, std::memory_order_relaxed);
  // The callback must not touch *this: it may run after this object is gone.
  const std::align_val_t align{alignment(t.level)};
  std::byte* p = pointer<std::byte>(t.table);
  rcu::defer([p, align] { ::operator delete(p, align); });
}

}  // namespace vmmu::pt
