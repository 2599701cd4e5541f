#include "vmmu/memory/memslot_types.hpp"

namespace vmmu {

std::string_view to_string(MemslotError e) {
  switch (e) {
    case MemslotError::ZeroSize: return "the range has no pages";
    case MemslotError::NullHost: return "the host pointer is null";
    case MemslotError::MisalignedHost: return "the host pointer is not 4 KiB aligned";
    case MemslotError::GfnOverflow: return "the guest range goes beyond the 52-bit guest-physical space";
    case MemslotError::Overlap: return "the guest range overlaps another memslot";
    case MemslotError::UnknownFlags: return "unknown memslot flag bits (only ReadOnly and LogDirty exist)";
    case MemslotError::DuplicateId: return "a memslot with this id already exists";
    case MemslotError::UnknownSlot: return "no memslot has this id";
    case MemslotError::TooManySlots: return "the memslot limit is reached";
    case MemslotError::OverlayOutsideSlot: return "the overlay range does not lie inside one memslot";
    case MemslotError::OverlayOverlap: return "the overlay range overlaps another overlay";
    case MemslotError::UnknownOverlay: return "no overlay has this id";
    case MemslotError::NotLoggingDirty: return "the memslot does not log dirty pages";
    case MemslotError::RangeOutsideSlot: return "the page range goes past the end of the memslot";
    case MemslotError::BadPageSize:
      return "the backing page size must be 4 KiB, 2 MiB or 1 GiB, with the host memory aligned to it";
  }
  return "unknown memslot error";
}

std::string_view to_string(MemslotChangeKind k) {
  switch (k) {
    case MemslotChangeKind::Added: return "added";
    case MemslotChangeKind::Removed: return "removed";
    case MemslotChangeKind::Moved: return "moved";
    case MemslotChangeKind::FlagsChanged: return "flags-changed";
    case MemslotChangeKind::OverlayAdded: return "overlay-added";
    case MemslotChangeKind::OverlayRemoved: return "overlay-removed";
  }
  return "?";
}

}  // namespace vmmu
