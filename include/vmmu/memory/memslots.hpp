#pragma once
// Memslots: guest-physical ranges backed by host memory the caller provides, modelled on
// KVM_SET_USER_MEMORY_REGION -- plus atomic sub-range overlays and sub-range dirty logs.
//
// Readers (GuestMemory, the MMUs, any thread) look gfns up in the current immutable snapshot
// inside an RCU read-side section; they never lock. Writers (add / remove / move / set_flags /
// overlays) are serialised by a mutex: each validates, builds the next snapshot, publishes it
// with one atomic pointer store and bumps generation(). A failed update changes nothing.
//
// When an update returns (except add, which only adds memory):
//   - no reader can still see the old layout: it waited for an RCU grace period, like KVM's
//     synchronize_srcu(), so the caller may free or reuse memory the update unmapped;
//   - the old snapshot is freed. add() instead frees it after a grace period without waiting.
//
// Overlays: overlay_add() maps other host memory over N pages of one slot; overlay_remove()
// restores the slot's own pages. Each is one snapshot swap, so no reader ever finds any page
// of the slot unmapped. Overlays take the flags of their slot (read-only, dirty logging: the
// slot's bitmap, by page in the slot). Removing a slot removes its overlays (their ids become
// unknown); moving a slot moves its overlays with it (they stay at the same page in the slot).
//
// Observers are told of every published update, with the writer mutex held, after the new
// snapshot is visible and before the grace period: an MMU zaps what it mapped from the old
// layout there, and the grace period then also covers its own walkers.

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <vector>

#include "vmmu/core/address.hpp"
#include "vmmu/core/result.hpp"
#include "vmmu/memory/dirty_bitmap.hpp"
#include "vmmu/memory/memslot_snapshot.hpp"
#include "vmmu/memory/memslot_types.hpp"

namespace vmmu {

class Memslots {
 public:
  using Observer = std::function<void(const MemslotChange&)>;

  Memslots();
  ~Memslots();
  Memslots(const Memslots&) = delete;
  Memslots& operator=(const Memslots&) = delete;

  // ---- updates (writers; any thread, serialised; not inside an RCU read-side section) -----

  // Adds a slot. Does not wait for readers.
  // Errors: ZeroSize, NullHost, MisalignedHost, GfnOverflow, UnknownFlags, DuplicateId,
  // TooManySlots, Overlap (with another slot).
  Status<MemslotError> add(const MemslotSpec& spec);

  // Removes a slot and its overlays; returns when no reader can use them.
  // Errors: UnknownSlot.
  Status<MemslotError> remove(SlotId id);

  // Moves a slot (and its overlays) to `new_base`, keeping its memory, flags and dirty bitmap;
  // returns when no reader can use the old range. Errors: UnknownSlot, GfnOverflow, Overlap.
  Status<MemslotError> move(SlotId id, Gfn new_base);

  // Replaces a slot's flags. Turning LogDirty on starts a clean bitmap; turning it off drops
  // the bitmap. Returns when no reader uses the old flags. Errors: UnknownSlot, UnknownFlags.
  Status<MemslotError> set_flags(SlotId id, MemslotFlags flags);

  // Maps `pages` pages of `host` over guest frames [first, first + pages), which must lie in
  // one slot; returns when no reader still sees the slot's own pages there.
  // Errors: ZeroSize, NullHost, MisalignedHost, GfnOverflow, OverlayOutsideSlot, OverlayOverlap.
  Result<OverlayId, MemslotError> overlay_add(Gfn first, std::uint64_t pages, std::byte* host);

  // Restores the slot's own pages under an overlay; returns when no reader can use the
  // overlay's memory. Errors: UnknownOverlay.
  Status<MemslotError> overlay_remove(OverlayId id);

  // ---- dirty log (any thread; concurrent with readers and guest writes) ---------------------

  // Takes and clears the dirty bits of the whole slot (KVM_GET_DIRTY_LOG): bit i of word i/64
  // is page i of the slot. Errors: UnknownSlot, NotLoggingDirty.
  Result<std::vector<std::uint64_t>, MemslotError> dirty_log_take(SlotId id);

