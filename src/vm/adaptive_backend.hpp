#pragma once
// The adaptive MMU (agile paging, per process; mmu::AdaptivePolicy) behind mmu::Mmu /
// mmu::VcpuContext: a TDP MMU and a shadow MMU over the same memslots -- both observe them,
// so memslot changes reach both -- and, per guest process (its root table's frame), the MMU
// it runs on.
//
//   AdaptiveVcpu ── load_root (CR3) ──► the process's mode ─┬─ shadow: ShadowVcpuContext
//                                                           └─ tdp:    TdpVcpu
//   every `window` accesses of the process, its table writes in the window:
//     shadowed: those the shadow MMU handled (ShadowMmu::table_writes of its root: emulated
//       or let go unsync) >= threshold ──► to TDP: the vCPU's shadow roots are released, the
//       shadow pages under the process's root zapped, and the tables they shadowed watched;
//     on TDP: writes through the vCPU to a watched table; `return_after` windows in a row
//       under the threshold ──► back to shadow (shadow pages built again on demand).
//   A vCPU running the process follows a move made by another at its next access.
//
// VM-wide verbs reach both MMUs: MMU-notifier invalidation, unmap, dirty logs (both log into
// the slot's bitmap; a harvest reports the bitmap and write-protects what it names in both, so
// nothing is lost across a switch; no dirty ring: Vm::create refuses one). Device accesses go
// through the shadow MMU, which sees a device write to a shadowed guest table. Not modelled:
// a TDP process writing, as data, the tables of a process still shadowed (the shadow MMU would
// not see that write), and, on TDP, writes to tables made after the move (their parent's
// entry written to link them is seen) or made by a device.

#include <atomic>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "mmu_backend.hpp"
#include "shadow_backend.hpp"
#include "tdp_backend.hpp"

namespace vmmu::vm::detail {

class AdaptiveBackend;

// One guest process of an adaptive VM, by its root table's frame.
struct AdaptiveProcess {
  using Tables = std::shared_ptr<const std::vector<std::uint64_t>>;  // sorted gfns
  std::atomic<bool> on_tdp{false};
  std::atomic<std::uint64_t> tdp_table_writes{0};  // writes to `tables` seen while on TDP
  Tables tables;  // while on TDP: the tables it had when it moved (under the backend's mutex)
};

class AdaptiveVcpu final : public mmu::VcpuContext {
 public:
  AdaptiveVcpu(AdaptiveBackend& owner, SoftTlb& tlb);

  Result<mmu::GvaHit, mmu::GvaStop> access(const x86::GuestPaging& paging, std::uint16_t pcid, Gva gva,
                                           Access access, mmu::HostUse use) override;
  Status<mmu::Exit> access_gpa(Gpa gpa, Access access, mmu::HostUse use) override;
  void load_root(const x86::GuestPaging& paging, std::uint16_t pcid, bool flush) override;
  void flush_tlb(const x86::GuestPaging& paging) override { current().flush_tlb(paging); }
  // Both: the shadow side drops the address in the roots it keeps cached for other processes.
  void invlpg(const x86::GuestPaging& paging, Gva gva) override {
    shadow_.invlpg(paging, gva);
    tdp_.invlpg(paging, gva);
  }
  void invpcid(x86::InvpcidType type, std::uint16_t pcid, Gva linear) override {
    shadow_.invpcid(type, pcid, linear);
    tdp_.invpcid(type, pcid, linear);
  }
  void unload_root() override {
    shadow_.unload_root();
    tdp_.unload_root();
  }
  void set_walk_options(x86::WalkOptions o) override { tdp_.set_walk_options(o); }
  [[nodiscard]] mmu::VcpuMmuStats stats() const override;
  // The TDP handle while the current process runs on TDP; null while it is shadowed.
  [[nodiscard]] tdp::VcpuMmu* tdp() override { return on_tdp_ ? tdp_.tdp() : nullptr; }
  // The TDP handle whatever the mode.
  [[nodiscard]] tdp::VcpuMmu& tdp_handle() { return *tdp_.tdp(); }

 private:
  mmu::VcpuContext& current() { return on_tdp_ ? static_cast<mmu::VcpuContext&>(tdp_) : shadow_; }
  // One access of the current process counted; at a window's end, the policy's decision.
  void tick(const x86::GuestPaging& paging, std::uint16_t pcid);
  // This vCPU takes the process's mode (moved by its policy or another vCPU's): on TDP, its
  // shadow roots released, the watched tables fetched, TDP's TLB flushed; shadowed, the
  // shadow root loaded again. A new window begins.
  void settle(const x86::GuestPaging& paging, std::uint16_t pcid);
  // The process's table writes so far, as its current mode counts them.
  [[nodiscard]] std::uint64_t table_events() const;
  void note_write(Gpa gpa);
  void start_window();

