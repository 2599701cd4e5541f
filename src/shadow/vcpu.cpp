// The vCPU side of the shadow MMU (KVM's kvm_mmu ops): a vCPU's root, loaded on CR3 writes
// and role changes and pinned while it is the vCPU's; the modelled hardware's access with
// data; guest-physical accesses; INVLPG and guest TLB flushes.

#include "vmmu/shadow/shadow_mmu.hpp"

namespace vmmu::shadow {

ShadowVcpu::~ShadowVcpu() { mmu_.unload(*this); }

void ShadowMmu::release_root_locked(ShadowPage* root) {
  root->release_root();
  if (root->root_count() == 0 && root->role().invalid()) {
    // Zapped while in use: empty already, freed now that no vCPU runs on it.
    pt::TlbFlush<Gva> flush(&memory_);
    zap_page(root, flush);
    finish(std::move(flush));
  }
}

Result<ShadowPage*, ShadowExit> ShadowMmu::vcpu_root_locked(ShadowVcpu& vcpu, const x86::GuestPaging& paging) {
  // An access under another paging state than the last load (a role change the caller did
  // not load): the switch a no-flush load would make, under the same PCID.
  return switch_root_locked(vcpu, paging, vcpu.pcid_, false);
}

void ShadowMmu::invlpg(ShadowVcpu& vcpu, Gva gva) {
  const std::lock_guard lock(mutex_);
  if (vcpu.root_ == nullptr || vcpu.root_->role().invalid()) return;
  const std::uint64_t linear = vcpu.paging_->linear(gva);
  pt::TlbFlush<Gva> flush(&memory_);
  // The current root's leaf for gva follows the guest's entry in an unsync page (KVM's invlpg
  // syncs that one entry), else goes; the next access faults it back from the guest's tables.
  zap_gva_locked(*vcpu.root_, linear, &*vcpu.paging_, flush);
  // INVLPG drops global translations of every PCID: the cached roots' leaf goes too (KVM).
  for (const ShadowVcpu::CachedRoot& c : vcpu.prev_) {
    if (c.root != nullptr && !c.root->role().invalid()) zap_gva_locked(*c.root, linear, nullptr, flush);
  }
  ++stats_.tlb_flushes;
  finish(std::move(flush));
  checked("invlpg");
}

void ShadowMmu::flush_tlb(ShadowVcpu& vcpu) {
  const std::lock_guard lock(mutex_);
  guest_flush_locked(vcpu, std::nullopt);
}

void ShadowMmu::unload(ShadowVcpu& vcpu) {
  const std::lock_guard lock(mutex_);
  if (vcpu.root_ != nullptr) release_root_locked(vcpu.root_);
  release_cached_locked(vcpu);
  vcpu.root_ = nullptr;
  vcpu.paging_.reset();
}

ShadowMmu::Reached ShadowMmu::reach_locked(ShadowVcpu& vcpu, const x86::GuestPaging& paging, Gva gva, Access a) {
  Reached out{.outcome = {Unexpected{x86::WalkFault{}}, std::nullopt}, .host = nullptr, .frame = Gfn(0), .gpa = Gpa(0), .table_written = false, .again = false};
  const std::uint64_t linear = paging.linear(gva);
  const Result<ShadowPage*, ShadowExit> root = vcpu_root_locked(vcpu, paging);
  if (!root) {
    out.outcome.exit = root.error();
    return out;
  }
  auto hit = [&](const x86::Translation& t, std::byte* host) {
    out.outcome = {t, std::nullopt};
    out.host = host;
    out.frame = gfn_of(t.gpa);
    out.gpa = t.gpa;
  };
  std::byte* host = nullptr;
  if (std::optional<x86::Translation> t = hardware(host_paging(paging, **root), linear, a, &host)) {
    ++stats_.hardware_hits;
    hit(*t, host);
    return out;
  }
  reclaim_locked();
  if ((*root)->role().invalid()) {
    out.again = true;  // the quota took the root (it never does: roots stay): load again
    return out;
  }
  Handled h = handle_fault(paging, **root, linear, a);
  checked_fault(**root, paging, linear);
  switch (h.kind) {
    case Fault::Invalidated: out.again = true; return out;
    case Fault::Reflect: out.outcome = std::move(h.outcome); return out;
    case Fault::Emulate: break;
    case Fault::Retry:
#ifdef VMMU_CHECK_INVARIANTS
      // The leaf just built must let the hardware do the access; release builds trust it and
      // answer from the guest's walk instead of walking the shadow tables again (as access()).
      if (!hardware(host_paging(paging, **root), linear, a)) {
        out.outcome = {Unexpected{x86::WalkFault{}}, ShadowExit::Stuck};
        return out;
      }
#endif
      break;
  }
  // The host page the fault path found backed (and, for a write, writable) for the guest's
  // translation: what the new leaf maps, or where an emulated access is done.
  const x86::Translation t = *h.outcome.guest;
  const HostFrame f = host_frame(gfn_of(t.gpa));
  hit(t, f.host + t.gpa.offset_in(kPageSize));
  if (h.kind == Fault::Emulate) {
    // No writable leaf logged this write (the fault path logs only when it installs one).
    if (a.is_write() && f.region != nullptr) f.region->mark_dirty(gfn_of(t.gpa));
    out.table_written = a.is_write() && write_tracked(out.frame);
  }
  return out;
}

ShadowMmu::GpaReached ShadowMmu::reach_gpa_locked(Gpa gpa, Access a) {
  const Gfn gfn = gfn_of(gpa);
  const HostFrame f = host_frame(gfn);
  if (f.host == nullptr || (a.is_write() && !f.writable)) return {};
  if (a.is_write() && f.region != nullptr) f.region->mark_dirty(gfn);
  return {f.host + gpa.offset_in(kPageSize), a.is_write() && write_tracked(gfn)};
}

}  // namespace vmmu::shadow
