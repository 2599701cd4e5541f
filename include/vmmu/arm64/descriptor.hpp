#pragma once
// The stage-2 VMSAv8-64 descriptor, named once (Arm ARM D8.3 "Translation table descriptor
// formats", D8.4 "Memory access control" for S2AP/XN, D8.5 for MemAttr/SH), in its three
// output-address layouts:
//
//   48-bit (no FEAT_LPA / FEAT_LPA2, or 4K / 16K with VTCR_EL2.DS = 0):
//   63   59 58  55 54 53 52  51 50 48 47            G  G-1  12 11 10 9 8 7 6 5    2 1 0
//  | PBHA  | SW   |XN|  |Ct |DBM|res0| OA[47:G]        | res0   |FnXS|AF|SH|S2AP|MemAttr|T|V|
//
//   FEAT_LPA, 64K granule on a 52-bit PA range: OA[51:48] in bits [15:12]
//  | ...              |DBM|res0| OA[47:16]            | OA[51:48] |FnXS|AF|SH|S2AP|MemAttr|T|V|
//
//   FEAT_LPA2, 4K / 16K with VTCR_EL2.DS = 1: OA[49:G] in place, OA[51:50] in bits [9:8]
//  | ...          |DBM|res0| OA[49:G]              | res0   |FnXS|AF|OA[51:50]|S2AP|MemAttr|T|V|
//                                     (shareability then comes from VTCR_EL2.SH0)
//
//  V=0            invalid: every other bit is free for software
//  V=1 T=1        table (levels -1..2) or page (level 3); a table carries only the address
//  V=1 T=0        block, legal only where block_allowed() says; reserved at level 3
//
// Bits of the output-address field below the granule and, in a block, below the block size
// are RES0 and ignored (pseudocode AArch64.LeafBase, AArch64.NextTableBase).

#include <cstdint>

#include "vmmu/arm64/granule.hpp"
#include "vmmu/core/bits.hpp"

