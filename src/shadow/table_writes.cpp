// Guest-table writes per process (ShadowMmu::table_writes): the adaptive MMU's measure of how
// often a shadowed process changes its tables. A write to a table is counted for every root
// its shadow pages hang under -- walking parent links up to pages no entry links (roots) --
// so a table shared by several processes (a kernel half) counts for each of them. The same
// walk names a root's tables when its process leaves shadow paging (tables_under).

#include <algorithm>
#include <vector>

#include "vmmu/shadow/shadow_mmu.hpp"

namespace vmmu::shadow {
namespace {

// The gfns of the roots `from` hangs under (each once).
std::vector<std::uint64_t> roots_above(const PageCache& pages, std::vector<const ShadowPage*> todo) {
  std::vector<const ShadowPage*> seen;
  std::vector<std::uint64_t> roots;
  while (!todo.empty()) {
    const ShadowPage* p = todo.back();
    todo.pop_back();
    if (p == nullptr || p->role().invalid() || std::ranges::find(seen, p) != seen.end()) continue;
    seen.push_back(p);
    if (p->parents().empty()) {
      if (std::ranges::find(roots, p->gfn().raw()) == roots.end()) roots.push_back(p->gfn().raw());
      continue;
    }
    for (const Hpa entry : p->parents()) todo.push_back(pages.holding(entry));
  }
  return roots;
}

}  // namespace

void ShadowMmu::count_table_write_locked(Gfn table) {
  std::vector<const ShadowPage*> pages;
  for (const ShadowPage* sp : pages_.shadowing(table)) pages.push_back(sp);
  for (const std::uint64_t r : roots_above(pages_, std::move(pages))) ++table_writes_[r];
}

std::vector<Gfn> ShadowMmu::tables_under(Gfn root) const {
  const std::lock_guard lock(mutex_);
  std::vector<Gfn> out;
  pages_.for_each([&](const ShadowPage& p) {
    if (!p.tracks_gfn() || std::ranges::find(out, p.gfn()) != out.end()) return;
    const std::vector<std::uint64_t> roots = roots_above(pages_, {&p});
    if (std::ranges::find(roots, root.raw()) != roots.end()) out.push_back(p.gfn());
  });
  return out;
}

std::uint64_t ShadowMmu::table_writes(Gfn root) const {
  const std::lock_guard lock(mutex_);
  const auto it = table_writes_.find(root.raw());
  return it == table_writes_.end() ? 0 : it->second;
}

}  // namespace vmmu::shadow
