// Dirty logging: enabling and disabling it on a slot, write protection, the bitmap
// (KVM_GET_DIRTY_LOG / KVM_CLEAR_DIRTY_LOG) and the per-vCPU rings.
//
// Completeness: a page becomes writable only through a fault that logged it first (or, with
// dirty-bit tracking, its D bit is set by the hardware before the write lands). Harvesting
// and re-protecting run with the lock exclusive, so no fault is between "logged" and
// "writable", and no access is in flight.
#include <map>

#include "page_tables.hpp"
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
      if (!huge.empty()) zaps_.fetch_add(1, std::memory_order_relaxed);
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
    // Exclusive: no fault and no access is in flight, so nothing can set a bit under us and
    // plain stores do.
    ReaderLock::Exclusive exclusive(lock_);
    rcu::ReadGuard rcu;
    const Entry w = format_.write_bit();
    for (Root* root : roots_->valid_roots()) {
      detail::for_each_leaf(
          format_, memory_, root->tables.root(), range,
          [&](Entry* e, std::uint64_t first) {
            std::uint64_t n = 0;
            for (unsigned i = 0; i < 512; ++i) {
              std::atomic_ref<Entry> a(e[i]);
              const Entry old = a.load(std::memory_order_relaxed);
              if ((old & w) != 0) {
                a.store(old & ~w, std::memory_order_relaxed);
                ++n;
              }
            }
            if (n != 0) flush.add({Gpa(first), Gpa(first + format_.geometry().span(2))});
            changed += n;
          },
          [&](pt::TableIterator<TdpFormat, pt::HostTableMemory>& it) {
            if ((it.entry() & w) == 0) return true;
            std::atomic_ref<Entry>(*pt::HostTableMemory::pointer<Entry>(it.entry_address()))
                .store(it.entry() & ~w, std::memory_order_relaxed);
            flush.add({Gpa(it.address()), Gpa(it.address() + it.span())});
            ++changed;
            return true;
          });
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
    detail::for_each_leaf(
        format_, memory_, root->tables.root(), range,
        [&](Entry* e, std::uint64_t first) {
          std::uint64_t n = 0;
          for (unsigned i = 0; i < 512; ++i) {
            std::atomic_ref<Entry> a(e[i]);
            if ((a.load(std::memory_order_relaxed) & w) != 0) {
              a.fetch_and(~w, std::memory_order_relaxed);
              ++n;
            }
          }
          if (n != 0) flush.add({Gpa(first), Gpa(first + format_.geometry().span(2))});
          changed += n;
        },
        [&](pt::TableIterator<TdpFormat, pt::HostTableMemory>& it) {
          if ((it.entry() & w) == 0) return true;
          if (!it.try_set(it.entry() & ~w)) return false;  // re-decide on the new value
          flush.add({Gpa(it.address()), Gpa(it.address() + it.span())});
          ++changed;
          return true;
        });
    roots_->put(root);
  }
  write_protected_.fetch_add(changed, std::memory_order_relaxed);
  finish(std::move(flush));
  checked_shared("concurrent write_protect");
  return changed;
}

