#pragma once
// The TDP MMU behind mmu::Mmu / mmu::VcpuContext. A vCPU's gva access: its software TLB
// (checked against the current cpu role), else the x86 walker over the guest's tables read
// THROUGH the TDP tables (tdp_table_memory.hpp); then the data through the TDP tables too.
// The TDP root depends on no guest register, so load_root has nothing to do.

#include <atomic>
#include <memory>
#include <mutex>
#include <vector>

#include "mmu_backend.hpp"
#include "vmmu/tdp/tdp_mmu.hpp"

namespace vmmu::vm::detail {

class TdpVcpu final : public mmu::VcpuContext {
 public:
  TdpVcpu(tdp::TdpMmu& mmu, SoftTlb& tlb);

  Result<mmu::GvaHit, mmu::GvaStop> access(const x86::GuestPaging& paging, std::uint16_t pcid, Gva gva,
                                           Access access, mmu::HostUse use) override;
  Status<mmu::Exit> access_gpa(Gpa gpa, Access access, mmu::HostUse use) override;
  void load_root(const x86::GuestPaging&, std::uint16_t, bool) override {}
  void flush_tlb(const x86::GuestPaging&) override {}  // the vCPU flushes its software TLB itself
  void invlpg(const x86::GuestPaging&, Gva) override {}
  void invpcid(x86::InvpcidType, std::uint16_t, Gva) override {}  // the vCPU's software TLB too
  void unload_root() override { handle_.unload_root(); }
  void set_walk_options(x86::WalkOptions o) override { walk_options_ = o; }
  [[nodiscard]] mmu::VcpuMmuStats stats() const override;
  [[nodiscard]] tdp::VcpuMmu* tdp() override { return &handle_; }

 private:
  Result<mmu::GvaHit, mmu::GvaStop> walk(const x86::GuestPaging& paging, std::uint16_t pcid, std::uint64_t linear,
                                         Access access);
  static void bump(std::atomic<std::uint64_t>& c) {
    c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }

  tdp::TdpMmu& mmu_;
  SoftTlb& tlb_;
  tdp::VcpuMmu handle_;
  x86::WalkOptions walk_options_{};
  std::atomic<std::uint64_t> tlb_hits_{0}, walks_{0};
};

class TdpBackend final : public MmuBackend {
 public:
  explicit TdpBackend(std::unique_ptr<tdp::TdpMmu> mmu) : mmu_(std::move(mmu)) {}

  [[nodiscard]] mmu::MmuKind kind() const override { return mmu::MmuKind::Tdp; }
  std::unique_ptr<mmu::VcpuContext> vcpu_context(SoftTlb& tlb) override;
  Status<mmu::Exit> access_gpa(Gpa gpa, Access access, mmu::HostUse use) override;
  void invalidate_begin(Range<Gfn> gfns) override { mmu_->invalidate_begin(gfns); }
  void invalidate_end(Range<Gfn> gfns) override { mmu_->invalidate_end(gfns); }
  Status<pt::TableError> unmap(Range<Gfn> gfns) override { return mmu_->unmap(gfns); }
  void unmap_all() override { mmu_->unmap_all(); }
  Result<std::vector<std::uint64_t>, MemslotError> get_dirty_log(SlotId slot) override {
    return mmu_->get_dirty_log(slot);
  }
  Result<std::vector<std::uint64_t>, MemslotError> peek_dirty_log(SlotId slot) override {
    return mmu_->peek_dirty_log(slot);
  }
  Status<MemslotError> clear_dirty_log(SlotId slot, std::uint64_t first_page, std::uint64_t pages,
                                       std::span<const std::uint64_t> mask) override {
    return mmu_->clear_dirty_log(slot, first_page, pages, mask);
  }
  // A vCPU without a ring (dirty bitmaps) has nothing to harvest or reset.
  std::size_t harvest_dirty_ring(mmu::VcpuContext& vcpu, std::vector<DirtyGfn>& out) override {
    return vcpu.tdp()->dirty_ring() == nullptr ? 0 : mmu_->harvest_dirty_ring(*vcpu.tdp(), out);
  }
  std::size_t reset_dirty_ring(mmu::VcpuContext& vcpu) override {
    return vcpu.tdp()->dirty_ring() == nullptr ? 0 : mmu_->reset_dirty_ring(*vcpu.tdp());
  }
  [[nodiscard]] mmu::MmuStats stats() override;
  [[nodiscard]] std::optional<std::string> check_invariants() override { return mmu_->check_invariants(); }
  [[nodiscard]] tdp::TdpMmu* tdp() override { return mmu_.get(); }

 private:
  std::unique_ptr<tdp::TdpMmu> mmu_;
  std::mutex device_mutex_;
  std::vector<std::unique_ptr<tdp::VcpuMmu>> device_mmus_;  // free handles for device accesses
};

// The TDP MMU's access exit under the interface's name.
mmu::Exit exit_of(tdp::AccessExit e);
// The TDP MMU's statistics under the interface's names (TdpBackend's, AdaptiveBackend's).
mmu::MmuStats tdp_mmu_stats(tdp::TdpMmu& mmu);

}  // namespace vmmu::vm::detail
