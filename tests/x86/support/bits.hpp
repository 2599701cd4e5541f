#pragma once
// Bit n of a 64-bit entry: the tests spell entries and reserved masks bit by bit.

#include <cstdint>

namespace vmmu::x86::test {

inline constexpr std::uint64_t bit(unsigned n) { return std::uint64_t{1} << n; }

}  // namespace vmmu::x86::test
