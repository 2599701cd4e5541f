// TdpMmu: creation, memslot events, statistics and the flush / invariant helpers every
// operation ends with. The operations live in fault.cpp, unmap.cpp, dirty_log.cpp,
// huge_pages.cpp and aging.cpp.
#include "vmmu/tdp/tdp_mmu.hpp"

#include "vmmu/core/rcu.hpp"
#include "vmmu/mmu/invariants.hpp"
#include "vmmu/pt/clamp.hpp"

namespace vmmu::tdp {

std::string_view to_string(AccessExit e) {
  switch (e) {
    case AccessExit::Mmio: return "mmio";
    case AccessExit::RingFull: return "dirty ring full";
    case AccessExit::OutOfRange: return "guest-physical address out of range";
    case AccessExit::OutOfMemory: return "out of table memory";
  }
  return "?";
}

TdpMmu::TdpMmu(const TdpConfig& config, Memslots& slots)
    : config_(config),
      format_(config.format),
      slots_(slots),
      memory_(format_.geometry(), config.table_budget, 4096) {
  roots_ = std::make_unique<RootSet>(format_, memory_, tlb_, config.policies.roots == RootPolicy::Keep);
}

Result<std::unique_ptr<TdpMmu>, pt::TableError> TdpMmu::create(const TdpConfig& config, Memslots& slots) {
  if (config.format.levels != 4 && config.format.levels != 5) return Unexpected{pt::TableError::OutOfRange};
  std::unique_ptr<TdpMmu> mmu(new TdpMmu(config, slots));
  TdpMmu* self = mmu.get();
  mmu->observer_ = slots.add_observer([self](const MemslotChange& c) { self->on_memslot_change(c); });
  return mmu;
}

TdpMmu::~TdpMmu() {
  slots_.remove_observer(observer_);
  // No vCPU or lookup starts any more: once the readers still inside are done, the tables go
  // back to the pool at once (the next VM takes them warm), not a grace period later -- then
  // RCU callbacks that do not touch *this free them.
  memory_.quiesce();
  roots_.reset();
}

std::optional<Range<Gpa>> TdpMmu::clamp(Range<Gfn> gfns) const { return pt::clamp<Gpa>(gfns, format_.geometry()); }

void TdpMmu::finish(pt::TlbFlush<Gpa>&& flush) {
  if (flush.kind() != pt::TlbFlush<Gpa>::Kind::None) {
    flushes_.fetch_add(1, std::memory_order_relaxed);
    flush_generation_.fetch_add(1, std::memory_order_release);  // every vCPU's GpaTlb
  }
  std::move(flush).apply(tlb_);
}

void TdpMmu::on_memslot_change(const MemslotChange& change) {
  // A lock barrier: every fault that may have looked up the previous snapshot holds the lock
  // shared and is done once we get it exclusively; Memslots frees that snapshot only after
  // its observers return (faults take no RCU section, see handle_fault).
  { ReaderLock::Exclusive barrier(lock_); }
  auto each = [&](auto&& op) {
    for (Range<Gfn> r : {change.before, change.after}) {
      if (!r.empty()) op(r);
    }
  };
  switch (change.kind) {
    case MemslotChangeKind::Added: break;  // MMIO markers of older generations are stale already
    case MemslotChangeKind::Moved: {
      // The slot's dirty bitmap moves with it: D bits found at the old place are logged at
      // the same page of the slot, now at its new place.
      ReaderLock::Exclusive exclusive(lock_);
      pt::TlbFlush<Gpa> flush(&memory_);
      unmap_locked(change.before, flush,
                 static_cast<std::int64_t>(change.after.begin.raw()) - static_cast<std::int64_t>(change.before.begin.raw()));
      unmap_locked(change.after, flush);
      zaps_.fetch_add(1, std::memory_order_relaxed);
      finish(std::move(flush));
      checked("memslot move");
      break;
    }
    case MemslotChangeKind::Removed:
    case MemslotChangeKind::OverlayAdded:
    case MemslotChangeKind::OverlayRemoved:
      // Only the slot's own range (KVM without KVM_X86_QUIRK_SLOT_ZAP_ALL); cannot fail.
      each([&](Range<Gfn> r) { unmap_clamped(r, "memslot removal"); });
      break;
    case MemslotChangeKind::FlagsChanged:
      if (change.new_flags.is_read_only() && !change.old_flags.is_read_only()) {
        each([&](Range<Gfn> r) { write_protect(r); });
      }
      if (change.new_flags.is_log_dirty() && !change.old_flags.is_log_dirty()) {
        each([&](Range<Gfn> r) { enable_dirty_logging(r); });
      }
      if (!change.new_flags.is_log_dirty() && change.old_flags.is_log_dirty()) {
        each([&](Range<Gfn> r) { disable_dirty_logging(r); });
      }
      break;
  }
}

TdpStats TdpMmu::stats() {
  TdpStats s;
  {
    std::lock_guard g(vcpus_mutex_);
    s.faults = retired_vcpus_;
    for (const VcpuMmu* v : vcpus_) s.faults += v->stats();
  }
  {
    rcu::ReadGuard rcu;
    for (Root* r : roots_->valid_roots()) {
      const pt::Geometry& g = format_.geometry();
      for (pt::TableIterator it(format_, memory_, r->tables.root(), 0, g.input_limit()); it.valid(); it.next()) {
        if (it.is_leaf() && it.level() < s.leaves.size()) ++s.leaves[it.level()];
      }
      roots_->put(r);
    }
  }
  s.tables_in_use = memory_.tables_in_use();
  s.roots_created = roots_->created();
  s.roots_freed = roots_->freed();
  s.zaps = zaps_.load(std::memory_order_relaxed);
  s.zapped_leaves = zapped_leaves_.load(std::memory_order_relaxed);
  s.eager_splits = eager_splits_.load(std::memory_order_relaxed);
  s.merges_in_place = merges_.load(std::memory_order_relaxed);
  s.merge_races = merge_races_.load(std::memory_order_relaxed);
  s.recovered_by_zap = recovered_by_zap_.load(std::memory_order_relaxed);
  s.write_protected = write_protected_.load(std::memory_order_relaxed);
  s.dirty_cleared = dirty_cleared_.load(std::memory_order_relaxed);
  s.tlb_flushes = flushes_.load(std::memory_order_relaxed);
  s.invalidations = invalidations_.load(std::memory_order_relaxed);
  s.aged = aged_.load(std::memory_order_relaxed);
  s.roots_invalidated = roots_invalidated_.load(std::memory_order_relaxed);
  return s;
}

std::optional<TdpMmu::Leaf> TdpMmu::lookup(Gpa gpa) {
  if (gpa.raw() >= gpa_limit()) return std::nullopt;
  rcu::ReadGuard rcu;
  std::optional<Leaf> out;
  std::vector<Root*> roots = roots_->valid_roots();
  if (!roots.empty()) {
    const pt::WalkResult<TdpFormat> w = pt::walk(format_, memory_, roots.front()->tables.root(), gpa.raw(),
                                                 [](pt::Step<TdpFormat>&) { return pt::Visit::Continue; });
    if (w.end == pt::WalkEnd::Leaf) {
      const std::uint64_t offset = gpa.raw() & (format_.geometry().span(w.level) - 1);
      out = Leaf{format_.leaf_address(w.entry, w.level) + offset, w.level, format_.leaf_attrs(w.entry, w.level)};
    }
  }
  for (Root* r : roots) roots_->put(r);
  return out;
}

void TdpMmu::checked(const char* what) {
  mmu::check_or_abort("TDP", what, [&] { return invariants_locked(); });
}

std::optional<std::string> TdpMmu::check_invariants() {
  ReaderLock::Exclusive exclusive(lock_);
  return invariants_locked();
}

}  // namespace vmmu::tdp
