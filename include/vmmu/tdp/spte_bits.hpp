#pragma once
// vmmu's own bits in TDP entries, named once. They sit where both EPT and NPT ignore them in
// a not-present entry (EPT: bits 2:0 clear; NPT: bit 0 clear -- every other bit is then free,
// SDM vol. 3C 29.3.2, APM vol. 2 5.4.1), so the modelled hardware never interprets them.
//
//   frozen   0x5a0: not present, no address; the value an entry holds while one thread
//            replaces it (KVM's FROZEN_SPTE). Only that thread writes the entry next.
//   MMIO     bit 62 tag + memslot generation in bits 51:12: "no memslot here, as of that
//            generation" (KVM's MMIO SPTE; ours needs no reserved physical-address bit, so it
//            works whatever MAXPHYADDR the host has -- KVM's pain point 10).

#include <cstdint>
#include <initializer_list>  // vmmu/core/bits.hpp uses it without including it

#include "vmmu/core/bits.hpp"

namespace vmmu::tdp::spte {

inline constexpr std::uint64_t kFrozen = 0x5a0;
using MmioTagBit = Bit<62>;
inline constexpr std::uint64_t kMmioTag = MmioTagBit::mask;
using MmioGeneration = Field<51, 12>;
inline constexpr std::uint64_t kMmioGenerationMask = (std::uint64_t{1} << 40) - 1;

static_assert((kFrozen & 0x7) == 0, "frozen is not present in EPT (R/W/X clear) nor NPT (P clear)");
static_assert(disjoint({kMmioTag, MmioGeneration::mask, 0x7}));

}  // namespace vmmu::tdp::spte
