// The nested fault path: L1's tables walked by the kind's walker (their entries read, and A/D
// set, in L1's memory), then the chain of shadow pages down to a 4 KiB leaf with the walk's
// rights, narrowed by L1's memory: read-only slots, and dirty logging (W only on a write, which
// logs the frame first).

#include "vmmu/core/rcu.hpp"
#include "vmmu/nested/ept_kind.hpp"
#include "vmmu/nested/nested_mmu.hpp"
#include "vmmu/nested/npt_kind.hpp"
#include "vmmu/pt/ops/install.hpp"

namespace vmmu::nested {
namespace {

using shadow::Role;
using shadow::ShadowPage;
using Ops = pt::ops::EntryOps<tdp::TdpFormat>;

// L1's tables as the walker reads them; an A/D bit it sets is L0 writing L1's memory, which
// L1's dirty log must show (`written(gfn)`).
template <class Written>
class LoggedTables {
 public:
  LoggedTables(shadow::GuestRam& ram, Written written) : tables_(ram), written_(written) {}
  template <class T>
  std::optional<T> read(Gpa addr) const {
    return tables_.read<T>(addr);
  }
  template <class T>
  bool compare_exchange(Gpa addr, T& expected, T desired) {
    const bool done = tables_.compare_exchange(addr, expected, desired);
    if (done) written_(gfn_of(addr));
    return done;
  }

 private:
  shadow::GuestRamTables tables_;
  Written written_;
};

}  // namespace

template <class K>
typename NestedMmu<K>::L2Result NestedMmu<K>::fault(Vcpu& vcpu, Gpa l2_gpa, AccessKind op, Flush& flush,
                                                     bool& again) {
  ++stats_.faults;
  const rcu::ReadGuard rcu;  // keeps the regions l1_frame answers
  const typename K::Context& ctx = *vcpu.ctx_;
  LoggedTables tables(l1_, [this](Gfn gfn) { l1_written(gfn); });
  // One walk of L1's tables: its result, its A/D bits, and the entries it used (the shadow's keys).
  typename K::Path path;
  const Result<L1Walk, typename K::Fault> t = K::walk(ctx, tables, l2_gpa, op, {}, path);
  if (!t) {
    ++stats_.reflected;
    return Unexpected{Exit{ExitKind::ToL1, t.error(), {}}};
  }
  const Gfn frame = gfn_of(t->address);
  const L1Frame backing = l1_frame(frame);
  std::byte* host = backing.host;
  const bool read_only = backing.region != nullptr && !backing.region->writable();
  if (host == nullptr || (read_only && op == AccessKind::Write)) {
    return Unexpected{Exit{ExitKind::L1Mmio, {}, t->address}};
  }
  if (invalidations_.any()) {
    // Nothing is built over memory the host is changing: not the leaf's frame, nor a shadow page
    // of an L1 table in it.
    bool busy = invalidations_.covers(frame) || invalidations_.covers(gfn_of(K::root(ctx)));
    for (unsigned level = ctx.levels(); level > t->level; --level) {
      busy = busy || invalidations_.covers(K::table(path, level));
    }
    if (busy) {
      again = true;
      return Unexpected{Exit{ExitKind::L1Mmio, {}, t->address}};
    }
  }

  // L1's D bit clear: no W yet, so the first write comes here and the walk sets D.
  const std::uint8_t clean_mask = t->clean ? static_cast<std::uint8_t>(~K::kWriteRight) : 0xff;

  // Down from the root: each level's child found or made by (L1 table frame, role).
  ShadowPage* sp = vcpu.roots_[0].root;
  const tdp::TdpFormat& f = format(sp->role().level());
  const pt::Geometry& g = f.geometry();
  const std::uint64_t input = l2_gpa.raw() & (g.input_limit() - 1);
  Iterator it(f, memory_, sp->table(), input, input + 1);
  for (unsigned level = g.root_level(); level > 1; --level) {
    const Role parent = sp->role();
    const auto rights = static_cast<std::uint8_t>(parent.access() & K::rights(path, level));
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
      gfn = gfn_of(t->address - (input & (g.span(level) - 1)));
    } else {
      role.set_access(rights);
      gfn = K::table(path, level);
    }
    if (it.is_table()) {  // always a table when present: shadow leaves are 4 KiB
      ShadowPage* linked = pages_.by_table(f.table_address(it.entry(), level));
      if (linked->gfn() == gfn && linked->role() == role) {
        it.next();
        sp = linked;
        continue;
      }
      // A direct page made while L1's leaf said less (KVM's validate_direct_spte): relinked.
      clear(it, flush);
      linked->remove_parent(it.entry_address());
      free_if_orphan(linked, flush);
    }
    Result<ShadowPage*, pt::TableError> next = child(it, gfn, role, flush);
    if (!next) return Unexpected{Exit{ExitKind::OutOfMemory, {}, {}}};
    sp = *next;
  }

