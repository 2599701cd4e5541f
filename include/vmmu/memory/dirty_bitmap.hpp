#pragma once
// DirtyBitmap: one atomic bit per page of a slot, set by guest writes, collected by the VMM
// (KVM_GET_DIRTY_LOG / KVM_CLEAR_DIRTY_LOG). Bit i is page i of the slot, so the bitmap
// survives a move of the slot unchanged.

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace vmmu {

class DirtyBitmap {
 public:
  explicit DirtyBitmap(std::uint64_t pages);

  [[nodiscard]] std::uint64_t pages() const { return pages_; }

  // Marks page `page` (< pages()) dirty. Safe from any thread.
  void mark(std::uint64_t page) noexcept {
    std::atomic<std::uint64_t>& w = words_[page / 64];
    const std::uint64_t bit = std::uint64_t{1} << (page % 64);
    // Always an atomic OR, never "test, then set if clear": the guest's data store may still
    // sit in a store buffer when the test reads the bit as set, the collector may clear the
    // bit and copy the page in between, and the write would be lost from the log (KVM's
    // mark_page_dirty sets the bit unconditionally for the same reason).
    w.fetch_or(bit, std::memory_order_seq_cst);
  }

  [[nodiscard]] bool test(std::uint64_t page) const noexcept {
    return (words_[page / 64].load(std::memory_order_acquire) >> (page % 64)) & 1;
  }

  // Atomically takes and clears the bits of pages [first, first + count): bit i of the result
  // is page first + i. The caller checks the range (first + count <= pages()).
  [[nodiscard]] std::vector<std::uint64_t> get_and_clear(std::uint64_t first, std::uint64_t count);

  // Clears the bits of pages first + i where bit i of `mask` is set (i < count).
  void clear(std::uint64_t first, std::uint64_t count, std::span<const std::uint64_t> mask);

  // The bits of pages [first, first + count) without clearing them.
  [[nodiscard]] std::vector<std::uint64_t> peek(std::uint64_t first, std::uint64_t count) const;

  // Number of dirty pages.
  [[nodiscard]] std::uint64_t count() const;

 private:
  std::uint64_t pages_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> words_;
};

}  // namespace vmmu