  // Takes and clears the bits of pages [first_page, first_page + pages) of the slot: bit i is
  // page first_page + i. Any page granularity (KVM_CLEAR_DIRTY_LOG wants multiples of 64).
  // Errors: UnknownSlot, NotLoggingDirty, RangeOutsideSlot.
  Result<std::vector<std::uint64_t>, MemslotError> dirty_log_take(SlotId id, std::uint64_t first_page,
                                                                  std::uint64_t pages);

  // Clears the bits of pages first_page + i for each bit i set in `mask` (i < pages), like
  // KVM_CLEAR_DIRTY_LOG. Errors: UnknownSlot, NotLoggingDirty, RangeOutsideSlot
  // (also when `mask` has fewer than ceil(pages / 64) words).
  Status<MemslotError> dirty_log_clear(SlotId id, std::uint64_t first_page, std::uint64_t pages,
                                       std::span<const std::uint64_t> mask);

  // The bits of the whole slot without clearing them. Errors: UnknownSlot, NotLoggingDirty.
  Result<std::vector<std::uint64_t>, MemslotError> dirty_log_peek(SlotId id) const;

  // ---- queries (consistent with the last completed update) ----------------------------------

  [[nodiscard]] std::optional<MemslotSpec> slot(SlotId id) const;
  [[nodiscard]] std::vector<MemslotSpec> slots() const;        // by base gfn
  [[nodiscard]] std::vector<OverlayInfo> overlays() const;     // by first gfn
  [[nodiscard]] std::size_t slot_count() const;

  // Changes with every published update (starts at 0, +1 per update). Caches of lookups
  // (GuestMemory's, MMIO markers in the TDP MMU) tag entries with it.
  [[nodiscard]] std::uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

  // ---- readers: only inside an rcu::ReadGuard held across every use of the result ----------

  // The current snapshot; valid until the caller's read-side section ends.
  [[nodiscard]] const MemslotSnapshot& snapshot() const { return *current_.load(std::memory_order_acquire); }
  // The region that backs `gfn` in the current snapshot, or null (unbacked).
  [[nodiscard]] const MemslotRegion* find(Gfn gfn) const { return snapshot().find(gfn); }

  // ---- observers ---------------------------------------------------------------------------

  // Calls `fn` for every later update (see the header comment). Returns a handle for
  // remove_observer(). `fn` must not call back into this Memslots' updates.
  std::uint64_t add_observer(Observer fn);
  void remove_observer(std::uint64_t handle);

 private:
  struct OverlayState {
    std::uint64_t first_page;  // page in the slot
    std::uint64_t pages;
    std::byte* host;
  };
  struct SlotState {
    MemslotSpec spec;
    std::shared_ptr<DirtyBitmap> dirty;
    std::map<std::uint64_t, OverlayState> overlays;  // by overlay id
  };

  // Builds and publishes the next snapshot and tells observers with `lock` (on mutex_) held,
  // releases it, then waits for readers and frees the old snapshot (`wait`), or has it freed
  // after a grace period without waiting.
  void publish(std::unique_lock<std::mutex>& lock, MemslotChange change, bool wait);
  std::unique_ptr<MemslotSnapshot> build(std::uint64_t generation) const;
  Result<std::shared_ptr<DirtyBitmap>, MemslotError> bitmap_of(SlotId id) const;
  void check_invariants() const;

  // Read by every lookup; apart from the writer's data so writers do not evict it.
  alignas(64) std::atomic<const MemslotSnapshot*> current_;
  std::atomic<std::uint64_t> generation_{0};

  alignas(64) mutable std::mutex mutex_;
  std::map<SlotId, SlotState> slots_;
  std::map<std::uint64_t, SlotId> overlay_owner_;
  std::uint64_t next_overlay_ = 1;
  std::map<std::uint64_t, Observer> observers_;
  std::uint64_t next_observer_ = 1;
};

}  // namespace vmmu
