// The shadow fault path (issue 12 item 4): the guest's walk, then the chain of shadow pages
// down to a 4 KiB leaf, then the leaf; and write tracking of the guest's tables.

#include <cassert>

#include "vmmu/shadow/shadow_mmu.hpp"

namespace vmmu::shadow {
namespace {

namespace gpte = x86::gpte;
using Iterator = pt::TableIterator<ShadowFormat, pt::OwnedTableMemory>;

}  // namespace

ShadowMmu::Handled ShadowMmu::handle_fault(const x86::GuestPaging& paging, ShadowPage& root, std::uint64_t linear,
                                            Access access) {
  ++stats_.faults;
  const x86::WalkFault none{};
  GuestRamTables tables(ram_);
  // One guest walk: its result, its A/D bits, and the entries it used (the shadow's keys).
  x86::WalkPath& path = guest_path_;
  const Result<x86::Translation, x86::WalkFault> t = x86::walk(paging, tables, Gva(linear), access, {}, path);
  if (!t) {
    ++stats_.reflected;
    return {Fault::Reflect, {t, std::nullopt}};
  }
  const unsigned guest_leaf = t->level;  // 0 with paging off
  // The host is changing the memory behind the frame (MMU notifier): wait for the end.
  if (invalidating(gfn_of(t->gpa))) return {Fault::Invalidated, {t, std::nullopt}};
  const unsigned glevels = guest_levels(paging.mode());

  // Down from the root: each level's child is found or made by (gfn, role).
  const pt::Geometry& g = format_.geometry();
  pt::ops::EntryOps<ShadowFormat> ops(format_, memory_, tlb_, root.table());
  pt::TlbFlush<Gva> flush(&memory_);
  // The host tables' input: the gva's bits the host indexes (sign extension dropped).
  const std::uint64_t input = linear & (g.input_limit() - 1);
  Iterator it(format_, memory_, root.table(), input, input + 1);
  ShadowPage* sp = &root;
  root.reset_written_unused();  // a fault uses each page on its path: no write flooding
  // A huge leaf where the guest's page, the host's backing, dirty logging and write tracking
  // allow it (an existing table there is descended instead: its pages are in use).
  unsigned huge = huge_level(*t, linear);
  unsigned level = g.root_level();
  for (; level > 1; --level) {
    // Decided again here: the guest tables shadowed on the way may lie inside the page.
    if (level <= huge && !it.is_table() && (huge = huge_level(*t, linear)) >= level) break;
    if (it.is_table()) {
      // Already linked (a fault into existing pages): no role to derive, nothing to make.
      // The guest's tables are write-tracked, so the link still says what the guest's entry
      // says; the invariants check that.
      sp = pages_.by_table(format_.table_address(it.entry(), it.level()));
      it.next();
    } else {
      const Role parent = sp->role();
      ChildOf c{g.index(linear, level), gpte::kAccAll, false, glevels};
      Gfn gfn;
      if (parent.passthrough()) {
        gfn = gfn_of(path[glevels].address);  // the guest's root table, at every passthrough level
      } else if (parent.direct() || level <= guest_leaf) {
        // Below a guest huge leaf (or paging off): guest frames, contiguous from the first byte
        // the entry covers.
        if (!parent.direct()) c.access = path[level].rights;
        c.direct = true;
        gfn = gfn_of(t->gpa - (linear & (g.span(level) - 1)));
      } else {
        c.access = path[level].rights;
        gfn = gfn_of(path[level - 1].address);
      }
      Result<ShadowPage*, ShadowExit> next = child(paging, *sp, it, gfn, child_role(parent, c), flush);
      if (!next) {
        std::move(flush).apply(tlb_);
        return {Fault::Reflect, {Unexpected{none}, next.error()}};
      }
      sp = *next;
    }
    sp->touch(stats_.faults);  // for the quota's least-recently-used order
    sp->reset_written_unused();
  }

  // The leaf: the path's rights, narrowed for dirty tracking and write tracking.
  it.refresh();  // write tracking may have zapped a huge leaf here on the way down
  if (level > 1) {
    const Gfn head = first_frame(*t, linear, level);
    if (invalidating_any({head, head + (g.span(level) >> kPageShift)})) {
      std::move(flush).apply(tlb_);
      return {Fault::Invalidated, {t, std::nullopt}};
    }
  }
  const Role role = sp->role();
  const Gfn frame = gfn_of(t->gpa);
  const Gfn first = first_frame(*t, linear, level);  // the leaf's first frame (huge: aligned)
  const bool user_write_fix = access.is_write() && !access.user && !role.cr0_wp();
  std::uint8_t rights = role.access();
  if (!role.direct()) rights &= path[level].rights;
  const bool guest_writable = (rights & gpte::kAccWrite) != 0;
  bool emulate = false;
  if (guest_leaf != 0 && !gpte::D::get(t->entry)) rights &= static_cast<std::uint8_t>(~gpte::kAccWrite);
  if (user_write_fix && (rights & gpte::kAccUser) != 0 && role.pke_andnot_wp()) {
    // CR0.WP=0 exempts a supervisor write to a user page from W and from PKRU.WD (SDM 4.6.2).
    // The hardware runs with WP=1, where both hold, and PKRU changes without an exit; the page
    // may not lose U either (a supervisor access would skip PKRU): emulate, leaf unchanged.
    emulate = true;
  } else if (user_write_fix && !guest_writable) {
    // CR0.WP=0: a supervisor write to a read-only page succeeds. The hardware runs with WP=1,
    // so the leaf becomes writable and, for a user page, supervisor-only (a user access faults
    // and gets the guest's rights back); with SMEP it must then not be executable, and with
    // SMAP a user page may not lose U at all (a supervisor read would skip SMAP): emulate.
    if ((rights & gpte::kAccUser) == 0) {
      rights |= gpte::kAccWrite;
    } else if (role.smap_andnot_wp()) {
      emulate = true;
    } else {
      rights = static_cast<std::uint8_t>((rights | gpte::kAccWrite) & ~gpte::kAccUser);
      if (role.smep_andnot_wp()) rights &= static_cast<std::uint8_t>(~gpte::kAccExec);
    }
  }
  if (write_tracked(frame)) {
    // The frame holds a guest table we shadow: every write to it must come to us -- unless
    // its shadow pages may go unsync (all last-level): then the guest writes it directly and
    // they are synced at its next TLB flush.
    const bool unsync = config_.unsync && access.is_write() && !emulate && (rights & gpte::kAccWrite) != 0 &&
                        level == 1 && try_unsync_locked(frame);
    if (!unsync) {
      rights &= static_cast<std::uint8_t>(~gpte::kAccWrite);
      emulate = emulate || access.is_write();
    }
  }
  const HostFrame backing = host_frame(first);
  if (backing.host == nullptr || (access.is_write() && !backing.writable)) {
    // No memory, or a write to a read-only slot (ROM): the VMM emulates the access.
    std::move(flush).apply(tlb_);
    return {Fault::Reflect, {Unexpected{none}, ShadowExit::Mmio}};
  }
  if (!backing.writable) rights &= static_cast<std::uint8_t>(~gpte::kAccWrite);
  if (backing.region != nullptr && backing.region->flags.is_log_dirty() && (rights & gpte::kAccWrite) != 0) {
    // Dirty logging: writable only on a write, which logs the page first (a harvest under the
    // lock never finds a writable page it has not logged).
    if (access.is_write()) {
      backing.region->mark_dirty(frame);
    } else {
      rights &= static_cast<std::uint8_t>(~gpte::kAccWrite);
    }
  }
  std::byte* host = backing.host;
  const std::uint64_t leaf = ShadowFormat::leaf_entry(Hpa(reinterpret_cast<std::uintptr_t>(host)), level,
                                                      {rights, t->protection_key});
  const unsigned index = g.index(linear, level);
  if (it.is_leaf()) pages_.rmap_remove(sp->leaf(index).gfn, it.entry_address());
  if (it.entry() == 0) {
    // Under the lock no one else writes shadow entries: the engine's exclusive fill, a release
    // store (install's compare-exchange cost a fault ~6 ns). It cannot find the entry taken.
    [[maybe_unused]] const bool filled = pt::ops::fill<ShadowFormat>(it.entry_address(), leaf);
    assert(filled);
    if (level > 1) ++stats_.huge_leaves;
  } else if (it.entry() != leaf) {
    [[maybe_unused]] const pt::ops::Installed done = ops.install(it, leaf, flush);  // under the lock: no race
    if (level > 1) ++stats_.huge_leaves;
  }
  sp->set_leaf(index, {first, t->page_size});
  pages_.rmap_add(first, it.entry_address());
  if (level == 1) prefetch(paging, *sp, input);
  std::move(flush).apply(tlb_);
  if (emulate) {
    ++stats_.emulated;
    return {Fault::Emulate, {t, std::nullopt}};
  }
  return {Fault::Retry, {t, std::nullopt}};
}

Result<ShadowPage*, ShadowExit> ShadowMmu::child(const x86::GuestPaging& paging, ShadowPage& parent, Iterator& it,
                                                 Gfn gfn, Role role, pt::TlbFlush<Gva>& flush) {
  ShadowPage* p = pages_.find(gfn, role);
  bool made_now = false;
  if (p == nullptr) {
    Result<ShadowPage*, pt::TableError> made = pages_.create(gfn, role);
    if (!made) return Unexpected{ShadowExit::OutOfMemory};
    p = *made;
    made_now = true;
    if (p->tracks_gfn()) {
      write_protect(gfn);
      it.refresh();  // a huge leaf over the frame, this one too perhaps, is gone
    }
  } else if (p->unsync()) {
    // Linked at a new place, it shows translations no TLB holds yet: they must be the guest's
    // entries as they are now (it stays unsync: its frame stays writable).
    sync_page_locked(*p, paging, false, flush);
  }
  if (it.is_leaf()) {
    // A huge leaf the fault needs smaller (dirty logging started, or a read-only slot): its
    // pages stay mapped by a table of small leaves, all read-only -- a write must fault and
    // be logged (KVM's first version copied the huge leaf's write permission and lost
    // dirty pages).
    const unsigned index = format_.geometry().index(it.address(), it.level());
    const GuestLeaf old = parent.leaf(index);
    pages_.rmap_remove(old.gfn, it.entry_address());
    if (made_now) split_into(*p, it, old);
  }
  pt::ops::EntryOps<ShadowFormat> ops(format_, memory_, tlb_, Hpa(0));  // install needs no root
  // Under the lock nothing else writes shadow entries: the install cannot lose.
  [[maybe_unused]] const pt::ops::Installed done = ops.install(it, format_.make_table(p->table(), it.level()), flush);
  p->add_parent(it.entry_address());
  if (p->unsync() || p->has_unsync_children()) {
    // A sync from this parent's root must find it.
    if (parent.mark_unsync_child(entry_index(it.entry_address()))) mark_parents_unsync(parent);
  }
  it.next();
  return p;
}

void ShadowMmu::split_into(ShadowPage& p, const Iterator& it, GuestLeaf old) {
  const pt::Geometry& g = format_.geometry();
  const unsigned level = it.level() - 1;
  LeafRights r = ShadowFormat::leaf_rights(it.entry());
  r.access &= static_cast<std::uint8_t>(~gpte::kAccWrite);
  const Hpa host = format_.leaf_address(it.entry(), it.level());
  const std::uint64_t frames = g.span(level) >> kPageShift;
  for (unsigned i = 0; i < g.entries(level); ++i) {
    // Unpublished until the parent's install: plain stores.
    const Hpa entry = pt::entry_address<ShadowFormat>(p.table(), i);
    memory_.store<std::uint64_t>(entry, ShadowFormat::leaf_entry(host + i * g.span(level), level, r));
    const Gfn gfn = old.gfn + i * frames;
    p.set_leaf(i, {gfn, old.page_size});
    pages_.rmap_add(gfn, entry);
  }
  ++stats_.huge_splits;
}

void ShadowMmu::write_protect(Gfn gfn) {
  // The frame now holds a shadowed guest table: its leaves lose write permission, and huge
  // leaves over it go (a huge leaf never maps a write-tracked frame; faults map it small).
  pt::TlbFlush<Gva> flush(&memory_);
  for (const LeafRef& l : leaves_over({gfn, gfn + 1})) {
    if (l.level > 1) zap_leaf(l.gfn, l.entry, flush);
  }
  write_protect_locked({gfn, gfn + 1}, flush);
  finish(std::move(flush));
}

unsigned ShadowMmu::huge_level(const x86::Translation& t, std::uint64_t linear) const {
  if (slots_ == nullptr) return 1;  // case files: no host page sizes known
  const pt::Geometry& g = format_.geometry();
  for (unsigned level = 3; level >= 2; --level) {
    // The guest's page is at least this large (paging off: any size).
    if (t.level != 0 && g.span(level) > t.page_size) continue;
    const Gfn first = first_frame(t, linear, level);
    const std::uint64_t frames = g.span(level) >> kPageShift;
    const MemslotRegion* r = slots_->find(first);
    if (r == nullptr || !r->contains(first + (frames - 1)) || r->backing_shift < g.shift(level)) continue;
    if (!r->hpa_of(first).aligned_to(g.span(level))) continue;
    if (r->flags.is_log_dirty() || pages_.tracked_within(first, level)) continue;
    return level;
  }
  return 1;
}

Gfn ShadowMmu::first_frame(const x86::Translation& t, std::uint64_t linear, unsigned level) const {
  return gfn_of(t.gpa - (linear & (format_.geometry().span(level) - 1)));
}

}  // namespace vmmu::shadow
