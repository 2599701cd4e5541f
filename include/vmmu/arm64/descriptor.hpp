#pragma once
// The stage-2 VMSAv8-64 descriptor, 48-bit output addresses (no FEAT_LPA / FEAT_LPA2), named
// once (Arm ARM D8.3 "Translation table descriptor formats", D8.4 "Memory access control"
// for S2AP/XN, D8.5 for MemAttr/SH).
//
//   63   59 58  55 54 53 52  51 50 48 47            G  G-1  12 11 10 9 8 7 6 5    2 1 0
//  | PBHA  | SW   |XN|  |Ct |DBM|res0| output address  | res0   |FnXS|AF|SH|S2AP|MemAttr|T|V|
//
//  V=0            invalid: every other bit is free for software
//  V=1 T=1        table (levels 0..2) or page (level 3); a table carries only the address
//  V=1 T=0        block, legal only where block_allowed() says; reserved at level 3
//
// Bits of the output-address field below the granule (16K: 13:12, 64K: 15:12) and, in a
// block, below the block size are RES0 and ignored (pseudocode AArch64.LeafBase,
// AArch64.NextTableBase take desc<47:G> / desc<47:shift(level)>).

#include <cstdint>

#include "vmmu/arm64/granule.hpp"
#include "vmmu/core/bits.hpp"

namespace vmmu::arm64::desc {

using Valid = Bit<0>;
using TableOrPage = Bit<1>;   // 1: table (levels 0..2) / page (level 3); 0: block
using MemAttr = Field<5, 2>;  // stage-2 memory type (FWB changes its meaning); not interpreted
using S2apRead = Bit<6>;      // S2AP[0]: reads permitted (Arm ARM D8 "Stage 2 data access permissions")
using S2apWrite = Bit<7>;     // S2AP[1]: writes permitted; with HA=HD=1 and DBM, the dirty state
using Shareability = Field<9, 8>;
using AccessFlag = Bit<10>;   // AF: 0 faults unless VTCR_EL2.HA sets it in hardware
using FnXs = Bit<11>;
using OutputAddress = Field<47, 12>;  // OA[47:12]; only bits [47:G] are used
using Res0High = Field<50, 48>;       // OA[51:48] with FEAT_LPA2, RES0 here
using Dbm = Bit<51>;                  // dirty-bit modifier (FEAT_HAFDBS)
using Contiguous = Bit<52>;           // TLB hint, no effect on the translation
using Xn = Bit<54>;                   // XN[1]: no instruction fetch (bit 53 only with FEAT_XNX)
using XnxLow = Bit<53>;
using Software = Field<58, 55>;
using Pbha = Field<62, 59>;

// Output-address bits a descriptor at `level` supplies: [47:G] for tables and pages,
// [47:shift(level)] for blocks.
constexpr std::uint64_t table_address_mask(Granule g) { return bit_range(47, granule_shift(g)); }
constexpr std::uint64_t leaf_address_mask(Granule g, int level) { return bit_range(47, level_shift(g, level)); }

enum class Type : std::uint8_t { Invalid, Table, Block, Page };

// Descriptor type at Arm `level` (pseudocode AArch64.DecodeDescriptorType): bit 0 clear is
// invalid; 0b11 is a table above level 3 and a page at it; 0b01 is a block where blocks are
// legal and invalid (a translation fault) elsewhere, level 3 included.
constexpr Type decode_type(std::uint64_t d, Granule g, int level) {
  if (!Valid::get(d)) return Type::Invalid;
  if (TableOrPage::get(d)) return level == static_cast<int>(kFinalLevel) ? Type::Page : Type::Table;
  return block_allowed(g, level) ? Type::Block : Type::Invalid;
}

// The hardware fields of a valid descriptor, in one list, so that the sanity block below and
// the tests can iterate over them.
inline constexpr std::uint64_t kHardwareFields[] = {
    Valid::mask,      TableOrPage::mask, MemAttr::mask,  S2apRead::mask, S2apWrite::mask,
    Shareability::mask, AccessFlag::mask, FnXs::mask,   OutputAddress::mask, Res0High::mask,
    Dbm::mask,        Contiguous::mask,  XnxLow::mask,  Xn::mask,       Software::mask,
    Pbha::mask};

static_assert(disjoint({Valid::mask, TableOrPage::mask, MemAttr::mask, S2apRead::mask, S2apWrite::mask,
                        Shareability::mask, AccessFlag::mask, FnXs::mask, OutputAddress::mask, Res0High::mask,
                        Dbm::mask, Contiguous::mask, XnxLow::mask, Xn::mask, Software::mask, Pbha::mask}),
              "stage-2 descriptor fields overlap");
static_assert((Valid::mask | TableOrPage::mask | MemAttr::mask | S2apRead::mask | S2apWrite::mask |
               Shareability::mask | AccessFlag::mask | FnXs::mask | OutputAddress::mask | Res0High::mask |
               Dbm::mask | Contiguous::mask | XnxLow::mask | Xn::mask | Software::mask | Pbha::mask) ==
                  bit_range(62, 0),
              "every bit but 63 is named");
static_assert(decode_type(0x3, Granule::K4, 3) == Type::Page && decode_type(0x1, Granule::K4, 3) == Type::Invalid);
static_assert(decode_type(0x1, Granule::K4, 1) == Type::Block && decode_type(0x1, Granule::K16, 1) == Type::Invalid);
static_assert(leaf_address_mask(Granule::K4, 2) == 0x0000ffffffe00000ULL);
static_assert(table_address_mask(Granule::K64) == 0x0000ffffffff0000ULL);

}  // namespace vmmu::arm64::desc
