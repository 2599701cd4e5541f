#pragma once
// VTCR_EL2 and VTTBR_EL2 as the hypervisor programs them, with their fields named once
// (Arm ARM D19.2 "VTCR_EL2, Virtualization Translation Control Register" and
// "VTTBR_EL2, Virtualization Translation Table Base Register").

#include <cstdint>

#include "vmmu/core/bits.hpp"

namespace vmmu::arm64 {

struct Registers {
  std::uint64_t vtcr_el2 = 0;
  std::uint64_t vttbr_el2 = 0;
  friend constexpr bool operator==(const Registers&, const Registers&) = default;
};

// What the modelled processor implements, passed in, never assumed.
struct CpuModel {
  // ID_AA64MMFR0_EL1.PARange as a bit count: 32, 36, 40, 42, 44, 48 or 52. A 52-bit CPU
  // implements FEAT_LPA (52-bit 64K descriptors) and, as vmmu models it, FEAT_LPA2
  // (VTCR_EL2.DS for 4K / 16K); smaller ranges implement neither.
  unsigned pa_bits = 48;
};

namespace vtcr {
using T0sz = Field<5, 0>;   // IPA size = 64 - T0SZ
using Sl0 = Field<7, 6>;    // start level, granule-dependent encoding (layout.hpp)
using Irgn0 = Field<9, 8>;  // walk cacheability / shareability: no effect on a software walk
using Orgn0 = Field<11, 10>;
using Sh0 = Field<13, 12>;
using Tg0 = Field<15, 14>;  // 00 4K, 01 64K, 10 16K
using Ps = Field<18, 16>;   // output size: 000 32, 001 36, 010 40, 011 42, 100 44, 101 48, 110 52
using Vs = Bit<19>;         // 16-bit VMID
using Ha = Bit<21>;         // hardware Access flag update (FEAT_HAFDBS)
using Hd = Bit<22>;         // hardware dirty state update through DBM (FEAT_HAFDBS)
using Ds = Bit<32>;         // 52-bit descriptors for 4K / 16K (FEAT_LPA2); no effect with 64K
using Sl2 = Bit<33>;        // with DS = 1 and 4K: SL2:SL0 = 0b100 starts at level -1; RES0 otherwise

static_assert(disjoint({T0sz::mask, Sl0::mask, Irgn0::mask, Orgn0::mask, Sh0::mask, Tg0::mask, Ps::mask,
                        Vs::mask, Ha::mask, Hd::mask, Ds::mask, Sl2::mask}));
static_assert(Tg0::mask == 0xc000 && Ps::mask == 0x70000 && Ha::mask == 0x200000);
}  // namespace vtcr

namespace vttbr {
using Cnp = Bit<0>;           // common-not-private: no effect on a walk
using Baddr = Field<47, 1>;   // entry-table base; bits below the table size are treated as 0
using Vmid = Field<63, 48>;   // ignored: one VM per Stage2
// With 52-bit descriptors (DS = 1, or 64K with PS = 52) BADDR[51:48] moves to bits [5:2] and
// the table run is at least 64-byte aligned (pseudocode AArch64.TTBaseAddress).
using BaddrHigh = Field<5, 2>;
using Baddr52Low = Field<47, 6>;
static_assert(disjoint({Cnp::mask, Baddr::mask, Vmid::mask}));
static_assert(disjoint({Cnp::mask, BaddrHigh::mask, Baddr52Low::mask, Vmid::mask}));
}  // namespace vttbr

// Output (PA) size in bits that VTCR_EL2.PS encodes; the reserved encoding 0b111 behaves as
// 0b110 (52), and any size above the CPU's PA range is treated as that range (pseudocode
// AArch64.PhysicalAddressSize).
constexpr unsigned ps_bits(std::uint64_t ps) {
  constexpr unsigned kBits[] = {32, 36, 40, 42, 44, 48, 52, 52};
  return kBits[ps & 7];
}

}  // namespace vmmu::arm64
