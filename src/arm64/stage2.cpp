#include "vmmu/arm64/stage2.hpp"

#include <algorithm>

namespace vmmu::arm64 {

std::string_view to_string(ConfigError e) {
  switch (e) {
    case ConfigError::PaBitsUnsupported: return "pa_bits must be 32, 36, 40, 42, 44, 48 or 52";
    case ConfigError::DsNeedsLpa2: return "VTCR_EL2.DS (FEAT_LPA2, 52-bit descriptors) needs pa_bits 52";
    case ConfigError::Sl2Res0: return "VTCR_EL2.SL2 is RES0 unless DS = 1 with the 4K granule (TG0 = 0b00)";
    case ConfigError::ReservedGranule: return "VTCR_EL2.TG0 = 0b11 is reserved";
  }
  return "?";
}

Result<Stage2, ConfigError> Stage2::from(const Registers& regs, CpuModel cpu) {
  constexpr unsigned kPaSizes[] = {32, 36, 40, 42, 44, 48, 52};
  if (std::find(std::begin(kPaSizes), std::end(kPaSizes), cpu.pa_bits) == std::end(kPaSizes)) {
    return Unexpected{ConfigError::PaBitsUnsupported};
  }
  const std::uint64_t vtcr = regs.vtcr_el2;
  const std::optional<Granule> granule = granule_from_tg0(vtcr::Tg0::get(vtcr));
  if (!granule) return Unexpected{ConfigError::ReservedGranule};
  // vmmu models a 52-bit CPU as implementing FEAT_LPA2 and smaller ones as not: DS is then
  // RES0, and setting a RES0 bit is refused rather than guessed at.
  const bool ds = vtcr::Ds::get(vtcr);
  if (ds && cpu.pa_bits != 52) return Unexpected{ConfigError::DsNeedsLpa2};
  // DS has no effect with 64K (the effective DS is 0: the 64K 52-bit format is FEAT_LPA's,
  // chosen by the PA range alone); SL2 exists only with DS = 1 and 4K.
  const bool sl2 = vtcr::Sl2::get(vtcr);
  if (sl2 && !(ds && *granule == Granule::K4)) return Unexpected{ConfigError::Sl2Res0};

  Stage2 s;
  s.granule_ = *granule;
  s.lpa_ = *granule == Granule::K64 ? cpu.pa_bits == 52 : ds;
  const unsigned ps = ps_bits(vtcr::Ps::get(vtcr));
  s.oa_bits_ = std::min({ps, cpu.pa_bits, s.lpa_ ? 52u : 48u});
  s.ha_ = vtcr::Ha::get(vtcr);
  s.hd_ = vtcr::Hd::get(vtcr);
  Result<Layout, LayoutError> layout =
      decode_layout(*granule, static_cast<unsigned>(vtcr::T0sz::get(vtcr)), static_cast<unsigned>(vtcr::Sl0::get(vtcr)),
                    cpu.pa_bits, s.lpa_, sl2);
  if (!layout) {
    s.setup_fault_ = layout.error();
    return s;
  }
  s.layout_ = *layout;
  s.format_ = Stage2Format(s.layout_);
  // BADDR[51:48] comes from VTTBR_EL2[5:2] with DS = 1, or with 64K when PS selects 52 bits
  // (pseudocode AArch64.TTBaseAddress); the base is aligned to the table run, >= 64 bytes then.
  std::uint64_t base = vttbr::Baddr::bits(regs.vttbr_el2);
  std::uint64_t align = s.layout_.entry_table_bytes();
  if (*granule == Granule::K64 ? s.lpa_ && ps == 52 : ds) {
    base = vttbr::Baddr52Low::bits(regs.vttbr_el2) | (vttbr::BaddrHigh::get(regs.vttbr_el2) << 48);
    align = std::max<std::uint64_t>(align, 64);
  }
  s.root_ = Hpa(base).align_down(align);
  return s;
}

}  // namespace vmmu::arm64
