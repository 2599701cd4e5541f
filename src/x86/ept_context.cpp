#include <string_view>

#include "vmmu/x86/ept_walk.hpp"

namespace vmmu::x86 {

Result<EptContext, EptpError> EptContext::from(std::uint64_t eptp, EptCapabilities caps) {
  // Checked in the order of x86-ept-walk.md; VM entry checks them all (SDM 27.2.1.1).
  const std::uint64_t type = ept::eptp::MemType::get(eptp);
  if (type != ept::kMemTypeUc && type != ept::kMemTypeWb) return Unexpected<EptpError>{EptpError::MemoryType};
  const std::uint64_t length = ept::eptp::WalkLengthMinus1::get(eptp);
  unsigned levels = 0;
  if (length == 3 && caps.four_level) levels = 4;
  if (length == 4 && caps.five_level) levels = 5;
  if (levels == 0) return Unexpected<EptpError>{EptpError::WalkLength};
  if (ept::eptp::Reserved::get(eptp) != 0) return Unexpected<EptpError>{EptpError::ReservedBits};
  if (caps.maxphyaddr < 64 && (eptp & bit_range(63, caps.maxphyaddr)) != 0) return Unexpected<EptpError>{EptpError::AddressBits};
  if (ept::eptp::AccessedDirty::get(eptp) && !caps.accessed_dirty) return Unexpected<EptpError>{EptpError::AccessedDirtyUnsupported};
  EptContext ctx;
  ctx.eptp_ = eptp;
  ctx.caps_ = caps;
  ctx.levels_ = levels;
  ctx.checks_ = ept::EntryChecks::make(levels, caps.maxphyaddr, caps.execute_only, caps.pages_2m, caps.pages_1g);
  return ctx;
}

std::string_view to_string(EptpError e) {
  switch (e) {
    case EptpError::MemoryType: return "EPTP memory type is neither UC (0) nor WB (6)";
    case EptpError::WalkLength: return "EPTP walk length is not supported";
    case EptpError::ReservedBits: return "EPTP bits 11:7 are reserved";
    case EptpError::AddressBits: return "EPTP has bits at or above MAXPHYADDR";
    case EptpError::AccessedDirtyUnsupported: return "EPTP enables accessed/dirty flags the processor lacks";
  }
  return "?";
}

std::string_view to_string(EptFaultKind k) {
  switch (k) {
    case EptFaultKind::Violation: return "ept_violation";
    case EptFaultKind::Misconfig: return "ept_misconfig";
    case EptFaultKind::InvalidEptp: return "invalid_eptp";
    case EptFaultKind::TableUnreadable: return "table_unreadable";
  }
  return "?";
}

}  // namespace vmmu::x86