void TdpMmu::reprotect_masked(const std::vector<Root*>& roots, Gfn first, std::span<const std::uint64_t> words,
                              pt::TlbFlush<Gpa>& flush) {
  using Entry = TdpFormat::Entry;
  const bool by_dirty_bits = config_.policies.dirty_tracking == DirtyTracking::DirtyBits && format_.ad_bits();
  const Entry clear = by_dirty_bits ? format_.dirty_bit() : format_.write_bit();
  std::uint64_t changed = 0;
  for (Root* root : roots) {
    // One walk per page table (512 pages, 8 words), not per page.
    std::uint64_t table_frame = ~std::uint64_t{0};
    Entry* table = nullptr;
    for (std::size_t w = 0; w < words.size(); ++w) {
      // The entries are scattered cache lines: start loading those of a word a few words
      // ahead while this word's are updated (when it falls in the same page table).
      constexpr std::size_t kAhead = 4;  // words: about L3 latency / work per word
      if (table != nullptr && w + kAhead < words.size()) {
        for (std::uint64_t m = words[w + kAhead]; m != 0; m &= m - 1) {
          const std::uint64_t g = first.raw() + (w + kAhead) * 64 + static_cast<unsigned>(__builtin_ctzll(m));
          if ((g >> 9) == table_frame) __builtin_prefetch(&table[g & 511], 1);
        }
      }
      for (std::uint64_t m = words[w]; m != 0; m &= m - 1) {
        const std::uint64_t gfn = first.raw() + w * 64 + static_cast<unsigned>(__builtin_ctzll(m));
        if ((gfn >> 9) != table_frame) {
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
        std::atomic_ref<Entry> a(table[gfn & 511]);
        const Entry old = a.load(std::memory_order_relaxed);
        if ((old & clear) == 0 || !format_.present(old, 1)) continue;
        // Exclusive: no fault and no access runs, so nothing can set a bit under us.
        a.store(old & ~clear, std::memory_order_relaxed);
        ++changed;
        flush.add({gpa_of(Gfn(gfn)), gpa_of(Gfn(gfn + 1))});
      }
    }
  }
  (by_dirty_bits ? dirty_cleared_ : write_protected_).fetch_add(changed, std::memory_order_relaxed);
}

void TdpMmu::fold_dirty_bits(Range<Gpa> range, pt::TlbFlush<Gpa>* flush, std::int64_t moved_by) {
  using Entry = TdpFormat::Entry;
  if (config_.policies.dirty_tracking != DirtyTracking::DirtyBits || !format_.ad_bits()) return;
  const Entry d = format_.dirty_bit();
  for (Root* root : roots_->valid_roots()) {
    for (pt::TableIterator it(format_, memory_, root->tables.root(), range.begin.raw(), range.end.raw()); it.valid();
         it.next()) {
      if (!it.is_leaf() || (it.entry() & d) == 0) continue;
      const std::uint64_t first = it.address() >> kPageShift, pages = it.span() >> kPageShift;
      for (std::uint64_t g = first; g < first + pages; ++g) {
        const Gfn now(g + static_cast<std::uint64_t>(moved_by));
        if (const MemslotRegion* r = slots_.find(now)) r->mark_dirty(now);
      }
      if (flush == nullptr) continue;  // the caller zaps these leaves anyway
      std::atomic_ref<Entry>(*pt::HostTableMemory::pointer<Entry>(it.entry_address())).store(it.entry() & ~d,
                                                                                          std::memory_order_relaxed);
      dirty_cleared_.fetch_add(1, std::memory_order_relaxed);
      flush->add({Gpa(it.address()), Gpa(it.address() + it.span())});
    }
    roots_->put(root);
  }
}

// The slot and its dirty bitmap as the current snapshot has them; call inside an RCU
// read-side section (which keeps the bitmap alive). Taken before the MMU lock: the memslot
// mutex is never taken under it (an observer holds that mutex and waits for the MMU lock).
Result<TdpMmu::SlotLog, MemslotError> TdpMmu::slot_log(SlotId id) {
  const std::optional<MemslotSpec> spec = slots_.slot(id);
  if (!spec) return Unexpected{MemslotError::UnknownSlot};
  const MemslotRegion* r = slots_.find(spec->base);
  if (r == nullptr || r->slot != id) return Unexpected{MemslotError::UnknownSlot};  // changed meanwhile
  if (r->dirty == nullptr) return Unexpected{MemslotError::NotLoggingDirty};
  return SlotLog{*spec, r->dirty};
}

Result<std::vector<std::uint64_t>, MemslotError> TdpMmu::get_dirty_log(SlotId id) {
  rcu::ReadGuard rcu;
  Result<SlotLog, MemslotError> log = slot_log(id);
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
  Result<SlotLog, MemslotError> log = slot_log(id);
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
  Result<SlotLog, MemslotError> log = slot_log(id);
  if (!log) return Unexpected{log.error()};
  const MemslotSpec& spec = log->spec;
  if (first_page > spec.pages || pages > spec.pages - first_page || mask.size() < (pages + 63) / 64) {
    return Unexpected{MemslotError::RangeOutsideSlot};
  }
  ReaderLock::Exclusive exclusive(lock_);
  log->bitmap->clear(first_page, pages, mask);
  pt::TlbFlush<Gpa> flush(&memory_);
  const std::vector<Root*> roots = roots_->valid_roots();
  std::vector<std::uint64_t> words(mask.begin(), mask.begin() + static_cast<std::ptrdiff_t>((pages + 63) / 64));
  if (pages % 64 != 0) words.back() &= (std::uint64_t{1} << (pages % 64)) - 1;
  reprotect_masked(roots, spec.base + first_page, words, flush);
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
  for (const MemslotSpec& s : slots_.slots()) base.emplace(s.id.value, s.base);  // before the lock (see slot_log)
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
