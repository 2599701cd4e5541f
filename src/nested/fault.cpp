// The shadow EPT fault path: L1's EPT walked by the EPT walker (its tables read, and A/D set,
// in L1's memory), then the chain of shadow pages down to a 4 KiB leaf with the walk's rights.

#include "l1_ept_path.hpp"
#include "vmmu/nested/shadow_ept_mmu.hpp"

namespace vmmu::nested {
namespace {

using shadow::Role;
using shadow::ShadowPage;
namespace ept = x86::ept;
using detail::entry_at;

}  // namespace

L2Access ShadowEptMmu::fault(ShadowEptVcpu& vcpu, Gpa l2_gpa, AccessKind op) {
  ++stats_.faults;
  const x86::EptContext& ctx = *vcpu.ctx_;
  shadow::GuestRamTables tables(l1_);
  const Result<x86::EptTranslation<Gpa>, x86::EptFault> t = x86::walk_ept<Gpa>(ctx, tables, l2_gpa, op);
  if (!t) {
    ++stats_.reflected;
    return Unexpected{NestedExit{ExitKind::ToL1, t.error(), {}}};
  }
  const Gfn frame = gfn_of(t->address);
  std::byte* host = l1_.page(frame);
  if (host == nullptr) return Unexpected{NestedExit{ExitKind::L1Mmio, {}, t->address}};
  const detail::L1Path path = detail::read_l1_path(ctx, tables, l2_gpa, t->level);
  const std::uint64_t input = l2_gpa.raw();

  // L1's D bit clear (A/D on): no W yet, so the first write comes here and the walk sets D.
  const bool clean = ctx.accessed_dirty() && !ept::D::get(path.entry[t->level]);
  const std::uint8_t clean_mask = clean ? static_cast<std::uint8_t>(~ept::W::mask) : 0xff;

  // Down from the root: each level's child found or made by (L1 table frame, role).
  ShadowPage* sp = vcpu.roots_[0].root;
  for (unsigned level = sp->role().level(); level > 1; --level) {
    const unsigned index = detail::index_at(input, level);
    const Role parent = sp->role();
    const auto rights = static_cast<std::uint8_t>(parent.access() & ept::Rwx::get(path.entry[level]));
    Role role = Role(parent).set_level(level - 1);
    Gfn gfn;
    if (parent.direct() || level <= t->level) {
      // Below L1's huge leaf: L1 frames, contiguous from the first byte the entry covers. The
      // role carries the leaf's rights, W dropped while its D bit is clear (KVM's
      // protect_clean_gpte): two L1 leaves over the same frames share pages only if they agree.
      if (!parent.direct()) {
        role.set_access(static_cast<std::uint8_t>(rights & clean_mask));
        role.set_ept_huge_level(t->level);  // the leaf size a hit reports
      }
      role.set_direct(true);
      gfn = gfn_of(t->address - (input & (detail::span_at(level) - 1)));
    } else {
      role.set_access(rights);
      gfn = gfn_of(Gpa(ept::Addr::bits(path.entry[level])));
    }
    const std::uint64_t e = memory_.read<std::uint64_t>(entry_at(sp->table(), index)).value_or(0);
    if (format_.present(e, level)) {  // always a table: shadow leaves are 4 KiB
      ShadowPage* linked = pages_.by_table(format_.table_address(e, level));
      if (linked->gfn() == gfn && linked->role() == role) {
        sp = linked;
        continue;
      }
      // A direct page made while L1's leaf said less (KVM's validate_direct_spte): relinked.
      clear_entry(*sp, index);
    }
    Result<ShadowPage*, pt::TableError> next = child(*sp, index, gfn, role);
    if (!next) return Unexpected{NestedExit{ExitKind::OutOfMemory, {}, {}}};
    sp = *next;
  }

  // The leaf: the walk's rights, without W while L1's leaf is clean and never W over one of
  // L1's EPT tables (L1's writes to them must trap).
  bool writable = t->writable && !clean;
  const bool tracked = pages_.tracked(frame);
  if (tracked) writable = false;
  const unsigned index = detail::index_at(input, 1);
  const Hpa at = entry_at(sp->table(), index);
  const std::uint64_t old = memory_.read<std::uint64_t>(at).value_or(0);
  if (format_.present(old, 1)) pages_.rmap_remove(sp->leaf(index).gfn, at);
  const Hpa page(reinterpret_cast<std::uintptr_t>(host));
  memory_.store<std::uint64_t>(at, format_.make_leaf(page, 1, {.read = t->readable, .write = writable,
                                                               .exec = t->executable, .accessed = false,
                                                               .device = false, .dirty = false}));
  sp->set_leaf(index, {frame, t->page_size});
  // The rmap needs only the entry's address (write protection edits it in place).
  pages_.rmap_add(frame, at);
  const std::uint64_t offset = input & (kPageSize - 1);
  return L2Translation{page + offset, t->address, t->page_size, op == AccessKind::Write && tracked};
}

Result<ShadowPage*, pt::TableError> ShadowEptMmu::child(ShadowPage& parent, unsigned index, Gfn gfn, Role role) {
  ShadowPage* p = pages_.find(gfn, role);
  if (p == nullptr) {
    Result<ShadowPage*, pt::TableError> made = pages_.create(gfn, role);
    if (!made) return Unexpected{made.error()};
    p = *made;
    if (p->tracks_gfn()) write_protect(gfn);
  }
  const Hpa at = entry_at(parent.table(), index);
  memory_.store<std::uint64_t>(at, format_.make_table(p->table(), parent.role().level()));
  p->add_parent(at);
  return p;
}

void ShadowEptMmu::write_protect(Gfn gfn) {
  // The frame now holds an L1 EPT table we shadow: its leaves lose W, so L1's writes trap.
  for (const Hpa entry : pages_.rmap(gfn)) {
    const std::uint64_t e = memory_.read<std::uint64_t>(entry).value_or(0);
    memory_.store<std::uint64_t>(entry, e & ~format_.write_bit());
  }
}

}  // namespace vmmu::nested