namespace vmmu::arm64::desc {

using Valid = Bit<0>;
using TableOrPage = Bit<1>;   // 1: table (levels -1..2) / page (level 3); 0: block
using MemAttr = Field<5, 2>;  // stage-2 memory type (FWB changes its meaning); not interpreted
using S2apRead = Bit<6>;      // S2AP[0]: reads permitted (Arm ARM D8 "Stage 2 data access permissions")
using S2apWrite = Bit<7>;     // S2AP[1]: writes permitted; with HA=HD=1 and DBM, the dirty state
using Shareability = Field<9, 8>;  // 48-bit and LPA layouts only
using AccessFlag = Bit<10>;   // AF: 0 faults unless VTCR_EL2.HA sets it in hardware
using FnXs = Bit<11>;
using OutputAddress = Field<47, 12>;  // OA[47:12]; only bits [47:G] are used
using Res0High = Field<50, 48>;       // RES0 in the 48-bit layout
using Dbm = Bit<51>;                  // dirty-bit modifier (FEAT_HAFDBS)
using Contiguous = Bit<52>;           // TLB hint, no effect on the translation
using Xn = Bit<54>;                   // XN[1]: no instruction fetch (bit 53 only with FEAT_XNX)
using XnxLow = Bit<53>;
using Software = Field<58, 55>;
using Pbha = Field<62, 59>;

// FEAT_LPA, 64K granule: OA[51:48] in the bits below the granule.
using LpaOutputAddress = Field<47, 16>;  // OA[47:16]
using LpaOaHigh = Field<15, 12>;         // OA[51:48]
// FEAT_LPA2 (DS = 1), 4K / 16K: the address field grows to bit 49 and SH becomes OA[51:50].
using Lpa2OutputAddress = Field<49, 12>;  // OA[49:12]; only bits [49:G] are used
using Lpa2OaHigh = Field<9, 8>;           // OA[51:50]
using Lpa2Res0 = Bit<50>;

// Which of the three layouts a stage 2 uses.
enum class OaLayout : std::uint8_t { Pa48, Lpa, Lpa2 };
// `lpa`: 52-bit descriptors (DS = 1 with 4K / 16K; FEAT_LPA on a 52-bit PA range with 64K).
constexpr OaLayout oa_layout(Granule g, bool lpa) {
  if (!lpa) return OaLayout::Pa48;
  return g == Granule::K64 ? OaLayout::Lpa : OaLayout::Lpa2;
}

// Where OA[51:48 or 51:50] sits in a descriptor: `width` bits at `from`, moved to bit `to`.
struct OaHigh {
  unsigned from = 0, width = 0, to = 48;
};
constexpr OaHigh oa_high(OaLayout l) {
  switch (l) {
    case OaLayout::Pa48: return {};
    case OaLayout::Lpa: return {LpaOaHigh::lo, 4, 48};
    case OaLayout::Lpa2: return {Lpa2OaHigh::lo, 2, 50};
  }
  return {};
}
// The in-place address bits of a descriptor at or above bit `low` (the granule for tables,
// the block size for blocks).
constexpr std::uint64_t address_mask(OaLayout l, unsigned low) {
  return bit_range(l == OaLayout::Lpa2 ? 49 : 47, low);
}

// Output-address bits a descriptor at `level` supplies: [top:G] for tables and pages,
// [top:shift(level)] for blocks, plus OA[51:48] where the layout keeps them elsewhere.
constexpr std::uint64_t table_address_mask(Granule g, OaLayout l = OaLayout::Pa48) {
  return address_mask(l, granule_shift(g));
}
constexpr std::uint64_t leaf_address_mask(Granule g, int level, OaLayout l = OaLayout::Pa48) {
  return address_mask(l, level_shift(g, level));
}

// The address a descriptor holds, given the mask of its in-place bits.
constexpr std::uint64_t decode_address(std::uint64_t d, std::uint64_t in_place, OaHigh high) {
  const std::uint64_t top = (d >> high.from) & ((std::uint64_t{1} << high.width) - 1);
  return (d & in_place) | (top << high.to);
}
// The descriptor bits holding address `a` (bits `decode_address` reads, nothing else).
constexpr std::uint64_t encode_address(std::uint64_t a, std::uint64_t in_place, OaHigh high) {
  const std::uint64_t top = (a >> high.to) & ((std::uint64_t{1} << high.width) - 1);
  return (a & in_place) | (top << high.from);
}

enum class Type : std::uint8_t { Invalid, Table, Block, Page };

// Descriptor type at Arm `level` (pseudocode AArch64.DecodeDescriptorType): bit 0 clear is
// invalid; 0b11 is a table above level 3 and a page at it; 0b01 is a block where blocks are
// legal and invalid (a translation fault) elsewhere, level 3 included.
constexpr Type decode_type(std::uint64_t d, Granule g, int level, bool lpa = false) {
  if (!Valid::get(d)) return Type::Invalid;
  if (TableOrPage::get(d)) return level == static_cast<int>(kFinalLevel) ? Type::Page : Type::Table;
  return block_allowed(g, level, lpa) ? Type::Block : Type::Invalid;
}

// The hardware fields of a valid descriptor, per layout, so that the sanity block below and
// the tests can iterate over them.
inline constexpr std::uint64_t kHardwareFields[] = {
    Valid::mask,      TableOrPage::mask, MemAttr::mask,  S2apRead::mask, S2apWrite::mask,
    Shareability::mask, AccessFlag::mask, FnXs::mask,   OutputAddress::mask, Res0High::mask,
    Dbm::mask,        Contiguous::mask,  XnxLow::mask,  Xn::mask,       Software::mask,
    Pbha::mask};
inline constexpr std::uint64_t kLpaHardwareFields[] = {
    Valid::mask,        TableOrPage::mask,      MemAttr::mask,    S2apRead::mask, S2apWrite::mask,
    Shareability::mask, AccessFlag::mask,       FnXs::mask,       LpaOaHigh::mask, LpaOutputAddress::mask,
    Res0High::mask,     Dbm::mask,              Contiguous::mask, XnxLow::mask,   Xn::mask,
    Software::mask,     Pbha::mask};
inline constexpr std::uint64_t kLpa2HardwareFields[] = {
    Valid::mask,      TableOrPage::mask, MemAttr::mask,           S2apRead::mask, S2apWrite::mask,
    Lpa2OaHigh::mask, AccessFlag::mask,  FnXs::mask,              Lpa2OutputAddress::mask, Lpa2Res0::mask,
    Dbm::mask,        Contiguous::mask,  XnxLow::mask,            Xn::mask,       Software::mask,
    Pbha::mask};

namespace detail {
template <std::size_t N>
constexpr bool tiles_bits_62_to_0(const std::uint64_t (&fields)[N]) {
  std::uint64_t all = 0;
  for (std::uint64_t f : fields) {
    if ((all & f) != 0) return false;
    all |= f;
  }
  return all == bit_range(62, 0);
}
}  // namespace detail

static_assert(detail::tiles_bits_62_to_0(kHardwareFields), "48-bit layout: fields overlap or leave a gap");
static_assert(detail::tiles_bits_62_to_0(kLpaHardwareFields), "LPA layout: fields overlap or leave a gap");
static_assert(detail::tiles_bits_62_to_0(kLpa2HardwareFields), "LPA2 layout: fields overlap or leave a gap");
static_assert(decode_type(0x3, Granule::K4, 3) == Type::Page && decode_type(0x1, Granule::K4, 3) == Type::Invalid);
static_assert(decode_type(0x1, Granule::K4, 1) == Type::Block && decode_type(0x1, Granule::K16, 1) == Type::Invalid);
static_assert(decode_type(0x1, Granule::K16, 1, true) == Type::Block && decode_type(0x3, Granule::K4, -1, true) == Type::Table);
static_assert(leaf_address_mask(Granule::K4, 2) == 0x0000ffffffe00000ULL);
static_assert(table_address_mask(Granule::K64) == 0x0000ffffffff0000ULL);
static_assert(table_address_mask(Granule::K4, OaLayout::Lpa2) == 0x0003fffffffff000ULL);
static_assert(decode_address(0x0003'0000'0000'0303ULL, table_address_mask(Granule::K4, OaLayout::Lpa2),
                             oa_high(OaLayout::Lpa2)) == 0x000f'0000'0000'0000ULL);
static_assert(decode_address(0xf003ULL, table_address_mask(Granule::K64, OaLayout::Lpa), oa_high(OaLayout::Lpa)) ==
              0x000f'0000'0000'0000ULL);

}  // namespace vmmu::arm64::desc
