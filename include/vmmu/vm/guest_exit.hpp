#pragma once
// GuestExit: why a vCPU's memory access stopped before it finished -- what a real vCPU would
// turn into an exception injected into the guest (#PF, #GP) or an exit to the VMM (MMIO
// emulation, a full dirty ring, no table memory).

#include <cstdint>
#include <string>
#include <string_view>

#include "vmmu/core/address.hpp"

namespace vmmu::vm {

enum class GuestExitKind : std::uint8_t {
  PageFault,          // the guest's tables refuse the access: inject #PF(error_code), CR2 = gva
  GeneralProtection,  // non-canonical gva in long mode: inject #GP(0)
  Mmio,               // gpa has no memslot, or a write to a read-only one: emulate
  RingFull,           // the vCPU's dirty ring is full: harvest and reset, then run again
  OutOfRange,         // gpa beyond what the MMU's tables translate
  OutOfMemory,        // the MMU's table budget is exhausted
  Unsupported,        // a guest paging mode the VM's MMU does not run (shadow: not yet PAE)
};
std::string_view to_string(GuestExitKind k);

struct GuestExit {
  GuestExitKind kind = GuestExitKind::PageFault;
  std::uint32_t error_code = 0;  // PageFault: the walker's exact error code (x86::pferr bits)
  Gva gva;                       // the first byte not transferred (CR2 for a #PF)
  Gpa gpa;                       // Mmio / OutOfRange: the guest-physical address met
  friend constexpr bool operator==(const GuestExit&, const GuestExit&) = default;
};

// "page fault at gva:0x401000, error code 0x7", "mmio at gpa:0xfee00000 (gva:0x...)", ...
std::string to_string(const GuestExit& e);

}  // namespace vmmu::vm
