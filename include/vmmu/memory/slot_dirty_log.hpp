#pragma once
// A slot's dirty log as an MMU's get / clear dirty log needs it (the TDP and shadow MMUs':
// they also write-protect what the bits name, under their own lock). One place for the
// checks and their errors.

#include <cstdint>
#include <span>
#include <vector>

#include "vmmu/core/result.hpp"
#include "vmmu/memory/memslots.hpp"

namespace vmmu {

struct SlotDirtyLog {
  MemslotSpec spec;
  DirtyBitmap* bitmap;
  // The words of `mask` for pages [first_page, first_page + pages), bits past `pages`
  // cleared. Errors: RangeOutsideSlot (also when `mask` has fewer than ceil(pages / 64) words).
  [[nodiscard]] Result<std::vector<std::uint64_t>, MemslotError> clear_words(std::uint64_t first_page,
                                                                             std::uint64_t pages,
                                                                             std::span<const std::uint64_t> mask) const;
};

// Call inside an RCU read-side section (it keeps the bitmap alive) and before the MMU's lock:
// this takes the memslot mutex, which observers hold while they wait for that lock.
// Errors: UnknownSlot (also when the slot changed meanwhile, or there are no `slots`: an MMU
// over bare guest RAM), NotLoggingDirty.
Result<SlotDirtyLog, MemslotError> slot_dirty_log(const Memslots* slots, SlotId id);

}  // namespace vmmu
