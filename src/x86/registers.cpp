#include "vmmu/x86/registers.hpp"

namespace vmmu::x86 {

PagingMode paging_mode(const Registers& regs) {
  if (!cr0::PG::get(regs.cr0)) return PagingMode::Off;
  if (efer::LME::get(regs.efer)) return cr4::LA57::get(regs.cr4) ? PagingMode::Long5 : PagingMode::Long4;
  return cr4::PAE::get(regs.cr4) ? PagingMode::Pae : PagingMode::Bits32;
}

const char* to_string(PagingMode mode) {
  switch (mode) {
    case PagingMode::Off: return "off";
    case PagingMode::Bits32: return "32-bit";
    case PagingMode::Pae: return "pae";
    case PagingMode::Long4: return "long4";
    case PagingMode::Long5: return "long5";
  }
  return "?";
}

}  // namespace vmmu::x86
