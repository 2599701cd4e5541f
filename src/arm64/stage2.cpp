#include "vmmu/arm64/stage2.hpp"

#include <algorithm>

namespace vmmu::arm64 {

std::string_view to_string(ConfigError e) {
  switch (e) {
    case ConfigError::PaBitsUnsupported: return "pa_bits must be 32, 36, 40, 42, 44 or 48 (52-bit PA is not supported)";
    case ConfigError::Lpa2Unsupported: return "VTCR_EL2.DS/SL2 (FEAT_LPA2, 52-bit descriptors) is not supported";
    case ConfigError::ReservedGranule: return "VTCR_EL2.TG0 = 0b11 is reserved";
  }
  return "?";
}

Result<Stage2, ConfigError> Stage2::from(const Registers& regs, CpuModel cpu) {
  constexpr unsigned kPaSizes[] = {32, 36, 40, 42, 44, 48};
  if (std::find(std::begin(kPaSizes), std::end(kPaSizes), cpu.pa_bits) == std::end(kPaSizes)) {
    return Unexpected{ConfigError::PaBitsUnsupported};
  }
  const std::uint64_t vtcr = regs.vtcr_el2;
  if (vtcr::Ds::get(vtcr) || vtcr::Sl2::get(vtcr)) return Unexpected{ConfigError::Lpa2Unsupported};
  const std::optional<Granule> granule = granule_from_tg0(vtcr::Tg0::get(vtcr));
  if (!granule) return Unexpected{ConfigError::ReservedGranule};

  Stage2 s;
  s.granule_ = *granule;
  s.oa_bits_ = std::min(ps_bits(vtcr::Ps::get(vtcr)), cpu.pa_bits);
  s.ha_ = vtcr::Ha::get(vtcr);
  s.hd_ = vtcr::Hd::get(vtcr);
  Result<Layout, LayoutError> layout = decode_layout(*granule, static_cast<unsigned>(vtcr::T0sz::get(vtcr)),
                                                     static_cast<unsigned>(vtcr::Sl0::get(vtcr)), cpu.pa_bits);
  if (!layout) {
    s.setup_fault_ = layout.error();
    return s;
  }
  s.layout_ = *layout;
  s.format_ = Stage2Format(s.layout_);
  s.root_ = Hpa(vttbr::Baddr::bits(regs.vttbr_el2)).align_down(s.layout_.entry_table_bytes());
  return s;
}

}  // namespace vmmu::arm64
