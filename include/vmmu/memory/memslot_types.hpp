#pragma once
// The vocabulary of memslots: slot and overlay ids, flags, the errors updates return, and
// the descriptions that updates take and queries give back.

#include <compare>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "vmmu/core/address.hpp"

namespace vmmu {

// A slot's id, chosen by the caller (KVM: the `slot` field of kvm_userspace_memory_region).
struct SlotId {
  std::uint32_t value = 0;
  friend constexpr auto operator<=>(SlotId, SlotId) = default;
};

// An overlay's handle, chosen by vmmu when the overlay is added; never reused by one Memslots.
struct OverlayId {
  std::uint64_t value = 0;
  friend constexpr auto operator<=>(OverlayId, OverlayId) = default;
};

// Slot flags. Bits other than the named ones are rejected with MemslotError::UnknownFlags.
class MemslotFlags {
 public:
  static constexpr std::uint32_t kReadOnlyBit = 1u << 0;  // guest writes are dropped (ROM)
  static constexpr std::uint32_t kLogDirtyBit = 1u << 1;  // writes mark a dirty bitmap
  static constexpr std::uint32_t kKnownBits = kReadOnlyBit | kLogDirtyBit;

  constexpr MemslotFlags() = default;
  // Any bits, unchecked: Memslots validates them.
  static constexpr MemslotFlags from_raw(std::uint32_t bits) { return MemslotFlags(bits); }
  static constexpr MemslotFlags none() { return MemslotFlags(0); }
  static constexpr MemslotFlags read_only() { return MemslotFlags(kReadOnlyBit); }
  static constexpr MemslotFlags log_dirty() { return MemslotFlags(kLogDirtyBit); }

  [[nodiscard]] constexpr std::uint32_t raw() const { return bits_; }
  [[nodiscard]] constexpr bool is_read_only() const { return (bits_ & kReadOnlyBit) != 0; }
  [[nodiscard]] constexpr bool is_log_dirty() const { return (bits_ & kLogDirtyBit) != 0; }
  [[nodiscard]] constexpr bool known() const { return (bits_ & ~kKnownBits) == 0; }

  friend constexpr MemslotFlags operator|(MemslotFlags a, MemslotFlags b) { return MemslotFlags(a.bits_ | b.bits_); }
  friend constexpr bool operator==(MemslotFlags, MemslotFlags) = default;

 private:
  constexpr explicit MemslotFlags(std::uint32_t bits) : bits_(bits) {}
  std::uint32_t bits_ = 0;
};

// Guest frames above this are rejected: 52-bit guest-physical addresses are the architectural
// maximum (Intel SDM vol. 3A 4.1.4 MAXPHYADDR <= 52; Arm ARM D8.1.9, FEAT_LPA: 52-bit PA).
inline constexpr std::uint64_t kMaxGfnCount = std::uint64_t{1} << (52 - kPageShift);
// Most slots one Memslots holds (KVM's KVM_MEM_SLOTS_NUM).
inline constexpr std::size_t kMaxMemslots = 32768;

enum class MemslotError : std::uint8_t {
  ZeroSize,            // a slot or overlay of 0 pages
  NullHost,            // host pointer is null
  MisalignedHost,      // host pointer is not 4 KiB aligned
  GfnOverflow,         // base + pages wraps or goes beyond kMaxGfnCount
  Overlap,             // the guest range overlaps another slot
  UnknownFlags,        // flag bits other than ReadOnly / LogDirty
  DuplicateId,         // add: a slot with this id exists
  UnknownSlot,         // no slot with this id
  TooManySlots,        // add: kMaxMemslots reached
  OverlayOutsideSlot,  // the overlay range is not inside one slot
  OverlayOverlap,      // the overlay range overlaps another overlay
  UnknownOverlay,      // no overlay with this id
  NotLoggingDirty,     // dirty-log call on a slot without LogDirty
  RangeOutsideSlot,    // dirty-log page range goes past the slot's end
  BadPageSize,         // backing page size is not 4 KiB, 2 MiB or 1 GiB, or host is not aligned to it
};

std::string_view to_string(MemslotError e);

// What add() takes (KVM_SET_USER_MEMORY_REGION's fields) and what queries give back.
// `host` points at `pages` * 4 KiB the caller owns and keeps alive while the slot exists.
struct MemslotSpec {
  SlotId id;
  Gfn base;
  std::uint64_t pages = 0;
  std::byte* host = nullptr;
  MemslotFlags flags;
  // The page size of the host memory behind the slot, as the caller declares it (4 KiB, or
  // 2 MiB / 1 GiB for THP / hugetlb backing): an MMU never maps the slot with larger pages.
  // `host` must be aligned to it.
  std::uint64_t backing_page_size = kPageSize;

  [[nodiscard]] constexpr Range<Gfn> range() const { return {base, base + pages}; }
  friend constexpr bool operator==(const MemslotSpec&, const MemslotSpec&) = default;
};

// An overlay as queries give it back; `first` is a guest frame (follows the slot when it moves).
struct OverlayInfo {
  OverlayId id;
  SlotId slot;
  Gfn first;
  std::uint64_t pages = 0;
  std::byte* host = nullptr;

  [[nodiscard]] constexpr Range<Gfn> range() const { return {first, first + pages}; }
  friend constexpr bool operator==(const OverlayInfo&, const OverlayInfo&) = default;
};

// One published update, as observers (the MMUs) see it. `before` / `after` are the guest
// ranges whose mapping changed (empty where not applicable): e.g. a move has both.
enum class MemslotChangeKind : std::uint8_t { Added, Removed, Moved, FlagsChanged, OverlayAdded, OverlayRemoved };
std::string_view to_string(MemslotChangeKind k);

struct MemslotChange {
  MemslotChangeKind kind = MemslotChangeKind::Added;
  SlotId slot;
  Range<Gfn> before;
  Range<Gfn> after;
  MemslotFlags old_flags;
  MemslotFlags new_flags;
  std::uint64_t generation = 0;  // generation of the snapshot that carries the change
};

}  // namespace vmmu
