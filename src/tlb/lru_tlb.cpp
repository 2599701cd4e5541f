#include "vmmu/tlb/lru_tlb.hpp"

#include <algorithm>

namespace vmmu::tlb {

std::string_view to_string(TlbError e) {
  switch (e) {
    case TlbError::NoEntries: return "a TLB needs at least one entry";
    case TlbError::WaysNotDivisor: return "the ways must divide the entries";
  }
  return "unknown TLB error";
}

Result<LruTlb, TlbError> LruTlb::create(TlbShape shape) {
  if (shape.entries == 0) return Unexpected{TlbError::NoEntries};
  const std::uint32_t ways = shape.ways == 0 ? shape.entries : shape.ways;
  if (ways > shape.entries || shape.entries % ways != 0) return Unexpected{TlbError::WaysNotDivisor};
  return LruTlb(shape.entries / ways, ways);
}

void LruTlb::insert(std::uint64_t page, PageSize size, bool writable) {
  const std::uint64_t key = key_of(page, size);
  Way* set = set_of(key);
  Way* victim = set;
  for (std::uint32_t w = 0; w < ways_; ++w) {
    if (set[w].key == key) {  // refill in place (a write walk after a read fill)
      victim = &set[w];
      break;
    }
    if (victim->key != kEmpty && (set[w].key == kEmpty || set[w].stamp < victim->stamp)) victim = &set[w];
  }
  if (victim->key != key) {
    if (victim->key != kEmpty) --held_[victim->key & 3];
    ++held_[static_cast<unsigned>(size)];
  }
  *victim = Way{key, ++clock_, writable};
  hint_[hint_index(key)] = static_cast<std::uint32_t>(victim - ways_storage_.data());
}

void LruTlb::flush() {
  std::fill(ways_storage_.begin(), ways_storage_.end(), Way{});
  std::fill(std::begin(held_), std::end(held_), 0);
}

}  // namespace vmmu::tlb
