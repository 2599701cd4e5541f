#pragma once
// The page sizes the image tests map and expect, spelled as the listings print them.

#include <cstdint>

namespace vmmu::image {

inline constexpr std::uint64_t K4 = 0x1000, M2 = 0x200000, M4 = 0x400000, G1 = 0x40000000;

}  // namespace vmmu::image