  AdaptiveBackend& owner_;
  ShadowVcpuContext shadow_;
  TdpVcpu tdp_;
  AdaptiveProcess* process_ = nullptr;  // the current process (the backend's)
  AdaptiveProcess::Tables watched_;     // its tables while on TDP
  Gfn process_root_;
  bool on_tdp_ = false;
  std::uint64_t window_accesses_ = 0;
  std::uint64_t window_events_ = 0;  // the process's table events when the window began
  std::uint64_t quiet_windows_ = 0;  // on TDP: windows in a row under the threshold
};

class AdaptiveBackend final : public MmuBackend {
 public:
  AdaptiveBackend(std::unique_ptr<tdp::TdpMmu> tdp, std::unique_ptr<shadow::ShadowMmu> shadow, Memslots& slots,
                  mmu::AdaptivePolicy policy)
      : tdp_(std::move(tdp)), shadow_(std::move(shadow)), slots_(slots), policy_(policy) {}

  [[nodiscard]] mmu::MmuKind kind() const override { return mmu::MmuKind::Adaptive; }
  std::unique_ptr<mmu::VcpuContext> vcpu_context(SoftTlb& tlb) override;
  Status<mmu::Exit> access_gpa(Gpa gpa, Access access, mmu::HostUse use) override;
  void invalidate_begin(Range<Gfn> gfns) override {
    tdp_->invalidate_begin(gfns);
    shadow_->invalidate_begin(gfns);
  }
  void invalidate_end(Range<Gfn> gfns) override {
    tdp_->invalidate_end(gfns);
    shadow_->invalidate_end(gfns);
  }
  Status<pt::TableError> unmap(Range<Gfn> gfns) override;
  void unmap_all() override {
    tdp_->unmap_all();
    shadow_->unmap_all();
  }
  Result<std::vector<std::uint64_t>, MemslotError> get_dirty_log(SlotId slot) override;
  Result<std::vector<std::uint64_t>, MemslotError> peek_dirty_log(SlotId slot) override {
    return tdp_->peek_dirty_log(slot);  // folds TDP's D bits into the bitmap both MMUs log into
  }
  Status<MemslotError> clear_dirty_log(SlotId slot, std::uint64_t first_page, std::uint64_t pages,
                                       std::span<const std::uint64_t> mask) override;
  std::size_t harvest_dirty_ring(mmu::VcpuContext& vcpu, std::vector<DirtyGfn>& out) override;
  std::size_t reset_dirty_ring(mmu::VcpuContext& vcpu) override;
  [[nodiscard]] mmu::MmuStats stats() override;
  [[nodiscard]] std::optional<std::string> check_invariants() override;
  [[nodiscard]] tdp::TdpMmu* tdp() override { return tdp_.get(); }
  [[nodiscard]] shadow::ShadowMmu* shadow() override { return shadow_.get(); }

  [[nodiscard]] const mmu::AdaptivePolicy& policy() const { return policy_; }
  // The process whose root table is at `root` (shadowed at first), made on first use.
  AdaptiveProcess& process(Gfn root);
  // Writes to the tables under `root` the shadow MMU handled so far (emulated or let go unsync).
  [[nodiscard]] std::uint64_t table_events(Gfn root) const { return shadow_->table_writes(root); }
  // `root`'s process moves to TDP (if it is not there already): the tables its shadow pages
  // shadow become its watched tables, and those pages are zapped. The calling vCPU has
  // released its own shadow roots first.
  void switch_to_tdp(AdaptiveProcess& p, Gfn root);
  // The process returns to shadow (if it is not there already).
  void switch_to_shadow(AdaptiveProcess& p);
  // The process's watched tables (null while shadowed).
  AdaptiveProcess::Tables watched(AdaptiveProcess& p);

 private:
  std::unique_ptr<tdp::TdpMmu> tdp_;
  std::unique_ptr<shadow::ShadowMmu> shadow_;
  Memslots& slots_;
  mmu::AdaptivePolicy policy_;
  std::mutex processes_mutex_;  // the map, and every process's moves
  std::unordered_map<std::uint64_t, std::unique_ptr<AdaptiveProcess>> processes_;  // by root gfn
  std::atomic<std::uint64_t> switched_{0}, switched_back_{0};
};

}  // namespace vmmu::vm::detail
