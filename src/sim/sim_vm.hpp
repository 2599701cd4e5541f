#pragma once
// SimVm: the VM a scenario runs on -- the vm::Vm with one vm::Vcpu per vCPU thread, the host
// memory behind its memslots -- and the layout that numbers every guest page 0..pages()-1
// across memslots, so phases can split memory into per-vCPU shares.
//
//   page index:  0 ............ slot 0 ............ | ........ slot 1 ........ |
//   shares:      | vCPU 0        | vCPU 1          | vCPU 2     | vCPU 3      |

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "vmmu/core/address.hpp"
#include "vmmu/core/result.hpp"
#include "vmmu/sim/host_buffer.hpp"
#include "vmmu/sim/report.hpp"
#include "vmmu/sim/scenario.hpp"
#include "vmmu/tdp/tdp_mmu.hpp"
#include "vmmu/vm/vcpu.hpp"
#include "vmmu/vm/vm.hpp"

namespace vmmu::sim {

struct SimSlot {
  SlotId id;
  Gfn base;
  std::uint64_t pages = 0;
  std::uint64_t first_page = 0;  // index of its first page in the VM-wide numbering
  HostBuffer memory;
};

// A run of consecutive page indexes inside one slot.
struct PageRun {
  const SimSlot* slot;
  std::uint64_t first_page;  // VM-wide index
  std::uint64_t pages;
  [[nodiscard]] Gpa gpa(std::uint64_t i) const { return gpa_of(slot->base + (first_page - slot->first_page + i)); }
};

class L1Hypervisor;

class SimVm {
 public:
  // Errors: a line naming what failed (host memory, VM creation, a memslot).
  static Result<std::unique_ptr<SimVm>, std::string> create(const Scenario& s);
  ~SimVm();
  SimVm(const SimVm&) = delete;
  SimVm& operator=(const SimVm&) = delete;

  [[nodiscard]] vm::Vm& vm() { return *vm_; }
  [[nodiscard]] mmu::Mmu& mmu() { return vm_->mmu(); }
  // The TDP MMU for its own verbs (conversion); null under vm.mmu shadow.
  [[nodiscard]] tdp::TdpMmu* tdp_mmu() { return vm_->tdp_mmu(); }
  [[nodiscard]] Memslots& memslots() { return vm_->memslots(); }
  [[nodiscard]] unsigned vcpus() const { return static_cast<unsigned>(vcpus_.size()); }
  // vCPU i and its MMU handle; used by one thread at a time.
  [[nodiscard]] vm::Vcpu& vcpu(unsigned i) { return *vcpus_[i]; }
  [[nodiscard]] mmu::VcpuContext& vcpu_mmu(unsigned i) { return vcpus_[i]->mmu(); }
  // vm.nested: L1's hypervisor, whose L2 vCPUs make the phases' accesses; else null.
  [[nodiscard]] L1Hypervisor* l1() { return l1_.get(); }
  [[nodiscard]] const Scenario& scenario() const { return scenario_; }

  [[nodiscard]] const std::vector<SimSlot>& slots() const { return slots_; }
  [[nodiscard]] std::uint64_t pages() const { return pages_; }
  // vCPU i's share of the page indexes: [first, end).
  [[nodiscard]] std::pair<std::uint64_t, std::uint64_t> share(unsigned i) const;
  // The guest-physical address of page index `page`.
  [[nodiscard]] Gpa gpa_of_page(std::uint64_t page) const;
  // The slot holding page index `page`, and the page's index in it.
  [[nodiscard]] std::pair<const SimSlot*, std::uint64_t> locate(std::uint64_t page) const;
  // Page indexes [first, end) cut at slot boundaries.
  [[nodiscard]] std::vector<PageRun> runs(std::uint64_t first, std::uint64_t end) const;

  [[nodiscard]] StatsSnapshot snapshot();
  // The memslots' host memory: first-touch time and 4 KiB pages touched at creation.
  [[nodiscard]] std::uint64_t host_touch_ns() const;
  [[nodiscard]] std::uint64_t host_pages_touched() const;

  // A new memslot of `pages` pages above every other, for the guest's own page tables (not
  // part of the page numbering, never dirty-logged). Errors: host memory, the memslot.
  Result<Range<Gpa>, std::string> add_table_pool(std::uint64_t pages);
  // The host memory of the pool starting at `base` (from add_table_pool); null if none does.
  [[nodiscard]] std::byte* pool_host(Gpa base);

 private:
  SimVm() = default;

  std::vector<SimSlot> slots_;  // before vm_: the memory outlives the slots that lend it
  std::vector<SimSlot> pools_;  // guest page-table memory
  std::unique_ptr<vm::Vm> vm_;
  std::vector<vm::Vcpu*> vcpus_;  // owned by vm_
  std::unique_ptr<L1Hypervisor> l1_;  // observes vm_'s memslots: goes first
  Scenario scenario_;
  std::uint64_t pages_ = 0;
};

}  // namespace vmmu::sim
