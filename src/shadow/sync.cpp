// Unsync and sync (issue 12 item 6, KVM's mmu_try_to_unsync_pages / kvm_mmu_sync_roots): a
// write fault on a guest page table shadowed only by last-level pages lets them go unsync --
// the frame is mapped writable and the guest writes its entries at full speed -- and the
// guest's next TLB flush (CR3 load with flush, INVLPG, INVPCID...) syncs them: each guest
// entry is re-read and its shadow leaf follows it or goes. Until then a changed guest entry
// keeps its old translation, as a TLB may keep it. Each shadow page remembers which of its
// entries lead down to unsync pages, so a sync walks only those paths.

#include "vmmu/shadow/shadow_mmu.hpp"

namespace vmmu::shadow {

bool ShadowMmu::try_unsync_locked(Gfn gfn) {
  const std::vector<ShadowPage*> pages = pages_.shadowing(gfn);
  for (const ShadowPage* p : pages) {
    // A frame shadowed by a non-leaf page never goes unsync: a sync re-reads leaves only.
    if (p->role().level() != 1 || p->root_count() > 0 || roots_.contains(p)) return false;
  }
  for (ShadowPage* p : pages) {
    if (p->unsync()) continue;
    p->set_unsync(true);
    ++unsync_frames_[gfn.raw()];
    ++stats_.unsyncs;
    mark_parents_unsync(*p);
  }
  count_table_write_locked(gfn);
  return true;
}

void ShadowMmu::mark_parents_unsync(const ShadowPage& child) {
  for (const Hpa parent : child.parents()) {
    ShadowPage* p = pages_.holding(parent);
    // Its first bit: its own parents learn of it (a page with bits already is known to them).
    if (p->mark_unsync_child(entry_index(parent))) mark_parents_unsync(*p);
  }
}

void ShadowMmu::forget_unsync(ShadowPage& sp) {
  if (!sp.unsync()) return;
  sp.set_unsync(false);
  const auto it = unsync_frames_.find(sp.gfn().raw());
  if (it != unsync_frames_.end() && --it->second == 0) unsync_frames_.erase(it);
}

void ShadowMmu::sync_roots_locked(ShadowVcpu& vcpu) {
  ShadowPage* root = vcpu.root_;
  if (root == nullptr || root->role().invalid() || !root->has_unsync_children()) return;
  pt::TlbFlush<Gva> flush(&memory_);
  sync_children_locked(*root, *vcpu.paging_, flush);
  std::move(flush).apply(tlb_);  // part of the guest's flush, counted by the caller
  checked("a sync");
}

void ShadowMmu::sync_children_locked(ShadowPage& sp, const x86::GuestPaging& paging, pt::TlbFlush<Gva>& flush) {
  const unsigned level = sp.role().level();
  sp.for_each_unsync_child([&](unsigned i) {
    const std::uint64_t e = memory_.read<std::uint64_t>(pt::entry_address<ShadowFormat>(sp.table(), i)).value_or(0);
    if (format_.present(e, level) && !format_.leaf(e, level)) {
      ShadowPage* c = pages_.by_table(format_.table_address(e, level));
      if (c->unsync()) sync_page_locked(*c, paging, true, flush);
      if (c->has_unsync_children()) sync_children_locked(*c, paging, flush);
    }
    sp.clear_unsync_child(i);  // nothing unsync below it now (or the bit was stale)
  });
}

void ShadowMmu::sync_page_locked(ShadowPage& sp, const x86::GuestPaging& paging, bool mark_synced,
                                 pt::TlbFlush<Gva>& flush) {
  if (mark_synced) forget_unsync(sp);  // first: the leaves then see their frames tracked again
  refresh_leaves(sp, 0, kShadowEntries, &paging, flush);
  if (!mark_synced) return;
  ++stats_.syncs;
  // Synced, the page's guest table is write-tracked again: no leaf may write it.
  write_protect_locked({sp.gfn(), sp.gfn() + 1}, flush);
}

}  // namespace vmmu::shadow
