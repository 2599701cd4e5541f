#pragma once
// The stage-2 descriptor format as the radix-table engine sees it (a pt::Format): engine
// levels 1..levels are Arm levels 3..start (up to 5 levels: Arm -1..3 with FEAT_LPA2); the
// root indexes the concatenated entry tables. Addresses are decoded in the layout's
// descriptor format (48-bit, LPA or LPA2: descriptor.hpp).
// Reserved encodings (a block where blocks are not legal, 0b01 at level 3) are "not
// present", exactly as the architecture treats them: a translation fault.

#include <array>
#include <cstdint>

#include "vmmu/arm64/descriptor.hpp"
#include "vmmu/arm64/layout.hpp"
#include "vmmu/core/address.hpp"
#include "vmmu/pt/format.hpp"

namespace vmmu::arm64 {

class Stage2Format {
 public:
  using Entry = std::uint64_t;
  using Input = Ipa;
  using Output = Hpa;  // the stage-2 output physical address

  Stage2Format() = default;
  // The per-level facts are computed here once, so that a walk step is a few masks and no
  // granule arithmetic (desc::decode_type stays the definition; the tests check they agree).
  explicit Stage2Format(const Layout& layout)
      : geometry_(layout.geometry()),
        granule_(layout.granule),
        oa_layout_(desc::oa_layout(layout.granule, layout.lpa)),
        oa_high_(desc::oa_high(oa_layout_)),
        table_mask_(desc::table_address_mask(layout.granule, oa_layout_)) {
    for (unsigned level = 1; level <= geometry_.levels(); ++level) {
      leaf_mask_[level] = desc::leaf_address_mask(granule_, arm_level(level), oa_layout_);
      block_allowed_[level] = arm64::block_allowed(granule_, arm_level(level), layout.lpa);
    }
  }

  [[nodiscard]] const pt::Geometry& geometry() const { return geometry_; }
  [[nodiscard]] Granule granule() const { return granule_; }
  [[nodiscard]] desc::OaLayout oa_layout() const { return oa_layout_; }
  [[nodiscard]] bool block_allowed_at(unsigned level) const { return block_allowed_[level]; }

  // desc::decode_type at engine `level`.
  [[nodiscard]] desc::Type type(Entry e, unsigned level) const {
    if (!desc::Valid::get(e)) return desc::Type::Invalid;
    if (desc::TableOrPage::get(e)) return level == 1 ? desc::Type::Page : desc::Type::Table;
    return block_allowed_[level] ? desc::Type::Block : desc::Type::Invalid;
  }
  [[nodiscard]] bool present(Entry e, unsigned level) const { return type(e, level) != desc::Type::Invalid; }
  [[nodiscard]] bool leaf(Entry e, unsigned level) const {
    const desc::Type t = type(e, level);
    return t == desc::Type::Block || t == desc::Type::Page;
  }
  // The 48-bit layout is one mask: kept apart so that the common walk pays nothing for 52 bits.
  [[nodiscard]] Hpa table_address(Entry e, unsigned) const {
    if (oa_layout_ == desc::OaLayout::Pa48) return Hpa(e & table_mask_);
    return Hpa(desc::decode_address(e, table_mask_, oa_high_));
  }
  [[nodiscard]] Hpa leaf_address(Entry e, unsigned level) const {
    if (oa_layout_ == desc::OaLayout::Pa48) return Hpa(e & leaf_mask_[level]);
    return Hpa(desc::decode_address(e, leaf_mask_[level], oa_high_));
  }
  // The descriptor bits that hold a table / leaf address (the inverse of the two above).
  [[nodiscard]] Entry table_address_bits(Hpa a) const { return desc::encode_address(a.raw(), table_mask_, oa_high_); }
  [[nodiscard]] Entry leaf_address_bits(Hpa a, unsigned level) const {
    return desc::encode_address(a.raw(), leaf_mask_[level], oa_high_);
  }

 private:
  pt::Geometry geometry_{};
  Granule granule_ = Granule::K4;
  desc::OaLayout oa_layout_ = desc::OaLayout::Pa48;
  desc::OaHigh oa_high_{};
  std::uint64_t table_mask_ = 0;
  std::array<std::uint64_t, pt::kMaxLevels + 1> leaf_mask_{};  // by engine level
  std::array<bool, pt::kMaxLevels + 1> block_allowed_{};
};

static_assert(pt::Format<Stage2Format>);

}  // namespace vmmu::arm64
