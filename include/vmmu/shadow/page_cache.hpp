#pragma once
// The shadow pages of one MMU: a hash from guest frame to the pages shadowing it (found by
// (gfn, role), KVM's mmu_page_hash), pages by their table's host address (KVM's
// sptep_to_sp), and rmaps from guest frame to the shadow leaves mapping it.
//
//   find(gfn, role) / create(gfn, role)     one page per (gfn, role): two CR3s sharing a guest
//                                           table share its shadow page
//   tracked(gfn)                            some page shadows a table in this frame: every
//                                           leaf mapping it must be read-only
//   rmap(gfn)                               the leaves mapping the frame
//
// Not thread-safe: the shadow MMU calls it under its lock.

#include <cstdint>
#include <memory>
#include <memory_resource>
#include <unordered_map>
#include <vector>

#include "vmmu/core/address.hpp"
#include "vmmu/core/result.hpp"
#include "vmmu/pt/owned_table_memory.hpp"
#include "vmmu/pt/table_error.hpp"
#include "vmmu/shadow/shadow_page.hpp"

namespace vmmu::shadow {

class PageCache {
 public:
  explicit PageCache(pt::OwnedTableMemory& memory) : memory_(memory) {}
  ~PageCache();
  PageCache(const PageCache&) = delete;
  PageCache& operator=(const PageCache&) = delete;

  [[nodiscard]] ShadowPage* find(Gfn gfn, Role role) const;
  // A new page with an empty table. Errors: OutOfMemory.
  Result<ShadowPage*, pt::TableError> create(Gfn gfn, Role role);
  [[nodiscard]] ShadowPage* by_table(Hpa table) const;
  [[nodiscard]] bool tracked(Gfn gfn) const;

  // A leaf mapping a frame, and one way to reach it (a root and a gva under it) for an
  // iterator that changes it through the engine.
  struct RmapEntry {
    Hpa entry;
    Hpa root;
    Gva gva;
    friend bool operator==(const RmapEntry&, const RmapEntry&) = default;
  };
  // Allocated from the cache's own pool: a fault adding a frame's first rmap entry costs no
  // malloc (it was a quarter of a fault's time).
  using Rmap = std::pmr::vector<RmapEntry>;
  [[nodiscard]] const Rmap& rmap(Gfn gfn) const;
  void rmap_add(Gfn gfn, RmapEntry e);
  void rmap_remove(Gfn gfn, Hpa entry);

  [[nodiscard]] std::size_t size() const { return by_table_.size(); }
  template <class Fn>
  void for_each(Fn&& fn) const {
    for (const auto& [table, page] : by_table_) fn(*page);
  }
  template <class Fn>
  void for_each_rmap(Fn&& fn) const {
    for (const auto& [gfn, entries] : rmaps_) fn(Gfn(gfn), entries);
  }

 private:
  pt::OwnedTableMemory& memory_;
  std::unordered_map<std::uint64_t, std::vector<ShadowPage*>> hash_;  // gfn -> pages
  std::unordered_map<std::uint64_t, std::unique_ptr<ShadowPage>> by_table_;
  std::unordered_map<std::uint64_t, std::uint32_t> tracked_;         // gfn -> tracking pages
  std::pmr::unsynchronized_pool_resource rmap_pool_;
  std::pmr::unordered_map<std::uint64_t, Rmap> rmaps_{&rmap_pool_};
};

}  // namespace vmmu::shadow
