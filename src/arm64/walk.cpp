#include "vmmu/arm64/walk.hpp"

namespace vmmu::arm64 {

std::string_view to_string(FaultKind k) {
  switch (k) {
    case FaultKind::Translation: return "translation";
    case FaultKind::AccessFlag: return "access_flag";
    case FaultKind::Permission: return "permission";
    case FaultKind::AddressSize: return "address_size";
    case FaultKind::ExternalAbort: return "external_abort";
  }
  return "?";
}

std::uint32_t fault_status_code(Fault f) {
  // Level -1 (FEAT_LPA2) has codes of its own: the 2-bit level field cannot hold it.
  if (f.level == -1) {
    switch (f.kind) {
      case FaultKind::AddressSize: return 0x29;
      case FaultKind::Translation: return 0x2b;
      case FaultKind::ExternalAbort: return 0x13;
      case FaultKind::AccessFlag:
      case FaultKind::Permission: break;  // no leaf at level -1
    }
  }
  std::uint32_t type = 0;
  switch (f.kind) {
    case FaultKind::AddressSize: type = 0b0000; break;
    case FaultKind::Translation: type = 0b0001; break;
    case FaultKind::AccessFlag: type = 0b0010; break;
    case FaultKind::Permission: type = 0b0011; break;
    case FaultKind::ExternalAbort: type = 0b0101; break;
  }
  return (type << 2) | (static_cast<std::uint32_t>(f.level) & 3u);
}

}  // namespace vmmu::arm64
