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
    // Test first: on a page written repeatedly the word stays shared in every CPU's cache
    // instead of bouncing on each write. Release orders the guest's data write before the
    // bit for a collector that acquires it in get_and_clear().
    if ((w.load(std::memory_order_relaxed) & bit) == 0) w.fetch_or(bit, std::memory_order_release);
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
