// The nested MMU over L1's memslots: creation, L1's frames as the memslots back them, and
// what each memslot change and MMU-notifier invalidation takes away (through the rmaps and the
// write-tracking index, never a walk of every table), as the shadow MMU's memslot events.

#include "vmmu/core/rcu.hpp"
#include "vmmu/nested/ept_kind.hpp"
#include "vmmu/nested/nested_mmu.hpp"
#include "vmmu/nested/npt_kind.hpp"
#include "vmmu/shadow/memslot_ram.hpp"

namespace vmmu::nested {

using shadow::ShadowPage;

template <class K>
std::unique_ptr<NestedMmu<K>> NestedMmu<K>::create(Memslots& slots, Caps caps) {
  std::unique_ptr<NestedMmu<K>> mmu(new NestedMmu<K>(std::make_unique<shadow::MemslotRam>(slots), &slots, caps));
  NestedMmu<K>* self = mmu.get();
  mmu->observer_ = slots.add_observer([self](const MemslotChange& c) { self->on_memslot_change(c); });
  return mmu;
}

template <class K>
typename NestedMmu<K>::L1Frame NestedMmu<K>::l1_frame(Gfn gfn) const {
  if (slots_ == nullptr) return {l1_.page(gfn), nullptr};
  const MemslotRegion* r = slots_->find(gfn);  // the caller's RCU section keeps it
  if (r == nullptr) return {};
  return {r->host_of(gfn), r};
}

template <class K>
void NestedMmu<K>::l1_written(Gfn gfn) {
  if (slots_ == nullptr) return;
  const MemslotRegion* r = slots_->find(gfn);
  if (r == nullptr || !r->flags.is_log_dirty()) return;
  r->mark_dirty(gfn);
  ++stats_.logged;
}

template <class K>
void NestedMmu<K>::zap_page(ShadowPage* p, Flush& flush) {
  // Every link to it first (a page may have several parents), then the page itself: freed, or
  // unhashed while a vCPU still holds it as a root.
  const std::vector<Hpa> parents = p->parents();
  for (const Hpa e : parents) {
    Iterator it = entry_at(e, p->role().level() + 1);
    clear(it, flush);
    p->remove_parent(e);
  }
  zap_root(p, flush);
}

template <class K>
void NestedMmu<K>::unmap_locked(Range<Gfn> gfns, Flush& flush) {
  // Leaves over those frames (all 4 KiB: rmapped at their own frame).
  for (const Gfn gfn : pages_.rmapped(gfns)) {
    const shadow::PageCache::Rmap rmap = pages_.rmap(gfn);  // a view: copied before it changes
    const std::vector<Hpa> entries(rmap.begin(), rmap.end());
    for (const Hpa e : entries) {
      Iterator it = entry_at(e, 1);
      pages_.rmap_remove(gfn, e);
      clear(it, flush);
    }
  }
  // Shadow pages of L1 tables in that memory: their contents came from it. By table, looked
  // up again each time: zapping one page may free another of them.
  std::vector<Hpa> tables;
  for (const Gfn gfn : pages_.shadowed(gfns)) {
    for (const ShadowPage* p : pages_.shadowing(gfn)) tables.push_back(p->table());
  }
  for (const Hpa t : tables) {
    ShadowPage* p = pages_.by_table(t);
    if (p != nullptr && !p->role().invalid()) zap_page(p, flush);
  }
}

template <class K>
void NestedMmu<K>::on_memslot_change(const MemslotChange& change) {
  // Called with the memslot mutex held, after the new snapshot is visible: every access that
  // may still use the old layout holds the lock, so taking it waits for them.
  const std::lock_guard lock(lock_);
  const rcu::ReadGuard rcu;
  Flush flush(&memory_);
  auto each = [&](auto&& op) {
    for (Range<Gfn> r : {change.before, change.after}) {
      if (!r.empty()) op(r);
    }
  };
  switch (change.kind) {
    case MemslotChangeKind::Added: break;  // nothing was mapped there
    case MemslotChangeKind::Removed:
    case MemslotChangeKind::Moved:
    case MemslotChangeKind::OverlayAdded:
    case MemslotChangeKind::OverlayRemoved: each([&](Range<Gfn> r) { unmap_locked(r, flush); }); break;
    case MemslotChangeKind::FlagsChanged: {
      // Read-only, or logging from now on: no leaf over those frames stays writable (a logged
      // frame's next L2 write faults, is logged, and makes its leaf writable again).
      const bool to_read_only = change.new_flags.is_read_only() && !change.old_flags.is_read_only();
      const bool to_logging = change.new_flags.is_log_dirty() && !change.old_flags.is_log_dirty();
      if (to_read_only || to_logging) each([&](Range<Gfn> r) { write_protect_range(r, flush); });
      break;
    }
  }
  finish(std::move(flush));
  checked("a memslot change");
}

template <class K>
void NestedMmu<K>::invalidate_begin(Range<Gfn> gfns) {
  const std::lock_guard lock(lock_);
  invalidations_.begin(gfns);
  Flush flush(&memory_);
  unmap_locked(gfns, flush);
  finish(std::move(flush));
  checked("invalidate_begin");
}

template <class K>
void NestedMmu<K>::invalidate_end(Range<Gfn>) {
  const std::lock_guard lock(lock_);
  invalidations_.end();
}

#define VMMU_NESTED_L1_MEMORY(K)                                                           \
  template std::unique_ptr<NestedMmu<K>> NestedMmu<K>::create(Memslots&, Caps);           \
  template NestedMmu<K>::L1Frame NestedMmu<K>::l1_frame(Gfn) const;                      \
  template void NestedMmu<K>::l1_written(Gfn);                                            \
  template void NestedMmu<K>::zap_page(ShadowPage*, Flush&);                              \
  template void NestedMmu<K>::unmap_locked(Range<Gfn>, Flush&);                           \
  template void NestedMmu<K>::on_memslot_change(const MemslotChange&);                    \
  template void NestedMmu<K>::invalidate_begin(Range<Gfn>);                               \
  template void NestedMmu<K>::invalidate_end(Range<Gfn>);
VMMU_NESTED_L1_MEMORY(EptKind)
VMMU_NESTED_L1_MEMORY(NptKind)
#undef VMMU_NESTED_L1_MEMORY

}  // namespace vmmu::nested
