#include "vmmu/shadow/frame_index.hpp"

#include <algorithm>

namespace vmmu::shadow {
namespace {

constexpr std::uint64_t kMany = 1;  // tag bit of a word naming a descriptor
constexpr unsigned k1GShift = 18;

std::vector<Hpa>* many_of(std::uint64_t word) {
  return reinterpret_cast<std::vector<Hpa>*>(static_cast<std::uintptr_t>(word & ~kMany));  // NOLINT
}

}  // namespace

Rmap::Rmap(std::uint64_t word) {
  if ((word & kMany) != 0) {
    many_ = many_of(word);
  } else {
    one_ = Hpa(word);
  }
}

FrameIndex::~FrameIndex() {
  for (auto& [key, c] : chunks_) {
    for (const std::uint64_t word : c->rmap) {
      if ((word & kMany) != 0) delete many_of(word);
    }
  }
}

FrameIndex::Chunk* FrameIndex::chunk(Gfn gfn) const {
  const std::uint64_t key = gfn.raw() >> kChunkShift;
  if (key == last_key_) return last_;
  const auto it = chunks_.find(key);
  return it == chunks_.end() ? nullptr : it->second.get();
}

FrameIndex::Chunk& FrameIndex::chunk_for(Gfn gfn) {
  const std::uint64_t key = gfn.raw() >> kChunkShift;
  if (key == last_key_) return *last_;
  std::unique_ptr<Chunk>& c = chunks_[key];
  if (c == nullptr) c = std::make_unique<Chunk>();
  last_key_ = key;
  last_ = c.get();
  return *c;
}

void FrameIndex::release_if_empty(Gfn gfn, Chunk& c) {
  if (c.rmapped != 0 || c.tracked != 0) return;
  const std::uint64_t key = gfn.raw() >> kChunkShift;
  if (key == last_key_) {
    last_key_ = kNoKey;
    last_ = nullptr;
  }
  chunks_.erase(key);
}

Rmap FrameIndex::rmap(Gfn gfn) const {
  const Chunk* c = chunk(gfn);
  return c == nullptr ? Rmap() : Rmap(c->rmap[gfn.raw() % kChunkFrames]);
}

void FrameIndex::rmap_add(Gfn gfn, Hpa entry) {
  Chunk& c = chunk_for(gfn);
  std::uint64_t& word = c.rmap[gfn.raw() % kChunkFrames];
  if (word == 0) {
    word = entry.raw();
    ++c.rmapped;
  } else if ((word & kMany) == 0) {
    auto* many = new std::vector<Hpa>{Hpa(word), entry};
    word = reinterpret_cast<std::uintptr_t>(many) | kMany;
    ++descriptors_;
  } else {
    many_of(word)->push_back(entry);
  }
}

void FrameIndex::rmap_remove(Gfn gfn, Hpa entry) {
  Chunk* c = chunk(gfn);
  if (c == nullptr) return;
  std::uint64_t& word = c->rmap[gfn.raw() % kChunkFrames];
  if ((word & kMany) != 0) {
    std::vector<Hpa>* many = many_of(word);
    std::erase(*many, entry);
    if (many->size() > 1) return;
    // Back to one entry (or none) in the word itself.
    word = many->empty() ? 0 : many->front().raw();
    delete many;
    --descriptors_;
  } else if (word == entry.raw()) {
    word = 0;
  }
  if (word != 0) return;
  --c->rmapped;
  release_if_empty(gfn, *c);
}

void FrameIndex::track(Gfn gfn) {
  Chunk& c = chunk_for(gfn);
  ++c.track[gfn.raw() % kChunkFrames];
  ++c.tracked;
  ++tracked_1g_[gfn.raw() >> k1GShift];
}

void FrameIndex::untrack(Gfn gfn) {
  Chunk* c = chunk(gfn);
  std::uint16_t* count = c == nullptr ? nullptr : &c->track[gfn.raw() % kChunkFrames];
  if (count == nullptr || *count == 0) return;
  --*count;
  --c->tracked;
  const auto g = tracked_1g_.find(gfn.raw() >> k1GShift);
  if (g != tracked_1g_.end() && --g->second == 0) tracked_1g_.erase(g);
  release_if_empty(gfn, *c);
}

bool FrameIndex::tracked(Gfn gfn) const {
  const Chunk* c = chunk(gfn);
  return c != nullptr && c->track[gfn.raw() % kChunkFrames] != 0;
}

bool FrameIndex::tracked_within(Gfn gfn, unsigned level) const {
  if (level == 2) {
    const Chunk* c = chunk(gfn);
    return c != nullptr && c->tracked != 0;
  }
  return tracked_1g_.contains(gfn.raw() >> k1GShift);
}

template <class Has>
std::vector<Gfn> FrameIndex::frames_in(Range<Gfn> gfns, std::uint64_t stride, Has&& has) const {
  std::vector<Gfn> out;
  if (gfns.empty()) return out;
  const std::uint64_t first = (gfns.begin.raw() + stride - 1) / stride * stride, end = gfns.end.raw();
  auto scan = [&](std::uint64_t key, const Chunk& c) {
    const std::uint64_t base = key << kChunkShift;
    std::uint64_t g = std::max(base, first);
    g = (g + stride - 1) / stride * stride;
    for (; g < std::min(base + kChunkFrames, end); g += stride) {
      if (has(c, g - base)) out.emplace_back(g);
    }
  };
  const std::uint64_t first_key = first >> kChunkShift, last_key = (end - 1) >> kChunkShift;
  const std::uint64_t key_stride = std::max<std::uint64_t>(1, stride >> kChunkShift);
  if (first >= end) return out;
  if ((last_key - first_key) / key_stride < chunks_.size()) {
    for (std::uint64_t key = first_key; key <= last_key; key += key_stride) {
      if (const auto it = chunks_.find(key); it != chunks_.end()) scan(key, *it->second);
    }
    return out;
  }
  for (const auto& [key, c] : chunks_) {
    if (key >= first_key && key <= last_key) scan(key, *c);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<Gfn> FrameIndex::rmapped(Range<Gfn> gfns, std::uint64_t stride) const {
  return frames_in(gfns, stride, [](const Chunk& c, std::uint64_t i) { return c.rmap[i] != 0; });
}

std::vector<Gfn> FrameIndex::tracked_in(Range<Gfn> gfns) const {
  return frames_in(gfns, 1, [](const Chunk& c, std::uint64_t i) { return c.track[i] != 0; });
}

std::size_t FrameIndex::rmapped_frames() const {
  std::size_t n = 0;
  for (const auto& [key, c] : chunks_) n += c->rmapped;
  return n;
}

std::uint64_t FrameIndex::bytes() const {
  // The chunks, their hash nodes, and the descriptors (a vector and its usual two entries).
  return chunks_.size() * (sizeof(Chunk) + 4 * sizeof(std::uint64_t)) +
         descriptors_ * (sizeof(std::vector<Hpa>) + 4 * sizeof(Hpa));
}

}  // namespace vmmu::shadow
