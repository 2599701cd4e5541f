#include "vmmu/tlb/translation_hardware.hpp"

namespace vmmu::tlb {

std::string_view to_string(HardwareError e) {
  switch (e) {
    case HardwareError::BadTlb: return "TLB: the ways must divide the entries (at least one)";
    case HardwareError::BadLevels: return "levels: guest 4 or 5, nested 0, 4 or 5";
    case HardwareError::BadCache: return "cache sizes out of range";
  }
  return "unknown hardware error";
}

Result<TranslationHardware, HardwareError> TranslationHardware::create(const HardwareConfig& c) {
  if ((c.guest_levels != 4 && c.guest_levels != 5) ||
      (c.nested_levels != 0 && c.nested_levels != 4 && c.nested_levels != 5))
    return Unexpected{HardwareError::BadLevels};
  auto tlb = LruTlb::create(c.tlb);
  if (!tlb) return Unexpected{HardwareError::BadTlb};
  TranslationHardware h(c, std::move(*tlb));
  if (c.psc_entries > 0) {
    for (unsigned l = 2; l <= c.guest_levels; ++l) {
      auto psc = LruTlb::create({c.psc_entries, 0});
      if (!psc) return Unexpected{HardwareError::BadCache};
      h.psc_.push_back(std::move(*psc));
    }
  }
  if (c.nested_tlb_entries > 0 && c.nested_levels > 0) {
    auto n = LruTlb::create({c.nested_tlb_entries, 0});
    if (!n) return Unexpected{HardwareError::BadCache};
    h.nested_tlb_.push_back(std::move(*n));
  }
  return h;
}

void TranslationHardware::switch_address_space() {
  tlb_.flush();
  for (LruTlb& p : psc_) p.flush();
}

void TranslationHardware::flush_all() {
  switch_address_space();
  for (LruTlb& n : nested_tlb_) n.flush();
}

}  // namespace vmmu::tlb
