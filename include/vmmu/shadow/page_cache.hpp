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
  // The shadow page whose table holds the entry at `entry`.
  [[nodiscard]] ShadowPage* holding(Hpa entry) const { return by_table(Hpa(entry.raw() & ~(kPageSize - 1))); }
  [[nodiscard]] bool tracked(Gfn gfn) const;
  // Some frame of the 2 MiB (level 2) or 1 GiB (level 3) page holding `gfn` is tracked: no
  // huge leaf may map it (KVM's disallow_lpage).
  [[nodiscard]] bool tracked_within(Gfn gfn, unsigned level) const;
  // The pages shadowing a table in `gfn` (any role).
  [[nodiscard]] std::vector<ShadowPage*> shadowing(Gfn gfn) const;

  // Takes `p` out of the hash: no lookup finds it again, and it no longer write-tracks its
  // frame; marks it invalid. A root still in use stays accounted until released.
  void unhash(ShadowPage* p);
  // Takes `p` out of the cache (unhashed first if it was not); the caller retires its table.
  std::unique_ptr<ShadowPage> remove(ShadowPage* p);

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
  [[nodiscard]] std::size_t peak() const { return peak_; }
  template <class Fn>
  void for_each(Fn&& fn) const {
    for (const auto& [table, page] : by_table_) fn(*page);
  }
  template <class Fn>
  void for_each_rmap(Fn&& fn) const {
    for (const auto& [gfn, entries] : rmaps_) fn(Gfn(gfn), entries);
  }
  // The rmapped frames in `gfns` (by the first frame a leaf maps, so callers widen the range
  // down to the huge page holding its first frame): frame by frame when the range is smaller
  // than the rmaps, else one pass over them.
  // `stride`: only frames that are multiples of it (the first frames of huge leaves).
  [[nodiscard]] std::vector<Gfn> rmapped(Range<Gfn> gfns, std::uint64_t stride = 1) const;
  // The frames in `gfns` holding guest tables some page shadows (the same way).
  [[nodiscard]] std::vector<Gfn> shadowed(Range<Gfn> gfns) const;
  [[nodiscard]] std::size_t rmapped_frames() const { return rmaps_.size(); }

 private:
  pt::OwnedTableMemory& memory_;
  std::unordered_map<std::uint64_t, std::vector<ShadowPage*>> hash_;  // gfn -> pages
  std::unordered_map<std::uint64_t, std::unique_ptr<ShadowPage>> by_table_;
  std::unordered_map<std::uint64_t, std::uint32_t> tracked_;         // gfn -> tracking pages
  std::unordered_map<std::uint64_t, std::uint32_t> tracked_huge_[2];  // 2M / 1G frame -> the same
  std::pmr::unsynchronized_pool_resource rmap_pool_;
  std::pmr::unordered_map<std::uint64_t, Rmap> rmaps_{&rmap_pool_};
  std::size_t peak_ = 0;
};

}  // namespace vmmu::shadow
