#include "vmmu/image/memory_image.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

namespace vmmu::image {
namespace {

Unexpected<ImageError> fail(ImageErrorKind kind, const std::string& path, std::string detail) {
  return Unexpected{ImageError{kind, path, std::move(detail)}};
}

// Closes the descriptor on every path out of open(): the mapping keeps the file alive.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  [[nodiscard]] int get() const { return fd_; }

 private:
  int fd_;
};

}  // namespace

Result<MemoryImage, ImageError> MemoryImage::open(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return fail(ImageErrorKind::CannotOpen, path, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return fail(ImageErrorKind::CannotOpen, path, std::strerror(errno));
  if (S_ISDIR(st.st_mode)) return fail(ImageErrorKind::CannotOpen, path, "is a directory");
  if (!S_ISREG(st.st_mode)) return fail(ImageErrorKind::CannotOpen, path, "not a regular file");

  MemoryImage image;
  image.map_size_ = static_cast<std::size_t>(st.st_size);
  if (image.map_size_ != 0) {
    // MAP_NORESERVE: a read-only private mapping never needs swap, whatever its size.
    void* p = ::mmap(nullptr, image.map_size_, PROT_READ, MAP_PRIVATE | MAP_NORESERVE, fd.get(), 0);
    if (p == MAP_FAILED) return fail(ImageErrorKind::CannotMap, path, std::strerror(errno));
    image.map_ = static_cast<const std::byte*>(p);
  }
  const std::span<const std::byte> file(image.map_, image.map_size_);

  if (has_elf_magic(file)) {
    auto segments = parse_elf_core(file, path);
    if (!segments) return Unexpected{segments.error()};
    image.kind_ = ImageKind::ElfCore;
    image.segments_ = std::move(*segments);
    // Page tables are scattered over the whole image: read-ahead would only waste I/O.
    if (image.map_ != nullptr) ::madvise(const_cast<std::byte*>(image.map_), image.map_size_, MADV_RANDOM);
  } else if (image.map_size_ != 0) {
    image.segments_.push_back({Gpa(0), image.map_size_, 0});
  }
  image.pieces_.reserve(image.segments_.size());
  for (const ImageSegment& s : image.segments_) {
    image.pieces_.push_back({s.gpa.raw(), s.gpa.raw() + s.size, image.map_ + s.file_offset});
  }
  return image;
}

MemoryImage::MemoryImage(MemoryImage&& other) noexcept
    : kind_(other.kind_),
      map_(std::exchange(other.map_, nullptr)),
      map_size_(std::exchange(other.map_size_, 0)),
      segments_(std::move(other.segments_)),
      pieces_(std::move(other.pieces_)),
      last_(other.last_.load(std::memory_order_relaxed)) {
  other.segments_.clear();
  other.pieces_.clear();
}

MemoryImage& MemoryImage::operator=(MemoryImage&& other) noexcept {
  if (this != &other) {
    release();
    kind_ = other.kind_;
    map_ = std::exchange(other.map_, nullptr);
    map_size_ = std::exchange(other.map_size_, 0);
    segments_ = std::move(other.segments_);
    pieces_ = std::move(other.pieces_);
    other.segments_.clear();
    other.pieces_.clear();
    last_.store(other.last_.load(std::memory_order_relaxed), std::memory_order_relaxed);
  }
  return *this;
}

MemoryImage::~MemoryImage() { release(); }

void MemoryImage::release() {
  if (map_ != nullptr) ::munmap(const_cast<std::byte*>(map_), map_size_);
  map_ = nullptr;
  map_size_ = 0;
}

const MemoryImage::Piece* MemoryImage::find(std::uint64_t gpa) const {
  const std::size_t hint = last_.load(std::memory_order_relaxed);
  if (hint < pieces_.size() && pieces_[hint].begin <= gpa && gpa < pieces_[hint].end) return &pieces_[hint];
  // First piece beginning above gpa; the one before it is the only candidate.
  auto it = std::upper_bound(pieces_.begin(), pieces_.end(), gpa,
                             [](std::uint64_t a, const Piece& p) { return a < p.begin; });
  if (it == pieces_.begin()) return nullptr;
  --it;
  if (gpa >= it->end) return nullptr;
  last_.store(static_cast<std::size_t>(it - pieces_.begin()), std::memory_order_relaxed);
  return &*it;
}

void MemoryImage::read_bytes(Gpa gpa, std::span<std::byte> out) const {
  std::uint64_t a = gpa.raw();
  std::size_t done = 0;
  while (done < out.size()) {
    const std::size_t left = out.size() - done;
    const Piece* p = find(a);
    if (p != nullptr) {
      const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(left, p->end - a));
      std::memcpy(out.data() + done, p->bytes + (a - p->begin), n);
      done += n;
      a += n;
      continue;
    }
    // A hole: zeros up to the next piece (or to the end of the request).
    auto next = std::upper_bound(pieces_.begin(), pieces_.end(), a,
                                 [](std::uint64_t v, const Piece& q) { return v < q.begin; });
    std::uint64_t gap = left;
    if (next != pieces_.end()) gap = std::min<std::uint64_t>(gap, next->begin - a);
    const std::size_t n = static_cast<std::size_t>(gap);
    std::memset(out.data() + done, 0, n);
    done += n;
    a += n;
  }
}

}  // namespace vmmu::image
