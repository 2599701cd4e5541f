// A validated nCR3 and the nested walk's mode: long mode as L1's own (CR4.LA57, EFER.NXE),
// CR0.WP clear and no protection keys (KVM's kvm_init_shadow_npt_mmu); every access is a user
// access, so SMEP/SMAP never apply.

#include "vmmu/nested/npt_kind.hpp"

namespace vmmu::nested {

std::string_view to_string(NptRootError e) {
  switch (e) {
    case NptRootError::AddressBits: return "nCR3 has a bit at or above MAXPHYADDR";
  }
  return "?";
}

std::string_view to_string(NptFaultKind k) {
  switch (k) {
    case NptFaultKind::Npf: return "#NPF";
    case NptFaultKind::InvalidNcr3: return "invalid nCR3";
    case NptFaultKind::TableUnreadable: return "nested table in unbacked memory";
  }
  return "?";
}

Result<NptContext, NptRootError> NptContext::from(NptRoot root, x86::CpuModel cpu) {
  if (cpu.maxphyaddr < 64 && (root.ncr3 >> cpu.maxphyaddr) != 0) return Unexpected{NptRootError::AddressBits};
  x86::Registers regs;
  regs.cr0 = x86::cr0::PE::mask | x86::cr0::PG::mask;
  regs.cr3 = root.ncr3;
  regs.cr4 = x86::cr4::PAE::mask | (root.la57 ? x86::cr4::LA57::mask : 0);
  regs.efer = x86::efer::LME::mask | x86::efer::LMA::mask | (root.nxe ? x86::efer::NXE::mask : 0);
  NptContext ctx;
  ctx.root_ = root;
  ctx.paging_ = x86::GuestPaging::from(regs, cpu);
  return ctx;
}

}  // namespace vmmu::nested
