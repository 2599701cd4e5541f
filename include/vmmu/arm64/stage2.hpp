#pragma once
// Stage2: one VM's second-stage translation regime, decoded from VTCR_EL2 / VTTBR_EL2 once
// (the arm64 counterpart of x86's GuestPaging "cpu role"); walk.hpp translates through it.
//
//   auto s2 = Stage2::from({.vtcr_el2 = 0x80023558, .vttbr_el2 = 0x40000000}, {.pa_bits = 48});
//   if (!s2) ... to_string(s2.error())      // a configuration vmmu does not model
//   auto t = walk(*s2, memory, Ipa(0x1234000), AccessKind::Read);
//
// A VTCR_EL2 the architecture defines as faulting (T0SZ out of range, reserved or
// inconsistent SL0) is not an error here: it is a valid Stage2 whose every walk takes a
// translation fault at level 0, as on hardware; setup_fault() says why.

#include <cstdint>
#include <optional>
#include <string_view>

#include "vmmu/arm64/layout.hpp"
#include "vmmu/arm64/registers.hpp"
#include "vmmu/arm64/stage2_format.hpp"
#include "vmmu/core/address.hpp"
#include "vmmu/core/result.hpp"

namespace vmmu::arm64 {

enum class ConfigError : std::uint8_t {
  PaBitsUnsupported,  // CpuModel::pa_bits is not 32, 36, 40, 42, 44, 48 or 52
  DsNeedsLpa2,        // VTCR_EL2.DS set on a CPU without FEAT_LPA2 (pa_bits below 52): RES0
  Sl2Res0,            // VTCR_EL2.SL2 set without DS = 1 and the 4K granule: RES0
  ReservedGranule,    // VTCR_EL2.TG0 = 0b11
};
std::string_view to_string(ConfigError e);

class Stage2 {
 public:
  // Decode and validate the registers for `cpu`.
  // Errors: PaBitsUnsupported, DsNeedsLpa2, Sl2Res0, ReservedGranule (see ConfigError).
  static Result<Stage2, ConfigError> from(const Registers& regs, CpuModel cpu);

  [[nodiscard]] Granule granule() const { return granule_; }
  // Why every walk faults (translation, level 0), or nullopt when the layout is usable.
  [[nodiscard]] std::optional<LayoutError> setup_fault() const { return setup_fault_; }
  // Only meaningful when !setup_fault().
  [[nodiscard]] const Layout& layout() const { return layout_; }
  [[nodiscard]] const Stage2Format& format() const { return format_; }
  // Base of the entry-level table run: BADDR with the bits below the run's size cleared
  // (pseudocode AArch64.S2TTBaseAddress aligns it to the table size).
  [[nodiscard]] Hpa root() const { return root_; }
  [[nodiscard]] unsigned ipa_bits() const { return layout_.ipa_bits; }
  // 52-bit descriptors: DS = 1 with 4K / 16K, or 64K on a 52-bit PA range.
  [[nodiscard]] bool lpa() const { return lpa_; }
  // Effective output size: VTCR_EL2.PS capped at the CPU's PA range, and at 48 bits where
  // the descriptors cannot hold more (4K / 16K without DS; AArch64.PhysicalAddressSize).
  [[nodiscard]] unsigned oa_bits() const { return oa_bits_; }
  [[nodiscard]] bool hardware_access_flag() const { return ha_; }
  // Hardware dirty state through DBM; takes effect only together with HA (AArch64.S2Translate).
  [[nodiscard]] bool hardware_dirty() const { return ha_ && hd_; }
  [[nodiscard]] bool output_in_range(Hpa pa) const { return (pa.raw() >> oa_bits_) == 0; }
  [[nodiscard]] bool input_in_range(Ipa ipa) const { return (ipa.raw() >> layout_.ipa_bits) == 0; }

 private:
  Granule granule_ = Granule::K4;
  std::optional<LayoutError> setup_fault_;
  Layout layout_{};
  Stage2Format format_{};
  Hpa root_{};
  unsigned oa_bits_ = 48;
  bool lpa_ = false;
  bool ha_ = false;
  bool hd_ = false;
};

}  // namespace vmmu::arm64
