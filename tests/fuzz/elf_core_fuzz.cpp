// libFuzzer over the ELF64 core reader alone (image::parse_elf_core): any bytes are a core
// file's contents. The answer is the segments or a named error, never a crash; and segments
// keep the promises `MemoryImage` relies on to read them without bounds checks: non-empty,
// inside the file, not wrapping around the address space, sorted by gpa and not overlapping.
// (image_maps_fuzz reads the tables inside cores; this target is faster at the headers.)

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>

#include "vmmu/image/elf_core.hpp"

namespace {

[[noreturn]] void fail(std::size_t segment, const char* what) {
  std::fprintf(stderr, "elf_core_fuzz: segment %zu %s\n", segment, what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace vmmu::image;
  const auto file = std::as_bytes(std::span(data, size));
  const auto segments = parse_elf_core(file, "fuzz.core");
  if (!segments) {
    (void)to_string(segments.error());
    return 0;
  }
  for (std::size_t i = 0; i < segments->size(); ++i) {
    const ImageSegment& s = (*segments)[i];
    if (s.size == 0) fail(i, "is empty");
    if (s.file_offset > size || s.size > size - s.file_offset) fail(i, "lies beyond the end of the file");
    if (s.gpa.raw() + s.size <= s.gpa.raw()) fail(i, "wraps around the address space");
    if (i > 0 && s.gpa < (*segments)[i - 1].gpa + (*segments)[i - 1].size) fail(i, "overlaps the one before");
  }
  return 0;
}
