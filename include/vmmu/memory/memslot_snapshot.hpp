#pragma once
// MemslotSnapshot: one immutable version of the guest-physical layout, as readers see it.
//
//   keys     [ 0x000 | 0x100 | 0x104 | 0x105 | 0x800 ]   sorted first gfn of each region
//   regions  [ slot 1 | ovl 7 | slot 1 | slot 1 | slot 2 ]   same index: the region itself
//              base     page   base     tail
//
// A slot without overlays is one region; each overlay cuts its slot into base pieces around
// the overlay's own region. Regions never overlap; gaps between them are unbacked. Lookup
// goes through a bucket table over the covered gfn span to the one or two candidate keys,
// then a branch-free binary search among them (see find()).
//
// A snapshot never changes after it is published; a writer builds the next one and swaps the
// pointer (see Memslots). Readers may use a snapshot and the regions in it only inside an RCU
// read-side section that loaded it.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "vmmu/core/address.hpp"
#include "vmmu/memory/dirty_bitmap.hpp"
#include "vmmu/memory/memslot_types.hpp"

namespace vmmu {

// A run of guest frames backed by one contiguous piece of host memory.
struct MemslotRegion {
  std::uint64_t gfn_begin = 0;    // raw gfn: the search key (Gfn accessors below)
  std::uint64_t pages = 0;
  std::byte* host = nullptr;      // host address of gfn_begin
  DirtyBitmap* dirty = nullptr;   // the slot's bitmap if it logs dirty pages, else null
  std::uint64_t dirty_first = 0;  // bitmap index (page in the slot) of gfn_begin
  SlotId slot;
  MemslotFlags flags;
  OverlayId overlay;              // 0: the slot's own memory
  std::uint8_t backing_shift = kPageShift;  // log2 of the backing page size (overlays: 4 KiB)

  [[nodiscard]] Gfn begin() const { return Gfn(gfn_begin); }
  [[nodiscard]] Gfn end() const { return Gfn(gfn_begin + pages); }
  [[nodiscard]] bool contains(Gfn gfn) const { return gfn.raw() - gfn_begin < pages; }
  [[nodiscard]] bool writable() const { return !flags.is_read_only(); }
  // Host address of the first byte of `gfn` (contains(gfn)).
  [[nodiscard]] std::byte* host_of(Gfn gfn) const { return host + ((gfn.raw() - gfn_begin) << kPageShift); }
  // Host address as vmmu's host-physical address space (user space: the pointer's value).
  [[nodiscard]] Hpa hpa_of(Gfn gfn) const { return Hpa(reinterpret_cast<std::uintptr_t>(host_of(gfn))); }
  // Marks `gfn` dirty if the slot logs dirty pages (contains(gfn)).
  void mark_dirty(Gfn gfn) const {
    if (dirty != nullptr) dirty->mark(dirty_first + (gfn.raw() - gfn_begin));
  }
};

class MemslotSnapshot {
 public:
  MemslotSnapshot(std::uint64_t generation, std::vector<MemslotRegion> regions,
                  std::vector<std::shared_ptr<DirtyBitmap>> bitmaps);

  [[nodiscard]] std::uint64_t generation() const { return generation_; }
  [[nodiscard]] const std::vector<MemslotRegion>& regions() const { return regions_; }

  // The region holding `gfn`, or null when it is unbacked. A bucket table narrows the search
  // to the few regions that start in gfn's bucket, then a branch-free binary search (cmov,
  // no mispredictions on random lookups) picks the last region starting at or before gfn:
  // O(1) for evenly spread layouts, O(log regions) for any layout.
  [[nodiscard]] const MemslotRegion* find(Gfn gfn) const {
    if (regions_.empty()) return nullptr;
    const std::uint64_t key = gfn.raw();
    // Below the first region the offset wraps high and lands in the last bucket: a miss below.
    const std::uint64_t bucket = std::min<std::uint64_t>((key - bucket_base_) >> bucket_shift_, last_bucket_);
    const std::uint64_t* base = keys_.data() + bucket_first_[bucket];
    std::size_t n = bucket_first_[bucket + 1] - bucket_first_[bucket] + 1;
    while (n > 1) {
      const std::size_t half = n / 2;
      base = base[half] <= key ? base + half : base;  // compiles to cmov
      n -= half;
    }
    const MemslotRegion& r = regions_[static_cast<std::size_t>(base - keys_.data())];
    // Unsigned: a key below the region wraps to a huge offset and misses.
    return key - r.gfn_begin < r.pages ? &r : nullptr;
  }

 private:
  static constexpr std::uint64_t kMaxBuckets = std::uint64_t{1} << 16;
  void build_buckets();

  std::uint64_t generation_;
  std::vector<std::uint64_t> keys_;
  std::vector<MemslotRegion> regions_;
  // Bucket b covers gfns [bucket_base_ + (b << bucket_shift_), ... + (1 << bucket_shift_));
  // bucket_first_[b] is the last region starting at or before the bucket's first gfn, and
  // bucket_first_[last_bucket_ + 1] the last region, so a gfn of bucket b lies in a region
  // of [bucket_first_[b], bucket_first_[b + 1]] or in none.
  std::uint64_t bucket_base_ = 0;
  unsigned bucket_shift_ = 0;
  std::uint64_t last_bucket_ = 0;
  std::vector<std::uint32_t> bucket_first_;
  // Keeps the bitmaps the regions point at alive as long as any reader may use this snapshot.
  std::vector<std::shared_ptr<DirtyBitmap>> bitmaps_;
};

}  // namespace vmmu
