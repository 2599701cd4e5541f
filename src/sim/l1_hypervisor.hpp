#pragma once
// L1Hypervisor: the guest hypervisor of vm.nested. The scenario's VM is L1; its phases run in
// L1's guest L2, whose memory is the scenario's memslots 1:1 (L2 gfn g -> L1 gfn g). L1 keeps
// L2's tables (EPT on VMX, nested page tables on SVM: l1_table_kinds.hpp) in a table pool
// above the scenario's slots and L0 shadows them (nested::NestedMmu over L1's memslots). L1
// starts with empty tables (or maps everything: prefault) and handles each exit reflected to
// it for a missing path (an EPT violation, a not-present #NPF) by installing the path to the
// 4 KiB leaf; its stores to its table pages go through the nested MMU's write_l1 (the pages
// are write-tracked: L0 emulates them). It flushes once before the first VM entry (INVEPT
// single-context for the EPTP; VMRUN's TLB_CONTROL flush-all), as KVM does for a new root;
// nothing later changes or removes a present entry, so no other flush is due (dirty logging of
// L1's slots is L0's business, unseen by L1).
//
// Threads: each vCPU index is used by one thread at a time; L1's table edits take L1's lock.
// access() stores through the host pointer after the nested MMU's lock is released: safe while
// nothing unmaps or harvests L1's memory concurrently, which validate() ensures (memslot
// changes and harvests run between the phases' vCPU passes; harvest_while_writing is refused).

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "vmmu/core/access.hpp"
#include "vmmu/core/address.hpp"
#include "vmmu/core/result.hpp"
#include "vmmu/memory/memslots.hpp"
#include "vmmu/mmu/mmu.hpp"
#include "vmmu/nested/nested_types.hpp"
#include "vmmu/sim/scenario.hpp"

namespace vmmu::sim {

class SimVm;

class L1Hypervisor {
 public:
  // L1 for `vm`'s scenario memory with `vcpus` L2 vCPUs, on the tables `p.kind` names. Errors:
  // the table pool's memory or memslot.
  static Result<std::unique_ptr<L1Hypervisor>, std::string> create(SimVm& vm, const NestedParams& p, unsigned vcpus);
  virtual ~L1Hypervisor() = default;
  L1Hypervisor(const L1Hypervisor&) = delete;
  L1Hypervisor& operator=(const L1Hypervisor&) = delete;

  // L2 vCPU `vcpu` accesses `l2_gpa`: entered on first use, every exit to L1 handled and the
  // access retried. Exits: Mmio (not L2 memory, or L1 memory L0 must emulate), OutOfMemory
  // (shadow tables or L1's pool), Unsupported (L1's tables refused: a fault L1 cannot fix).
  virtual Status<mmu::Exit> access(unsigned vcpu, Gpa l2_gpa, Access a, const mmu::HostUse& use) = 0;

  // The nested MMU's, L0's side of L1's memory.
  [[nodiscard]] virtual nested::NestedStats stats() const = 0;
  virtual Result<std::vector<std::uint64_t>, MemslotError> get_dirty_log(SlotId slot) = 0;
  [[nodiscard]] virtual std::optional<std::string> check_invariants() const = 0;

 protected:
  L1Hypervisor() = default;
};

// L1's table pages for L2's memory in `s` mapped with 4 KiB leaves (a bound: every table level
// of a 4-level EPT or x86-64 table).
std::uint64_t l1_table_pages(const Scenario& s);

}  // namespace vmmu::sim
