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
  ShadowPage* current = vcpu.root_;
  if (current != nullptr && !current->role().invalid() && vcpu.paging_ && vcpu.paging_->root() == paging.root() &&
      current->role() == root_role(paging, config_.host_levels)) {
    return current;
  }
  const std::uint64_t built = stats_.roots_built;
  Result<ShadowPage*, ShadowExit> root = root_locked(paging);
  if (!root) return root;
  if (stats_.roots_built == built) ++stats_.roots_reused;
  // A role change keeps the old root (flipping back finds it); it is only released.
  (*root)->hold_root();
  vcpu.root_ = *root;
  vcpu.paging_ = paging;
  if (current != nullptr) release_root_locked(current);
  return root;
}

Status<ShadowExit> ShadowMmu::load_cr3(ShadowVcpu& vcpu, const x86::GuestPaging& paging, bool flush) {
  const rcu::ReadGuard rcu;
  const std::lock_guard lock(mutex_);
  Result<ShadowPage*, ShadowExit> root = vcpu_root_locked(vcpu, paging);
  if (!root) return Unexpected{root.error()};
  // No modelled TLB caches shadow translations: the shadow tables are the guest's TLB. A
  // flush syncs the unsync pages (their guest entries may have changed); without one (PCID,
  // CR3 bit 63) they may keep their old translations, as a TLB would.
  if (flush) {
    ++stats_.tlb_flushes;
    sync_roots_locked(vcpu);
  }
  return {};
}

void ShadowMmu::invlpg(ShadowVcpu& vcpu, Gva gva) {
  const rcu::ReadGuard rcu;
  const std::lock_guard lock(mutex_);
  if (vcpu.root_ == nullptr || vcpu.root_->role().invalid()) return;
  // The shadow leaf for gva (if any) follows the guest's entry in an unsync page, else goes;
  // the next access faults it back from the guest's tables as they are now.
  const std::uint64_t linear = vcpu.paging_->linear(gva);
  const std::uint64_t input = linear & (format_.geometry().input_limit() - 1);
  pt::TableIterator<ShadowFormat, pt::OwnedTableMemory> it(format_, memory_, vcpu.root_->table(), input, input + 1);
  pt::ops::EntryOps<ShadowFormat>(format_, memory_, tlb_, vcpu.root_->table()).settle(it);
  pt::TlbFlush<Gva> flush(&memory_);
  if (it.is_leaf()) {
    ShadowPage* sp = pages_.holding(it.entry_address());
    const unsigned index = format_.geometry().index(linear, it.level());
    if (sp->unsync()) {
      refresh_leaves(*sp, index, 1, &*vcpu.paging_, flush);  // KVM's invlpg: the one entry synced
    } else {
      zap_leaf(sp->leaf(index).gfn, it.entry_address(), flush);
    }
  }
  ++stats_.tlb_flushes;
  finish(std::move(flush));
  checked("invlpg");
}

void ShadowMmu::flush_tlb(ShadowVcpu& vcpu) {
  const rcu::ReadGuard rcu;
  const std::lock_guard lock(mutex_);
  ++stats_.tlb_flushes;
  sync_roots_locked(vcpu);
}

void ShadowMmu::unload(ShadowVcpu& vcpu) {
  const std::lock_guard lock(mutex_);
  if (vcpu.root_ != nullptr) release_root_locked(vcpu.root_);
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
  checked("a fault");
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
