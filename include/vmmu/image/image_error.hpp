#pragma once
// Why a guest memory image could not be opened: a named kind plus the file and the detail
// (which header, which segment, which offsets), so the CLI prints one line that says it all.

#include <cstdint>
#include <string>
#include <string_view>

namespace vmmu::image {

enum class ImageErrorKind : std::uint8_t {
  CannotOpen,           // open() or fstat() failed (missing, unreadable, a directory)
  CannotMap,            // mmap() failed
  NotElf64,             // ELF magic, but ELFCLASS32 (or an unknown class)
  NotLittleEndian,      // ELF magic, but big-endian data
  NotCore,              // ELF magic, but e_type is not ET_CORE
  MalformedElf,         // header fields that no core can have (entry sizes, overflowing ranges)
  Truncated,            // a header or a segment lies (partly) beyond the end of the file
  OverlappingSegments,  // two PT_LOAD segments claim the same guest-physical bytes
};

std::string_view to_string(ImageErrorKind kind);

struct ImageError {
  ImageErrorKind kind = ImageErrorKind::CannotOpen;
  std::string path;    // the file, as given
  std::string detail;  // what exactly was wrong
};

// "<path>: <kind>: <detail>" on one line.
std::string to_string(const ImageError& error);

}  // namespace vmmu::image
