#pragma once
// The shape of a stage-2 table: granule, IPA size, start level and the concatenated entry
// tables, in both directions --
//
//   decode_layout(granule, t0sz, sl0, pa_bits, lpa, sl2)  what VTCR_EL2 programs (or why it faults)
//   choose_layout(ipa_bits, granule, lpa)                 what a hypervisor should program (KVM's rule)
//
// `lpa` selects 52-bit descriptors: VTCR_EL2.DS = 1 with 4K / 16K (FEAT_LPA2), or the 64K
// granule on a CPU with a 52-bit PA range (FEAT_LPA). Only then may the IPA exceed 48 bits,
// blocks exist one level higher, 16K may start at level 0 and 4K at level -1 (SL2).
//
// Entry level and concatenation (Arm ARM D8 "Concatenating translation tables at the
// initial level of stage 2", pseudocode AArch64.S2InconsistentSL): with n = 3 - start levels
// below the start level, the IPA size must lie in [n*S + G + 1, n*S + G + S + 4]; the start
// level then resolves between 1 and S + 4 bits, i.e. a run of up to 16 (2^4) granule-sized
// tables side by side, physically contiguous and aligned to their total size.
//
//        VTTBR_EL2.BADDR ─► ┌ table 0 ┬ table 1 ┬ ... ┬ table k-1 ┐   k = 2^(root_bits - S)
//                           └─────────┴─────────┴─────┴───────────┘   indexed by IPA[ipa-1 : shift(start)]

#include <cstdint>
#include <string_view>
#include <vector>

#include "vmmu/arm64/granule.hpp"
#include "vmmu/core/result.hpp"
#include "vmmu/pt/geometry.hpp"

namespace vmmu::arm64 {

// VTCR_EL2.T0SZ limits without FEAT_TTST (Arm ARM D8 "Input address size"; pseudocode
// AArch64.S2MinTxSZ and AArch64.MaxTxSZ): IPA sizes from 25 to 48 bits, 52 with 52-bit
// descriptors. vmmu does not lower the limit to the CPU's PA range (S2MinTxSZ's
// 64 - PAMax): an IPA space larger than the PA range, or than VTCR_EL2.PS, is walked as
// programmed and only output addresses are checked against the output size.
inline constexpr unsigned kMinT0sz = 16;
inline constexpr unsigned kMinT0szLpa = 12;
inline constexpr unsigned kMaxT0sz = 39;
inline constexpr unsigned kMinIpaBits = 64 - kMaxT0sz;     // 25
inline constexpr unsigned kMaxIpaBits = 64 - kMinT0sz;     // 48
inline constexpr unsigned kMaxIpaBitsLpa = 64 - kMinT0szLpa;  // 52

struct Layout {
  Granule granule = Granule::K4;
  unsigned ipa_bits = 0;
  int start_level = 0;         // Arm numbering: -1..3
  unsigned levels = 0;         // levels walked: start_level..3 (5 from level -1)
  unsigned root_bits = 0;      // IPA bits the start level resolves, concatenation included
  unsigned sl0 = 0;            // VTCR_EL2.SL0 encoding of start_level
  bool sl2 = false;            // VTCR_EL2.SL2: set only for a level -1 start
  bool lpa = false;            // 52-bit descriptors (DS = 1 for 4K / 16K; FEAT_LPA for 64K)

  // Granule-sized tables concatenated at the start level (1 = no concatenation).
  [[nodiscard]] std::uint64_t concatenated() const;
  // Bytes of the entry-level table run; VTTBR_EL2.BADDR must be aligned to this size, and to
  // at least 64 bytes with 52-bit descriptors (BADDR[51:48] then sits in VTTBR_EL2[5:2]).
  [[nodiscard]] std::uint64_t entry_table_bytes() const { return std::uint64_t{8} << root_bits; }
  [[nodiscard]] std::uint64_t entry_table_alignment() const {
    return lpa && entry_table_bytes() < 64 ? 64 : entry_table_bytes();
  }
  [[nodiscard]] unsigned max_ipa_bits() const { return lpa ? kMaxIpaBitsLpa : kMaxIpaBits; }
  // The engine's geometry: `levels` levels, the root `root_bits` wide.
  [[nodiscard]] pt::Geometry geometry() const;
  // Sizes a leaf may map, smallest first: the page, then each level where blocks are legal.
  [[nodiscard]] std::vector<std::uint64_t> leaf_sizes() const;

  friend bool operator==(const Layout&, const Layout&) = default;
};

// Why a VTCR_EL2 cannot describe a walk. Every one of them makes each stage-2 walk take a
// translation fault at level 0 (Arm ARM pseudocode AArch64.S2Translate).
enum class LayoutError : std::uint8_t {
  T0szOutOfRange,          // T0SZ outside [16, 39] ([12, 39] with 52-bit descriptors):
                           // IMPLEMENTATION DEFINED fault-or-clamp; vmmu faults
  StartLevelReserved,      // SL2:SL0 reserved for the granule, DS or PA range (AArch64.S2InvalidSL)
  StartLevelInconsistent,  // start level cannot resolve the IPA size (AArch64.S2InconsistentSL)
  IpaSizeOutOfRange,       // choose_layout: IPA size outside [25, 48] ([25, 52] with lpa)
};
std::string_view to_string(LayoutError e);

// Start level selected by SL2:SL0 for `granule` on a CPU with `pa_bits` of physical address
// (Arm ARM D19 VTCR_EL2.SL0 / SL2; pseudocode AArch64.S2StartLevel, AArch64.S2InvalidSL).
// Errors: StartLevelReserved for 4K SL0=3 (needs FEAT_TTST), 4K SL2=1 unless lpa and SL0=0,
// 16K SL0=3 unless lpa, 64K SL0=3, and a level-0 (4K) or level-1 (16K: PA < 42,
// 64K: PA < 44) start the PA range forbids.
Result<int, LayoutError> decode_start_level(Granule granule, unsigned sl0, unsigned pa_bits, bool lpa = false,
                                            bool sl2 = false);

// SL0 encoding of `start_level` (inverse of decode_start_level; level -1 is SL0 = 0 with
// SL2 = 1); -1 when none exists.
int encode_sl0(Granule granule, int start_level, bool lpa = false);

// True when a walk starting at `start_level` can resolve `ipa_bits` (AArch64.S2InconsistentSL).
bool start_level_fits(Granule granule, unsigned ipa_bits, int start_level);

// The layout VTCR_EL2 programs.
// Errors: T0szOutOfRange, StartLevelReserved, StartLevelInconsistent (see LayoutError).
Result<Layout, LayoutError> decode_layout(Granule granule, unsigned t0sz, unsigned sl0, unsigned pa_bits,
                                          bool lpa = false, bool sl2 = false);

// The layout to program for an IPA size, as KVM chooses it (stage2_pgtable_levels): the levels
// a 4-bit-smaller IPA would need, letting up to 16 concatenated tables absorb the top 4 bits,
// and never fewer than 2 levels (so a PMD-sized block exists) -- except where the IPA is too
// small for a 2-level walk (16K below 26 bits, 64K below 30), which then starts at level 3.
// The result is legal on every CPU whose PA range is at least `ipa_bits` (with `lpa`: that
// has 52-bit descriptors for the granule). Like KVM, it never starts at level -1: 4K IPAs of
// 49..52 bits start at level 0 with 2..16 concatenated tables.
// Errors: IpaSizeOutOfRange when ipa_bits is outside [25, 48], or [25, 52] with `lpa`.
Result<Layout, LayoutError> choose_layout(unsigned ipa_bits, Granule granule, bool lpa = false);

}  // namespace vmmu::arm64
