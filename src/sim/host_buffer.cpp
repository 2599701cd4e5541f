#include "vmmu/sim/host_buffer.hpp"

#include <fmt/format.h>
#include <sys/mman.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <utility>

#include "vmmu/core/page_size.hpp"

#ifndef MAP_HUGE_SHIFT
#define MAP_HUGE_SHIFT 26
#endif

namespace vmmu::sim {
namespace {

void* map_anonymous(std::uint64_t bytes, int extra_flags) {
  void* p =
      ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | extra_flags, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

// Faults every page of [p, p + bytes) in for writing (the write pass follows).
void fault_in(std::byte* p, std::uint64_t bytes) {
#ifdef MADV_POPULATE_WRITE
  ::madvise(p, bytes, MADV_POPULATE_WRITE);  // best effort: the write pass faults in what it left
#else
  (void)p;
  (void)bytes;
#endif
}

// One write to every 4 KiB page (the memory is fresh and zero, so writing zero keeps it).
// Returns the pages written.
std::uint64_t touch(std::byte* p, std::uint64_t bytes) {
  std::uint64_t pages = 0;
  for (std::uint64_t off = 0; off < bytes; off += 4 * KiB, ++pages)
    *static_cast<volatile std::byte*>(p + off) = std::byte{0};
  return pages;
}

std::uint64_t now_ns() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

}  // namespace

Result<HostBuffer, std::string> HostBuffer::allocate(std::uint64_t bytes, std::uint64_t page_size,
                                                     HostMemoryOptions options) {
  if (bytes == 0 || page_size == 0 || bytes % page_size != 0)
    return Unexpected{fmt::format("host memory: {} bytes is not a positive multiple of {}", bytes, page_size)};
  HostBuffer b;
  b.size_ = bytes;
  if (page_size == GiB && options.huge_pages) {
    // hugetlbfs 1 GiB pages: 30 << MAP_HUGE_SHIFT asks for that page size.
    const int huge_1g = 30 << MAP_HUGE_SHIFT;
    if (void* p = map_anonymous(bytes, MAP_HUGETLB | huge_1g)) {
      b.mapping_ = p;
      b.mapping_size_ = bytes;
      b.data_ = static_cast<std::byte*>(p);
      b.hugetlb_ = true;
      if (options.populate) b.populate();
      return b;
    }
  }
  // Over-allocate by one page to align the start, then give the slack back.
  const std::uint64_t span = page_size > 4 * KiB ? bytes + page_size : bytes;
  void* p = map_anonymous(span, 0);
  if (p == nullptr)
    return Unexpected{fmt::format("host memory: cannot map {} ({})", size_name(bytes), std::strerror(errno))};
  const auto start = reinterpret_cast<std::uintptr_t>(p);  // address arithmetic for alignment
  const std::uintptr_t aligned = (start + page_size - 1) & ~(std::uintptr_t{page_size} - 1);
  const std::uint64_t head = aligned - start;
  const std::uint64_t tail = span - head - bytes;
  if (head != 0) ::munmap(p, head);
  if (tail != 0) ::munmap(reinterpret_cast<void*>(aligned + bytes), tail);
  b.mapping_ = reinterpret_cast<void*>(aligned);
  b.mapping_size_ = bytes;
  b.data_ = static_cast<std::byte*>(b.mapping_);
  // Best effort: with THP off the memory still works, in 4 KiB host pages.
  if (options.huge_pages && page_size > 4 * KiB) ::madvise(b.mapping_, bytes, MADV_HUGEPAGE);
  if (options.populate) b.populate();
  return b;
}

void HostBuffer::populate() {
  fault_in(data_, size_);
  const std::uint64_t t0 = now_ns();
  pages_touched_ = touch(data_, size_);
  touch_ns_ = now_ns() - t0;
}

HostBuffer::~HostBuffer() { release(); }

HostBuffer::HostBuffer(HostBuffer&& o) noexcept
    : data_(std::exchange(o.data_, nullptr)),
      size_(std::exchange(o.size_, 0)),
      mapping_(std::exchange(o.mapping_, nullptr)),
      mapping_size_(std::exchange(o.mapping_size_, 0)),
      hugetlb_(std::exchange(o.hugetlb_, false)),
      touch_ns_(std::exchange(o.touch_ns_, 0)),
      pages_touched_(std::exchange(o.pages_touched_, 0)) {}

HostBuffer& HostBuffer::operator=(HostBuffer&& o) noexcept {
  if (this != &o) {
    release();
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
    mapping_ = std::exchange(o.mapping_, nullptr);
    mapping_size_ = std::exchange(o.mapping_size_, 0);
    hugetlb_ = std::exchange(o.hugetlb_, false);
    touch_ns_ = std::exchange(o.touch_ns_, 0);
    pages_touched_ = std::exchange(o.pages_touched_, 0);
  }
  return *this;
}

void HostBuffer::release() {
  if (mapping_ != nullptr) ::munmap(mapping_, mapping_size_);
  mapping_ = nullptr;
  data_ = nullptr;
}

}  // namespace vmmu::sim
