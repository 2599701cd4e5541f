#pragma once
// The guest's page tables as the x86 walker's pt::TableMemory, every read and compare-exchange
// going THROUGH the TDP tables, as a real page walk's accesses do: a table page that is not
// mapped yet is faulted in, and an A/D update is a write, so it dirties the page in the log.
//
// An access that exits (no memslot, dirty ring full, no table memory) is remembered and every
// later access fails at once, so the walk ends: a read gives nullopt (the walker's
// TableUnreadable), a compare-exchange reports "not written, unchanged" (the walker keeps its
// result and drops the update). The vCPU then reports the remembered exit, not the walk.
//
// Not modelled: with EPT A/D bits on, Intel treats the processor's accesses to guest
// paging structures as writes for EPT purposes (SDM vol. 3C, "Accessed and Dirty Flags for
// EPT"); here table reads stay reads, so they neither dirty nor need writable TDP entries.

#include <atomic>
#include <cstdint>
#include <optional>

#include "vmmu/core/access.hpp"
#include "vmmu/core/address.hpp"
#include "vmmu/tdp/tdp_mmu.hpp"

namespace vmmu::vm::detail {

class TdpTableMemory {
 public:
  TdpTableMemory(tdp::TdpMmu& mmu, tdp::VcpuMmu& vcpu) : mmu_(mmu), vcpu_(vcpu) {}

  template <class T>
  std::optional<T> read(Gpa gpa) {
    if (exit_) return std::nullopt;
    T value{};
    const Status<tdp::AccessExit> st = mmu_.access(vcpu_, gpa, Access::read(), [&](std::byte* host) {
      // Entries are naturally aligned in guest memory and host memory is page-aligned.
      value = std::atomic_ref<T>(*reinterpret_cast<T*>(host)).load(std::memory_order_acquire);
    });
    if (!st) {
      remember(st.error(), gpa);
      return std::nullopt;
    }
    return value;
  }

  template <class T>
  bool compare_exchange(Gpa gpa, T& expected, T desired) {
    if (exit_) return false;  // `expected` unchanged: the walker drops the update
    bool swapped = false;
    const Status<tdp::AccessExit> st = mmu_.access(vcpu_, gpa, Access::write(), [&](std::byte* host) {
      swapped = std::atomic_ref<T>(*reinterpret_cast<T*>(host))
                    .compare_exchange_strong(expected, desired, std::memory_order_acq_rel, std::memory_order_acquire);
    });
    if (st) return swapped;
    if (st.error() != tdp::AccessExit::Mmio) {
      remember(st.error(), gpa);
      return false;
    }
    // Not writable (a read-only slot): report the current value, as GuestMemory does for ROM.
    const std::optional<T> now = read<T>(gpa);
    expected = now ? *now : T{0};
    return false;
  }

  [[nodiscard]] std::optional<tdp::AccessExit> exit() const { return exit_; }
  [[nodiscard]] Gpa exit_gpa() const { return exit_gpa_; }

 private:
  void remember(tdp::AccessExit e, Gpa gpa) {
    exit_ = e;
    exit_gpa_ = gpa;
  }

  tdp::TdpMmu& mmu_;
  tdp::VcpuMmu& vcpu_;
  std::optional<tdp::AccessExit> exit_;
  Gpa exit_gpa_;
};

}  // namespace vmmu::vm::detail
