// Dirty logging: enabling and disabling it on a slot, write protection, the bitmap
// (KVM_GET_DIRTY_LOG / KVM_CLEAR_DIRTY_LOG) and the per-vCPU rings.
//
// Completeness: a page becomes writable only through a fault that logged it first (or, with
// dirty-bit tracking, its D bit is set by the hardware before the write lands). Harvesting
// and re-protecting run with the lock exclusive, so no fault is between "logged" and
// "writable", and no access is in flight.
#include <map>

#include "vmmu/core/rcu.hpp"
#include "vmmu/memory/slot_dirty_log.hpp"
#include "vmmu/tdp/tdp_mmu.hpp"

namespace vmmu::tdp {
namespace {

// The huge leaves of `t` touching `range`.
std::vector<Range<Gpa>> huge_leaves(const TdpTables& t, Range<Gpa> range) {
  std::vector<Range<Gpa>> huge;
  t.for_each_leaf(range, [&](const TdpTables::Mapping& m) {
    if (m.level > 1) huge.push_back(m.covers);
  });
  return huge;
}

}  // namespace

std::uint64_t TdpMmu::count_huge(Root& root, Range<Gpa> range) {
  std::uint64_t n = 0;
  for (pt::TableIterator it(format_, memory_, root.tables.root(), range.begin.raw(), range.end.raw(), 2); it.valid();
       it.next()) {
    if (it.level() > 1 && it.is_leaf()) ++n;
  }
  return n;
}

void TdpMmu::enable_dirty_logging(Range<Gfn> gfns) {
  const std::optional<Range<Gpa>> clamped = clamp(gfns);
  if (!clamped) return;
  const Range<Gpa> range = *clamped;
  const bool by_dirty_bits = config_.policies.dirty_tracking == DirtyTracking::DirtyBits && format_.ad_bits();
  ReaderLock::Exclusive exclusive(lock_);
  rcu::ReadGuard rcu;
  pt::TlbFlush<Gpa> flush(&memory_);
  for (Root* root : roots_->valid_roots()) {
    TdpTables& t = root->tables;
    if (config_.policies.split == SplitPolicy::Eager) {
      eager_splits_.fetch_add(count_huge(*root, range), std::memory_order_relaxed);
      if (auto r = t.split(range, 1)) flush.merge(std::move(*r));
    }
    std::vector<Range<Gpa>> huge = huge_leaves(t, range);
    if (config_.policies.huge_on_dirty_log == HugeOnDirtyLog::Drop && !huge.empty()) {
      // Zap the huge leaves; 4K ones stay (and are protected below).
      for (const Range<Gpa>& h : huge) {
        flush.merge(t.unmap(h, pt::WholeLeaves{}));
      }
      zapped_leaves_.fetch_add(huge.size(), std::memory_order_relaxed);
      zaps_.fetch_add(1, std::memory_order_relaxed);
      huge.clear();
    }
    // Huge leaves that stay are write-protected in both trackings (a write splits them);
    // 4K leaves lose write permission, or only their D bit with dirty-bit tracking.
    auto r = t.update(range, by_dirty_bits ? pt::ops::LeafFlag::Dirty : pt::ops::LeafFlag::Write);
    if (r) {
      (by_dirty_bits ? dirty_cleared_ : write_protected_).fetch_add(r->count, std::memory_order_relaxed);
      flush.merge(std::move(r->flush));
    }
    if (by_dirty_bits) {
      // ... but huge leaves must not stay writable: a D bit would cover 512 pages.
      for (const Range<Gpa>& h : huge) {
        if (auto w = t.write_protect(h)) flush.merge(std::move(*w));
      }
    }
    roots_->put(root);
  }
  finish(std::move(flush));
  checked("enable_dirty_logging");
}

void TdpMmu::disable_dirty_logging(Range<Gfn> gfns) {
  // Faults map huge again from now on (the slot no longer logs); recover what was split.
  if (config_.policies.recovery == RecoveryPolicy::MergeInPlace) {
    collapse(gfns);
  } else {
    unmap_collapsible(gfns);
  }
}

std::uint64_t TdpMmu::write_protect_locked(Range<Gpa> range, auto mode, pt::TlbFlush<Gpa>& flush) {
  std::uint64_t changed = 0;
  rcu::ReadGuard rcu;
  for (Root* root : roots_->valid_roots()) {
    if (auto r = root->tables.update(range, pt::ops::LeafFlag::Write, mode)) {
      changed += r->count;
      flush.merge(std::move(r->flush));
    }
    roots_->put(root);
  }
  write_protected_.fetch_add(changed, std::memory_order_relaxed);
  return changed;
}

std::uint64_t TdpMmu::write_protect(Range<Gfn> gfns, pt::Exclusive mode) {
  const std::optional<Range<Gpa>> range = clamp(gfns);
  if (!range) return 0;
  pt::TlbFlush<Gpa> flush(&memory_);
  ReaderLock::Exclusive exclusive(lock_);
  const std::uint64_t changed = write_protect_locked(*range, mode, flush);
  finish(std::move(flush));
  checked("write_protect");
  return changed;
}

std::uint64_t TdpMmu::write_protect(Range<Gfn> gfns, pt::Shared mode) {
  const std::optional<Range<Gpa>> range = clamp(gfns);
  if (!range) return 0;
  pt::TlbFlush<Gpa> flush(&memory_);
  std::uint64_t changed = 0;
  {
    ReaderLock::Shared shared(lock_, lock_.new_reader_slot());
    changed = write_protect_locked(*range, mode, flush);
  }
  finish(std::move(flush));
  checked_shared("concurrent write_protect");
  return changed;
}

void TdpMmu::reprotect_masked(const std::vector<Root*>& roots, Gfn first, std::span<const std::uint64_t> words,
                              pt::TlbFlush<Gpa>& flush) {
  const bool by_dirty_bits = config_.policies.dirty_tracking == DirtyTracking::DirtyBits && format_.ad_bits();
  std::uint64_t changed = 0;
  for (Root* root : roots) {
    // Exclusive: no fault and no access runs, so nothing can set a bit under us.
    auto r = root->tables.update_pages(gpa_of(first), words,
                                       by_dirty_bits ? pt::ops::LeafFlag::Dirty : pt::ops::LeafFlag::Write);
    if (r) {
      changed += r->count;
      flush.merge(std::move(r->flush));
    }
  }
  (by_dirty_bits ? dirty_cleared_ : write_protected_).fetch_add(changed, std::memory_order_relaxed);
}

void TdpMmu::fold_dirty_bits(Range<Gpa> range, pt::TlbFlush<Gpa>* flush, std::int64_t moved_by) {
  if (config_.policies.dirty_tracking != DirtyTracking::DirtyBits || !format_.ad_bits()) return;
  for (Root* root : roots_->valid_roots()) {
    root->tables.for_each_leaf(range, [&](const TdpTables::Mapping& m) {
      if (!m.attrs.dirty) return;
      const std::uint64_t first = m.covers.begin.raw() >> kPageShift, pages = m.covers.size() >> kPageShift;
      for (std::uint64_t g = first; g < first + pages; ++g) {
        const Gfn now(g + static_cast<std::uint64_t>(moved_by));
        if (const MemslotRegion* r = slots_.find(now)) r->mark_dirty(now);
      }
    });
    if (flush != nullptr) {  // else the caller zaps these leaves anyway
      if (auto r = root->tables.update(range, pt::ops::LeafFlag::Dirty)) {
        dirty_cleared_.fetch_add(r->count, std::memory_order_relaxed);
        flush->merge(std::move(r->flush));
      }
    }
    roots_->put(root);
  }
}

Result<std::vector<std::uint64_t>, MemslotError> TdpMmu::get_dirty_log(SlotId id) {
  rcu::ReadGuard rcu;
  Result<SlotDirtyLog, MemslotError> log = slot_dirty_log(&slots_, id);  // before the lock
  if (!log) return Unexpected{log.error()};
  const MemslotSpec& spec = log->spec;
  ReaderLock::Exclusive exclusive(lock_);
  pt::TlbFlush<Gpa> flush(&memory_);
  const bool by_dirty_bits = config_.policies.dirty_tracking == DirtyTracking::DirtyBits && format_.ad_bits();
  if (by_dirty_bits) fold_dirty_bits({gpa_of(spec.base), gpa_of(spec.base + spec.pages)}, &flush);
  std::vector<std::uint64_t> bits = log->bitmap->get_and_clear(0, spec.pages);
  if (!by_dirty_bits) {
    const std::vector<Root*> roots = roots_->valid_roots();
    reprotect_masked(roots, spec.base, bits, flush);
    for (Root* r : roots) roots_->put(r);
  }
  finish(std::move(flush));
  checked("get_dirty_log");
  return bits;
}

Result<std::vector<std::uint64_t>, MemslotError> TdpMmu::peek_dirty_log(SlotId id) {
  rcu::ReadGuard rcu;
  Result<SlotDirtyLog, MemslotError> log = slot_dirty_log(&slots_, id);  // before the lock
  if (!log) return Unexpected{log.error()};
  const MemslotSpec& spec = log->spec;
  if (config_.policies.dirty_tracking == DirtyTracking::DirtyBits && format_.ad_bits()) {
    ReaderLock::Exclusive exclusive(lock_);
    pt::TlbFlush<Gpa> flush(&memory_);
    fold_dirty_bits({gpa_of(spec.base), gpa_of(spec.base + spec.pages)}, &flush);
    finish(std::move(flush));
  }
  return log->bitmap->peek(0, spec.pages);
}

Status<MemslotError> TdpMmu::clear_dirty_log(SlotId id, std::uint64_t first_page, std::uint64_t pages,
                                             std::span<const std::uint64_t> mask) {
  rcu::ReadGuard rcu;
  Result<SlotDirtyLog, MemslotError> log = slot_dirty_log(&slots_, id);  // before the lock
  if (!log) return Unexpected{log.error()};
  const Result<std::vector<std::uint64_t>, MemslotError> words = log->clear_words(first_page, pages, mask);
  if (!words) return Unexpected{words.error()};
  ReaderLock::Exclusive exclusive(lock_);
  log->bitmap->clear(first_page, pages, mask);
  pt::TlbFlush<Gpa> flush(&memory_);
  const std::vector<Root*> roots = roots_->valid_roots();
  reprotect_masked(roots, log->spec.base + first_page, *words, flush);
  for (Root* r : roots) roots_->put(r);
  finish(std::move(flush));
  checked("clear_dirty_log");
  return {};
}

std::size_t TdpMmu::harvest_dirty_ring(VcpuMmu& vcpu, std::vector<DirtyGfn>& out) {
  return vcpu.ring_ == nullptr ? 0 : vcpu.ring_->harvest(out);
}

std::size_t TdpMmu::reset_dirty_ring(VcpuMmu& vcpu) {
  if (vcpu.ring_ == nullptr) return 0;
  std::map<std::uint32_t, Gfn> base;
  for (const MemslotSpec& s : slots_.slots()) base.emplace(s.id.value, s.base);  // before the lock (see slot_dirty_log)
  rcu::ReadGuard rcu;
  ReaderLock::Exclusive exclusive(lock_);
  pt::TlbFlush<Gpa> flush(&memory_);
  const std::vector<Root*> roots = roots_->valid_roots();
  const std::size_t n = vcpu.ring_->reset([&](const DirtyGfn& d) {
    auto it = base.find(d.slot.value);
    const std::uint64_t one = 1;
    if (it != base.end()) reprotect_masked(roots, it->second + d.page, {&one, 1}, flush);
  });
  for (Root* r : roots) roots_->put(r);
  finish(std::move(flush));
  checked("reset_dirty_ring");
  return n;
}

}  // namespace vmmu::tdp
