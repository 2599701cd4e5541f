#pragma once
// VcpuAccess: what a vCPU thread of the simulator does to memory -- 8-byte and whole-page
// accesses at guest-physical addresses through its MMU context (mmu::VcpuContext::access_gpa:
// TDP or shadow, faulting mappings in as the modelled hardware would), with a dirty ring that fills handled as KVM's userspace does on
// KVM_EXIT_DIRTY_RING_FULL: harvest it, reset it, run on.
//
// Under vm.nested the accesses are L2 guest-physical accesses of L2 vCPU `index` through L1's
// hypervisor (l1_hypervisor.hpp), which handles the exits L2 takes.
//
// Host memory is read and written with relaxed atomics: vCPUs of a random-access phase may hit
// the same word, which is a race in the guest, not undefined behaviour in the simulator.

#include <atomic>
#include <cstdint>
#include <vector>

#include "vmmu/core/address.hpp"
#include "vmmu/core/result.hpp"
#include "vmmu/memory/dirty_ring.hpp"
#include "vmmu/mmu/mmu.hpp"

namespace vmmu::sim {

// The value of 8-byte word `word` of guest page `gfn` in a pattern named by `salt`.
std::uint64_t pattern_word(Gfn gfn, std::uint64_t word, std::uint64_t salt);
// A well-mixed 64-bit hash (splitmix64's finaliser).
std::uint64_t mix64(std::uint64_t x);

class L1Hypervisor;

class VcpuAccess {
 public:
  VcpuAccess(mmu::Mmu& mmu, mmu::VcpuContext& vcpu, L1Hypervisor* l1 = nullptr, unsigned index = 0)
      : mmu_(mmu), vcpu_(vcpu), l1_(l1), index_(index) {}

  // `gpa` 8-byte aligned.
  Status<mmu::Exit> write64(Gpa gpa, std::uint64_t value);
  Result<std::uint64_t, mmu::Exit> read64(Gpa gpa);
  // Writes the whole 4 KiB page at `page` with pattern `salt` (one translation).
  Status<mmu::Exit> fill_page(Gpa page, std::uint64_t salt);
  // How many words of the page at `page` differ from pattern `salt`.
  Result<std::uint64_t, mmu::Exit> check_page(Gpa page, std::uint64_t salt);

  // Entries this thread harvested from its own ring when it filled (since the last take).
  std::vector<DirtyGfn> take_harvested() { return std::exchange(harvested_, {}); }
  [[nodiscard]] std::uint64_t ring_full_exits() const { return ring_full_exits_; }

 private:
  template <class Use>
  Status<mmu::Exit> access(Gpa gpa, Access a, Use&& use);

  mmu::Mmu& mmu_;
  mmu::VcpuContext& vcpu_;
  L1Hypervisor* l1_;  // vm.nested; else null
  unsigned index_;
  std::vector<DirtyGfn> harvested_;
  std::uint64_t ring_full_exits_ = 0;
};

}  // namespace vmmu::sim
