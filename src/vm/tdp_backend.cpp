// The TDP MMU behind the MMU interface: a vCPU's gva access (software TLB, guest walk through
// the TDP tables, data through them), device accesses on pooled handles, the VM-wide verbs.

#include "tdp_backend.hpp"

#include <bit>

#include "tdp_table_memory.hpp"
#include "vmmu/x86/walk.hpp"

namespace vmmu::vm::detail {
namespace {

namespace gpte = x86::gpte;
constexpr std::uint64_t k32 = 0xffff'ffffULL;

std::uint8_t rights_of(const x86::Translation& t) {
  return static_cast<std::uint8_t>((t.user ? gpte::kAccUser : 0) | (t.writable ? gpte::kAccWrite : 0) |
                                   (t.nx ? 0 : gpte::kAccExec));
}

mmu::GvaStop stop(tdp::AccessExit e, Gpa gpa) { return mmu::GvaStop{exit_of(e), {}, gpa}; }

// A free device handle from the pool (created when the pool is empty), returned on scope exit.
// Device accesses get no dirty ring (with_ring = false): they log into the slot bitmaps.
// Under RootPolicy::Rebuild a handle keeps no root between accesses: roots then live only as
// long as a vCPU holds them (KVM before 6.4), and an idle device must not keep one alive.
class PooledMmu {
 public:
  PooledMmu(std::mutex& m, std::vector<std::unique_ptr<tdp::VcpuMmu>>& pool, tdp::TdpMmu& mmu)
      : m_(m), pool_(pool), unload_(mmu.policies().roots == tdp::RootPolicy::Rebuild) {
    {
      std::lock_guard g(m_);
      if (!pool_.empty()) {
        h_ = std::move(pool_.back());
        pool_.pop_back();
      }
    }
    if (!h_) h_ = std::make_unique<tdp::VcpuMmu>(mmu, tdp::RootRole{}, false);
  }
  ~PooledMmu() {
    if (unload_) h_->unload_root();
    std::lock_guard g(m_);
    pool_.push_back(std::move(h_));
  }
  PooledMmu(const PooledMmu&) = delete;
  PooledMmu& operator=(const PooledMmu&) = delete;
  tdp::VcpuMmu& operator*() { return *h_; }

