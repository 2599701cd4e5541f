#include "vmmu/image/elf_core.hpp"

#include <elf.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <string>

namespace vmmu::image {
namespace {

// Copies a header out of the file: the mapping is only byte-aligned as far as the format
// promises, so headers are never accessed in place.
template <class T>
T load(std::span<const std::byte> file, std::uint64_t offset) {
  T out;
  std::memcpy(&out, file.data() + offset, sizeof(T));
  return out;
}

// offset + size <= limit, without overflowing.
constexpr bool fits(std::uint64_t offset, std::uint64_t size, std::uint64_t limit) {
  return offset <= limit && size <= limit - offset;
}

Unexpected<ImageError> fail(ImageErrorKind kind, std::string_view path, std::string detail) {
  return Unexpected{ImageError{kind, std::string(path), std::move(detail)}};
}

std::string_view elf_type_name(unsigned type) {
  switch (type) {
    case ET_NONE: return "no file type";
    case ET_REL: return "relocatable object";
    case ET_EXEC: return "executable";
    case ET_DYN: return "shared object or PIE";
    default: return "unknown type";
  }
}

}  // namespace

bool has_elf_magic(std::span<const std::byte> head) {
  return head.size() >= SELFMAG && std::memcmp(head.data(), ELFMAG, SELFMAG) == 0;
}

Result<std::vector<ImageSegment>, ImageError> parse_elf_core(std::span<const std::byte> file,
                                                             std::string_view path) {
  const std::uint64_t size = file.size();
  if (size < EI_NIDENT || !has_elf_magic(file)) {
    return fail(ImageErrorKind::Truncated, path, "the ELF identification is incomplete");
  }
  const auto elf_class = std::to_integer<unsigned>(file[EI_CLASS]);
  if (elf_class != ELFCLASS64) {
    return fail(ImageErrorKind::NotElf64, path,
                elf_class == ELFCLASS32 ? std::string("ELFCLASS32 file")
                                        : fmt::format("unknown ELF class {}", elf_class));
  }
  if (std::to_integer<unsigned>(file[EI_DATA]) != ELFDATA2LSB) {
    return fail(ImageErrorKind::NotLittleEndian, path, "EI_DATA is not ELFDATA2LSB");
  }
  if (size < sizeof(Elf64_Ehdr)) {
    return fail(ImageErrorKind::Truncated, path,
                fmt::format("the ELF header needs {} bytes, the file has {}", sizeof(Elf64_Ehdr), size));
  }
  const auto ehdr = load<Elf64_Ehdr>(file, 0);
  if (ehdr.e_type != ET_CORE) {
    return fail(ImageErrorKind::NotCore, path,
                fmt::format("e_type {} ({}), a core is {}", ehdr.e_type, elf_type_name(ehdr.e_type), ET_CORE));
  }

  // More than 65534 program headers: e_phnum holds PN_XNUM and the real count is in the
  // first section header's sh_info (System V gABI, "Program Header"; QEMU writes this form
  // for guests with many memory ranges).
  std::uint64_t phnum = ehdr.e_phnum;
  if (ehdr.e_phnum == PN_XNUM) {
    if (!fits(ehdr.e_shoff, sizeof(Elf64_Shdr), size) || ehdr.e_shoff == 0) {
      return fail(ImageErrorKind::Truncated, path,
                  fmt::format("e_phnum is PN_XNUM but section header 0 at offset {:#x} is not in the {}-byte file",
                              ehdr.e_shoff, size));
    }
    phnum = load<Elf64_Shdr>(file, ehdr.e_shoff).sh_info;
  }
  if (phnum != 0 && ehdr.e_phentsize != sizeof(Elf64_Phdr)) {
    return fail(ImageErrorKind::MalformedElf, path,
                fmt::format("e_phentsize is {}, ELF64 program headers are {} bytes", ehdr.e_phentsize,
                            sizeof(Elf64_Phdr)));
  }
  if (!fits(ehdr.e_phoff, phnum * sizeof(Elf64_Phdr), size)) {
    return fail(ImageErrorKind::Truncated, path,
                fmt::format("{} program headers at offset {:#x} extend beyond the {}-byte file", phnum,
                            ehdr.e_phoff, size));
  }

  std::vector<ImageSegment> segments;
  for (std::uint64_t i = 0; i < phnum; ++i) {
    const auto phdr = load<Elf64_Phdr>(file, ehdr.e_phoff + i * sizeof(Elf64_Phdr));
    if (phdr.p_type != PT_LOAD || phdr.p_filesz == 0) continue;
    if (!fits(phdr.p_offset, phdr.p_filesz, size)) {
      return fail(ImageErrorKind::Truncated, path,
                  fmt::format("segment {} (gpa {:#x}, {:#x} bytes at file offset {:#x}) extends beyond the "
                              "{}-byte file",
                              i, phdr.p_paddr, phdr.p_filesz, phdr.p_offset, size));
    }
    if (phdr.p_paddr + phdr.p_filesz < phdr.p_paddr) {
      return fail(ImageErrorKind::MalformedElf, path,
                  fmt::format("segment {} at gpa {:#x} with {:#x} bytes wraps around the address space", i,
                              phdr.p_paddr, phdr.p_filesz));
    }
    segments.push_back({Gpa(phdr.p_paddr), phdr.p_filesz, phdr.p_offset});
  }

  std::sort(segments.begin(), segments.end(), [](const auto& a, const auto& b) { return a.gpa < b.gpa; });
  for (std::size_t i = 1; i < segments.size(); ++i) {
    if (segments[i].gpa < segments[i - 1].gpa + segments[i - 1].size) {
      return fail(ImageErrorKind::OverlappingSegments, path,
                  fmt::format("gpa {:#x}..{:#x} and {:#x}..{:#x}", segments[i - 1].gpa.raw(),
                              (segments[i - 1].gpa + segments[i - 1].size).raw(), segments[i].gpa.raw(),
                              (segments[i].gpa + segments[i].size).raw()));
    }
  }
  return segments;
}

}  // namespace vmmu::image
