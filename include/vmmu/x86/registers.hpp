#pragma once
// The x86 paging registers a guest walk depends on, and the paging mode they select.

#include <cstdint>

namespace vmmu::x86 {

struct Registers {
  std::uint64_t cr0 = 0;
  std::uint64_t cr3 = 0;
  std::uint64_t cr4 = 0;
  std::uint64_t efer = 0;
  std::uint64_t rflags = 0x2;
  std::uint32_t pkru = 0;
  friend constexpr bool operator==(const Registers&, const Registers&) = default;
};

enum class PagingMode : std::uint8_t {
  Off,     // CR0.PG = 0: gva == gpa
  Bits32,  // 2 levels of 4-byte entries (PSE / PSE-36 large pages)
  Pae,     // 3 levels, 4 PDPTEs read from memory at CR3[31:5]
  Long4,   // 4 levels (EFER.LMA)
  Long5,   // 5 levels (EFER.LMA, CR4.LA57)
};

// Mode as hardware derives it: CR0.PG, CR4.PAE, EFER.LME (LMA = PG && LME), CR4.LA57.
PagingMode paging_mode(const Registers& regs);

const char* to_string(PagingMode mode);

}  // namespace vmmu::x86
