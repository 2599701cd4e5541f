#pragma once
// Vocabulary for naming bit layouts once: Bit<n> and Field<hi, lo>, each with constexpr
// mask / get / set, so a format's layout reads as a table and can be static_asserted.

#include <cstdint>
#include <initializer_list>

namespace vmmu {

// Mask of bits hi..lo inclusive (hi >= lo, hi < 64).
constexpr std::uint64_t bit_range(unsigned hi, unsigned lo) {
  return (hi >= 63 ? ~std::uint64_t{0} : ((std::uint64_t{1} << (hi + 1)) - 1)) & ~((std::uint64_t{1} << lo) - 1);
}

template <unsigned N>
struct Bit {
  static_assert(N < 64);
  static constexpr unsigned position = N;
  static constexpr std::uint64_t mask = std::uint64_t{1} << N;
  static constexpr bool get(std::uint64_t v) { return (v & mask) != 0; }
  static constexpr std::uint64_t set(std::uint64_t v, bool on) { return on ? (v | mask) : (v & ~mask); }
};

template <unsigned Hi, unsigned Lo>
struct Field {
  static_assert(Hi >= Lo && Hi < 64);
  static constexpr unsigned hi = Hi;
  static constexpr unsigned lo = Lo;
  static constexpr unsigned width = Hi - Lo + 1;
  static constexpr std::uint64_t mask = bit_range(Hi, Lo);
  // The field's value, shifted down to bit 0.
  static constexpr std::uint64_t get(std::uint64_t v) { return (v & mask) >> Lo; }
  // The field's bits in place (not shifted): for address fields.
  static constexpr std::uint64_t bits(std::uint64_t v) { return v & mask; }
  static constexpr std::uint64_t set(std::uint64_t v, std::uint64_t field) { return (v & ~mask) | ((field << Lo) & mask); }
};

// True when no two masks share a bit: used in each format's static_assert block.
constexpr bool disjoint(std::initializer_list<std::uint64_t> masks) {
  std::uint64_t seen = 0;
  for (std::uint64_t m : masks) {
    if ((seen & m) != 0) return false;
    seen |= m;
  }
  return true;
}

}  // namespace vmmu
