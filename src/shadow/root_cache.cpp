// Roots across CR3 switches (issue 12, item 7): a vCPU's current root and its cache of
// previous roots keyed by (guest root, PCID, role), as KVM's kvm_mmu_new_pgd / fast_pgd_switch
// and prev_roots. Switching to a cached root takes no lookup and no rebuild; with PCIDs and
// CR3 bit 63 set it takes no sync either. Guest flushes (CR3 loads, INVPCID, INVLPG, CR4
// writes) reach cached roots through a stale mark, synced when the root is next loaded.

#include "vmmu/shadow/shadow_mmu.hpp"

namespace vmmu::shadow {
namespace {

bool same_key(const ShadowVcpu::CachedRoot& c, Gpa guest_root, Role role, std::uint16_t pcid) {
  return c.guest_root == guest_root && c.role == role && c.pcid == pcid;
}

}  // namespace

Result<ShadowPage*, ShadowExit> ShadowMmu::switch_root_locked(ShadowVcpu& vcpu, const x86::GuestPaging& paging,
                                                              std::uint16_t pcid, bool flush) {
  const Role role = root_role(paging, config_.host_levels);
  ShadowPage* current = vcpu.root_;
  if (current != nullptr && !current->role().invalid() && vcpu.pcid_ == pcid && vcpu.paging_->root() == paging.root() &&
      current->role() == role) {
    if (flush) guest_flush_locked(vcpu, pcid);
    return current;
  }
  ShadowPage* next = nullptr;
  bool stale = false;
  for (ShadowVcpu::CachedRoot& c : vcpu.prev_) {
    if (c.root == nullptr) continue;
    if (c.root->role().invalid()) {  // zapped while cached: released, never reused
      release_root_locked(c.root);
      c = {};
    } else if (next == nullptr && same_key(c, paging.root(), role, pcid)) {
      next = c.root;  // its pin moves to the current root
      stale = c.stale;
      c = {};
    }
  }
  if (next != nullptr) {
    ++stats_.roots_reused;
    ++stats_.root_cache_hits;
  } else {
    const std::uint64_t built = stats_.roots_built;
    Result<ShadowPage*, ShadowExit> found = root_locked(paging);
    if (!found) return found;
    if (stats_.roots_built == built) ++stats_.roots_reused;
    next = *found;
    next->hold_root();
  }
  if (current != nullptr) {
    if (current->role().invalid()) {
      release_root_locked(current);
    } else {
      cache_root_locked(vcpu, {current, vcpu.paging_->root(), current->role(), vcpu.pcid_, false});
    }
  }
  vcpu.root_ = next;
  vcpu.paging_ = paging;
  vcpu.pcid_ = pcid;
  if (flush) {
    guest_flush_locked(vcpu, pcid);
  } else if (stale) {
    sync_current_root_locked(vcpu);  // the guest flushed this PCID while the root was cached
  }
  return next;
}

void ShadowMmu::cache_root_locked(ShadowVcpu& vcpu, const ShadowVcpu::CachedRoot& c) {
  // Shift the entries before the first empty slot (or all) down by one; the last one shifted
  // out is the oldest.
  std::size_t free = vcpu.prev_.size() - 1;
  for (std::size_t i = 0; i < vcpu.prev_.size(); ++i) {
    if (vcpu.prev_[i].root == nullptr) {
      free = i;
      break;
    }
  }
  if (ShadowPage* evicted = vcpu.prev_[free].root) release_root_locked(evicted);
  for (std::size_t i = free; i > 0; --i) vcpu.prev_[i] = vcpu.prev_[i - 1];
  vcpu.prev_[0] = c;
}

void ShadowMmu::guest_flush_locked(ShadowVcpu& vcpu, std::optional<std::uint16_t> pcid) {
  ++stats_.tlb_flushes;
  for (ShadowVcpu::CachedRoot& c : vcpu.prev_) {
    if (c.root != nullptr && (!pcid || c.pcid == *pcid)) c.stale = true;
  }
  if (vcpu.root_ != nullptr && !vcpu.root_->role().invalid() && (!pcid || vcpu.pcid_ == *pcid)) {
    sync_current_root_locked(vcpu);
  }
}

void ShadowMmu::sync_current_root_locked(ShadowVcpu& vcpu) {
  ++stats_.root_syncs;
  sync_roots_locked(vcpu);  // the unsync pages under it (sync.cpp)
}

void ShadowMmu::zap_gva_locked(const ShadowPage& root, std::uint64_t linear, const x86::GuestPaging* paging,
                               pt::TlbFlush<Gva>& flush) {
  // The shadow leaf for the address (if any) follows its guest entry when it is in an unsync
  // page and `paging` reads that page, else goes; the next access faults it back from the
  // guest's tables as they are now.
  const std::uint64_t input = linear & (format_.geometry().input_limit() - 1);
  pt::TableIterator<ShadowFormat, pt::OwnedTableMemory> it(format_, memory_, root.table(), input, input + 1);
  pt::ops::EntryOps<ShadowFormat>(format_, memory_, tlb_, root.table()).settle(it);
  if (!it.is_leaf()) return;
  ShadowPage* sp = pages_.holding(it.entry_address());
  const unsigned index = format_.geometry().index(input, it.level());
  if (paging != nullptr && sp->unsync()) {
    refresh_leaves(*sp, index, 1, paging, flush);
  } else {
    zap_leaf(sp->leaf(index).gfn, it.entry_address(), flush);
  }
}

Status<ShadowExit> ShadowMmu::load_cr3(ShadowVcpu& vcpu, const x86::GuestPaging& paging, bool flush,
                                      std::uint16_t pcid) {
  const std::lock_guard lock(mutex_);
  Result<ShadowPage*, ShadowExit> root = switch_root_locked(vcpu, paging, pcid, flush);
  if (!root) return Unexpected{root.error()};
  return {};
}

void ShadowMmu::invpcid(ShadowVcpu& vcpu, x86::InvpcidType type, std::uint16_t pcid, Gva linear) {
  const std::lock_guard lock(mutex_);
  switch (type) {
    case x86::InvpcidType::Address: {
      pt::TlbFlush<Gva> flush(&memory_);
      if (vcpu.root_ != nullptr && !vcpu.root_->role().invalid() && vcpu.pcid_ == pcid) {
        zap_gva_locked(*vcpu.root_, linear.raw(), &*vcpu.paging_, flush);
      }
      for (const ShadowVcpu::CachedRoot& c : vcpu.prev_) {
        if (c.root != nullptr && !c.root->role().invalid() && c.pcid == pcid) zap_gva_locked(*c.root, linear.raw(), nullptr, flush);
      }
      ++stats_.tlb_flushes;
      finish(std::move(flush));
      break;
    }
    case x86::InvpcidType::SingleContext: guest_flush_locked(vcpu, pcid); break;
    case x86::InvpcidType::AllContexts:
    case x86::InvpcidType::AllNonGlobal: guest_flush_locked(vcpu, std::nullopt); break;
  }
  checked("invpcid");
}

void ShadowMmu::release_cached_locked(ShadowVcpu& vcpu) {
  for (ShadowVcpu::CachedRoot& c : vcpu.prev_) {
    if (c.root != nullptr) release_root_locked(c.root);
    c = {};
  }
}

}  // namespace vmmu::shadow
