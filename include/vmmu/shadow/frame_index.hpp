#pragma once
// Per-frame state of the shadow MMU, frame-indexed as KVM's memslot arrays: for every 512
// guest frames (one 2 MiB frame) a chunk holding, per frame, one rmap word and one
// write-tracking count, and the chunk's own count of tracking pages (KVM's lpage_info
// disallow count for 2 MiB leaves). Chunks come with a frame's first rmap entry or
// tracking page and go with its last, so sparse guest RAM (case files) and memslots that
// move or go cost nothing once their leaves are unmapped.
//
// An rmap word (KVM's pte_list): 0, one shadow entry's address, or a descriptor holding
// several (bit 0 set). Entry addresses are 8-byte aligned, so bit 0 is free.
//
// Not thread-safe: the shadow MMU calls it under its lock.

#include <array>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "vmmu/core/address.hpp"

namespace vmmu::shadow {

// The shadow leaves mapping a frame (a view: valid until the frame's rmap next changes).
class Rmap {
 public:
  Rmap() = default;
  explicit Rmap(std::uint64_t word);
  [[nodiscard]] const Hpa* begin() const { return many_ != nullptr ? many_->data() : &one_; }
  [[nodiscard]] const Hpa* end() const {
    return many_ != nullptr ? many_->data() + many_->size() : &one_ + (one_.raw() != 0 ? 1 : 0);
  }
  [[nodiscard]] std::size_t size() const { return static_cast<std::size_t>(end() - begin()); }
  [[nodiscard]] bool empty() const { return begin() == end(); }

 private:
  Hpa one_{};
  const std::vector<Hpa>* many_ = nullptr;
};

class FrameIndex {
 public:
  static constexpr unsigned kChunkShift = 9;  // 512 frames: one 2 MiB frame
  static constexpr std::uint64_t kChunkFrames = std::uint64_t{1} << kChunkShift;

  FrameIndex() = default;
  ~FrameIndex();
  FrameIndex(const FrameIndex&) = delete;
  FrameIndex& operator=(const FrameIndex&) = delete;

  [[nodiscard]] Rmap rmap(Gfn gfn) const;
  void rmap_add(Gfn gfn, Hpa entry);
  void rmap_remove(Gfn gfn, Hpa entry);

  void track(Gfn gfn);
  void untrack(Gfn gfn);
  [[nodiscard]] bool tracked(Gfn gfn) const;
  // Some frame of the 2 MiB (level 2) or 1 GiB (level 3) frame holding `gfn` is tracked.
  [[nodiscard]] bool tracked_within(Gfn gfn, unsigned level) const;

  // Frames in `gfns` that are multiples of `stride` with an rmap entry / a tracking count:
  // chunk by chunk when the range spans fewer chunks than exist, else one pass over them.
  [[nodiscard]] std::vector<Gfn> rmapped(Range<Gfn> gfns, std::uint64_t stride) const;
  [[nodiscard]] std::vector<Gfn> tracked_in(Range<Gfn> gfns) const;

  // fn(gfn, rmap) for every frame with an rmap entry.
  template <class Fn>
  void for_each_rmap(Fn&& fn) const {
    for (const auto& [key, c] : chunks_) {
      for (std::uint64_t i = 0; i < kChunkFrames; ++i) {
        if (c->rmap[i] != 0) fn(Gfn((key << kChunkShift) + i), Rmap(c->rmap[i]));
      }
    }
  }
  // fn(entry) for every rmap entry of the frames first + i, bit i set in `mask` (a dirty-log
  // word): one chunk look-up per chunk, not per frame.
  template <class Fn>
  void for_each_rmap_masked(Gfn first, std::uint64_t mask, Fn&& fn) const {
    const Chunk* c = nullptr;
    std::uint64_t key = ~std::uint64_t{0};
    for (; mask != 0; mask &= mask - 1) {
      const Gfn gfn = first + static_cast<unsigned>(__builtin_ctzll(mask));
      if ((gfn.raw() >> kChunkShift) != key) {
        key = gfn.raw() >> kChunkShift;
        c = chunk(gfn);
      }
      if (c == nullptr) continue;
      for (const Hpa e : Rmap(c->rmap[gfn.raw() % kChunkFrames])) fn(e);
    }
  }
  [[nodiscard]] std::size_t rmapped_frames() const;
  // Host memory the chunks and descriptors take.
  [[nodiscard]] std::uint64_t bytes() const;

 private:
  struct Chunk {
    std::array<std::uint64_t, kChunkFrames> rmap{};
    std::array<std::uint16_t, kChunkFrames> track{};  // tracking pages per frame (KVM: u16 too)
    std::uint32_t rmapped = 0;                        // nonzero rmap words
    std::uint32_t tracked = 0;                        // tracking pages in the chunk
  };
  [[nodiscard]] Chunk* chunk(Gfn gfn) const;
  Chunk& chunk_for(Gfn gfn);
  void release_if_empty(Gfn gfn, Chunk& c);
  template <class Has>
  std::vector<Gfn> frames_in(Range<Gfn> gfns, std::uint64_t stride, Has&& has) const;

  std::unordered_map<std::uint64_t, std::unique_ptr<Chunk>> chunks_;  // gfn >> 9 -> chunk
  std::unordered_map<std::uint64_t, std::uint32_t> tracked_1g_;       // gfn >> 18 -> tracking pages
  std::size_t descriptors_ = 0;
  // The chunk last added to (a fault and its prefetch touch neighbouring frames). Only the
  // non-const members set it, so concurrent const readers race on nothing.
  static constexpr std::uint64_t kNoKey = ~std::uint64_t{0};
  std::uint64_t last_key_ = kNoKey;
  Chunk* last_ = nullptr;
};

}  // namespace vmmu::shadow
