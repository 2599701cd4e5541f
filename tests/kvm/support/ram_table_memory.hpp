#pragma once
// RamTableMemory: guest RAM given as host buffers (the memslots a KvmVm registered, or a copy
// of them laid out the same way), seen as pt::TableMemory<Gpa>. Used by the table generator
// to write entries and by the conformance test for its copies; the walker under test reads
// the RAM through vmmu::GuestMemory.

#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <optional>
#include <vector>

#include "kvm/support/kvm_vm.hpp"
#include "vmmu/pt/format.hpp"

namespace vmmu::test::kvm {

class RamTableMemory {
 public:
  explicit RamTableMemory(std::vector<RamRegion> regions) : regions_(std::move(regions)) {}

  [[nodiscard]] const std::vector<RamRegion>& regions() const { return regions_; }

  // Host bytes of the naturally aligned T at `gpa`. Errors: nullptr when no region backs it.
  template <class T>
  [[nodiscard]] T* slot(Gpa gpa) const {
    for (const RamRegion& r : regions_) {
      if (!r.range().contains(gpa)) continue;
      // Regions are page-aligned mmap'd memory and entries are naturally aligned, so the
      // pointer is aligned for T.
      return reinterpret_cast<T*>(r.bytes.data() + (gpa - r.base));
    }
    return nullptr;
  }

  [[nodiscard]] bool backed(Gpa gpa) const { return slot<std::uint8_t>(gpa) != nullptr; }

  // pt::TableMemory: atomic entry access. Errors: read gives nullopt and compare_exchange
  // false with `expected` = 0 when unbacked; write to unbacked memory does nothing.
  template <class T>
  std::optional<T> read(Gpa gpa) const {
    T* p = slot<T>(gpa);
    if (p == nullptr) return std::nullopt;
    return std::atomic_ref<T>(*p).load(std::memory_order_acquire);
  }

  template <class T>
  bool compare_exchange(Gpa gpa, T& expected, T desired) {
    T* p = slot<T>(gpa);
    if (p == nullptr) {
      expected = 0;
      return false;
    }
    return std::atomic_ref<T>(*p).compare_exchange_strong(expected, desired, std::memory_order_acq_rel);
  }

  template <class T>
  void write(Gpa gpa, T value) {
    if (T* p = slot<T>(gpa)) std::atomic_ref<T>(*p).store(value, std::memory_order_release);
  }

  // Copies the 4-KiB page at `page` from `from` (same layout) into this memory, or zeroes it.
  // Errors: none; unbacked pages are skipped.
  void copy_page_from(const RamTableMemory& from, Gpa page) {
    auto* dst = slot<std::byte>(page);
    auto* src = from.slot<std::byte>(page);
    if (dst != nullptr && src != nullptr) std::memcpy(dst, src, kPageSize);
  }
  void zero_page(Gpa page) {
    if (auto* dst = slot<std::byte>(page)) std::memset(dst, 0, kPageSize);
  }

 private:
  std::vector<RamRegion> regions_;
};

static_assert(pt::TableMemory<RamTableMemory, Gpa>);

// Host memory laid out like a set of memslots but owned here: the copy of guest RAM the
// walker under test updates, beside the RAM KVM updates.
class OwnedRam {
 public:
  explicit OwnedRam(const std::vector<RamRegion>& like) {
    for (const RamRegion& r : like) {
      buffers_.emplace_back(new (std::align_val_t{kPageSize}) std::byte[r.bytes.size()]());
      regions_.push_back({r.base, {buffers_.back().get(), r.bytes.size()}, r.read_only});
    }
  }
  [[nodiscard]] const std::vector<RamRegion>& regions() const { return regions_; }

 private:
  struct AlignedDelete {
    void operator()(std::byte* p) const { ::operator delete[](p, std::align_val_t{kPageSize}); }
  };
  std::vector<std::unique_ptr<std::byte[], AlignedDelete>> buffers_;
  std::vector<RamRegion> regions_;
};

}  // namespace vmmu::test::kvm
