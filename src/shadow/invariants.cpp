// The shadow MMU's invariants (docs/architecture.md, shadow section), checked under its lock:
//   1. no writable shadow leaf maps a frame holding a guest table some synced shadow page
//      shadows (write-tracked): a frame may be writable only while all its pages are unsync;
//   2. every shadow leaf agrees with the guest's walk of its gva under the root's paging
//      state: same frame, host page of that frame, rights no wider than the guest's (but for
//      CR0.WP=0's writable supervisor-only leaf), the guest's protection key -- but for the
//      leaves of unsync pages, which may keep a translation until the guest flushes (they
//      still map the host page of the frame they name);
//   3. every table entry points to a shadow page one level down whose parent links name the
//      entry, and every parent link is such an entry; rmaps name exactly the leaves;
//   4. shadow pages accounted = table pages in use = shadow pages reachable from the roots
//      (after zaps too: a zapped page is unreachable and unaccounted, a root in use invalid);
//   5. over memslots: no writable leaf in a read-only slot, nor over a dirty-logged page whose
//      bit is not set (a harvest would miss its writes), nor a writable huge one in a
//      dirty-logged slot; no huge leaf over a write-tracked frame;
//   6. unsync pages are last-level, non-root pages of guest tables, counted per frame; every
//      parent entry of a page that is unsync or has unsync children has its bit set in the
//      parent's unsync-children bitmap (a sync from any root reaches every unsync page).

#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "vmmu/core/rcu.hpp"
#include "vmmu/mmu/invariants.hpp"
#include "vmmu/shadow/shadow_mmu.hpp"

