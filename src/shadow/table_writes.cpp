// Guest-table writes per process (ShadowMmu::table_writes): the adaptive MMU's measure of how
// often a shadowed process changes its tables. A write to a table is counted for every root
// its shadow pages hang under -- walking parent links up to pages no entry links (roots) --
// so a table shared by several processes (a kernel half) counts for each of them. The same
// walk names a root's tables when its process leaves shadow paging (tables_under).

#include <algorithm>
#include <vector>

#include "vmmu/shadow/shadow_mmu.hpp"

namespace vmmu::shadow {

void ShadowMmu::roots_above(const PageCache& pages, RootWalk& w) {
  w.seen.clear();
  w.roots.clear();
  while (!w.todo.empty()) {
    const ShadowPage* p = w.todo.back();
    w.todo.pop_back();
    if (p == nullptr || p->role().invalid() || std::ranges::find(w.seen, p) != w.seen.end()) continue;
    w.seen.push_back(p);
    if (p->parents().empty()) {
      if (std::ranges::find(w.roots, p->gfn().raw()) == w.roots.end()) w.roots.push_back(p->gfn().raw());
      continue;
    }
    for (const Hpa entry : p->parents()) w.todo.push_back(pages.holding(entry));
  }
}

void ShadowMmu::count_table_write_locked(Gfn table) {
  RootWalk& w = root_walk_;  // its vectors keep their capacity: no allocation once warm
  w.todo.clear();
  pages_.for_each_shadowing(table, [&](const ShadowPage* sp) { w.todo.push_back(sp); });
  roots_above(pages_, w);
  for (const std::uint64_t r : w.roots) ++table_writes_[r];
}

std::vector<Gfn> ShadowMmu::tables_under(Gfn root) const {
  const std::lock_guard lock(mutex_);
  std::vector<Gfn> out;
  RootWalk w;  // not root_walk_: a const look-up, off the write path
  pages_.for_each([&](const ShadowPage& p) {
    if (!p.tracks_gfn() || std::ranges::find(out, p.gfn()) != out.end()) return;
    w.todo.assign(1, &p);
    roots_above(pages_, w);
    if (std::ranges::find(w.roots, root.raw()) != w.roots.end()) out.push_back(p.gfn());
  });
  return out;
}

std::uint64_t ShadowMmu::table_writes(Gfn root) const {
  const std::lock_guard lock(mutex_);
  const auto it = table_writes_.find(root.raw());
  return it == table_writes_.end() ? 0 : it->second;
}

}  // namespace vmmu::shadow
