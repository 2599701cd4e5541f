// Dirty logging: enabling and disabling it on a slot, write protection, the bitmap
// (KVM_GET_DIRTY_LOG / KVM_CLEAR_DIRTY_LOG) and the per-vCPU rings.
//
// Completeness: a page becomes writable only through a fault that logged it first (or, with
// dirty-bit tracking, its D bit is set by the hardware before the write lands). Harvesting
// and re-protecting run with the lock exclusive, so no fault is between "logged" and
// "writable", and no access is in flight.
#include <map>

#include "vmmu/core/rcu.hpp"
#include "vmmu/tdp/tdp_mmu.hpp"

namespace vmmu::tdp {
namespace {

Range<Gpa> gpa_range(Range<Gfn> r) { return {gpa_of(r.begin), gpa_of(r.end)}; }

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
  const Range<Gpa> range = gpa_range(gfns);
  const bool by_dirty_bits = config_.policies.dirty_tracking == DirtyTracking::DirtyBits && format_.ad_bits();
  ReaderLock::Exclusive exclusive(lock_);
  rcu::ReadGuard rcu;
  pt::TlbFlush<Gpa> flush(&memory_);
  for (Root* root : roots_->valid_roots()) {
    TdpTables& t = root->tables;
    if (config_.policies.split == SplitPolicy::Eager) {
      eager_splits_.fetch_add(count_huge(*root, range), std::memory_order_relaxed);
      if (auto r = t.split(range, 1)) flush.merge(std::move(*r));
    } else if (config_.policies.huge_on_dirty_log == HugeOnDirtyLog::Drop) {
      // Zap the huge leaves; 4K ones stay (and are protected below).
      std::vector<Range<Gpa>> huge;
      for (pt::TableIterator it(format_, memory_, t.root(), range.begin.raw(), range.end.raw(), 2); it.valid(); it.next()) {
        if (it.level() > 1 && it.is_leaf()) huge.push_back({Gpa(it.address()), Gpa(it.address() + it.span())});
      }
      for (const Range<Gpa>& h : huge) {
        if (auto r = t.unmap(h)) flush.merge(std::move(*r));
      }
      zapped_leaves_.fetch_add(huge.size(), std::memory_order_relaxed);
    }
    // Huge leaves that stay are write-protected in both trackings (a write splits them);
    // 4K leaves lose write permission, or only their D bit with dirty-bit tracking.
    auto r = t.update(range, [&](pt::LeafAttrs a) { return by_dirty_bits ? a.clean() : a.without_write(); });
    if (r) {
      (by_dirty_bits ? dirty_cleared_ : write_protected_).fetch_add(r->count, std::memory_order_relaxed);
      flush.merge(std::move(r->flush));
    }
    if (by_dirty_bits) {
      // ... but huge leaves must not stay writable: a D bit would cover 512 pages.
      std::vector<Range<Gpa>> huge;
      for (pt::TableIterator it(format_, memory_, t.root(), range.begin.raw(), range.end.raw(), 2); it.valid(); it.next()) {
        if (it.level() > 1 && it.is_leaf()) huge.push_back({Gpa(it.address()), Gpa(it.address() + it.span())});
      }
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
    (void)merge(gfns);
  } else {
    (void)zap_collapsible(gfns);
  }
}

std::uint64_t TdpMmu::write_protect(Range<Gfn> gfns, bool concurrent) {
  using Entry = TdpFormat::Entry;
  Range<Gpa> range = gpa_range(gfns);
  if (range.end.raw() > gpa_limit()) range.end = Gpa(gpa_limit());
  if (!(range.begin < range.end)) return 0;
  std::uint64_t changed = 0;
  pt::TlbFlush<Gpa> flush(&memory_);
  if (!concurrent) {
    ReaderLock::Exclusive exclusive(lock_);
    rcu::ReadGuard rcu;
    for (Root* root : roots_->valid_roots()) {
      if (auto r = root->tables.update(range, [](pt::LeafAttrs a) { return a.without_write(); })) {
        changed += r->count;
        flush.merge(std::move(r->flush));
      }
      roots_->put(root);
    }
    write_protected_.fetch_add(changed, std::memory_order_relaxed);
    finish(std::move(flush));
    checked("write_protect");
    return changed;
  }
  // Concurrent with faults: every change is an atomic AND on an entry that still holds W, so
  // a bit another thread sets at the same time (a fault's W, the hardware's A/D) is never lost.
  const unsigned slot = lock_.new_reader_slot();
  ReaderLock::Shared shared(lock_, slot);
  rcu::ReadGuard rcu;
  const Entry w = format_.write_bit();
  for (Root* root : roots_->valid_roots()) {
    pt::TableIterator it(format_, memory_, root->tables.root(), range.begin.raw(), range.end.raw());
    while (it.valid()) {
      if (it.level() == 2 && it.is_table() && it.address() >= range.begin.raw() &&
          range.end.raw() - it.address() >= it.span()) {
        Entry* e = pt::HostTableMemory::pointer<Entry>(format_.table_address(it.entry(), 2));
        std::uint64_t n = 0;
        for (unsigned i = 0; i < 512; ++i) {
          std::atomic_ref<Entry> a(e[i]);
          if ((a.load(std::memory_order_relaxed) & w) != 0) {
            a.fetch_and(~w, std::memory_order_relaxed);
            ++n;
          }
        }
        if (n != 0) flush.add({Gpa(it.address()), Gpa(it.address() + it.span())});
        changed += n;
        it.next_sibling();
        continue;
      }
      if (it.is_leaf() && (it.entry() & w) != 0) {
        if (!it.try_set(it.entry() & ~w)) continue;  // re-decide on the new value
        flush.add({Gpa(it.address()), Gpa(it.address() + it.span())});
        ++changed;
      }
      it.next();
    }
    roots_->put(root);
  }
  write_protected_.fetch_add(changed, std::memory_order_relaxed);
  finish(std::move(flush));
  return changed;
}

void TdpMmu::reprotect_masked(Gfn first, std::uint64_t mask, pt::TlbFlush<Gpa>& flush) {
  using Entry = TdpFormat::Entry;
  const bool by_dirty_bits = config_.policies.dirty_tracking == DirtyTracking::DirtyBits && format_.ad_bits();
  const Entry clear = by_dirty_bits ? format_.dirty_bit() : format_.write_bit();
  for (Root* root : roots_->valid_roots()) {
    std::uint64_t table_frame = ~std::uint64_t{0};
    Entry* table = nullptr;
    for (std::uint64_t m = mask; m != 0; m &= m - 1) {
      const std::uint64_t gfn = first.raw() + static_cast<unsigned>(__builtin_ctzll(m));
      if ((gfn >> 9) != table_frame) {
        // One walk per page table: a 64-page word rarely spans two.
        table_frame = gfn >> 9;
        table = nullptr;
        const Gpa gpa = gpa_of(Gfn(gfn));
        if (gpa.raw() >= gpa_limit()) break;
        pt::walk(format_, memory_, root->tables.root(), gpa.raw(), [&](pt::Step<TdpFormat>& s) {
          if (s.level == 2) {
            if (format_.present(s.entry, 2) && !format_.leaf(s.entry, 2)) {
              table = pt::HostTableMemory::pointer<Entry>(format_.table_address(s.entry, 2));
            }
            return pt::Visit::Stop;
          }
          return pt::Visit::Continue;
        });
      }
      if (table == nullptr) continue;  // unmapped, or a huge leaf (never writable while logging)
      Entry& e = table[gfn & 511];
      std::atomic_ref<Entry> a(e);
      const Entry old = a.load(std::memory_order_relaxed);
      if ((old & clear) == 0 || !format_.present(old, 1)) continue;
      // Exclusive: no fault and no access runs, so nothing can set a bit under us.
      a.store(old & ~clear, std::memory_order_relaxed);
      (by_dirty_bits ? dirty_cleared_ : write_protected_).fetch_add(1, std::memory_order_relaxed);
      flush.add({gpa_of(Gfn(gfn)), gpa_of(Gfn(gfn + 1))});
    }
    roots_->put(root);
  }
}

void TdpMmu::fold_dirty_bits(const MemslotSpec& slot, pt::TlbFlush<Gpa>& flush) {
  using Entry = TdpFormat::Entry;
  const Range<Gpa> range = gpa_range(slot.range());
  const Entry d = format_.dirty_bit();
  for (Root* root : roots_->valid_roots()) {
    for (pt::TableIterator it(format_, memory_, root->tables.root(), range.begin.raw(), range.end.raw()); it.valid();
         it.next()) {
      if (!it.is_leaf() || (it.entry() & d) == 0) continue;
      const std::uint64_t first = it.address() >> kPageShift, pages = it.span() >> kPageShift;
      for (std::uint64_t g = first; g < first + pages; ++g) {
        if (const MemslotRegion* r = slots_.find(Gfn(g))) r->mark_dirty(Gfn(g));
      }
      std::atomic_ref<Entry>(*pt::HostTableMemory::pointer<Entry>(it.entry_address())).store(it.entry() & ~d,
                                                                                          std::memory_order_relaxed);
      dirty_cleared_.fetch_add(1, std::memory_order_relaxed);
      flush.add({Gpa(it.address()), Gpa(it.address() + it.span())});
    }
    roots_->put(root);
  }
}

Result<std::vector<std::uint64_t>, MemslotError> TdpMmu::get_dirty_log(SlotId id) {
  const std::optional<MemslotSpec> spec = slots_.slot(id);
  if (!spec) return Unexpected{MemslotError::UnknownSlot};
  ReaderLock::Exclusive exclusive(lock_);
  rcu::ReadGuard rcu;
  pt::TlbFlush<Gpa> flush(&memory_);
  const bool by_dirty_bits = config_.policies.dirty_tracking == DirtyTracking::DirtyBits && format_.ad_bits();
  if (by_dirty_bits && spec->flags.is_log_dirty()) fold_dirty_bits(*spec, flush);
  Result<std::vector<std::uint64_t>, MemslotError> bits = slots_.dirty_log_take(id);
  if (bits && !by_dirty_bits) {
    for (std::size_t i = 0; i < bits->size(); ++i) {
      if ((*bits)[i] != 0) reprotect_masked(spec->base + i * 64, (*bits)[i], flush);
    }
  }
  finish(std::move(flush));
  checked("get_dirty_log");
  return bits;
}

Result<std::vector<std::uint64_t>, MemslotError> TdpMmu::peek_dirty_log(SlotId id) {
  const std::optional<MemslotSpec> spec = slots_.slot(id);
  if (!spec) return Unexpected{MemslotError::UnknownSlot};
  const bool by_dirty_bits = config_.policies.dirty_tracking == DirtyTracking::DirtyBits && format_.ad_bits();
  if (by_dirty_bits && spec->flags.is_log_dirty()) {
    ReaderLock::Exclusive exclusive(lock_);
    rcu::ReadGuard rcu;
    pt::TlbFlush<Gpa> flush(&memory_);
    fold_dirty_bits(*spec, flush);
    finish(std::move(flush));
  }
  return slots_.dirty_log_peek(id);
}

Status<MemslotError> TdpMmu::clear_dirty_log(SlotId id, std::uint64_t first_page, std::uint64_t pages,
                                             std::span<const std::uint64_t> mask) {
  const std::optional<MemslotSpec> spec = slots_.slot(id);
  if (!spec) return Unexpected{MemslotError::UnknownSlot};
  ReaderLock::Exclusive exclusive(lock_);
  if (auto s = slots_.dirty_log_clear(id, first_page, pages, mask); !s) return s;
  rcu::ReadGuard rcu;
  pt::TlbFlush<Gpa> flush(&memory_);
  for (std::uint64_t i = 0; i * 64 < pages; ++i) {
    std::uint64_t word = mask[i];
    if (pages - i * 64 < 64) word &= (std::uint64_t{1} << (pages - i * 64)) - 1;
    if (word != 0) reprotect_masked(spec->base + first_page + i * 64, word, flush);
  }
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
  for (const MemslotSpec& s : slots_.slots()) base.emplace(s.id.value, s.base);
  ReaderLock::Exclusive exclusive(lock_);
  rcu::ReadGuard rcu;
  pt::TlbFlush<Gpa> flush(&memory_);
  const std::size_t n = vcpu.ring_->reset([&](const DirtyGfn& d) {
    auto it = base.find(d.slot.value);
    if (it != base.end()) reprotect_masked(it->second + d.page, 1, flush);
  });
  finish(std::move(flush));
  checked("reset_dirty_ring");
  return n;
}

}  // namespace vmmu::tdp
