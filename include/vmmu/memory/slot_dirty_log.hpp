#pragma once
// A slot's dirty log as an MMU's get / clear dirty log needs it (the TDP and shadow MMUs':
// they also write-protect what the bits name, under their own lock). One place for the
// checks and their errors.

#include <cstdint>
#include <mutex>
#include <span>
#include <vector>

#include "vmmu/core/rcu.hpp"
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

// Get-and-clear and clear of a slot's log for an MMU whose leaves over logged pages are
// write-protected until a fault logs them (the shadow and shadow EPT MMUs): the bits change
// and `reprotect(first_gfn, words)` write-protects the pages they name, both under `lock`,
// so no fault makes a leaf writable between the two.
template <class Lock, class Reprotect>
Result<std::vector<std::uint64_t>, MemslotError> get_dirty_log_reprotecting(const Memslots* slots, SlotId id,
                                                                           Lock& lock, Reprotect&& reprotect) {
  const rcu::ReadGuard rcu;
  const Result<SlotDirtyLog, MemslotError> log = slot_dirty_log(slots, id);  // before the lock
  if (!log) return Unexpected{log.error()};
  const std::lock_guard guard(lock);
  std::vector<std::uint64_t> bits = log->bitmap->get_and_clear(0, log->spec.pages);
  reprotect(log->spec.base, std::span<const std::uint64_t>(bits));
  return bits;
}

template <class Lock, class Reprotect>
Status<MemslotError> clear_dirty_log_reprotecting(const Memslots* slots, SlotId id, std::uint64_t first_page,
                                                  std::uint64_t pages, std::span<const std::uint64_t> mask,
                                                  Lock& lock, Reprotect&& reprotect) {
  const rcu::ReadGuard rcu;
  const Result<SlotDirtyLog, MemslotError> log = slot_dirty_log(slots, id);  // before the lock
  if (!log) return Unexpected{log.error()};
  const Result<std::vector<std::uint64_t>, MemslotError> words = log->clear_words(first_page, pages, mask);
  if (!words) return Unexpected{words.error()};
  const std::lock_guard guard(lock);
  log->bitmap->clear(first_page, pages, mask);
  reprotect(log->spec.base + first_page, std::span<const std::uint64_t>(*words));
  return {};
}

}  // namespace vmmu