 private:
  std::mutex& m_;
  std::vector<std::unique_ptr<tdp::VcpuMmu>>& pool_;
  bool unload_;
  std::unique_ptr<tdp::VcpuMmu> h_;
};

Status<mmu::Exit> data_access(tdp::TdpMmu& mmu, tdp::VcpuMmu& h, Gpa gpa, Access access, mmu::HostUse use) {
  const Status<tdp::AccessExit> st = mmu.access(h, gpa, access, [&](std::byte* host) { use(host); });
  if (!st) return Unexpected{exit_of(st.error())};
  return {};
}

}  // namespace

mmu::Exit exit_of(tdp::AccessExit e) {
  switch (e) {
    case tdp::AccessExit::Mmio: return mmu::Exit::Mmio;
    case tdp::AccessExit::RingFull: return mmu::Exit::RingFull;
    case tdp::AccessExit::OutOfRange: return mmu::Exit::OutOfRange;
    case tdp::AccessExit::OutOfMemory: return mmu::Exit::OutOfMemory;
  }
  return mmu::Exit::Mmio;
}

TdpVcpu::TdpVcpu(tdp::TdpMmu& mmu, SoftTlb& tlb)
    : mmu_(mmu), tlb_(tlb), handle_(mmu, tdp::RootRole{static_cast<std::uint8_t>(mmu.config().format.levels)}, true) {}

Result<mmu::GvaHit, mmu::GvaStop> TdpVcpu::access(const x86::GuestPaging& paging, std::uint16_t pcid, Gva gva,
                                                  Access access, mmu::HostUse use) {
  mmu::GvaHit hit;
  if (paging.mode() == x86::PagingMode::Off) {
    hit = mmu::GvaHit{Gpa(gva.raw() & k32), kPageSize, false};
  } else {
    const std::uint64_t linear = paging.linear(gva);
    const TlbEntry* e = tlb_.lookup(linear >> kPageShift, pcid);
    // A hit is used only if the current role allows the access (exactly the walker's check), a
    // write finds D already set, and the protection key was cached under the current CR4.PKE;
    // anything else walks again, as hardware re-walks before faulting or setting D.
    if (e != nullptr && e->pke == paging.protection_keys() && (e->dirty || !access.is_write()) &&
        ((static_cast<unsigned>(paging.permission_faults(paging.permission_index(access))) >> e->rights) & 1u) == 0 &&
        !((e->rights & gpte::kAccUser) != 0 && paging.protection_key_denies(e->key, access))) {
      bump(tlb_hits_);
      hit = mmu::GvaHit{gpa_of(Gfn(e->gfn)) + (linear & (kPageSize - 1)), kPageSize << e->size_shift, true};
    } else {
      Result<mmu::GvaHit, mmu::GvaStop> walked = walk(paging, pcid, linear, access);
      if (!walked) return walked;
      hit = *walked;
    }
  }
  if (use) {
    const Status<tdp::AccessExit> st = mmu_.access(handle_, hit.gpa, access, [&](std::byte* host) { use(host); });
    if (!st) return Unexpected{stop(st.error(), hit.gpa)};
  }
  return hit;
}

Result<mmu::GvaHit, mmu::GvaStop> TdpVcpu::walk(const x86::GuestPaging& paging, std::uint16_t pcid,
                                                std::uint64_t linear, Access access) {
  bump(walks_);
  const std::uint64_t vpn = linear >> kPageShift;
  TdpTableMemory tables(mmu_, handle_);
  const Result<x86::Translation, x86::WalkFault> r = x86::walk(paging, tables, Gva(linear), access, walk_options_);
  if (const std::optional<tdp::AccessExit> ex = tables.exit()) return Unexpected{stop(*ex, tables.exit_gpa())};
  if (!r) {
    // A page fault invalidates the faulting address's entries (SDM 4.10.4.1).
    tlb_.drop(vpn);
    if (r.error().kind == x86::WalkFaultKind::TableUnreadable) {
      return Unexpected{mmu::GvaStop{mmu::Exit::Mmio, r.error(), Gpa()}};  // always comes with an exit (above)
    }
    return Unexpected{mmu::GvaStop{std::nullopt, r.error(), Gpa()}};
  }
  const std::uint64_t leaf = r->entry;
  TlbEntry e;
  e.vpn = vpn;
  e.gfn = gfn_of(r->gpa).raw();
  e.pcid = pcid;
  e.size_shift = static_cast<std::uint8_t>(static_cast<unsigned>(std::countr_zero(r->page_size)) - kPageShift);
  e.rights = rights_of(*r);
  e.key = r->protection_key;
  e.global = x86::cr4::PGE::get(paging.registers().cr4) && gpte::G::get(leaf);  // G is ignored without PGE
  e.dirty = access.is_write() || gpte::D::get(leaf) || !walk_options_.update_accessed_dirty;
  e.pke = paging.protection_keys();
  tlb_.insert(e);
  return mmu::GvaHit{r->gpa, r->page_size, false};
}

Status<mmu::Exit> TdpVcpu::access_gpa(Gpa gpa, Access access, mmu::HostUse use) {
  return data_access(mmu_, handle_, gpa, access, use);
}

mmu::VcpuMmuStats TdpVcpu::stats() const {
  return mmu::VcpuMmuStats{tlb_hits_.load(std::memory_order_relaxed), walks_.load(std::memory_order_relaxed),
                           handle_.stats().faults, handle_.root_loads()};
}

std::unique_ptr<mmu::VcpuContext> TdpBackend::vcpu_context(SoftTlb& tlb) {
  return std::make_unique<TdpVcpu>(*mmu_, tlb);
}

Status<mmu::Exit> TdpBackend::access_gpa(Gpa gpa, Access access, mmu::HostUse use) {
  PooledMmu h(device_mutex_, device_mmus_, *mmu_);
  return data_access(*mmu_, *h, gpa, access, use);
}

mmu::MmuStats TdpBackend::stats() { return tdp_mmu_stats(*mmu_); }

mmu::MmuStats tdp_mmu_stats(tdp::TdpMmu& mmu) {
  const tdp::TdpStats t = mmu.stats();
  mmu::MmuStats s;
  s.faults = t.faults.faults;
  s.table_pages = t.tables_in_use;
  s.zapped = t.zapped_leaves;
  s.write_protected = t.write_protected;
  s.tlb_flushes = t.tlb_flushes;
  s.roots_created = t.roots_created;
  return s;
}

}  // namespace vmmu::vm::detail
