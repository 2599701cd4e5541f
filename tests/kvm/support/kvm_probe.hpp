#pragma once
// What this host's KVM does with a guest that has no CPUID (the backend here refuses
// KVM_SET_CPUID2), found by asking it rather than assumed: which paging bits KVM_SET_SREGS
// accepts, the guest MAXPHYADDR it uses, whether PDPTE.PS maps 1-GiB pages, whether
// KVM_TRANSLATE checks canonical addresses, and whether it sets Accessed bits.

#include <string>

#include "kvm/support/kvm_vm.hpp"
#include "vmmu/core/result.hpp"

namespace vmmu::test::kvm {

struct KvmPagingFacts {
  bool long_mode = false;     // CR0.PG|PE, CR4.PAE, EFER.LME|LMA accepted
  bool pge = false;           // CR4 bits accepted by KVM_SET_SREGS
  bool smep = false;
  bool smap = false;
  bool pke = false;
  bool la57 = false;
  bool nxe = false;           // EFER.NXE accepted
  bool wp = false;            // CR0.WP accepted
  unsigned maxphyaddr_cr3 = 0;   // lowest CR3 bit KVM_SET_SREGS refuses as beyond MAXPHYADDR
  unsigned maxphyaddr_walk = 0;  // lowest leaf-address bit that makes a walk fail (reserved)
  bool pages_1g = false;          // a PDPTE with PS translates (guest CPUID Page1GB)
  bool smap_honoured = false;     // supervisor read of a user page fails under SMAP, RFLAGS.AC=0
  bool smap_ac_override = false;  // ... and succeeds with RFLAGS.AC=1 (an explicit access)
  bool checks_canonical = true;   // a non-canonical gva fails to translate
  bool sets_accessed = false;     // a successful translation sets A in every entry of the path

  [[nodiscard]] std::string describe() const;
};

// Probes KVM in a VM of its own (64 KiB of RAM at gpa 0; an identity map of 2-MiB pages).
// Errors: any KvmError of VM creation; SetRegisters when plain 4-level long mode is refused
// (nothing to compare then); Translate.
Result<KvmPagingFacts, KvmFailure> probe_paging();

}  // namespace vmmu::test::kvm
