#include "vmmu/memory/slot_dirty_log.hpp"

namespace vmmu {

Result<SlotDirtyLog, MemslotError> slot_dirty_log(const Memslots* slots, SlotId id) {
  if (slots == nullptr) return Unexpected{MemslotError::UnknownSlot};
  const std::optional<MemslotSpec> spec = slots->slot(id);
  if (!spec) return Unexpected{MemslotError::UnknownSlot};
  const MemslotRegion* r = slots->find(spec->base);
  if (r == nullptr || r->slot != id) return Unexpected{MemslotError::UnknownSlot};  // changed meanwhile
  if (r->dirty == nullptr) return Unexpected{MemslotError::NotLoggingDirty};
  return SlotDirtyLog{*spec, r->dirty};
}

Result<std::vector<std::uint64_t>, MemslotError> SlotDirtyLog::clear_words(std::uint64_t first_page,
                                                                           std::uint64_t pages,
                                                                           std::span<const std::uint64_t> mask) const {
  if (first_page > spec.pages || pages > spec.pages - first_page || mask.size() < (pages + 63) / 64) {
    return Unexpected{MemslotError::RangeOutsideSlot};
  }
  std::vector<std::uint64_t> words(mask.begin(), mask.begin() + static_cast<std::ptrdiff_t>((pages + 63) / 64));
  if (pages % 64 != 0) words.back() &= (std::uint64_t{1} << (pages % 64)) - 1;
  return words;
}

}  // namespace vmmu
