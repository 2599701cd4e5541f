#pragma once
// The shadow pages of one MMU: a hash from guest frame to the pages shadowing it (found by
// (gfn, role), KVM's mmu_page_hash), pages by their table's host address (KVM's
// sptep_to_sp), and, frame-indexed (frame_index.hpp), rmaps from guest frame to the shadow
// leaves mapping it and write-tracking counts.
//
//   find(gfn, role) / create(gfn, role)     one page per (gfn, role): two CR3s sharing a guest
//                                           table share its shadow page
//   tracked(gfn)                            some page shadows a table in this frame: every
//                                           leaf mapping it must be read-only
//   rmap(gfn)                               the leaves mapping the frame
//
// Not thread-safe, not even its const members (by_table remembers recent answers): the shadow
// MMU calls it under its lock.

#include <array>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "vmmu/core/address.hpp"
#include "vmmu/core/result.hpp"
#include "vmmu/pt/owned_table_memory.hpp"
#include "vmmu/pt/table_error.hpp"
#include "vmmu/shadow/frame_index.hpp"
#include "vmmu/shadow/shadow_page.hpp"

namespace vmmu::shadow {

class PageCache {
 public:
  explicit PageCache(pt::OwnedTableMemory& memory) : memory_(memory) {}
  ~PageCache();
  PageCache(const PageCache&) = delete;
  PageCache& operator=(const PageCache&) = delete;

  [[nodiscard]] ShadowPage* find(Gfn gfn, Role role) const;
  // find(), answered without a lookup when it is the page this last found (a vCPU's root,
  // looked up on every access).
  [[nodiscard]] ShadowPage* find_recent(Gfn gfn, Role role);
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
  // fn(page) for each of them, with no vector made (an emulated write asks on every write).
  template <class Fn>
  void for_each_shadowing(Gfn gfn, Fn&& fn) const {
    const auto it = hash_.find(gfn.raw());
    if (it == hash_.end()) return;
    for (ShadowPage* p : it->second) {
      if (p->tracks_gfn()) fn(p);
    }
  }

  // Takes `p` out of the hash: no lookup finds it again, and it no longer write-tracks its
  // frame; marks it invalid. A root still in use stays accounted until released.
  void unhash(ShadowPage* p);
  // Takes `p` out of the cache (unhashed first if it was not); the caller retires its table.
  std::unique_ptr<ShadowPage> remove(ShadowPage* p);

  // The shadow leaves mapping a frame, by entry address (a view, valid until it changes).
  using Rmap = shadow::Rmap;
  [[nodiscard]] Rmap rmap(Gfn gfn) const { return frames_.rmap(gfn); }
  void rmap_add(Gfn gfn, Hpa entry) { frames_.rmap_add(gfn, entry); }
  void rmap_remove(Gfn gfn, Hpa entry) { frames_.rmap_remove(gfn, entry); }
  // fn(entry) for the leaves mapping the frames first + i, bit i set in `mask`.
  template <class Fn>
  void for_each_rmap_masked(Gfn first, std::uint64_t mask, Fn&& fn) const {
    frames_.for_each_rmap_masked(first, mask, fn);
  }

  [[nodiscard]] std::size_t size() const { return by_table_.size(); }
  [[nodiscard]] std::size_t peak() const { return peak_; }
  template <class Fn>
  void for_each(Fn&& fn) const {
    for (const auto& [table, page] : by_table_) fn(*page);
  }
  template <class Fn>
  void for_each_rmap(Fn&& fn) const {
    frames_.for_each_rmap(fn);
  }
  // The rmapped frames in `gfns` (by the first frame a leaf maps, so callers widen the range
  // down to the huge page holding its first frame): frame by frame when the range is smaller
  // than the rmaps hold, else one pass over them.
  // `stride`: only frames that are multiples of it (the first frames of huge leaves).
  [[nodiscard]] std::vector<Gfn> rmapped(Range<Gfn> gfns, std::uint64_t stride = 1) const;
  // The frames in `gfns` holding guest tables some page shadows (the same way).
  [[nodiscard]] std::vector<Gfn> shadowed(Range<Gfn> gfns) const;
  [[nodiscard]] std::size_t rmapped_frames() const { return frames_.rmapped_frames(); }
  // Host memory the rmaps and write-tracking counts take.
  [[nodiscard]] std::uint64_t frame_bytes() const { return frames_.bytes(); }

 private:
  pt::OwnedTableMemory& memory_;
  std::unordered_map<std::uint64_t, std::vector<ShadowPage*>> hash_;  // gfn -> pages
  std::unordered_map<std::uint64_t, std::unique_ptr<ShadowPage>> by_table_;
  FrameIndex frames_;  // rmaps and write tracking
  ShadowPage* recent_ = nullptr;  // find_recent()'s last page, forgotten when unhashed
  // by_table's recent answers, direct-mapped by table frame (a fault's path asks for the same
  // few pages again and again); a page's slot is cleared when it leaves the cache.
  struct RecentTable {
    std::uint64_t table = 0;
    ShadowPage* page = nullptr;
  };
  static constexpr std::size_t kRecentTables = 16;
  mutable std::array<RecentTable, kRecentTables> recent_tables_{};
  std::size_t peak_ = 0;
};

}  // namespace vmmu::shadow
