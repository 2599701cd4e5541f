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

ShadowPage* PageCache::find_recent(Gfn gfn, Role role) {
  if (recent_ != nullptr && recent_->gfn() == gfn && recent_->role() == role) return recent_;
  ShadowPage* p = find(gfn, role);
  if (p != nullptr) recent_ = p;
  return p;
}

Result<ShadowPage*, pt::TableError> PageCache::create(Gfn gfn, Role role) {
  Result<Hpa, pt::TableError> table = memory_.allocate(role.level());
  if (!table) return Unexpected{table.error()};
  auto page = std::make_unique<ShadowPage>(gfn, role, *table);
  ShadowPage* p = page.get();
  by_table_.emplace(table->raw(), std::move(page));
  hash_[gfn.raw()].push_back(p);
  peak_ = std::max(peak_, by_table_.size());
  if (p->tracks_gfn()) frames_.track(gfn);
  return p;
}

ShadowPage* PageCache::by_table(Hpa table) const {
  RecentTable& r = recent_tables_[(table.raw() >> kPageShift) % kRecentTables];
  if (r.table == table.raw() && r.page != nullptr) return r.page;
  const auto it = by_table_.find(table.raw());
  if (it == by_table_.end()) return nullptr;
  r = {table.raw(), it->second.get()};
  return r.page;
}

bool PageCache::tracked(Gfn gfn) const { return frames_.tracked(gfn); }

bool PageCache::tracked_within(Gfn gfn, unsigned level) const { return frames_.tracked_within(gfn, level); }

std::vector<ShadowPage*> PageCache::shadowing(Gfn gfn) const {
  std::vector<ShadowPage*> out;
  for_each_shadowing(gfn, [&](ShadowPage* p) { out.push_back(p); });
  return out;
}

void PageCache::unhash(ShadowPage* p) {
  if (p == recent_) recent_ = nullptr;
  if (p->role().invalid()) return;
  const auto it = hash_.find(p->gfn().raw());
  if (it != hash_.end()) {
    std::erase(it->second, p);
    if (it->second.empty()) hash_.erase(it);
  }
  if (p->tracks_gfn()) frames_.untrack(p->gfn());
  p->mark_invalid();
}

std::unique_ptr<ShadowPage> PageCache::remove(ShadowPage* p) {
  unhash(p);
  const auto it = by_table_.find(p->table().raw());
  if (it == by_table_.end()) return nullptr;
  std::unique_ptr<ShadowPage> out = std::move(it->second);
  by_table_.erase(it);
  RecentTable& r = recent_tables_[(p->table().raw() >> kPageShift) % kRecentTables];
  if (r.page == p) r = {};
  return out;
}

std::vector<Gfn> PageCache::rmapped(Range<Gfn> gfns, std::uint64_t stride) const {
  return frames_.rmapped(gfns, stride);
}

std::vector<Gfn> PageCache::shadowed(Range<Gfn> gfns) const { return frames_.tracked_in(gfns); }

}  // namespace vmmu::shadow