namespace vmmu::shadow {

namespace {
namespace gpte = x86::gpte;
}  // namespace

std::optional<std::string> ShadowMmu::backing_broken(Gfn gfn, unsigned level, std::uint64_t gva, LeafRights r) const {
  if ((r.access & gpte::kAccWrite) == 0 || slots_ == nullptr) return std::nullopt;
  const rcu::ReadGuard rcu;
  const MemslotRegion* region = slots_->find(gfn);
  if (region == nullptr) return fmt::format("shadow leaf for gva {:#x} maps unbacked gfn {:#x}", gva, gfn.raw());
  if (!region->writable()) return fmt::format("writable shadow leaf for gva {:#x} in read-only gfn {:#x}", gva, gfn.raw());
  if (region->dirty != nullptr && level > 1) {
    return fmt::format("writable huge shadow leaf for gva {:#x} in a dirty-logged slot", gva);
  }
  if (region->dirty != nullptr && !region->dirty->test(region->dirty_first + (gfn.raw() - region->gfn_begin))) {
    return fmt::format("writable shadow leaf for gva {:#x} over dirty-logged gfn {:#x} not logged", gva, gfn.raw());
  }
  return std::nullopt;
}

std::optional<std::string> ShadowMmu::link_broken(unsigned level, std::uint64_t entry, Hpa entry_address) const {
  const ShadowPage* child = pages_.by_table(format_.table_address(entry, level));
  if (child == nullptr) return fmt::format("table entry at level {} points to no shadow page", level);
  if (child->role().level() != level - 1) return fmt::format("child {} under a level {} entry", to_string(child->role()), level);
  const auto& parents = child->parents();
  if (std::find(parents.begin(), parents.end(), entry_address) == parents.end()) {
    return fmt::format("shadow page {} lacks the parent link of the entry pointing to it", to_string(child->role()));
  }
  return std::nullopt;
}

std::optional<std::string> ShadowMmu::leaf_broken(const x86::GuestPaging& paging, unsigned level, std::uint64_t gva,
                                                  std::uint64_t entry, Hpa entry_address) const {
  const pt::Geometry& g = format_.geometry();
  const ShadowPage* sp = pages_.holding(entry_address);
  const GuestLeaf leaf = sp->leaf(g.index(gva, level));
  const LeafRights r = ShadowFormat::leaf_rights(entry);
  if (write_tracked(leaf.gfn) && (r.access & gpte::kAccWrite) != 0) {
    return fmt::format("writable shadow leaf for gva {:#x} maps write-tracked gfn {:#x}", gva, leaf.gfn.raw());
  }
  if (level > 1 && pages_.tracked_within(leaf.gfn, level)) {
    return fmt::format("huge shadow leaf for gva {:#x} over a write-tracked frame", gva);
  }
  if (std::optional<std::string> bad = backing_broken(leaf.gfn, level, gva, r)) return bad;
  if (format_.leaf_address(entry, level).raw() != reinterpret_cast<std::uintptr_t>(ram_.page(leaf.gfn))) {
    return fmt::format("shadow leaf for gva {:#x} is not the host page of gfn {:#x}", gva, leaf.gfn.raw());
  }
  const PageCache::Rmap rmap = pages_.rmap(leaf.gfn);
  if (std::find(rmap.begin(), rmap.end(), entry_address) == rmap.end()) {
    return fmt::format("shadow leaf for gva {:#x} missing from the rmap of gfn {:#x}", gva, leaf.gfn.raw());
  }
  if (sp->unsync()) return std::nullopt;  // may keep its old translation until the guest flushes
  // The guest's own view of this gva (the shadow's gva bits above the guest's linear width
  // are sign extension for a 4-level guest under a 5-level host).
  std::uint8_t guest_rights = gpte::kAccAll;
  Gfn guest_gfn(gva >> kPageShift);
  unsigned key = 0;
  if (paging.mode() != x86::PagingMode::Off) {
    GuestRamTables tables(ram_);
    const unsigned bits = paging.linear_bits();
    const std::uint64_t linear =
        bits == 32 ? gva : static_cast<std::uint64_t>(static_cast<std::int64_t>(gva << (64 - bits)) >> (64 - bits));
    bool mapped = false;
    paging.with_format([&](const auto& f, Gpa groot) {
      const auto w = pt::walk(f, tables, groot, linear, [&](const auto& step) {
        if (f.present(step.entry, step.level)) guest_rights &= f.access(step.entry, step.level);
        return pt::Visit::Continue;
      });
      if (w.end != pt::WalkEnd::Leaf) return;
      mapped = true;
      guest_gfn = gfn_of(f.leaf_address(w.entry, w.level) + (linear & (f.page_size(w.level) - 1)));
      key = f.protection_key(w.entry);
    });
    if (!mapped) return fmt::format("shadow leaf for gva {:#x}: no guest mapping", gva);
  }
  if (guest_gfn != leaf.gfn) {
    return fmt::format("shadow leaf for gva {:#x} maps gfn {:#x}, the guest maps {:#x}", gva, leaf.gfn.raw(), guest_gfn.raw());
  }
  std::uint8_t wider = static_cast<std::uint8_t>(r.access & ~guest_rights);
  // CR0.WP=0: a supervisor-only writable leaf for a page the guest maps read-only.
  if (!sp->role().cr0_wp() && (r.access & gpte::kAccUser) == 0) wider &= static_cast<std::uint8_t>(~gpte::kAccWrite);
  if (wider != 0) return fmt::format("shadow leaf for gva {:#x} grants rights {:#x} the guest does not", gva, wider);
  if (r.protection_key != key) return fmt::format("shadow leaf for gva {:#x} has key {}, the guest {}", gva, r.protection_key, key);
  return std::nullopt;
}

std::optional<std::string> ShadowMmu::invariants_locked() const {
  const pt::Geometry& g = format_.geometry();
  std::set<std::uint64_t> reachable;
  std::set<std::uint64_t> leaves;
  for (const auto& [root, paging] : roots_) {
    reachable.insert(root->table().raw());
    for (pt::TableIterator<ShadowFormat, pt::OwnedTableMemory> it(format_, memory_, root->table(), 0, g.input_limit());
         it.valid(); it.next()) {
      if (it.is_table()) {
        if (std::optional<std::string> bad = link_broken(it.level(), it.entry(), it.entry_address())) return bad;
        reachable.insert(format_.table_address(it.entry(), it.level()).raw());
        continue;
      }
      if (!it.is_leaf()) continue;
      leaves.insert(it.entry_address().raw());
      if (std::optional<std::string> bad = leaf_broken(paging, it.level(), it.address(), it.entry(), it.entry_address())) {
        return bad;
      }
    }
  }
  std::optional<std::string> bad;
  pages_.for_each([&](const ShadowPage& p) {
    if (bad) return;
    for (const Hpa parent : p.parents()) {
      const std::uint64_t e = memory_.read<std::uint64_t>(parent).value_or(0);
      if (!gpte::P::get(e) || format_.table_address(e, 2) != p.table()) {
        bad = fmt::format("parent link of shadow page {} names an entry not pointing to it", to_string(p.role()));
        return;
      }
    }
  });
  if (bad) return bad;
  if ((bad = unsync_broken())) return bad;
  pages_.for_each_rmap([&](Gfn gfn, const PageCache::Rmap& entries) {
    for (const Hpa e : entries) {
      if (bad) return;
      if (!leaves.contains(e.raw())) bad = fmt::format("rmap of gfn {:#x} names an entry that is no leaf", gfn.raw());
    }
  });
  if (bad) return bad;
  if (pages_.size() != memory_.tables_in_use() || pages_.size() != reachable.size()) {
    return fmt::format("{} shadow pages accounted, {} table pages in use, {} reachable", pages_.size(),
                       memory_.tables_in_use(), reachable.size());
  }
  return std::nullopt;
}

}  // namespace vmmu::shadow

