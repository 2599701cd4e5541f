// Zapping (issue 12 item 9): shadow leaves by rmap, shadow pages unlinked from parents and
// children, tables retired after the TLB flush and an RCU grace period (the flush token
// carries them, as the TDP MMU's unlinked tables); roots in use stay, invalid, until released.
//
// Entries change here by address, not through an iterator from a root: a shadow page may
// have several parents (its rmaps' roots may be zapped while it lives on), and the engine's
// install() of a table entry would retire the child's subtree with it. Under the lock no one
// else writes shadow entries, so a store is the whole update.

#include <algorithm>

#include "vmmu/shadow/shadow_mmu.hpp"

namespace vmmu::shadow {
namespace {

namespace gpte = x86::gpte;

}  // namespace

std::vector<ShadowMmu::LeafRef> ShadowMmu::leaves_over(Range<Gfn> gfns) const {
  std::vector<LeafRef> out;
  if (gfns.empty()) return out;
  const pt::Geometry& g = format_.geometry();
  // A level-L leaf is rmapped at its first frame, a multiple of its span: look for each level
  // from the first such frame at or below the range's start.
  for (unsigned level = 1; level <= 3; ++level) {
    const std::uint64_t frames = g.span(level) >> kPageShift;
    const Range<Gfn> keys{Gfn(gfns.begin.raw() / frames * frames), gfns.end};
    for (const Gfn key : pages_.rmapped(keys, frames)) {
      for (const Hpa e : pages_.rmap(key)) {
        const ShadowPage* sp = pages_.holding(e);
        const unsigned l = sp->role().level();
        if (l == level && gfns.overlaps({key, key + frames})) out.push_back({key, e, l});
      }
    }
  }
  return out;
}

void ShadowMmu::zap_leaf(Gfn gfn, Hpa entry, pt::TlbFlush<Gva>& flush) {
  memory_.store<std::uint64_t>(entry, 0);
  flush.add_all();
  pages_.rmap_remove(gfn, entry);
}

bool ShadowMmu::clear_write(Hpa entry) {
  const std::uint64_t e = memory_.read<std::uint64_t>(entry).value_or(0);
  if (!gpte::RW::get(e)) return false;
  memory_.store<std::uint64_t>(entry, gpte::RW::set(e, false));
  return true;
}

void ShadowMmu::write_protect_locked(Range<Gfn> gfns, pt::TlbFlush<Gva>& flush) {
  for (const LeafRef& l : leaves_over(gfns)) {
    if (clear_write(l.entry)) flush.add_all();
  }
}

ShadowPage* ShadowMmu::clear_entry(ShadowPage& sp, unsigned index, pt::TlbFlush<Gva>& flush) {
  const unsigned level = sp.role().level();
  const Hpa entry = pt::entry_address<ShadowFormat>(sp.table(), index);
  const std::uint64_t e = memory_.read<std::uint64_t>(entry).value_or(0);
  if (!format_.present(e, level)) return nullptr;
  memory_.store<std::uint64_t>(entry, 0);
  flush.add_all();
  if (format_.leaf(e, level)) {
    pages_.rmap_remove(sp.leaf(index).gfn, entry);
    return nullptr;
  }
  ShadowPage* child = pages_.by_table(format_.table_address(e, level));
  child->remove_parent(entry);
  // Unreachable once its last parent goes: zapped too (shadow pages accounted are reachable).
  if (child->parents().empty() && child->root_count() == 0 && !roots_.contains(child)) return child;
  return nullptr;
}

void ShadowMmu::zap_entry(ShadowPage& sp, unsigned index, pt::TlbFlush<Gva>& flush) {
  if (ShadowPage* orphan = clear_entry(sp, index, flush)) zap_page(orphan, flush);
}

void ShadowMmu::zap_page(ShadowPage* sp, pt::TlbFlush<Gva>& flush) {
  const pt::Geometry& g = format_.geometry();
  const unsigned level = sp->role().level();
  forget_unsync(*sp);
  std::vector<ShadowPage*> orphans;
  // Children and leaves: every entry cleared (a root in use stays, empty).
  for (unsigned i = 0; i < g.entries(level); ++i) {
    if (ShadowPage* orphan = clear_entry(*sp, i, flush)) orphans.push_back(orphan);
  }
  // Parents: their entries pointing here cleared.
  for (const Hpa parent : sp->parents()) memory_.store<std::uint64_t>(parent, 0);
  sp->clear_parents();
  flush.add_all();
  if (!sp->role().invalid()) ++stats_.zapped_pages;
  if (sp->root_count() > 0) {
    pages_.unhash(sp);  // a vCPU still runs on it: invalid, freed when released
  } else {
    roots_.erase(sp);
    flush.add_retired({sp->table(), level});
    [[maybe_unused]] const std::unique_ptr<ShadowPage> gone = pages_.remove(sp);
  }
  for (ShadowPage* o : orphans) zap_page(o, flush);
}

void ShadowMmu::zap_pages(const std::vector<Hpa>& tables, pt::TlbFlush<Gva>& flush) {
  // By table: zapping one page may take others with it (orphans), so each is looked up again.
  for (const Hpa t : tables) {
    if (ShadowPage* p = pages_.by_table(t)) zap_page(p, flush);
  }
}

void ShadowMmu::unmap_locked(Range<Gfn> gfns, pt::TlbFlush<Gva>& flush) {
  for (const LeafRef& l : leaves_over(gfns)) zap_leaf(l.gfn, l.entry, flush);
  // Shadow pages of guest tables in that memory: their contents came from it.
  std::vector<Hpa> tables;
  for (const Gfn gfn : pages_.shadowed(gfns)) {
    for (const ShadowPage* sp : pages_.shadowing(gfn)) tables.push_back(sp->table());
  }
  zap_pages(tables, flush);
}

void ShadowMmu::unmap(Range<Gfn> gfns) {
  const std::lock_guard lock(mutex_);
  pt::TlbFlush<Gva> flush(&memory_);
  unmap_locked(gfns, flush);
  finish(std::move(flush));
  checked("unmap");
}

void ShadowMmu::unmap_all() {
  const std::lock_guard lock(mutex_);
  pt::TlbFlush<Gva> flush(&memory_);
  // Roots first (their subtrees go as orphans), then whatever is left.
  std::vector<Hpa> roots, rest;
  pages_.for_each([&](const ShadowPage& p) {
    if (!p.role().invalid()) (roots_.contains(&p) ? roots : rest).push_back(p.table());
  });
  zap_pages(roots, flush);
  zap_pages(rest, flush);
  finish(std::move(flush));
  checked("unmap_all");
}

void ShadowMmu::invalidate_begin(Range<Gfn> gfns) {
  const std::lock_guard lock(mutex_);
  // Several invalidations may overlap: keep the hull of their ranges (as KVM does).
  if (invalidations_in_progress_++ == 0) {
    invalidating_ = gfns;
  } else {
    invalidating_ = {std::min(invalidating_.begin, gfns.begin), std::max(invalidating_.end, gfns.end)};
  }
  pt::TlbFlush<Gva> flush(&memory_);
  unmap_locked(gfns, flush);
  finish(std::move(flush));
  checked("invalidate_begin");
}

void ShadowMmu::invalidate_end(Range<Gfn>) {
  const std::lock_guard lock(mutex_);
  if (invalidations_in_progress_ > 0) --invalidations_in_progress_;
}

bool ShadowMmu::invalidating(Gfn gfn) const {
  return invalidations_in_progress_ > 0 && invalidating_.contains(gfn);
}

bool ShadowMmu::invalidating_any(Range<Gfn> gfns) const {
  return invalidations_in_progress_ > 0 && invalidating_.overlaps(gfns);
}

}  // namespace vmmu::shadow
