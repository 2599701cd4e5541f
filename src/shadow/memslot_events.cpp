// A VM's shadow MMU over its memslots: creation, guest RAM as the memslots back it, and what
// each memslot change unmaps or write-protects (through the rmaps, never a walk of every
// table), as the TDP MMU's on_memslot_change.

#include "vmmu/shadow/memslot_ram.hpp"
#include "vmmu/shadow/shadow_mmu.hpp"

namespace vmmu::shadow {

std::string_view to_string(ShadowConfigError e) {
  switch (e) {
    case ShadowConfigError::HostLevels: return "shadow MMU: host_levels must be 4 or 5";
  }
  return "shadow MMU: bad configuration";
}

Result<std::unique_ptr<ShadowMmu>, ShadowConfigError> ShadowMmu::create(const ShadowConfig& config, Memslots& slots) {
  if (config.host_levels != 4 && config.host_levels != 5) return Unexpected{ShadowConfigError::HostLevels};
  std::unique_ptr<ShadowMmu> mmu(new ShadowMmu(std::make_unique<MemslotRam>(slots), slots, config));
  ShadowMmu* self = mmu.get();
  mmu->observer_ = slots.add_observer([self](const MemslotChange& c) { self->on_memslot_change(c); });
  mmu->update_quota();
  return mmu;
}

ShadowMmu::HostFrame ShadowMmu::host_frame(Gfn gfn) const {
  if (slots_ == nullptr) return {ram_.page(gfn), true, nullptr};
  const MemslotRegion* r = slots_->find(gfn);  // the caller's RCU section keeps it
  if (r == nullptr) return {};
  return {r->host_of(gfn), r->writable(), r};
}

void ShadowMmu::on_memslot_change(const MemslotChange& change) {
  // Called with the memslot mutex held, after the new snapshot is visible: every access that
  // may still use the old layout holds the lock, so taking it waits for them.
  const std::lock_guard lock(mutex_);
  update_quota();
  pt::TlbFlush<Gva> flush(&memory_);
  auto each = [&](auto&& op) {
    for (Range<Gfn> r : {change.before, change.after}) {
      if (!r.empty()) op(r);
    }
  };
  switch (change.kind) {
    case MemslotChangeKind::Added: break;  // nothing was mapped there (no MMIO caching)
    case MemslotChangeKind::Removed:
    case MemslotChangeKind::Moved:
    case MemslotChangeKind::OverlayAdded:
    case MemslotChangeKind::OverlayRemoved:
      // Only the ranges that changed: leaves mapping them, shadow pages of guest tables in them.
      each([&](Range<Gfn> r) { unmap_locked(r, flush); });
      break;
    case MemslotChangeKind::FlagsChanged: {
      const bool to_read_only = change.new_flags.is_read_only() && !change.old_flags.is_read_only();
      const bool to_logging = change.new_flags.is_log_dirty() && !change.old_flags.is_log_dirty();
      if (to_read_only) each([&](Range<Gfn> r) { write_protect_locked(r, flush); });
      if (to_logging) each([&](Range<Gfn> r) { start_dirty_logging_locked(r, flush); });
      // Logging off: leaves stay read-only until a write fault makes them writable again.
      break;
    }
  }
  finish(std::move(flush));
  checked("a memslot change");
}

}  // namespace vmmu::shadow
