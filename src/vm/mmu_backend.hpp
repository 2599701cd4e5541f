#pragma once
// What the Vm holds: the MMU it chose (mmu::Mmu) plus the one thing only the Vm asks of it,
// a context for each new vCPU. Made once, in Vm::create, from VmConfig::mmu -- the only place
// that looks at which MMU it is.

#include <cstdint>
#include <memory>
#include <string>

#include "vmmu/core/result.hpp"
#include "vmmu/mmu/mmu.hpp"
#include "vmmu/vm/soft_tlb.hpp"

namespace vmmu::vm::detail {

class MmuBackend : public mmu::Mmu {
 public:
  // A context for a new vCPU. `tlb`: the vCPU's software TLB, which an MMU whose hardware
  // caches gva -> gpa (TDP) fills and answers from; the vCPU flushes it on register effects.
  virtual std::unique_ptr<mmu::VcpuContext> vcpu_context(SoftTlb& tlb) = 0;
};

}  // namespace vmmu::vm::detail
