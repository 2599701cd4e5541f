#pragma once
// The guest-physical layout of an ELF64 core as QEMU's `dump-guest-memory` (without paging)
// writes it: every PT_LOAD program header holds guest-physical bytes at p_paddr, stored at
// p_offset in the file. A note segment (registers) comes first and is ignored here.
//
//   file:  | Elf64_Ehdr | Elf64_Phdr x N | notes | bytes of segment 0 | bytes of segment 1 | ...
//   guest: gpa p_paddr[i] .. p_paddr[i] + p_filesz[i]  <-  file p_offset[i] ..
//
// Bytes between p_filesz and p_memsz (and outside every segment) read as 0, so only the
// file part of a segment is kept.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "vmmu/core/address.hpp"
#include "vmmu/core/result.hpp"
#include "vmmu/image/image_error.hpp"

namespace vmmu::image {

// Guest-physical bytes [gpa, gpa + size) are the file's bytes [file_offset, file_offset + size).
struct ImageSegment {
  Gpa gpa;
  std::uint64_t size = 0;
  std::uint64_t file_offset = 0;
  friend constexpr bool operator==(const ImageSegment&, const ImageSegment&) = default;
};

// True when `head` starts with the ELF magic "\x7fELF": the file is then read as a core,
// whatever else it holds.
bool has_elf_magic(std::span<const std::byte> head);

// The PT_LOAD segments of an ELF64 core held in `file`, sorted by gpa, empty ones dropped.
// `path` only names the file in errors.
//
// Errors: NotElf64 (ELFCLASS32 or unknown class), NotLittleEndian, NotCore (e_type is not
// ET_CORE), Truncated (the ELF header, program-header table, PN_XNUM section header or a
// segment's bytes extend beyond the file), MalformedElf (wrong program-header entry size,
// a segment whose gpa range wraps around), OverlappingSegments (two segments share a gpa).
Result<std::vector<ImageSegment>, ImageError> parse_elf_core(std::span<const std::byte> file,
                                                             std::string_view path);

}  // namespace vmmu::image
