// The fault path: handle_fault, the modelled hardware's translation, and the mapping-level
// decision (see tdp_mmu.hpp).

#include <fmt/format.h>

#include "vmmu/core/rcu.hpp"
#include "vmmu/mmu/invariants.hpp"
#include "vmmu/tdp/tdp_mmu.hpp"

namespace vmmu::tdp {
namespace {

// Drops a flush token when the scope ends (after the return value is built).
struct DropOnExit {
  pt::TlbFlush<Gpa>& flush;
  ~DropOnExit() { std::move(flush).drop(); }
};

}  // namespace

std::byte* TdpMmu::translate(VcpuMmu& v, Gpa gpa, Access a) {
  using Entry = TdpFormat::Entry;
  Root* root = v.root_.load(std::memory_order_relaxed);
  if (root == nullptr || gpa.raw() >= gpa_limit() || root->invalid.load(std::memory_order_acquire)) return nullptr;
  // No RCU section: tables are unlinked under this lock held exclusively, or by a merge that
  // frees them only after a lock barrier (see collapse()), so holding the lock shared suffices.
  const pt::WalkResult<TdpFormat> w = pt::walk(format_, memory_, root->tables.root(), gpa.raw(),
                                               [](pt::Step<TdpFormat>&) { return pt::Visit::Continue; });
  if (w.end != pt::WalkEnd::Leaf) return nullptr;
  const pt::LeafAttrs at = format_.leaf_attrs(w.entry, w.level);
  if (!mmu::allows(at, a, mmu::AccessFlag::SetByHardware)) return nullptr;
  // The hardware sets A (and D on a write) atomically; only when they are not yet set.
  const Entry ad = format_.accessed_bit() | (a.is_write() ? format_.dirty_bit() : 0);
  if ((w.entry & ad) != ad) memory_.fetch_or(w.entry_address, ad);
  std::byte* leaf = pt::OwnedTableMemory::pointer<std::byte>(format_.leaf_address(w.entry, w.level));
  // Cache it; write permission only once D is set, so the first write walks to set it.
  const bool dirty = format_.dirty_bit() == 0 || ((w.entry | ad) & format_.dirty_bit()) != 0;
  const std::uint8_t rights = static_cast<std::uint8_t>((at.read ? GpaTlb::kRead : 0) |
                                                        (at.write && dirty ? GpaTlb::kWrite : 0) |
                                                        (at.exec ? GpaTlb::kExec : 0));
  v.tlb_.fill(gpa, w.level, leaf, rights, flush_generation_.load(std::memory_order_acquire));
  return leaf + (gpa.raw() & (format_.geometry().span(w.level) - 1));
}

Result<FaultOutcome, pt::TableError> TdpMmu::handle_fault(VcpuMmu& v, Gpa gpa, Access access) {
  VcpuMmu::bump(v.c_.faults);
  if (gpa.raw() >= gpa_limit()) return FaultOutcome{FaultAction::OutOfRange};
  // Snapshots taken before the lookup (KVM's faultin_pfn before mmu_lock): a change of either
  // by the time we install means our view of the slot may be stale.
  const std::uint64_t seq = invalidate_seq_.load(std::memory_order_acquire);
  const std::uint64_t generation = slots_.generation();
  // The lock, held shared, is this fault's grace period for the memslot snapshot and the
  // tables: every memslot update passes a lock barrier (on_memslot_change) before it frees
  // the old snapshot, and no table is freed while a shared holder may still use it -- so no
  // RCU read-side section is needed (it would cost a third of the fault).
  ReaderLock::Shared shared(lock_, v.slot_);
  const MemslotRegion* region = slots_.find(gfn_of(gpa));
  Result<Root*, pt::TableError> root = v.current_root();
  if (!root) return Unexpected{root.error()};
  pt::TlbFlush<Gpa> flush(&memory_);
  // What a fault changes needs no invalidation on x86 (SDM vol. 3A, 4.10.4.3): it adds
  // permissions, fills an empty entry, or splits a leaf into leaves mapping the same memory
  // with the same permissions; a stale TLB entry at most faults again. It never unlinks a table.
  // Dropped on the way out, so the outcome is built in place: a copy of it through the stack
  // stalled on store forwarding, a few ns of every fault.
  const DropOnExit drop{flush};
  return fault_locked(v, **root, gpa, access, seq, generation, region, flush);
}

// One walk: look up (down to the entry mapping gpa), decide, build down to the level
// decided, install -- a lost race re-decides from where the walk stands. The common case, an
// empty entry at the level decided, is filled from the look-up without an iterator.
Result<FaultOutcome, pt::TableError> TdpMmu::fault_locked(VcpuMmu& v, Root& root, Gpa gpa, Access access,
                                                         std::uint64_t seq, std::uint64_t generation,
                                                         const MemslotRegion* region, pt::TlbFlush<Gpa>& flush) {
  using Entry = TdpFormat::Entry;
  const Gfn gfn = gfn_of(gpa);
  auto& c = v.c_;
  pt::ops::EntryOps<TdpFormat> ops = root.tables.entry_ops();
  const pt::WalkResult<TdpFormat> w = root.tables.look_up(gpa);
  const bool existing = w.end == pt::WalkEnd::Leaf;
  if (!existing && TdpFormat::mmio_current(w.entry, generation)) {
    VcpuMmu::bump(c.mmio_fast);
    VcpuMmu::bump(c.mmio);
    return FaultOutcome{FaultAction::Mmio};
  }
  if (existing && mmu::allows(format_.leaf_attrs(w.entry, w.level), access, mmu::AccessFlag::SetByHardware)) {
    VcpuMmu::bump(c.spurious);
    return FaultOutcome{FaultAction::Spurious, w.level, format_.geometry().span(w.level)};
  }
  if (retry_needed(gfn, seq) || slots_.generation() != generation) {
    VcpuMmu::bump(c.retried);
    return FaultOutcome{FaultAction::Retry};
  }
  if (region == nullptr) {
    // Remember "no memslot here" so the next access is answered from the table.
    const Entry marker = format_.make_mmio(generation);
    TdpTables::Iterator it = root.tables.at(w, gpa);
    for (;;) {
      Result<pt::ops::EntryOps<TdpFormat>::Reached, pt::TableError> r = ops.reach(it, 1, flush);
      if (!r) return Unexpected{r.error()};
      if (format_.present(it.entry(), 1) || it.entry() == marker) break;
      if (ops.install(it, marker, flush) == pt::ops::Installed::Done) break;
    }
    VcpuMmu::bump(c.mmio);
    return FaultOutcome{FaultAction::Mmio};
  }
  if (access.is_write() && !region->writable()) {
    VcpuMmu::bump(c.mmio);
    return FaultOutcome{FaultAction::Mmio};  // a write to ROM: the VMM emulates it
  }

  const bool logging = region->flags.is_log_dirty();
  const bool by_dirty_bits = config_.policies.dirty_tracking == DirtyTracking::DirtyBits && format_.ad_bits();
  // While logging by write protection, only a write maps writable (and logs the page first,
  // so a harvest never misses a page that is writable).
  const bool writable = region->writable() && (!logging || by_dirty_bits || access.is_write());
  if (logging && writable && !by_dirty_bits) {
    if (!log_dirty(&v, *region, gfn)) {
      VcpuMmu::bump(c.ring_full);
      return FaultOutcome{FaultAction::RingFull};
    }
  }
  pt::LeafAttrs attrs;
  attrs.read = true;
  attrs.write = writable;
  attrs.exec = true;
  attrs.accessed = true;
  attrs.dirty = access.is_write() && format_.ad_bits();
  // A new leaf at level l: the slot's memory under the l-aligned block holding gfn.
  const auto fresh_leaf = [&](unsigned l) {
    const std::uint64_t span_pages = format_.geometry().span(l) >> kPageShift;
    return format_.make_leaf(region->hpa_of(Gfn(gfn.raw() & ~(span_pages - 1))), l, attrs);
  };
  const auto installed = [&](unsigned l, bool relaxed, bool split) {
    if (split) VcpuMmu::bump(c.lazy_splits);
    VcpuMmu::bump(relaxed ? c.relaxed : c.mapped[l]);
#if defined(VMMU_CHECK_INVARIANTS)
    check_leaf(root, *region, gpa);
#endif
    return FaultOutcome{relaxed ? FaultAction::Relaxed : FaultAction::Mapped, l, format_.geometry().span(l),
                        logging && writable && !by_dirty_bits};
  };

  // An existing leaf lacks write permission: relax it in place, except a huge leaf while
  // logging, which is split (lazily) so only this 4K page becomes writable.
  const unsigned target = existing ? (logging ? 1 : w.level) : max_level(*region, gfn);
  // The common case: the look-up stopped on the empty entry the new leaf goes in.
  if (!existing && w.level == target && ops.install_empty(w, fresh_leaf(target)) == pt::ops::Installed::Done) {
    return installed(target, false, false);
  }
  // Otherwise build down to the target, or relax, from where the look-up stopped; a lost race
  // re-decides on the new value.
  TdpTables::Iterator it = root.tables.at(w, gpa);
  bool split = false;
  for (;;) {
    Result<pt::ops::EntryOps<TdpFormat>::Reached, pt::TableError> r = ops.reach(it, target, flush);
    if (!r) return Unexpected{r.error()};
    split = split || r->split;
    const Entry old = it.entry();
    const unsigned l = it.level();
    Entry want;
    if (format_.present(old, l)) {
      const pt::LeafAttrs have = format_.leaf_attrs(old, l);
      if (mmu::allows(have, access, mmu::AccessFlag::SetByHardware)) {  // another vCPU got there first
        if (split) VcpuMmu::bump(c.lazy_splits);
        VcpuMmu::bump(c.spurious);
        return FaultOutcome{FaultAction::Spurious, l, format_.geometry().span(l)};
      }
      pt::LeafAttrs more = have.plus(attrs);
      more.write = more.write && writable;
      want = format_.make_leaf(format_.leaf_address(old, l), l, more);
    } else {
      want = fresh_leaf(l);
    }
    if (ops.install(it, want, flush) == pt::ops::Installed::Lost) continue;  // re-decide on the new value
    return installed(l, format_.present(old, l), split);
  }
}

bool TdpMmu::log_dirty(VcpuMmu* v, const MemslotRegion& region, Gfn gfn) {
  if (v != nullptr && v->ring_ != nullptr) {
    if (!v->ring_->push(region.slot, region.dirty_first + (gfn.raw() - region.gfn_begin))) return false;
  } else {
    region.mark_dirty(gfn);
  }
  if (v != nullptr) VcpuMmu::bump(v->c_.dirtied);
  return true;
}

unsigned TdpMmu::max_level(const MemslotRegion& r, Gfn gfn) const {
  if (r.flags.is_log_dirty()) return 1;
  const pt::Geometry& g = format_.geometry();
  for (unsigned l = format_.block_allowed(3) ? 3 : 2; l > 1; --l) {
    if (g.shift(l) > r.backing_shift) continue;  // larger than the host's own pages
    const std::uint64_t pages = g.span(l) >> kPageShift;
    const std::uint64_t base = gfn.raw() & ~(pages - 1);
    if (base < r.gfn_begin || base + pages > r.gfn_begin + r.pages) continue;
    if ((r.hpa_of(Gfn(base)).raw() & ((pages << kPageShift) - 1)) != 0) continue;
    if (huge_disallowed(Gfn(base), l)) continue;
    return l;
  }
  return 1;
}

bool TdpMmu::retry_needed(Gfn gfn, std::uint64_t seq) const {
  if (invalidate_in_progress_.load(std::memory_order_acquire) != 0 &&
      gfn.raw() >= invalidate_begin_gfn_.load(std::memory_order_relaxed) &&
      gfn.raw() < invalidate_end_gfn_.load(std::memory_order_relaxed)) {
    return true;
  }
  return invalidate_seq_.load(std::memory_order_acquire) != seq;
}

bool TdpMmu::huge_disallowed(Gfn gfn, unsigned level) const {
  if (any_disallowed_.load(std::memory_order_acquire) == 0) return false;
  std::lock_guard g(disallow_mutex_);
  return disallowed_[level].contains(gfn.raw() >> (format_.geometry().shift(level) - kPageShift));
}

void TdpMmu::check_leaf(Root& root, const MemslotRegion& region, Gpa gpa) {
  const pt::WalkResult<TdpFormat> w =
      pt::walk(format_, memory_, root.tables.root(), gpa.raw(), [](pt::Step<TdpFormat>&) { return pt::Visit::Continue; });
  const char* bad = nullptr;
  if (w.end != pt::WalkEnd::Leaf) {
    bad = "no leaf after a successful fault";
  } else {
    const std::uint64_t span = format_.geometry().span(w.level);
    const Gpa base(gpa.raw() & ~(span - 1));
    if (format_.leaf_address(w.entry, w.level) != region.hpa_of(gfn_of(base))) bad = "the leaf maps other memory than its slot";
    if (format_.leaf_attrs(w.entry, w.level).write && !region.writable()) bad = "a writable leaf in a read-only slot";
  }
  if (bad != nullptr) mmu::invariant_broken("TDP", fmt::format("a fault on gpa {:#x}", gpa.raw()), bad);
}

}  // namespace vmmu::tdp
