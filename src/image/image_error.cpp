#include "vmmu/image/image_error.hpp"

namespace vmmu::image {

std::string_view to_string(ImageErrorKind kind) {
  switch (kind) {
    case ImageErrorKind::CannotOpen: return "cannot open the memory image";
    case ImageErrorKind::CannotMap: return "cannot map the memory image";
    case ImageErrorKind::NotElf64: return "not a 64-bit ELF core";
    case ImageErrorKind::NotLittleEndian: return "not a little-endian ELF core";
    case ImageErrorKind::NotCore: return "not an ELF core file";
    case ImageErrorKind::MalformedElf: return "malformed ELF core";
    case ImageErrorKind::Truncated: return "truncated ELF core";
    case ImageErrorKind::OverlappingSegments: return "ELF core segments overlap";
  }
  return "memory image error";
}

std::string to_string(const ImageError& error) {
  std::string out = error.path;
  out += ": ";
  out += to_string(error.kind);
  if (!error.detail.empty()) {
    out += ": ";
    out += error.detail;
  }
  return out;
}

}  // namespace vmmu::image
