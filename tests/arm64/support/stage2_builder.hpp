#pragma once
// Builds stage-2 tables by hand for the tests: a descriptor at any level for any IPA, with the
// tables above it created on demand. Raw arithmetic, not the engine, so tests of the walker do
// not depend on the code under test to lay out their input.

#include <cstdint>

#include "vmmu/arm64/layout.hpp"
#include "vmmu/arm64/registers.hpp"
#include "vmmu/core/address.hpp"
#include "vmmu/memory/sparse_memory.hpp"

namespace vmmu::arm64::test_support {

// Leaf attribute bits the tests combine.
inline constexpr std::uint64_t kAf = 1ULL << 10;
inline constexpr std::uint64_t kRead = 1ULL << 6;
inline constexpr std::uint64_t kWrite = 1ULL << 7;
inline constexpr std::uint64_t kRw = kRead | kWrite;
inline constexpr std::uint64_t kDbm = 1ULL << 51;
inline constexpr std::uint64_t kXn = 1ULL << 54;

inline constexpr std::uint64_t page(std::uint64_t pa, std::uint64_t attrs = kAf | kRw) { return pa | attrs | 3; }
inline constexpr std::uint64_t block(std::uint64_t pa, std::uint64_t attrs = kAf | kRw) { return pa | attrs | 1; }
inline constexpr std::uint64_t table(std::uint64_t pa) { return pa | 3; }

// VTCR_EL2 for `layout` (PS: 0b101 = 48 bits unless given; DS / SL2 as the layout says).
inline std::uint64_t vtcr_for(const Layout& layout, std::uint64_t ps = 5, bool ha = false, bool hd = false) {
  std::uint64_t v = 1ULL << 31;  // RES1
  v |= 64 - layout.ipa_bits;
  v |= std::uint64_t{layout.sl0} << 6;
  v |= tg0_encoding(layout.granule) << 14;
  v |= ps << 16;
  if (ha) v |= 1ULL << 21;
  if (hd) v |= 1ULL << 22;
  if (layout.lpa && layout.granule != Granule::K64) v |= 1ULL << 32;  // DS
  if (layout.sl2) v |= 1ULL << 33;
  return v;
}

class Builder {
 public:
  explicit Builder(const Layout& layout, std::uint64_t root = 0x40000000) : layout_(layout), root_(root) {}

  [[nodiscard]] std::uint64_t root() const { return root_; }
  [[nodiscard]] const Layout& layout() const { return layout_; }
  SparseMemory<Hpa>& memory() { return memory_; }

  // Where the descriptor translating `ipa` at Arm `level` lives; tables above are created.
  Hpa slot(std::uint64_t ipa, int level) {
    const unsigned g = granule_shift(layout_.granule), s = g - 3;
    std::uint64_t t = root_;
    for (int l = layout_.start_level;; ++l) {
      const unsigned shift = g + s * static_cast<unsigned>(3 - l);
      const unsigned width = l == layout_.start_level ? layout_.root_bits : s;
      const Hpa at(t + ((ipa >> shift) & ((1ULL << width) - 1)) * 8);
      if (l == level) return at;
      std::uint64_t d = memory_.read<std::uint64_t>(at).value_or(0);
      if ((d & 3) != 3) {
        d = table(next_table_);
        next_table_ += std::uint64_t{1} << g;
        memory_.write<std::uint64_t>(at, d);
      }
      t = d & (((1ULL << 48) - 1) & ~((1ULL << g) - 1));
    }
  }
  void set(std::uint64_t ipa, int level, std::uint64_t descriptor) {
    memory_.write<std::uint64_t>(slot(ipa, level), descriptor);
  }
  std::uint64_t get(std::uint64_t ipa, int level) { return memory_.read<std::uint64_t>(slot(ipa, level)).value_or(0); }

 private:
  Layout layout_;
  std::uint64_t root_;
  std::uint64_t next_table_ = 0x50000000;
  SparseMemory<Hpa> memory_;
};

}  // namespace vmmu::arm64::test_support
