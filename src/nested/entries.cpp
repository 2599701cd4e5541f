// Changing shadow entries in place, by shadow page and index (rmaps and parents know
// entries, not paths from a root): clearing them, freeing pages nothing links to any more,
// zapping roots, and write protection. Every change goes through the engine: a leaf's (and
// an empty entry's) by EntryOps::install, a link's by the iterator's compare-exchange.
//
// A link is not replaced with install(): a shadow page may have several parents (L1 tables
// shared between hierarchies or levels), and install() would retire the child's subtree
// with the link. Pages are freed here when their last parent goes. Under the MMU's lock
// nothing else writes shadow entries, so no compare-exchange here can lose.
//
// A shadow page does not know the L2 gpa it is linked at (it may be linked at several), so
// every change here flushes all of L2's translations.

#include "vmmu/nested/ept_kind.hpp"
#include "vmmu/nested/nested_mmu.hpp"
#include "vmmu/nested/npt_kind.hpp"
#include "vmmu/pt/ops/install.hpp"

namespace vmmu::nested {
namespace {

using shadow::ShadowPage;
using Ops = pt::ops::EntryOps<tdp::TdpFormat>;

}  // namespace

template <class K>
typename NestedMmu<K>::Iterator NestedMmu<K>::entry_of(const ShadowPage& p, unsigned index) const {
  const unsigned level = p.role().level();
  return Iterator::at(format5_, memory_, p.table(), level, std::uint64_t{index} * format5_.geometry().span(level));
}

template <class K>
typename NestedMmu<K>::Iterator NestedMmu<K>::entry_at(Hpa entry, unsigned level) const {
  const auto index = static_cast<unsigned>((entry.raw() & (kPageSize - 1)) / sizeof(std::uint64_t));
  return Iterator::at(format5_, memory_, Hpa(entry.raw() & ~(kPageSize - 1)), level,
                      std::uint64_t{index} * format5_.geometry().span(level));
}

template <class K>
void NestedMmu<K>::clear(Iterator& it, Flush& flush) {
  if (it.is_table()) {
    [[maybe_unused]] const bool done = it.try_set(0);  // under the lock: cannot lose
  } else {
    Ops ops(format5_, memory_, tlb_, Hpa(0));  // install of a leaf needs no root
    [[maybe_unused]] const pt::ops::Installed done = ops.install(it, 0, flush);
  }
  flush.add_all();
}

template <class K>
void NestedMmu<K>::clear_entry(ShadowPage& p, unsigned index, Flush& flush) {
  Iterator it = entry_of(p, index);
  if (it.is_leaf()) {
    pages_.rmap_remove(p.leaf(index).gfn, it.entry_address());
    clear(it, flush);
    return;
  }
  if (!it.is_table()) return;
  ShadowPage* c = pages_.by_table(format5_.table_address(it.entry(), it.level()));
  clear(it, flush);
  c->remove_parent(it.entry_address());
  free_if_orphan(c, flush);
}

template <class K>
void NestedMmu<K>::free_if_orphan(ShadowPage* p, Flush& flush) {
  if (p->parents().empty() && p->root_count() == 0) free_page(p, flush);
}

template <class K>
void NestedMmu<K>::free_page(ShadowPage* p, Flush& flush) {
  for (unsigned i = 0; i < shadow::kShadowEntries; ++i) clear_entry(*p, i, flush);
  const unsigned level = p->role().level();
  std::unique_ptr<ShadowPage> gone = pages_.remove(p);
  flush.add_retired({gone->table(), level});  // freed once no walk can be in it
}

template <class K>
void NestedMmu<K>::release(ShadowPage* root, Flush& flush) {
  root->release_root();
  // A root no vCPU holds stays cached (switching back to it builds nothing) unless zapped.
  if (root->root_count() == 0 && root->role().invalid() && root->parents().empty()) free_page(root, flush);
}

template <class K>
void NestedMmu<K>::zap_root(ShadowPage* root, Flush& flush) {
  if (root->root_count() == 0 && root->parents().empty()) {
    free_page(root, flush);
    return;
  }
  for (unsigned i = 0; i < shadow::kShadowEntries; ++i) clear_entry(*root, i, flush);
  if (root->root_count() > 0) pages_.unhash(root);  // freed by its last vCPU's release
}

template <class K>
void NestedMmu<K>::write_protect(Gfn gfn, Flush& flush) {
  // The frame now holds an L1 table we shadow: its leaves (all 4 KiB) lose W, so L1's
  // writes trap.
  for (const Hpa entry : pages_.rmap(gfn)) protect_leaf(entry, flush);
}

#define VMMU_NESTED_ENTRIES(K)                                                                 \
  template NestedMmu<K>::Iterator NestedMmu<K>::entry_of(const ShadowPage&, unsigned) const; \
  template NestedMmu<K>::Iterator NestedMmu<K>::entry_at(Hpa, unsigned) const;               \
  template void NestedMmu<K>::clear(Iterator&, Flush&);                                       \
  template void NestedMmu<K>::clear_entry(ShadowPage&, unsigned, Flush&);                     \
  template void NestedMmu<K>::free_if_orphan(ShadowPage*, Flush&);                            \
  template void NestedMmu<K>::free_page(ShadowPage*, Flush&);                                 \
  template void NestedMmu<K>::release(ShadowPage*, Flush&);                                   \
  template void NestedMmu<K>::zap_root(ShadowPage*, Flush&);                                  \
  template void NestedMmu<K>::write_protect(Gfn, Flush&);
VMMU_NESTED_ENTRIES(EptKind)
VMMU_NESTED_ENTRIES(NptKind)
#undef VMMU_NESTED_ENTRIES

}  // namespace vmmu::nested
