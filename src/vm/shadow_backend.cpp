// The shadow MMU behind the MMU interface.

#include "shadow_backend.hpp"

namespace vmmu::vm::detail {
namespace {

constexpr std::uint64_t k32 = 0xffff'ffffULL;

}  // namespace

mmu::Exit exit_of(shadow::ShadowExit e) {
  switch (e) {
    case shadow::ShadowExit::Mmio: return mmu::Exit::Mmio;
    case shadow::ShadowExit::OutOfMemory: return mmu::Exit::OutOfMemory;
    case shadow::ShadowExit::RingFull: return mmu::Exit::RingFull;
    case shadow::ShadowExit::Unsupported:
    case shadow::ShadowExit::Stuck: return mmu::Exit::Unsupported;
  }
  return mmu::Exit::Unsupported;
}

ShadowVcpuContext::ShadowVcpuContext(shadow::ShadowMmu& mmu)
    : mmu_(mmu), vcpu_(mmu), paging_off_(x86::GuestPaging::from(x86::Registers{}, x86::CpuModel{})) {}

Result<mmu::GvaHit, mmu::GvaStop> ShadowVcpuContext::access(const x86::GuestPaging& paging, std::uint16_t, Gva gva,
                                                            Access access, mmu::HostUse use) {
  shadow::Outcome o = mmu_.access(
      vcpu_, paging, gva, access,
      [&](std::byte* host) {
        if (use) use(host);
      },
      use.bytes());
  if (o.exit) return Unexpected{mmu::GvaStop{exit_of(*o.exit), {}, o.guest ? o.guest->gpa : Gpa()}};
  if (!o.guest) return Unexpected{mmu::GvaStop{std::nullopt, o.guest.error(), Gpa()}};
  return mmu::GvaHit{o.guest->gpa, o.guest->page_size, false};
}

Status<mmu::Exit> ShadowVcpuContext::access_gpa(Gpa gpa, Access access, mmu::HostUse use) {
  // Paging off reaches 32 bits of guest-physical memory (scenarios under shadow keep below).
  if (gpa.raw() > k32) return Unexpected{mmu::Exit::OutOfRange};
  Result<mmu::GvaHit, mmu::GvaStop> r = this->access(paging_off_, 0, Gva(gpa.raw()), access, use);
  if (r) return {};
  return Unexpected{r.error().exit.value_or(mmu::Exit::Unsupported)};
}

void ShadowVcpuContext::load_root(const x86::GuestPaging& paging, std::uint16_t pcid, bool flush) {
  bump(root_loads_);
  // An exit here (no memory for the root, a mode not shadowed) comes back on the next access,
  // which loads the root again.
  (void)mmu_.load_cr3(vcpu_, paging, flush, pcid);
}

mmu::VcpuMmuStats ShadowVcpuContext::stats() const {
  // The shadow MMU counts faults and hardware hits per VM (MmuStats); per vCPU, root loads.
  return mmu::VcpuMmuStats{0, 0, 0, root_loads_.load(std::memory_order_relaxed)};
}

std::unique_ptr<mmu::VcpuContext> ShadowBackend::vcpu_context(SoftTlb&) {
  return std::make_unique<ShadowVcpuContext>(*mmu_);
}

Status<mmu::Exit> shadow_access_gpa(shadow::ShadowMmu& mmu, Gpa gpa, Access access, mmu::HostUse use) {
  const Status<shadow::ShadowExit> st = mmu.access_gpa(gpa, access, [&](std::byte* host) { use(host); }, use.bytes());
  if (!st) return Unexpected{exit_of(st.error())};
  return {};
}

Status<mmu::Exit> ShadowBackend::access_gpa(Gpa gpa, Access access, mmu::HostUse use) {
  return shadow_access_gpa(*mmu_, gpa, access, use);
}

Status<pt::TableError> ShadowBackend::unmap(Range<Gfn> gfns) {
  if (gfns.end < gfns.begin) return Unexpected{pt::TableError::OutOfRange};
  mmu_->unmap(gfns);
  return {};
}

mmu::MmuStats ShadowBackend::stats() { return shadow_mmu_stats(*mmu_); }

mmu::MmuStats shadow_mmu_stats(const shadow::ShadowMmu& mmu) {
  const shadow::ShadowStats t = mmu.stats();
  mmu::MmuStats s;
  s.faults = t.faults;
  s.reflected = t.reflected;
  s.emulated = t.emulated;
  s.syncs = t.syncs;
  s.unsyncs = t.unsyncs;
  s.table_pages = t.shadow_pages;
  s.zapped = t.zapped_pages;
  s.tlb_flushes = t.tlb_flushes;
  s.roots_created = t.roots_built;
  return s;
}

}  // namespace vmmu::vm::detail
