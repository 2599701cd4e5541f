#pragma once
// The x86 paging registers a guest walk depends on, the bits of them it reads, and the paging
// mode they select.

#include <cstdint>
#include <initializer_list>  // vmmu/core/bits.hpp uses it without including it

#include "vmmu/core/bits.hpp"

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

// Control-register bits the MMU reads (Intel SDM vol. 3A, 2.5; AMD APM vol. 2, 3.1).
namespace cr0 {
using PE = Bit<0>;
using WP = Bit<16>;  // supervisor writes honour R/W
using PG = Bit<31>;
}  // namespace cr0
namespace cr4 {
using PSE = Bit<4>;   // 4 MiB pages in 32-bit paging
using PAE = Bit<5>;
using PGE = Bit<7>;
using LA57 = Bit<12>;  // 5-level paging
using SMEP = Bit<20>;
using SMAP = Bit<21>;
using PKE = Bit<22>;  // protection keys for user pages
using PKS = Bit<24>;  // protection keys for supervisor pages (not modelled)
}  // namespace cr4
namespace efer {
using LME = Bit<8>;
using LMA = Bit<10>;
using NXE = Bit<11>;
}  // namespace efer
namespace rflags {
using AC = Bit<18>;  // with CR4.SMAP: explicit supervisor accesses may touch user pages
}  // namespace rflags

enum class PagingMode : std::uint8_t {
  Off,     // CR0.PG = 0: gva == gpa
  Bits32,  // 2 levels of 4-byte entries (PSE / PSE-36 large pages)
  Pae,     // 3 levels, 4 PDPTEs read from memory at CR3[31:5]
  Long4,   // 4 levels (EFER.LMA)
  Long5,   // 5 levels (EFER.LMA, CR4.LA57)
};

// Mode as hardware derives it: CR0.PG, CR4.PAE, EFER.LME (LMA = PG && LME), CR4.LA57.
// Long mode is selected by PG && LME alone (hardware refuses to set PG with LME and without
// PAE, so that combination cannot be reached on a real CPU; it is taken as long mode here).
PagingMode paging_mode(const Registers& regs);

const char* to_string(PagingMode mode);

}  // namespace vmmu::x86
