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
  peak_ = std::max(peak_, by_table_.size());
  if (p->tracks_gfn()) {
    ++tracked_[gfn.raw()];
    ++tracked_huge_[0][gfn.raw() >> 9];
    ++tracked_huge_[1][gfn.raw() >> 18];
  }
  return p;
}

ShadowPage* PageCache::by_table(Hpa table) const {
  const auto it = by_table_.find(table.raw());
  return it == by_table_.end() ? nullptr : it->second.get();
}

bool PageCache::tracked(Gfn gfn) const { return tracked_.contains(gfn.raw()); }

bool PageCache::tracked_within(Gfn gfn, unsigned level) const {
  return level == 2 ? tracked_huge_[0].contains(gfn.raw() >> 9) : tracked_huge_[1].contains(gfn.raw() >> 18);
}

std::vector<ShadowPage*> PageCache::shadowing(Gfn gfn) const {
  std::vector<ShadowPage*> out;
  const auto it = hash_.find(gfn.raw());
  if (it == hash_.end()) return out;
  for (ShadowPage* p : it->second) {
    if (p->tracks_gfn()) out.push_back(p);
  }
  return out;
}

void PageCache::unhash(ShadowPage* p) {
  if (p->role().invalid()) return;
  const auto it = hash_.find(p->gfn().raw());
  if (it != hash_.end()) {
    std::erase(it->second, p);
    if (it->second.empty()) hash_.erase(it);
  }
  if (p->tracks_gfn()) {
    auto drop = [](auto& counts, std::uint64_t key) {
      const auto t = counts.find(key);
      if (t != counts.end() && --t->second == 0) counts.erase(t);
    };
    drop(tracked_, p->gfn().raw());
    drop(tracked_huge_[0], p->gfn().raw() >> 9);
    drop(tracked_huge_[1], p->gfn().raw() >> 18);
  }
  p->mark_invalid();
}

std::unique_ptr<ShadowPage> PageCache::remove(ShadowPage* p) {
  unhash(p);
  const auto it = by_table_.find(p->table().raw());
  if (it == by_table_.end()) return nullptr;
  std::unique_ptr<ShadowPage> out = std::move(it->second);
  by_table_.erase(it);
  return out;
}

namespace {

// The keys of `map` in `gfns` that are multiples of `stride`: key by key when that is fewer
// look-ups than the map has entries, else one pass over the map.
template <class Map>
std::vector<Gfn> keys_in(const Map& map, Range<Gfn> gfns, std::uint64_t stride) {
  std::vector<Gfn> out;
  if (!(gfns.begin < gfns.end)) return out;
  const std::uint64_t first = (gfns.begin.raw() + stride - 1) / stride * stride;
  if ((gfns.end.raw() - gfns.begin.raw()) / stride < map.size()) {
    for (std::uint64_t g = first; g < gfns.end.raw(); g += stride) {
      if (map.contains(g)) out.emplace_back(g);
    }
    return out;
  }
  for (const auto& kv : map) {
    if (kv.first >= first && kv.first < gfns.end.raw() && kv.first % stride == 0) out.emplace_back(kv.first);
  }
  return out;
}

}  // namespace

std::vector<Gfn> PageCache::rmapped(Range<Gfn> gfns, std::uint64_t stride) const { return keys_in(rmaps_, gfns, stride); }

std::vector<Gfn> PageCache::shadowed(Range<Gfn> gfns) const { return keys_in(tracked_, gfns, 1); }

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
