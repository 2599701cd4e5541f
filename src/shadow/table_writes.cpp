// Guest-table writes per process (ShadowMmu::table_writes): the adaptive MMU's measure of how
// often a shadowed process changes its tables. A write to a table is counted for every root
// its shadow pages hang under -- walking parent links up to pages no entry links (roots) --
// so a table shared by several processes (a kernel half) counts for each of them.

#include <algorithm>
#include <vector>

#include "vmmu/shadow/shadow_mmu.hpp"

namespace vmmu::shadow {

void ShadowMmu::count_table_write_locked(Gfn table) {
  std::vector<const ShadowPage*> todo, seen;
  std::vector<std::uint64_t> roots;
  for (const ShadowPage* sp : pages_.shadowing(table)) todo.push_back(sp);
  while (!todo.empty()) {
    const ShadowPage* p = todo.back();
    todo.pop_back();
    if (p == nullptr || p->role().invalid() || std::ranges::find(seen, p) != seen.end()) continue;
    seen.push_back(p);
    if (p->parents().empty()) {
      if (std::ranges::find(roots, p->gfn().raw()) == roots.end()) roots.push_back(p->gfn().raw());
      continue;
    }
    for (const Hpa entry : p->parents()) todo.push_back(pages_.holding(entry));
  }
  for (const std::uint64_t r : roots) ++table_writes_[r];
}

std::uint64_t ShadowMmu::table_writes(Gfn root) const {
  const std::lock_guard lock(mutex_);
  const auto it = table_writes_.find(root.raw());
  return it == table_writes_.end() ? 0 : it->second;
}

}  // namespace vmmu::shadow
