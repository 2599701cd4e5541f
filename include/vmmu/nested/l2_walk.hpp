#pragma once
// Two-dimensional L2 walks (issue 13 item 4): an L2 linear access, as the processor makes it
// with EPT (or NPT) on. L2's own page tables (gva -> L2 gpa) are walked by the x86 walker; each table
// read, and each A/D update it makes, is an L2 guest-physical access through the shadow EPT
// (faulting it in); then the final access is one more. What can end it:
//
//   translated          the host byte, the L2 gpa and L1 gpa behind it
//   L2 page fault       to L2: #PF with its error code and CR2 = the gva (or #GP)
//   EPT exit            to L1: the violation / misconfiguration of the access that met it, at
//                       the L2 gpa it was for (SDM 27.2.1 exit qualification, 29.3.3.2):
//                         bit 7 (guest linear address valid) set, the gva reported;
//                         bit 8 set for the final access, clear for a table read or A/D write;
//                         with EPTP bit 6 a table read is a write to EPT: bits 0 and 1 set.
//                       Or L1Mmio / OutOfMemory, which L0 handles (L1 never sees them).
//   #NPF (NPT)          to L1: a table read or A/D write is a user write for the nested walk
//                       (KVM's nested_access), and its EXITINFO1 has bit 33 instead of bit 32.

#include <cstdint>

#include "vmmu/core/access.hpp"
#include "vmmu/core/address.hpp"
#include "vmmu/core/result.hpp"
#include "vmmu/nested/shadow_ept_mmu.hpp"
#include "vmmu/nested/shadow_npt_mmu.hpp"
#include "vmmu/x86/guest_paging.hpp"
#include "vmmu/x86/walk.hpp"

namespace vmmu::nested {

struct L2GvaTranslation {
  L2Translation access;  // the final access through the shadow EPT
  Gpa l2_gpa;            // L2's walk: the byte's L2 guest-physical address
  std::uint64_t l2_page_size;
};

enum class L2GvaEnd : std::uint8_t {
  L2Fault,  // to L2: `l2_fault` (#PF error code or #GP), CR2 = gva
  Exit,     // an EPT exit (to L1, or to L0 for L1 MMIO / no memory): `exit`, at `l2_gpa`
};

template <class Kind>
struct L2GvaFaultOf {
  L2GvaEnd end = L2GvaEnd::L2Fault;
  x86::WalkFault l2_fault{};
  Gva cr2{};        // L2Fault: the faulting linear address
  NestedExitOf<typename Kind::Fault> exit{};
  Gpa l2_gpa{};     // Exit: the guest-physical address whose access exited
  Gva gla{};        // Exit: the guest linear address (valid: exit qualification bit 7)
  bool table_access = false;  // Exit: a read or A/D write of one of L2's tables (bit 8 clear)
};

using L2GvaFault = L2GvaFaultOf<EptKind>;
using L2GvaAccess = Result<L2GvaTranslation, L2GvaFault>;
using L2GvaNptAccess = Result<L2GvaTranslation, L2GvaFaultOf<NptKind>>;

// L2 accesses `gva` with `access` under `l2` (its CR0/CR3/CR4/EFER...); `vcpu` has L1's EPTP
// (nCR3) loaded into `mmu`.
L2GvaAccess access_l2_gva(ShadowEptMmu& mmu, ShadowEptVcpu& vcpu, const x86::GuestPaging& l2, Gva gva,
                          Access access);
L2GvaNptAccess access_l2_gva(ShadowNptMmu& mmu, ShadowNptVcpu& vcpu, const x86::GuestPaging& l2, Gva gva,
                             Access access);

}  // namespace vmmu::nested
