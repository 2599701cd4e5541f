#pragma once
// The shadow MMU behind mmu::Mmu / mmu::VcpuContext. A vCPU's gva access is the shadow MMU's
// modelled hardware (the walk of the shadow tables, the fault path on a refusal): no software
// TLB. A guest-physical access by the vCPU is the access it makes with paging off, through
// the direct shadow pages of its paging-off root (so the phases of `vmmu run` exercise the
// shadow fault path, dirty logging by write protection, and zapping). load_root / flush_tlb /
// invlpg / unload_root are the shadow MMU's vCPU events.

#include <atomic>
#include <memory>

#include "mmu_backend.hpp"
#include "vmmu/shadow/shadow_mmu.hpp"
#include "vmmu/shadow/shadow_vcpu.hpp"

namespace vmmu::vm::detail {

class ShadowVcpuContext final : public mmu::VcpuContext {
 public:
  explicit ShadowVcpuContext(shadow::ShadowMmu& mmu);

  Result<mmu::GvaHit, mmu::GvaStop> access(const x86::GuestPaging& paging, std::uint16_t pcid, Gva gva,
                                           Access access, mmu::HostUse use) override;
  Status<mmu::Exit> access_gpa(Gpa gpa, Access access, mmu::HostUse use) override;
  void load_root(const x86::GuestPaging& paging, std::uint16_t pcid, bool flush) override;
  void flush_tlb(const x86::GuestPaging&) override { mmu_.flush_tlb(vcpu_); }
  void invlpg(const x86::GuestPaging&, Gva gva) override { mmu_.invlpg(vcpu_, gva); }
  void invpcid(x86::InvpcidType type, std::uint16_t pcid, Gva linear) override {
    mmu_.invpcid(vcpu_, type, pcid, linear);
  }
  void unload_root() override { mmu_.unload(vcpu_); }
  void set_walk_options(x86::WalkOptions) override {}  // the shadow fault path always sets A/D
  [[nodiscard]] mmu::VcpuMmuStats stats() const override;

 private:
  static void bump(std::atomic<std::uint64_t>& c) {
    c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }

  shadow::ShadowMmu& mmu_;
  shadow::ShadowVcpu vcpu_;
  x86::GuestPaging paging_off_;  // what a guest-physical access runs under
  std::atomic<std::uint64_t> root_loads_{0};
};

class ShadowBackend final : public MmuBackend {
 public:
  explicit ShadowBackend(std::unique_ptr<shadow::ShadowMmu> mmu) : mmu_(std::move(mmu)) {}

  [[nodiscard]] mmu::MmuKind kind() const override { return mmu::MmuKind::Shadow; }
  std::unique_ptr<mmu::VcpuContext> vcpu_context(SoftTlb& tlb) override;
  Status<mmu::Exit> access_gpa(Gpa gpa, Access access, mmu::HostUse use) override;
  void invalidate_begin(Range<Gfn> gfns) override { mmu_->invalidate_begin(gfns); }
  void invalidate_end(Range<Gfn> gfns) override { mmu_->invalidate_end(gfns); }
  Status<pt::TableError> unmap(Range<Gfn> gfns) override;
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
  // No dirty ring: the shadow MMU logs into the slots' bitmaps (scenarios refuse a ring).
  std::size_t harvest_dirty_ring(mmu::VcpuContext&, std::vector<DirtyGfn>&) override { return 0; }
  std::size_t reset_dirty_ring(mmu::VcpuContext&) override { return 0; }
  [[nodiscard]] mmu::MmuStats stats() override;
  [[nodiscard]] std::optional<std::string> check_invariants() override { return mmu_->check_invariants(); }
  [[nodiscard]] shadow::ShadowMmu* shadow() override { return mmu_.get(); }

 private:
  std::unique_ptr<shadow::ShadowMmu> mmu_;
};

// The shadow MMU's exit under the interface's name.
mmu::Exit exit_of(shadow::ShadowExit e);
// A device's guest-physical access through the shadow MMU (ShadowBackend's, AdaptiveBackend's).
Status<mmu::Exit> shadow_access_gpa(shadow::ShadowMmu& mmu, Gpa gpa, Access access, mmu::HostUse use);
// The shadow MMU's statistics under the interface's names.
mmu::MmuStats shadow_mmu_stats(const shadow::ShadowMmu& mmu);

}  // namespace vmmu::vm::detail
