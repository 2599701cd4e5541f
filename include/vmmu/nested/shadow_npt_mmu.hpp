#pragma once
// Shadow NPT: the nested MMU (nested_mmu.hpp) over an L1 hypervisor's nested page tables
// (kvm_init_shadow_npt_mmu), see npt_kind.hpp for the walk and the #NPF it reflects.
//   load_ncr3        VMRUN with this nCR3 (one per L2): switching back to a cached root builds
//                    nothing
//   flush_asid       VMRUN with TLB_CONTROL = flush this guest's ASID: the roots of the vCPU's
//                    nCR3 are zapped
//   flush_all        TLB_CONTROL = flush everything: every shadow page goes
// L1's edits to its tables are trapped (write_l1) and drop what they make stale at once, so a
// flush is needed only for what the architecture lets L1 assume. INVLPGA names an L2 linear
// address: the nested MMU caches no linear translation, so there is nothing for it to drop.

#include "vmmu/nested/nested_mmu.hpp"
#include "vmmu/nested/npt_kind.hpp"

namespace vmmu::nested {

using ShadowNptMmu = NestedMmu<NptKind>;
using ShadowNptVcpu = NestedVcpu<NptKind>;
using NptExit = NestedExitOf<NptFault>;
using L2NptAccess = Result<L2Translation, NptExit>;

}  // namespace vmmu::nested
