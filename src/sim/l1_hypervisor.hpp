#pragma once
// L1Hypervisor: the guest hypervisor of vm.nested. The scenario's VM is L1; its phases run in
// L1's guest L2, whose memory is the scenario's memslots 1:1 (L2 gfn g -> L1 gfn g). L1 keeps
// L2's EPT in a table pool above the scenario's slots and L0 shadows it (nested::ShadowEptMmu
// over L1's memslots). L1 starts with an empty EPT (or maps everything: prefault) and handles
// each EPT violation reflected to it by installing the path to the 4 KiB leaf; its stores to
// its EPT pages go through ShadowEptMmu::write_l1 (the pages are write-tracked: L0 emulates
// them). It issues one INVEPT single-context for the EPTP before the first VM entry, as KVM
// does for a new root; nothing later changes or removes a present entry, so no other INVEPT
// is due (dirty logging of L1's slots is L0's business, unseen by L1).
//
// Threads: each vCPU index is used by one thread at a time; L1's table edits take L1's lock.
// access() stores through the host pointer after the nested MMU's lock is released: safe while
// nothing unmaps or harvests L1's memory concurrently, which validate() ensures (memslot
// changes and harvests run between the phases' vCPU passes; harvest_while_writing is refused).

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "vmmu/core/access.hpp"
#include "vmmu/core/address.hpp"
#include "vmmu/core/result.hpp"
#include "vmmu/mmu/mmu.hpp"
#include "vmmu/nested/shadow_ept_mmu.hpp"
#include "vmmu/sim/scenario.hpp"

namespace vmmu::sim {

class SimVm;

class L1Hypervisor {
 public:
  // L1 for `vm`'s scenario memory with `vcpus` L2 vCPUs. Errors: the table pool's memory or memslot.
  static Result<std::unique_ptr<L1Hypervisor>, std::string> create(SimVm& vm, const NestedParams& p, unsigned vcpus);
  ~L1Hypervisor();
  L1Hypervisor(const L1Hypervisor&) = delete;
  L1Hypervisor& operator=(const L1Hypervisor&) = delete;

  // L2 vCPU `vcpu` accesses `l2_gpa`: entered on first use, every exit to L1 handled and the
  // access retried. Exits: Mmio (not L2 memory, or L1 memory L0 must emulate), OutOfMemory
  // (shadow tables or L1's pool), Unsupported (L1's EPT refused: a fault L1 cannot fix).
  Status<mmu::Exit> access(unsigned vcpu, Gpa l2_gpa, Access a, const mmu::HostUse& use);

  [[nodiscard]] nested::ShadowEptMmu& mmu() { return *mmu_; }
  [[nodiscard]] nested::NestedStats stats() const { return mmu_->stats(); }

 private:
  L1Hypervisor() = default;
  // Installs L2 gfn -> L1 gfn in L1's EPT; false when `gfn` is not L2 memory or the pool is full.
  bool map(Gfn gfn);
  [[nodiscard]] bool l2_memory(Gfn gfn) const;
  [[nodiscard]] std::uint64_t read(Gpa entry) const;
  void enter(unsigned vcpu);

  std::vector<Range<Gfn>> l2_;             // L2's memory: the scenario's slots
  std::byte* pool_host_ = nullptr;         // L1's EPT pages
  Range<Gpa> pool_{};
  std::uint64_t pool_used_ = 0;            // pages handed out (the root first)
  std::uint64_t eptp_ = 0;
  std::unique_ptr<nested::ShadowEptMmu> mmu_;
  std::vector<std::unique_ptr<nested::ShadowEptVcpu>> vcpus_;  // after mmu_: released first
  std::vector<std::uint8_t> entered_;      // by vCPU, written by its own thread
  std::mutex lock_;                        // L1's: its EPT edits, the first INVEPT
  bool flushed_ = false;
};

// L1's EPT pages for L2's memory in `s` mapped with 4 KiB leaves (a bound: every table level).
std::uint64_t l1_ept_pages(const Scenario& s);

}  // namespace vmmu::sim
