// The shadow fault path (issue 12 item 4): the guest's walk, then the chain of shadow pages
// down to a 4 KiB leaf, then the leaf; and write tracking of the guest's tables.

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
  x86::WalkPath path;
  const Result<x86::Translation, x86::WalkFault> t = x86::walk(paging, tables, Gva(linear), access, {}, path);
  if (!t) {
    ++stats_.reflected;
    return {Fault::Reflect, {t, std::nullopt}};
  }
  const unsigned guest_leaf = t->level;  // 0 with paging off
  const unsigned glevels = guest_levels(paging.mode());

  // Down from the root: each level's child is found or made by (gfn, role).
  const pt::Geometry& g = format_.geometry();
  pt::ops::EntryOps<ShadowFormat> ops(format_, memory_, tlb_, root.table());
  pt::TlbFlush<Gva> flush(&memory_);
  // The host tables' input: the gva's bits the host indexes (sign extension dropped).
  const std::uint64_t input = linear & (g.input_limit() - 1);
  Iterator it(format_, memory_, root.table(), input, input + 1);
  ShadowPage* sp = &root;  // the page `it` stands in; nullptr when found linked (looked up once below)
  Role parent = root.role();
  for (unsigned level = g.root_level(); level > 1; --level) {
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
    const Role role = child_role(parent, c);
    Result<ShadowPage*, ShadowExit> next = child(it, gfn, role, flush);
    if (!next) {
      std::move(flush).apply(tlb_);
      return {Fault::Reflect, {Unexpected{none}, next.error()}};
    }
    sp = *next;
    parent = role;
  }
  if (sp == nullptr) sp = pages_.by_table(it.table(1));

  // The leaf: the path's rights, narrowed for dirty tracking and write tracking.
  const Role role = sp->role();
  const Gfn frame = gfn_of(t->gpa);
  const bool user_write_fix = access.is_write() && !access.user && !role.cr0_wp();
  std::uint8_t rights = role.access();
  if (!role.direct()) rights &= path[1].rights;
  const bool guest_writable = (rights & gpte::kAccWrite) != 0;
  bool emulate = false;
  if (guest_leaf != 0 && !gpte::D::get(t->entry)) rights &= static_cast<std::uint8_t>(~gpte::kAccWrite);
  if (user_write_fix && !guest_writable) {
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
  if (pages_.tracked(frame)) {
    // The frame holds a guest table we shadow: every write to it must come to us.
    rights &= static_cast<std::uint8_t>(~gpte::kAccWrite);
    emulate = emulate || access.is_write();
  }
  std::byte* host = ram_.page(frame);
  if (host == nullptr) {
    std::move(flush).apply(tlb_);
    return {Fault::Reflect, {Unexpected{none}, ShadowExit::Mmio}};
  }
  const std::uint64_t leaf = ShadowFormat::leaf_entry(Hpa(reinterpret_cast<std::uintptr_t>(host)), 1,
                                                      {rights, t->protection_key});
  const unsigned index = g.index(linear, 1);
  if (it.is_leaf()) pages_.rmap_remove(sp->leaf(index).gfn, it.entry_address());
  if (it.entry() != leaf) {
    [[maybe_unused]] const pt::ops::Installed done = ops.install(it, leaf, flush);  // under the lock: no race
  }
  sp->set_leaf(index, {frame, t->page_size});
  pages_.rmap_add(frame, {it.entry_address(), root.table(), Gva(input)});
  std::move(flush).apply(tlb_);
  if (emulate) {
    ++stats_.emulated;
    return {Fault::Emulate, {t, std::nullopt}};
  }
  return {Fault::Retry, {t, std::nullopt}};
}

Result<ShadowPage*, ShadowExit> ShadowMmu::child(Iterator& it, Gfn gfn, Role role, pt::TlbFlush<Gva>& flush) {
  if (it.is_table()) {
    // Already linked to the page of (gfn, role): the guest's tables are write-tracked, so the
    // link still says what the guest's entry says (the invariants check that). No look-up.
    it.next();
    return nullptr;
  }
  ShadowPage* p = pages_.find(gfn, role);
  if (p == nullptr) {
    Result<ShadowPage*, pt::TableError> made = pages_.create(gfn, role);
    if (!made) return Unexpected{ShadowExit::OutOfMemory};
    p = *made;
    if (p->tracks_gfn()) write_protect(gfn);
  }
  pt::ops::EntryOps<ShadowFormat> ops(format_, memory_, tlb_, Hpa(0));  // install needs no root
  // Under the lock nothing else writes shadow entries: the install cannot lose.
  [[maybe_unused]] const pt::ops::Installed done = ops.install(it, format_.make_table(p->table(), it.level()), flush);
  p->add_parent(it.entry_address());
  it.next();
  return p;
}

void ShadowMmu::write_protect(Gfn gfn) {
  pt::TlbFlush<Gva> flush(&memory_);
  for (const PageCache::RmapEntry& r : pages_.rmap(gfn)) {
    // Straight to the entry the rmap names (KVM's rmap walk), not down from a root.
    const Hpa table(r.entry.raw() & ~(kPageSize - 1));
    Iterator it = Iterator::at(format_, memory_, table, pages_.by_table(table)->role().level(), r.gva.raw());
    pt::ops::EntryOps<ShadowFormat> ops(format_, memory_, tlb_, r.root);
    if (!it.is_leaf() || !gpte::RW::get(it.entry())) continue;
    [[maybe_unused]] const pt::ops::Installed done = ops.install(it, gpte::RW::set(it.entry(), false), flush);
  }
  std::move(flush).apply(tlb_);
}

}  // namespace vmmu::shadow
