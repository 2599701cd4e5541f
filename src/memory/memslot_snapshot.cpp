#include "vmmu/memory/memslot_snapshot.hpp"

#include <algorithm>
#include <bit>
#include <cassert>

namespace vmmu {

MemslotSnapshot::MemslotSnapshot(std::uint64_t generation, std::vector<MemslotRegion> regions,
                                 std::vector<std::shared_ptr<DirtyBitmap>> bitmaps)
    : generation_(generation), regions_(std::move(regions)), bitmaps_(std::move(bitmaps)) {
  std::sort(regions_.begin(), regions_.end(),
            [](const MemslotRegion& a, const MemslotRegion& b) { return a.gfn_begin < b.gfn_begin; });
  keys_.reserve(regions_.size());
  for (const MemslotRegion& r : regions_) {
    assert(r.pages != 0);
    assert(keys_.empty() || regions_[keys_.size() - 1].gfn_begin + regions_[keys_.size() - 1].pages <= r.gfn_begin);
    keys_.push_back(r.gfn_begin);
  }
  build_buckets();
}

void MemslotSnapshot::build_buckets() {
  bucket_first_.assign(2, 0);
  if (regions_.empty()) return;
  // About two buckets per region, each a power-of-two number of gfns wide.
  const std::uint64_t span = regions_.back().gfn_begin + regions_.back().pages - regions_.front().gfn_begin;
  const std::uint64_t want = std::min<std::uint64_t>(std::bit_ceil(2 * regions_.size()), kMaxBuckets);
  bucket_base_ = regions_.front().gfn_begin;
  bucket_shift_ = 0;
  while ((span >> bucket_shift_) > want) ++bucket_shift_;
  last_bucket_ = (span - 1) >> bucket_shift_;
  bucket_first_.assign(last_bucket_ + 2, 0);
  std::size_t r = 0;
  for (std::uint64_t b = 0; b <= last_bucket_; ++b) {
    const std::uint64_t start = bucket_base_ + (b << bucket_shift_);
    while (r + 1 < keys_.size() && keys_[r + 1] <= start) ++r;
    bucket_first_[b] = static_cast<std::uint32_t>(r);
  }
  bucket_first_[last_bucket_ + 1] = static_cast<std::uint32_t>(keys_.size() - 1);
}

}  // namespace vmmu
