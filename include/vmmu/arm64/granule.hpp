#pragma once
// The three translation granules of AArch64 and the numbers every stage-2 rule is written in.
//
//   G = granule shift (12 / 14 / 16), S = G - 3 = index bits resolved per level (9 / 11 / 13).
//   Arm numbers levels so that level 3 always holds pages; an Arm level-L entry covers
//   2^(G + S*(3-L)) bytes (Arm ARM D8.2 "Translation table walk", table "Translation
//   granule and level"). The engine numbers the other way round: engine level = 4 - Arm level.
//   With 52-bit descriptors (FEAT_LPA2, 4K granule) a walk may start at Arm level -1, which
//   is engine level 5.

#include <cstdint>
#include <optional>
#include <string_view>

namespace vmmu::arm64 {

enum class Granule : std::uint8_t { K4, K16, K64 };

inline constexpr unsigned kFinalLevel = 3;  // Arm's last (page) level

constexpr unsigned granule_shift(Granule g) {
  switch (g) {
    case Granule::K4: return 12;
    case Granule::K16: return 14;
    case Granule::K64: return 16;
  }
  return 12;
}
constexpr std::uint64_t granule_bytes(Granule g) { return std::uint64_t{1} << granule_shift(g); }
// Index bits per level: a table is one granule of 8-byte descriptors.
constexpr unsigned stride(Granule g) { return granule_shift(g) - 3; }

// Input bits below an Arm level-`level` entry (level in -1..3): log2 of the size it maps.
constexpr unsigned level_shift(Granule g, int level) {
  return granule_shift(g) + stride(g) * static_cast<unsigned>(static_cast<int>(kFinalLevel) - level);
}

// Conversions between Arm level numbers and the engine's (pt/geometry.hpp).
constexpr unsigned engine_level(int arm_level) { return static_cast<unsigned>(4 - arm_level); }
constexpr int arm_level(unsigned engine_level) { return 4 - static_cast<int>(engine_level); }

// VTCR_EL2.TG0 encoding (Arm ARM D19 VTCR_EL2: 0b00 4KB, 0b01 64KB, 0b10 16KB, 0b11 reserved).
constexpr std::optional<Granule> granule_from_tg0(std::uint64_t tg0) {
  switch (tg0) {
    case 0: return Granule::K4;
    case 1: return Granule::K64;
    case 2: return Granule::K16;
    default: return std::nullopt;
  }
}
constexpr std::uint64_t tg0_encoding(Granule g) {
  switch (g) {
    case Granule::K4: return 0;
    case Granule::K64: return 1;
    case Granule::K16: return 2;
  }
  return 0;
}

constexpr std::string_view to_string(Granule g) {
  switch (g) {
    case Granule::K4: return "4K";
    case Granule::K16: return "16K";
    case Granule::K64: return "64K";
  }
  return "?";
}

inline constexpr Granule kAllGranules[] = {Granule::K4, Granule::K16, Granule::K64};

// Where a block descriptor (bits[1:0] = 0b01) is legal (Arm ARM D8.3.1, pseudocode
// AArch64.BlockDescSupported): 4K at levels 1 and 2, 16K and 64K at level 2 -- and with
// 52-bit descriptors (`lpa`: DS = 1 for 4K / 16K, FEAT_LPA on a 52-bit PA range for 64K)
// one level higher: 4K level 0 (512G), 16K level 1 (64G), 64K level 1 (4T).
constexpr bool block_allowed(Granule g, int level, bool lpa = false) {
  if (level == 2) return true;
  switch (g) {
    case Granule::K4: return level == 1 || (lpa && level == 0);
    case Granule::K16:
    case Granule::K64: return lpa && level == 1;
  }
  return false;
}

static_assert(level_shift(Granule::K4, 3) == 12 && level_shift(Granule::K4, 1) == 30);
static_assert(level_shift(Granule::K16, 2) == 25 && level_shift(Granule::K64, 2) == 29);
static_assert(engine_level(3) == 1 && arm_level(4) == 0 && engine_level(-1) == 5);
static_assert(level_shift(Granule::K4, -1) == 48 && level_shift(Granule::K64, 1) == 42);
static_assert(!block_allowed(Granule::K4, 0) && block_allowed(Granule::K4, 0, true) && !block_allowed(Granule::K4, -1, true));

}  // namespace vmmu::arm64
