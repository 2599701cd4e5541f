#pragma once
// The stage-2 descriptor format as the owned-table layer builds it (a pt::OwnedFormat): the
// engine's Stage2Format plus how to encode leaves and tables from neutral attributes, where
// blocks are legal, and which changes need break-before-make.
//
//   leaf  = V | (T at level 3) | OA | MemAttr | S2AP | SH=inner (not with LPA2) | AF | XN
//   table = V | T | next-table address        (stage 2 has no hierarchical controls)
//   frozen = AF (bit 10) in an invalid descriptor: KVM's "LOCKED" marker, ignored by the
//            hardware walker (an invalid descriptor's other bits are free, Arm ARM D8.3.1)

#include <cstdint>

#include "vmmu/arm64/descriptor.hpp"
#include "vmmu/arm64/stage2_format.hpp"
#include "vmmu/pt/owned_format.hpp"

namespace vmmu::arm64 {

namespace s2attr {
// MemAttr[3:0] without FEAT_S2FWB (Arm ARM D8.5.5 "Stage 2 memory type and Cacheability
// attributes when FEAT_S2FWB is disabled"): 0b1111 Normal, Outer/Inner Write-Back
// Cacheable; 0b0001 Device-nGnRE. [3:2] == 0b00 means Device.
inline constexpr std::uint64_t kNormalWriteBack = 0xf;
inline constexpr std::uint64_t kDeviceNgnre = 0x1;
inline constexpr std::uint64_t kInnerShareable = 0x3;  // SH[1:0] (D8.5.2)
}  // namespace s2attr

class Stage2MmuFormat : public Stage2Format {
 public:
  Stage2MmuFormat() = default;
  explicit Stage2MmuFormat(const Layout& layout) : Stage2Format(layout) {}

  [[nodiscard]] Entry make_leaf(Hpa a, unsigned level, pt::LeafAttrs at) const {
    Entry e = desc::Valid::mask | leaf_address_bits(a, level);
    e = desc::TableOrPage::set(e, level == 1);  // 0b11 page at Arm level 3, 0b01 block above
    e = desc::MemAttr::set(e, at.device ? s2attr::kDeviceNgnre : s2attr::kNormalWriteBack);
    e = desc::S2apRead::set(e, at.read);
    e = desc::S2apWrite::set(e, at.write);
    // With LPA2 bits [9:8] are OA[51:50]; shareability then comes from VTCR_EL2.SH0.
    if (oa_layout() != desc::OaLayout::Lpa2) e = desc::Shareability::set(e, s2attr::kInnerShareable);
    e = desc::AccessFlag::set(e, at.accessed);
    // Device memory is never executable at stage 2 (KVM refuses the combination).
    return desc::Xn::set(e, !at.exec || at.device);
  }
  [[nodiscard]] Entry make_table(Hpa a, unsigned) const {
    return desc::Valid::mask | desc::TableOrPage::mask | table_address_bits(a);
  }
  [[nodiscard]] pt::LeafAttrs leaf_attrs(Entry e, unsigned) const {
    return {desc::S2apRead::get(e), desc::S2apWrite::get(e), !desc::Xn::get(e), desc::AccessFlag::get(e),
            (desc::MemAttr::get(e) & 0xc) == 0};
  }
  [[nodiscard]] bool block_allowed(unsigned level) const { return block_allowed_at(level); }

  // Arm ARM D8.16.1: break-before-make is required when a valid entry changes its output
  // address, its block size (table <-> block), or its memory type; a change of permissions
  // or of the access flag alone is not. Invalidating an entry is the "break" itself.
  [[nodiscard]] bool needs_break_before_make(Entry old, Entry e, unsigned level) const {
    if (!present(e, level)) return false;
    if (leaf(old, level) != leaf(e, level)) return true;
    if (!leaf(e, level)) return table_address(old, level) != table_address(e, level);
    return leaf_address(old, level) != leaf_address(e, level) || desc::MemAttr::get(old) != desc::MemAttr::get(e);
  }
  [[nodiscard]] Entry frozen_entry() const { return desc::AccessFlag::mask; }
};

static_assert(pt::OwnedFormat<Stage2MmuFormat>);
static_assert(!desc::Valid::get(desc::AccessFlag::mask), "the frozen marker is an invalid descriptor");

}  // namespace vmmu::arm64
