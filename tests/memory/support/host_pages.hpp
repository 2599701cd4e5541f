#pragma once
// HostPages: page-aligned host memory for memslot tests, filled with a recognisable pattern.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "vmmu/core/address.hpp"

namespace vmmu::test {

class HostPages {
 public:
  explicit HostPages(std::uint64_t pages)
      : pages_(pages), bytes_(static_cast<std::byte*>(std::aligned_alloc(kPageSize, pages * kPageSize))) {
    std::memset(bytes_.get(), 0, pages * kPageSize);
  }
  [[nodiscard]] std::byte* data() const { return bytes_.get(); }
  [[nodiscard]] std::byte* page(std::uint64_t i) const { return bytes_.get() + i * kPageSize; }
  [[nodiscard]] std::uint64_t pages() const { return pages_; }

  // Writes `tag` into every 8-byte word of every page, with the page index in the low bits,
  // so a reader can tell which page of which buffer it sees.
  void fill(std::uint64_t tag) {
    for (std::uint64_t p = 0; p < pages_; ++p) {
      for (std::uint64_t w = 0; w < kPageSize / 8; ++w) {
        const std::uint64_t v = tag_of(tag, p);
        std::memcpy(page(p) + w * 8, &v, 8);
      }
    }
  }
  static constexpr std::uint64_t tag_of(std::uint64_t tag, std::uint64_t page) { return (tag << 32) | page; }

  [[nodiscard]] std::uint64_t word(std::uint64_t byte_offset) const {
    std::uint64_t v;
    std::memcpy(&v, bytes_.get() + byte_offset, 8);
    return v;
  }

 private:
  struct Free {
    void operator()(std::byte* p) const { std::free(p); }
  };
  std::uint64_t pages_;
  std::unique_ptr<std::byte, Free> bytes_;
};

}  // namespace vmmu::test
