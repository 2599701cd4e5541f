#include "vmmu/shadow/page_cache.hpp"

#include <algorithm>

namespace vmmu::shadow {

PageCache::~PageCache() {
  // The tables were never shared with a concurrent reader that outlives the MMU: the MMU's
  // lock and the vCPUs' exit order guarantee that; retire them anyway for uniformity.
  for (auto& [table, page] : by_table_) memory_.retire({page->table(), page->role().level()});
}

ShadowPage* PageCache::find(Gfn gfn, Role role) const {
  const auto it = hash_.find(gfn.raw());
  if (it == hash_.end()) return nullptr;
  for (ShadowPage* p : it->second) {
    if (p->role() == role) return p;
  }
  return nullptr;
}

Result<ShadowPage*, pt::TableError> PageCache::create(Gfn gfn, Role role) {
  Result<Hpa, pt::TableError> table = memory_.allocate(role.level());
  if (!table) return Unexpected{table.error()};
  auto page = std::make_unique<ShadowPage>(gfn, role, *table);
  ShadowPage* p = page.get();
  by_table_.emplace(table->raw(), std::move(page));
  hash_[gfn.raw()].push_back(p);
  if (p->tracks_gfn()) ++tracked_[gfn.raw()];
  return p;
}

ShadowPage* PageCache::by_table(Hpa table) const {
  const auto it = by_table_.find(table.raw());
  return it == by_table_.end() ? nullptr : it->second.get();
}

bool PageCache::tracked(Gfn gfn) const { return tracked_.contains(gfn.raw()); }

const PageCache::Rmap& PageCache::rmap(Gfn gfn) const {
  static const Rmap kNone;
  const auto it = rmaps_.find(gfn.raw());
  return it == rmaps_.end() ? kNone : it->second;
}

void PageCache::rmap_add(Gfn gfn, RmapEntry e) { rmaps_[gfn.raw()].push_back(e); }

void PageCache::rmap_remove(Gfn gfn, Hpa entry) {
  const auto it = rmaps_.find(gfn.raw());
  if (it == rmaps_.end()) return;
  std::erase_if(it->second, [&](const RmapEntry& e) { return e.entry == entry; });
  if (it->second.empty()) rmaps_.erase(it);
}

}  // namespace vmmu::shadow
