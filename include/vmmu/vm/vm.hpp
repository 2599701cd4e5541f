#pragma once
// Vm: one virtual machine -- its memslots, the MMU it chose (VmConfig::mmu: the TDP MMU or
// the shadow MMU, behind one interface, vmmu/mmu/mmu.hpp), its vCPUs -- and guest-physical
// memory access through that MMU (as a device's DMA: faulting tables in, dirtying pages in
// the log).
//
//   Vm ──owns──► Memslots ◄──observes── mmu::Mmu (TdpMmu | ShadowMmu)
//                                          ▲
//   Vcpu (registers, cpu role) ──────► mmu::VcpuContext (KVM's kvm_mmu)
//
// Thread safety: memslot updates, MMU operations and Vm::read/write from any thread;
// each Vcpu from one thread at a time.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <span>
#include <string_view>
#include <vector>

#include "vmmu/core/address.hpp"
#include "vmmu/core/result.hpp"
#include "vmmu/memory/memslots.hpp"
#include "vmmu/mmu/mmu.hpp"
#include "vmmu/tdp/tdp_mmu.hpp"
#include "vmmu/x86/guest_paging.hpp"

namespace vmmu::vm {

class Vcpu;
namespace detail {
class MmuBackend;
}

struct VmConfig {
  mmu::MmuKind mmu = mmu::MmuKind::Tdp;
  // EPT or NPT, levels, A/D, policies, dirty ring size. Under shadow: format.levels is the
  // depth of the shadow tables and policies.huge_on_dirty_log what dirty logging does to huge
  // shadow leaves; the rest is TDP's.
  tdp::TdpConfig tdp;
  x86::CpuModel cpu;        // what the guest's CPU supports (guest walks)
  mmu::AdaptivePolicy adaptive;  // under adaptive: when a process moves to TDP
  bool shadow_unsync = true;  // under shadow: ShadowConfig::unsync (leaf tables may go unsync)
};

enum class VmError : std::uint8_t {
  BadLevels,    // table levels other than 4 or 5
  OutOfMemory,  // the first root could not be allocated
  AdaptiveWithDirtyRing,  // adaptive + tdp.dirty_ring_size: a shadowed process's writes would miss the ring
};
std::string_view to_string(VmError e);

class Vm {
 public:
  static Result<std::unique_ptr<Vm>, VmError> create(const VmConfig& config);
  ~Vm();
  Vm(const Vm&) = delete;
  Vm& operator=(const Vm&) = delete;

  [[nodiscard]] const VmConfig& config() const { return config_; }
  [[nodiscard]] Memslots& memslots() { return *slots_; }
  // The MMU the VM chose, through the interface both implement.
  [[nodiscard]] mmu::Mmu& mmu();
  // The TDP MMU for its own verbs (split, collapse, huge-page bans, lookup); null under shadow.
  [[nodiscard]] tdp::TdpMmu* tdp_mmu();

  // A new vCPU (index = creation order); the Vm owns it, its address is stable.
  Vcpu& add_vcpu();
  [[nodiscard]] std::size_t vcpu_count() const;
  // The vCPU `index` (< vcpu_count(): a larger index is a caller's bug and aborts with a message).
  [[nodiscard]] Vcpu& vcpu(std::size_t index) noexcept;

  // Guest-physical access through the MMU (a device's), any length, crossing pages.
  // Errors: the first exit met (Mmio: no memslot or a write to a read-only one; RingFull never:
  // device writes are logged in the slot's bitmap).
  Status<mmu::Exit> read(Gpa gpa, std::span<std::byte> out);
  Status<mmu::Exit> write(Gpa gpa, std::span<const std::byte> in);

  [[nodiscard]] mmu::MmuStats stats();

 private:
  friend class Vcpu;  // takes its MMU context from mmu_
  explicit Vm(const VmConfig& config);

  VmConfig config_;
  std::unique_ptr<Memslots> slots_;
  std::unique_ptr<detail::MmuBackend> mmu_;
  mutable std::mutex vcpus_mutex_;
  std::deque<std::unique_ptr<Vcpu>> vcpus_;
};

}  // namespace vmmu::vm
