#include "vmmu/vm/guest_exit.hpp"

#include <fmt/format.h>

namespace vmmu::vm {

std::string_view to_string(GuestExitKind k) {
  switch (k) {
    case GuestExitKind::PageFault: return "page fault";
    case GuestExitKind::GeneralProtection: return "general protection";
    case GuestExitKind::Mmio: return "mmio";
    case GuestExitKind::RingFull: return "dirty ring full";
    case GuestExitKind::OutOfRange: return "gpa out of range";
    case GuestExitKind::OutOfMemory: return "out of table memory";
    case GuestExitKind::Unsupported: return "paging mode not run by this MMU";
  }
  return "?";
}

std::string to_string(const GuestExit& e) {
  switch (e.kind) {
    case GuestExitKind::PageFault:
      return fmt::format("page fault at gva:{:#x}, error code {:#x}", e.gva.raw(), e.error_code);
    case GuestExitKind::GeneralProtection: return fmt::format("general protection at gva:{:#x}", e.gva.raw());
    case GuestExitKind::Mmio:
    case GuestExitKind::OutOfRange:
      return fmt::format("{} at gpa:{:#x} (gva:{:#x})", to_string(e.kind), e.gpa.raw(), e.gva.raw());
    case GuestExitKind::RingFull:
    case GuestExitKind::OutOfMemory:
    case GuestExitKind::Unsupported: return fmt::format("{} at gva:{:#x}", to_string(e.kind), e.gva.raw());
  }
  return "?";
}

}  // namespace vmmu::vm
