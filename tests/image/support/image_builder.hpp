#pragma once
// Test helpers: guest-physical pages built in memory, written out as raw images (sparse
// files) or as ELF64 cores laid out the way QEMU's dump-guest-memory lays them out, in a
// temporary directory that removes itself.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "vmmu/core/address.hpp"

namespace vmmu::image::testing {

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it.
class TempDir {
 public:
  TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir();
  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Guest-physical memory with only the pages that were written.
class GuestPages {
 public:
  template <class T>
  void write(Gpa gpa, T value) {
    std::byte bytes[sizeof(T)];
    std::memcpy(bytes, &value, sizeof(T));
    write_bytes(gpa, bytes, sizeof(T));
  }
  void write_bytes(Gpa gpa, const std::byte* bytes, std::size_t n);
  // Bytes [gpa, gpa + n), zero where nothing was written.
  [[nodiscard]] std::vector<std::byte> bytes(Gpa gpa, std::size_t n) const;
  // Every written page, by gfn.
  [[nodiscard]] const std::map<std::uint64_t, std::vector<std::byte>>& pages() const { return pages_; }

 private:
  std::map<std::uint64_t, std::vector<std::byte>> pages_;
};

// A raw image of `size` bytes (file offset == gpa); unwritten pages stay holes.
void write_raw_image(const std::string& path, const GuestPages& pages, std::uint64_t size);

struct ElfRange {
  Gpa gpa;
  std::uint64_t size;
};
// An ELF64 core (ET_CORE, little-endian) with a PT_NOTE first and one PT_LOAD per range, in
// the given order, file offsets ascending. Each segment holds the pages' bytes for its range.
void write_elf_core(const std::string& path, const GuestPages& pages, const std::vector<ElfRange>& ranges);

// The whole file's bytes, and its modification time in nanoseconds.
std::vector<std::byte> read_file(const std::string& path);
std::int64_t mtime_ns(const std::string& path);

}  // namespace vmmu::image::testing