  // The leaf: the walk's rights, without W while L1's leaf is clean and never W over one of
  // L1's tables (L1's writes to them must trap).
  bool writable = t->writable && !t->clean && !read_only;
  const bool tracked = pages_.tracked(frame);
  if (tracked) writable = false;
  if (writable && backing.region != nullptr && backing.region->flags.is_log_dirty()) {
    // Logged before it becomes writable: a harvest (under the lock) never finds a writable leaf
    // over a frame it has not handed out.
    if (op == AccessKind::Write) {
      backing.region->mark_dirty(frame);
      ++stats_.logged;
    } else {
      writable = false;
    }
  }
  const unsigned index = g.index(input, 1);
  if (it.is_leaf()) pages_.rmap_remove(sp->leaf(index).gfn, it.entry_address());
  const Hpa page(reinterpret_cast<std::uintptr_t>(host));
  const std::uint64_t leaf = f.make_leaf(page, 1, {.read = t->readable, .write = writable, .exec = t->executable,
                                                   .accessed = false, .device = false, .dirty = false});
  if (it.entry() != leaf) {
    Ops ops(f, memory_, tlb_, Hpa(0));  // a leaf replaces a leaf: no subtree, no root needed
    [[maybe_unused]] const pt::ops::Installed done = ops.install(it, leaf, flush);  // under the lock: no race
  }
  sp->set_leaf(index, {frame, t->page_size});
  // The rmap needs only the entry's address (write protection edits it in place).
  pages_.rmap_add(frame, it.entry_address());
  const std::uint64_t offset = input & (kPageSize - 1);
  return L2Translation{page + offset, t->address, t->page_size, op == AccessKind::Write && tracked};
}

template <class K>
Result<ShadowPage*, pt::TableError> NestedMmu<K>::child(Iterator& it, Gfn gfn, Role role, Flush& flush) {
  ShadowPage* p = pages_.find(gfn, role);
  if (p == nullptr) {
    Result<ShadowPage*, pt::TableError> made = pages_.create(gfn, role);
    if (!made) return Unexpected{made.error()};
    p = *made;
    if (p->tracks_gfn()) write_protect(gfn, flush);  // leaves only: the entry `it` is on stays
  }
  Ops ops(format5_, memory_, tlb_, Hpa(0));  // filling an empty entry needs no root
  [[maybe_unused]] const pt::ops::Installed done = ops.install(it, format5_.make_table(p->table(), it.level()), flush);
  p->add_parent(it.entry_address());
  it.next();  // into the child
  return p;
}

#define VMMU_NESTED_FAULT(K)                                                                              \
  template NestedMmu<K>::L2Result NestedMmu<K>::fault(Vcpu&, Gpa, AccessKind, Flush&, bool&);            \
  template Result<ShadowPage*, pt::TableError> NestedMmu<K>::child(Iterator&, Gfn, Role, Flush&);
VMMU_NESTED_FAULT(EptKind)
VMMU_NESTED_FAULT(NptKind)
#undef VMMU_NESTED_FAULT

}  // namespace vmmu::nested
