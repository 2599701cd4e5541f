// ShadowMmu: construction, roots, and an access's loop (hardware walk, fault, one retry).
// The fault path is in fault.cpp, the modelled hardware in hardware.cpp, the vCPU side in
// vcpu.cpp, memslot events in memslot_events.cpp, zapping in zap.cpp, dirty logging in
// dirty_log.cpp.

#include "vmmu/shadow/shadow_mmu.hpp"

#include "vmmu/mmu/invariants.hpp"

namespace vmmu::shadow {

std::string_view to_string(ShadowExit e) {
  switch (e) {
    case ShadowExit::Mmio: return "no guest memory at the frame";
    case ShadowExit::OutOfMemory: return "out of memory for shadow pages";
    case ShadowExit::Unsupported: return "a guest paging mode the shadow MMU does not run yet";
    case ShadowExit::Stuck: return "the shadow entries built do not allow the access (shadow MMU bug)";
    case ShadowExit::RingFull: return "the dirty ring is full";
  }
  return "unknown shadow exit";
}

ShadowMmu::ShadowMmu(GuestRam& ram, ShadowConfig config)
    : ram_(ram),
      config_(config),
      format_(config.host_levels),
      memory_(format_.geometry()),
      pages_(memory_) {
  update_quota();
}

ShadowMmu::ShadowMmu(std::unique_ptr<GuestRam> ram, Memslots& slots, ShadowConfig config)
    : own_ram_(std::move(ram)),
      ram_(*own_ram_),
      slots_(&slots),
      config_(config),
      format_(config.host_levels),
      memory_(format_.geometry()),
      pages_(memory_) {}

ShadowMmu::~ShadowMmu() {
  if (slots_ != nullptr) slots_->remove_observer(observer_);
}

ShadowStats ShadowMmu::stats() const {
  const std::lock_guard lock(mutex_);
  ShadowStats s = stats_;
  s.shadow_pages = pages_.size();
  s.shadow_pages_peak = pages_.peak();
  return s;
}

Result<ShadowPage*, ShadowExit> ShadowMmu::load_root(const x86::GuestPaging& paging) {
  const std::lock_guard lock(mutex_);
  return root_locked(paging);
}

Result<ShadowPage*, ShadowExit> ShadowMmu::root_locked(const x86::GuestPaging& paging) {
  const x86::PagingMode mode = paging.mode();
  if (guest_levels(mode) > config_.host_levels) return Unexpected{ShadowExit::Unsupported};
  const Role role = root_role(paging, config_.host_levels);
  // Paging off: one direct root for the whole 4 GiB; otherwise the guest's root table.
  const Gfn gfn = mode == x86::PagingMode::Off ? Gfn(0) : gfn_of(paging.root());
  if (ShadowPage* p = pages_.find_recent(gfn, role)) return p;
  Result<ShadowPage*, pt::TableError> made = pages_.create(gfn, role);
  if (!made) return Unexpected{ShadowExit::OutOfMemory};
  ++stats_.roots_built;
  roots_.emplace(*made, paging);
  if ((*made)->tracks_gfn()) write_protect(gfn);
  return *made;
}

Outcome ShadowMmu::access(const x86::GuestPaging& paging, Gva gva, Access access) {
  std::unique_lock lock(mutex_);
  const std::uint64_t linear = paging.linear(gva);
  const x86::WalkFault none{};
  Result<ShadowPage*, ShadowExit> root = root_locked(paging);
  if (!root) return {Unexpected{none}, root.error()};
  const x86::GuestPaging& host = host_paging(paging, **root);
  if (std::optional<x86::Translation> t = hardware(host, linear, access)) {
    ++stats_.hardware_hits;
    return {*t, std::nullopt};
  }
  reclaim_locked();
  Handled h = handle_fault(paging, **root, linear, access);
  checked_fault(**root, paging, linear);
  while (h.kind == Fault::Invalidated) {
    lock.unlock();
    std::this_thread::yield();  // invalidation in progress: let it end
    lock.lock();
    h = handle_fault(paging, **root, linear, access);
  }
#ifdef VMMU_CHECK_INVARIANTS
  // The leaf just built must let the hardware do the access; release builds trust it and
  // answer with the guest's translation instead of walking the shadow tables again.
  if (h.kind == Fault::Retry && !hardware(host, linear, access)) return {Unexpected{none}, ShadowExit::Stuck};
#endif
  return std::move(h.outcome);
}

void ShadowMmu::finish(pt::TlbFlush<Gva>&& flush) {
  if (flush.kind() != pt::TlbFlush<Gva>::Kind::None) ++stats_.tlb_flushes;
  std::move(flush).apply(tlb_);
}

void ShadowMmu::checked(const char* what) const {
  unchecked_ops_ = 0;
  mmu::check_or_abort("shadow MMU", what, [&] { return invariants_locked(); });
}

std::optional<std::string> ShadowMmu::check_invariants() const {
  const std::lock_guard lock(mutex_);
  return invariants_locked();
}

}  // namespace vmmu::shadow
