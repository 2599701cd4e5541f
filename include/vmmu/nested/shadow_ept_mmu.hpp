#pragma once
// Shadow EPT: the nested MMU (nested_mmu.hpp) over an L1 hypervisor's EPT tables
// (kvm_init_shadow_ept_mmu). Shadow pages: role.ept set, access = EPT R/W/X above, ad_disabled
// from EPTP bit 6, ept_exec_only from the processor. load_eptp / invept_single / invept_all
// are load / zap_roots / zap_all.

#include "vmmu/nested/ept_kind.hpp"
#include "vmmu/nested/nested_mmu.hpp"

namespace vmmu::nested {

using ShadowEptMmu = NestedMmu<EptKind>;
using ShadowEptVcpu = NestedVcpu<EptKind>;
using NestedExit = NestedExitOf<x86::EptFault>;
using L2Access = Result<L2Translation, NestedExit>;

}  // namespace vmmu::nested
