#include "vmmu/memory/dirty_bitmap.hpp"

#include <algorithm>
#include <bit>
#include <cassert>

namespace vmmu {
namespace {

constexpr std::uint64_t words_for(std::uint64_t bits) { return (bits + 63) / 64; }

// Calls fn(word_index, mask_in_word, first_bit_in_range) for each bitmap word that pages
// [first, first + count) touch; first_bit_in_range is the range-relative index of the
// word's lowest selected bit.
template <class Fn>
void for_each_word(std::uint64_t first, std::uint64_t count, Fn&& fn) {
  std::uint64_t page = first;
  const std::uint64_t end = first + count;
  while (page < end) {
    const std::uint64_t bit = page % 64;
    const std::uint64_t n = std::min<std::uint64_t>(64 - bit, end - page);
    const std::uint64_t mask = (n == 64 ? ~std::uint64_t{0} : ((std::uint64_t{1} << n) - 1)) << bit;
    fn(page / 64, mask, page - first);
    page += n;
  }
}

// ORs `bits` (already shifted to bit 0 = range index `at`) into out at range index `at`.
void deposit(std::vector<std::uint64_t>& out, std::uint64_t at, std::uint64_t bits) {
  const std::uint64_t w = at / 64, shift = at % 64;
  out[w] |= bits << shift;
  if (shift != 0 && w + 1 < out.size()) out[w + 1] |= bits >> (64 - shift);
}

// Bits of `mask` (range-relative) covering range indexes [at, at + 64).
std::uint64_t extract(std::span<const std::uint64_t> mask, std::uint64_t at) {
  const std::uint64_t w = at / 64, shift = at % 64;
  std::uint64_t v = w < mask.size() ? mask[w] >> shift : 0;
  if (shift != 0 && w + 1 < mask.size()) v |= mask[w + 1] << (64 - shift);
  return v;
}

}  // namespace

DirtyBitmap::DirtyBitmap(std::uint64_t pages)
    : pages_(pages), words_(std::make_unique<std::atomic<std::uint64_t>[]>(words_for(pages))) {}

std::vector<std::uint64_t> DirtyBitmap::get_and_clear(std::uint64_t first, std::uint64_t count) {
  assert(first + count <= pages_);
  std::vector<std::uint64_t> out(words_for(count), 0);
  for_each_word(first, count, [&](std::uint64_t w, std::uint64_t mask, std::uint64_t at) {
    // Acquire pairs with mark()'s release: the guest data behind each bit taken is visible.
    const std::uint64_t old = words_[w].fetch_and(~mask, std::memory_order_acq_rel);
    deposit(out, at, (old & mask) >> std::countr_zero(mask));
  });
  return out;
}

void DirtyBitmap::clear(std::uint64_t first, std::uint64_t count, std::span<const std::uint64_t> mask) {
  assert(first + count <= pages_);
  for_each_word(first, count, [&](std::uint64_t w, std::uint64_t word_mask, std::uint64_t at) {
    const std::uint64_t sel = (extract(mask, at) << std::countr_zero(word_mask)) & word_mask;
    if (sel != 0) words_[w].fetch_and(~sel, std::memory_order_acq_rel);
  });
}

std::vector<std::uint64_t> DirtyBitmap::peek(std::uint64_t first, std::uint64_t count) const {
  assert(first + count <= pages_);
  std::vector<std::uint64_t> out(words_for(count), 0);
  for_each_word(first, count, [&](std::uint64_t w, std::uint64_t mask, std::uint64_t at) {
    deposit(out, at, (words_[w].load(std::memory_order_acquire) & mask) >> std::countr_zero(mask));
  });
  return out;
}

std::uint64_t DirtyBitmap::count() const {
  std::uint64_t n = 0;
  for (std::uint64_t w = 0; w < words_for(pages_); ++w) {
    n += static_cast<std::uint64_t>(std::popcount(words_[w].load(std::memory_order_relaxed)));
  }
  return n;
}

}  // namespace vmmu
