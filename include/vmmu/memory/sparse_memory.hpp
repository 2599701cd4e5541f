#pragma once
// SparseMemory<A>: a physical address space where only written pages exist and everything
// else reads as 0 -- the memory of a walk case file, and of tests. Pages are created on first
// write. Entries are read and compare-exchanged atomically, so walks on several threads may
// share it once it is built; creating pages is not thread-safe.

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <span>

#include "vmmu/core/address.hpp"

namespace vmmu {

template <class A>
class SparseMemory {
 public:
  template <class T>
  std::optional<T> read(A addr) const {
    const Page* p = find(addr);
    if (p == nullptr) return T{0};
    return std::atomic_ref<const T>(*slot<T>(*p, addr)).load(std::memory_order_acquire);
  }

  template <class T>
  bool compare_exchange(A addr, T& expected, T desired) {
    T* where = slot<T>(page(addr), addr);
    return std::atomic_ref<T>(*where).compare_exchange_strong(expected, desired, std::memory_order_acq_rel);
  }

  template <class T>
  void write(A addr, T value) {
    std::atomic_ref<T>(*slot<T>(page(addr), addr)).store(value, std::memory_order_release);
  }

  // Byte access that may cross pages.
  void read_bytes(A addr, std::span<std::byte> out) const {
    for (std::size_t i = 0; i < out.size(); ++i) {
      const Page* p = find(addr + i);
      out[i] = p == nullptr ? std::byte{0} : (*p)[(addr + i).offset_in(kPageSize)];
    }
  }
  void write_bytes(A addr, std::span<const std::byte> in) {
    for (std::size_t i = 0; i < in.size(); ++i) page(addr + i)[(addr + i).offset_in(kPageSize)] = in[i];
  }

  [[nodiscard]] std::size_t page_count() const { return pages_.size(); }
  // The page holding `addr`, created (zeroed) if absent: for an MMU that maps it directly.
  // Its address is stable for the memory's lifetime.
  std::byte* backing(A addr) { return page(addr).data(); }

 private:
  using Page = std::array<std::byte, kPageSize>;
  struct alignas(kPageSize) AlignedPage {
    Page bytes{};
  };

  template <class T, class P>
  static auto* slot(P& page, A addr) {
    static_assert(sizeof(T) == 4 || sizeof(T) == 8 || sizeof(T) == 1);
    using Ptr = std::conditional_t<std::is_const_v<P>, const T*, T*>;
    // addr is aligned to sizeof(T) by every caller (entries are naturally aligned); the page
    // is page-aligned, so the cast yields a properly aligned object.
    return reinterpret_cast<Ptr>(page.data() + (addr.offset_in(kPageSize) & ~(sizeof(T) - 1)));
  }

  const Page* find(A addr) const {
    auto it = pages_.find(addr.raw() >> kPageShift);
    return it == pages_.end() ? nullptr : &it->second->bytes;
  }
  Page& page(A addr) {
    auto& p = pages_[addr.raw() >> kPageShift];
    if (!p) p = std::make_unique<AlignedPage>();
    return p->bytes;
  }

  std::map<std::uint64_t, std::unique_ptr<AlignedPage>> pages_;
};

}  // namespace vmmu