namespace vmmu::shadow {

std::optional<std::string> ShadowMmu::unsync_broken() const {
  std::optional<std::string> bad;
  std::unordered_map<std::uint64_t, std::uint32_t> unsync;
  pages_.for_each([&](const ShadowPage& p) {
    if (bad || p.role().invalid()) return;
    if (p.unsync()) {
      ++unsync[p.gfn().raw()];
      if (p.role().level() != 1 || !p.tracks_gfn() || roots_.contains(&p)) {
        bad = fmt::format("unsync shadow page {} is not a last-level page of a guest table", to_string(p.role()));
        return;
      }
    }
    if (!p.unsync() && !p.has_unsync_children()) return;
    for (const Hpa parent : p.parents()) {
      if (!pages_.holding(parent)->unsync_child(entry_index(parent))) {
        bad = fmt::format("the parent entry of shadow page {} (unsync or above one) lacks its unsync-children bit",
                          to_string(p.role()));
        return;
      }
    }
  });
  if (bad) return bad;
  if (unsync != unsync_frames_) return fmt::format("{} frames with unsync pages, {} counted", unsync.size(), unsync_frames_.size());
  return std::nullopt;
}

}  // namespace vmmu::shadow

namespace vmmu::shadow {

std::optional<std::string> ShadowMmu::fault_invariants_locked(const ShadowPage& root, const x86::GuestPaging& paging,
                                                              std::uint64_t linear) const {
  // What a fault touches: the entries on its path (links made, the leaf), the group of 8 its
  // prefetch fills, and the frames of the guest tables it shadowed (write-protected now).
  const pt::Geometry& g = format_.geometry();
  if (pages_.size() != memory_.tables_in_use()) {
    return fmt::format("{} shadow pages accounted, {} table pages in use", pages_.size(), memory_.tables_in_use());
  }
  const std::uint64_t input = linear & (g.input_limit() - 1);
  using Iterator = pt::TableIterator<ShadowFormat, pt::OwnedTableMemory>;
  for (Iterator it(format_, memory_, root.table(), input, input + 1); it.valid(); it.next()) {
    const ShadowPage* sp = pages_.by_table(it.table(it.level()));
    if (sp == nullptr) return fmt::format("a level {} table on the path of gva {:#x} is no shadow page", it.level(), linear);
    for (const Hpa table_leaf : pages_.rmap(sp->gfn())) {
      const LeafRights r = ShadowFormat::leaf_rights(memory_.read<std::uint64_t>(table_leaf).value_or(0));
      if (sp->tracks_gfn() && write_tracked(sp->gfn()) && (r.access & gpte::kAccWrite) != 0) {
        return fmt::format("a writable shadow leaf maps write-tracked gfn {:#x}", sp->gfn().raw());
      }
    }
    if (it.is_table()) {
      if (std::optional<std::string> bad = link_broken(it.level(), it.entry(), it.entry_address())) return bad;
      continue;
    }
    if (it.level() != 1) {
      if (!it.is_leaf()) continue;
      return leaf_broken(paging, it.level(), it.address(), it.entry(), it.entry_address());
    }
    const std::uint64_t group = it.address() & ~((std::uint64_t{kPrefetchEntries} << kPageShift) - 1);
    for (unsigned i = 0; i < kPrefetchEntries; ++i) {
      const Iterator e = Iterator::at(format_, memory_, sp->table(), 1, group + (std::uint64_t{i} << kPageShift));
      if (!e.is_leaf()) continue;
      if (std::optional<std::string> bad = leaf_broken(paging, 1, e.address(), e.entry(), e.entry_address())) return bad;
    }
  }
  return std::nullopt;
}

void ShadowMmu::checked_fault(const ShadowPage& root, const x86::GuestPaging& paging, std::uint64_t linear) {
#ifdef VMMU_CHECK_INVARIANTS
  // A full pass costs in proportion to the shadow pages; run once per as many operations
  // (at least kFullCheckEvery), it costs each a constant share, and every rule still runs.
  if (++unchecked_ops_ >= std::max<std::uint64_t>(kFullCheckEvery, pages_.size())) {
    checked("a fault");
    return;
  }
  mmu::check_or_abort("shadow MMU", "a fault (what it touched)",
                      [&] { return fault_invariants_locked(root, paging, linear); });
#else
  (void)root, (void)paging, (void)linear;
#endif
}

}  // namespace vmmu::shadow
