// The fault path: handle_fault, the modelled hardware's translation, and the mapping-level
// decision (see tdp_mmu.hpp).
#include <cstdio>
#include <cstdlib>

#include "descend.hpp"
#include "vmmu/core/rcu.hpp"
#include "vmmu/tdp/tdp_mmu.hpp"

namespace vmmu::tdp {
namespace {

bool allows(const pt::LeafAttrs& a, Access access) {
  switch (access.kind) {
    case AccessKind::Read: return a.read;
    case AccessKind::Write: return a.write;
    case AccessKind::Fetch: return a.exec;
  }
  return false;
}

}  // namespace

std::byte* TdpMmu::translate(VcpuMmu& v, Gpa gpa, Access a) {
  using Entry = TdpFormat::Entry;
  Root* root = v.root_.load(std::memory_order_relaxed);
  if (root == nullptr || gpa.raw() >= gpa_limit() || root->invalid.load(std::memory_order_acquire)) return nullptr;
  // No RCU section: tables are unlinked under this lock held exclusively, or by a merge that
  // frees them only after a lock barrier (see merge()), so holding the lock shared suffices.
  const pt::Geometry& g = format_.geometry();
  Hpa table = root->tables.root();
  for (unsigned l = g.root_level();; --l) {
    Entry* p = pt::HostTableMemory::pointer<Entry>(pt::entry_address<TdpFormat>(table, g.index(gpa.raw(), l)));
    std::atomic_ref<Entry> slot(*p);
    const Entry e = slot.load(std::memory_order_acquire);
    if (!format_.present(e, l)) return nullptr;
    if (l > 1 && !format_.leaf(e, l)) {
      table = format_.table_address(e, l);
      continue;
    }
    const pt::LeafAttrs at = format_.leaf_attrs(e, l);
    if (!allows(at, a)) return nullptr;
    // The hardware sets A (and D on a write) atomically; only when they are not yet set.
    const Entry ad = format_.accessed_bit() | (a.is_write() ? format_.dirty_bit() : 0);
    if ((e & ad) != ad) slot.fetch_or(ad, std::memory_order_acq_rel);
    std::byte* leaf = pt::HostTableMemory::pointer<std::byte>(format_.leaf_address(e, l));
    // Cache it; write permission only once D is set, so the first write walks to set it.
    const bool dirty = format_.dirty_bit() == 0 || ((e | ad) & format_.dirty_bit()) != 0;
    const std::uint8_t rights = static_cast<std::uint8_t>((at.read ? GpaTlb::kRead : 0) |
                                                          (at.write && dirty ? GpaTlb::kWrite : 0) |
                                                          (at.exec ? GpaTlb::kExec : 0));
    v.tlb_.fill(gpa, l, leaf, rights, flush_generation_.load(std::memory_order_acquire));
    return leaf + (gpa.raw() & (g.span(l) - 1));
  }
}

Result<FaultOutcome, pt::HostError> TdpMmu::handle_fault(VcpuMmu& v, Gpa gpa, Access access) {
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
  Result<Root*, pt::HostError> root = v.current_root();
  if (!root) return Unexpected{root.error()};
  return fault_locked(v, **root, gpa, access, seq, generation, region);
}

Result<FaultOutcome, pt::HostError> TdpMmu::fault_locked(VcpuMmu& v, Root& root, Gpa gpa, Access access,
                                                         std::uint64_t seq, std::uint64_t generation,
                                                         const MemslotRegion* region) {
  using Entry = TdpFormat::Entry;
  const Gfn gfn = gfn_of(gpa);
  auto& c = v.c_;
  const pt::WalkResult<TdpFormat> now =
      pt::walk(format_, memory_, root.tables.root(), gpa.raw(), [](pt::Step<TdpFormat>&) { return pt::Visit::Continue; });
  if (now.end == pt::WalkEnd::NotPresent && TdpFormat::mmio_current(now.entry, generation)) {
    VcpuMmu::bump(c.mmio_fast);
    VcpuMmu::bump(c.mmio);
    return FaultOutcome{FaultAction::Mmio};
  }
  if (now.end == pt::WalkEnd::Leaf && allows(format_.leaf_attrs(now.entry, now.level), access)) {
    VcpuMmu::bump(c.spurious);
    return FaultOutcome{FaultAction::Spurious, now.level};
  }
  if (retry_needed(gfn, seq) || slots_.generation() != generation) {
    VcpuMmu::bump(c.retried);
    return FaultOutcome{FaultAction::Retry};
  }
  auto ops = pt::ops::EntryOps<TdpFormat>(format_, memory_, tlb_, root.tables.root());
  if (region == nullptr) {
    // Remember "no memslot here" so the next access is answered from the table.
    const Entry marker = format_.make_mmio(generation);
    auto r = detail::descend(format_, ops, root.tables.root(), gpa.raw(), 1, [&](Entry old, unsigned) -> std::optional<Entry> {
      if (format_.present(old, 1) || old == marker) return std::nullopt;
      return marker;
    });
    if (!r) return Unexpected{r.error()};
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

  const bool existing = now.end == pt::WalkEnd::Leaf;
  // An existing leaf lacks write permission: relax it in place, except a huge leaf while
  // logging, which is split (lazily) so only this 4K page becomes writable.
  const unsigned target = existing ? (logging ? 1 : now.level) : max_level(*region, gfn);
  auto decide = [&](Entry old, unsigned l) -> std::optional<Entry> {
    if (format_.present(old, l)) {
      const pt::LeafAttrs have = format_.leaf_attrs(old, l);
      if (allows(have, access)) return std::nullopt;  // another vCPU got there first
      pt::LeafAttrs want = have.plus(attrs);
      want.write = want.write && writable;
      return format_.make_leaf(format_.leaf_address(old, l), l, want);
    }
    const std::uint64_t span_pages = format_.geometry().span(l) >> kPageShift;
    const Gfn base(gfn.raw() & ~(span_pages - 1));
    return format_.make_leaf(region->hpa_of(base), l, attrs);
  };
  // The walk stopped at the entry to change (the tables exist): one compare-exchange there.
  Result<detail::Descended, pt::HostError> r = detail::Descended{};
  bool done = false;
  if (now.level == target && (now.end == pt::WalkEnd::Leaf || now.end == pt::WalkEnd::NotPresent) &&
      now.entry != format_.frozen_entry()) {
    if (const std::optional<Entry> want = decide(now.entry, target)) {
      Entry expected = now.entry;
      if (std::atomic_ref<Entry>(*pt::HostTableMemory::pointer<Entry>(now.entry_address))
              .compare_exchange_strong(expected, *want, std::memory_order_acq_rel)) {
        *r = detail::Descended{true, now.entry, target, false};
        done = true;
      }
    }
  }
  if (!done) r = detail::descend(format_, ops, root.tables.root(), gpa.raw(), target, decide);
  if (!r) return Unexpected{r.error()};
  if (r->split) VcpuMmu::bump(c.lazy_splits);
  if (!r->installed) {
    VcpuMmu::bump(c.spurious);
    return FaultOutcome{FaultAction::Spurious, r->level};
  }
  if (format_.present(r->old, r->level)) {
    VcpuMmu::bump(c.relaxed);
  } else {
    VcpuMmu::bump(c.mapped[r->level]);
  }
#if defined(VMMU_CHECK_INVARIANTS)
  check_leaf(root, *region, gpa);
#endif
  return FaultOutcome{format_.present(r->old, r->level) ? FaultAction::Relaxed : FaultAction::Mapped, r->level};
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
  const unsigned backing = (r.backing_shift - kPageShift) / 9 + 1;
  const unsigned format_top = format_.block_allowed(3) ? 3 : 2;
  for (unsigned l = backing < format_top ? backing : format_top; l > 1; --l) {
    const std::uint64_t pages = std::uint64_t{1} << (9 * (l - 1));
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
  return disallowed_[level].contains(gfn.raw() >> (9 * (level - 1)));
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
  if (bad != nullptr) {
    std::fprintf(stderr, "vmmu: TDP invariant broken by a fault on gpa %#llx: %s\n",
                 static_cast<unsigned long long>(gpa.raw()), bad);
    std::abort();
  }
}

}  // namespace vmmu::tdp
