#pragma once
// MemoryImage: a guest's physical memory held in a file, as a read-only pt::TableMemory<Gpa>,
// so the x86 walker and pt::TableIterator read a real guest's page tables straight from it.
//
//   raw image (QEMU `pmemsave 0 SIZE FILE`):  file offset N  = gpa N   (one segment)
//   ELF64 core (QEMU `dump-guest-memory`):    PT_LOAD p_paddr = gpa    (see elf_core.hpp)
//
// The file is mapped read-only with mmap and never read whole: images may be larger than the
// machine's memory, and sparse raw files cost nothing for their holes. Memory that no segment
// holds reads as 0, so a read never fails. The image is never written: compare_exchange
// reports failure with `expected` set to the current value, so a walker that tries to set
// A/D bits sees a "changed underneath" entry instead of writing.
//
// Segment lookup: segments are sorted by gpa; the last segment hit is cached (page-table
// walks and listings read many entries of one table in a row), and a binary search finds the
// others. Reads may come from several threads: the cache is a relaxed atomic index, a hint
// whose staleness costs only a search.

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "vmmu/core/address.hpp"
#include "vmmu/core/result.hpp"
#include "vmmu/image/elf_core.hpp"
#include "vmmu/image/image_error.hpp"

namespace vmmu::image {

static_assert(std::endian::native == std::endian::little,
              "guest entries are little-endian and are copied out of the image as they are");

enum class ImageKind : std::uint8_t { Raw, ElfCore };

class MemoryImage {
 public:
  // Maps `path` read-only. A file starting with the ELF magic is read as an ELF64 core,
  // anything else (including an empty file) as a raw image.
  //
  // Errors: CannotOpen (missing, unreadable, a directory), CannotMap, and for ELF files
  // every error of parse_elf_core (NotElf64, NotLittleEndian, NotCore, Truncated,
  // MalformedElf, OverlappingSegments).
  static Result<MemoryImage, ImageError> open(const std::string& path);

  MemoryImage(MemoryImage&& other) noexcept;
  MemoryImage& operator=(MemoryImage&& other) noexcept;
  MemoryImage(const MemoryImage&) = delete;
  MemoryImage& operator=(const MemoryImage&) = delete;
  ~MemoryImage();

  // The little-endian value at `gpa` (0 where the image holds nothing). Always has a value.
  template <class T>
  std::optional<T> read(Gpa gpa) const {
    static_assert(std::is_trivially_copyable_v<T>);
    const std::uint64_t a = gpa.raw();
    const Piece* p = find(a);
    if (p != nullptr && a + sizeof(T) <= p->end && a + sizeof(T) > a) {
      T value;
      std::memcpy(&value, p->bytes + (a - p->begin), sizeof(T));
      return value;
    }
    T value{};
    read_bytes(gpa, std::as_writable_bytes(std::span<T, 1>(&value, 1)));
    return value;
  }

  // Never writes: returns false with `expected` set to the value in the image.
  template <class T>
  bool compare_exchange(Gpa gpa, T& expected, T /*desired*/) const {
    expected = *read<T>(gpa);
    return false;
  }

  // Bytes [gpa, gpa + out.size()), zeros where the image holds nothing; may cross segments.
  void read_bytes(Gpa gpa, std::span<std::byte> out) const;

  [[nodiscard]] ImageKind kind() const { return kind_; }
  [[nodiscard]] std::uint64_t file_size() const { return map_size_; }
  // Where the guest-physical bytes are, sorted by gpa.
  [[nodiscard]] std::span<const ImageSegment> segments() const { return segments_; }

 private:
  // A segment resolved to host memory: gpa [begin, end) is at `bytes`.
  struct Piece {
    std::uint64_t begin;
    std::uint64_t end;
    const std::byte* bytes;
  };

  MemoryImage() = default;
  void release();

  // The piece holding `gpa`, or nullptr. Out of line: one call per entry read is cheap next
  // to a page-table walk, and it keeps the atomic hint out of every caller's inlining.
  const Piece* find(std::uint64_t gpa) const;

  ImageKind kind_ = ImageKind::Raw;
  const std::byte* map_ = nullptr;
  std::size_t map_size_ = 0;
  std::vector<ImageSegment> segments_;
  std::vector<Piece> pieces_;
  // Index of the piece that served the last lookup. Relaxed: it is only a hint, and a
  // stale or torn-free-but-old value just costs a binary search.
  mutable std::atomic<std::size_t> last_{0};
};

}  // namespace vmmu::image
