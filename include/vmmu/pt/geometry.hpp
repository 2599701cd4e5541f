#pragma once
// The shape of a radix page table: how many levels, and which address bits index each.
//
// Level numbering (one glossary for the whole project): level 1 holds the entries that map
// the smallest pages; the root is level `levels()`. The manuals' numbering is converted at
// the edges only (arm64 calls our level 4 "level 0": arm_level = 4 - level).
//
//   input address:  | unused | idx(L) | idx(L-1) | ... | idx(1) | page offset |
//                             ^shift(L)                ^shift(1)
//
// A level's table has 2^bits(level) entries. The root may be wider than the other levels
// (arm64 concatenated tables: 2..16 tables side by side) or narrower (x86 PAE: 4 entries).

#include <array>
#include <cassert>
#include <cstdint>

namespace vmmu::pt {

inline constexpr unsigned kMaxLevels = 5;

struct LevelShape {
  std::uint8_t shift = 0;  // lowest input-address bit indexed at this level
  std::uint8_t bits = 0;   // number of index bits (table has 2^bits entries)
};

class Geometry {
 public:
  constexpr Geometry() = default;

  // Uniform tables: `levels` levels of `bits_per_level` index bits above a `page_shift`-bit
  // offset, with the root indexing `root_bits` bits (may differ: concatenation, PAE).
  static constexpr Geometry uniform(unsigned levels, unsigned page_shift, unsigned bits_per_level,
                                    unsigned root_bits, unsigned entry_bytes) {
    Geometry g;
    g.levels_ = static_cast<std::uint8_t>(levels);
    g.entry_bytes_ = static_cast<std::uint8_t>(entry_bytes);
    for (unsigned l = 1; l <= levels; ++l) {
      g.shape_[l].shift = static_cast<std::uint8_t>(page_shift + (l - 1) * bits_per_level);
      g.shape_[l].bits = static_cast<std::uint8_t>(l == levels ? root_bits : bits_per_level);
    }
    return g;
  }

  [[nodiscard]] constexpr unsigned levels() const { return levels_; }
  [[nodiscard]] constexpr unsigned root_level() const { return levels_; }
  [[nodiscard]] constexpr unsigned entry_bytes() const { return entry_bytes_; }
  [[nodiscard]] constexpr unsigned shift(unsigned level) const { return shape_[level].shift; }
  [[nodiscard]] constexpr unsigned bits(unsigned level) const { return shape_[level].bits; }
  [[nodiscard]] constexpr std::uint64_t entries(unsigned level) const { return std::uint64_t{1} << bits(level); }
  // Bytes of input address space one entry at `level` covers.
  [[nodiscard]] constexpr std::uint64_t span(unsigned level) const { return std::uint64_t{1} << shift(level); }
  [[nodiscard]] constexpr std::uint64_t table_bytes(unsigned level) const { return entries(level) * entry_bytes_; }
  [[nodiscard]] constexpr unsigned index(std::uint64_t addr, unsigned level) const {
    return static_cast<unsigned>((addr >> shift(level)) & (entries(level) - 1));
  }
  // Number of input-address bits the whole tree translates.
  [[nodiscard]] constexpr unsigned input_bits() const { return shift(levels_) + bits(levels_); }
  [[nodiscard]] constexpr std::uint64_t input_limit() const {
    return input_bits() >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << input_bits());
  }

  friend constexpr bool operator==(const Geometry&, const Geometry&) = default;

 private:
  std::uint8_t levels_ = 0;
  std::uint8_t entry_bytes_ = 8;
  std::array<LevelShape, kMaxLevels + 1> shape_{};  // index 0 unused
};

}  // namespace vmmu::pt
