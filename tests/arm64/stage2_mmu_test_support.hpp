#pragma once
// Guest RAM for stage-2 MMU tests and benchmarks: anonymous memory reserved (not touched:
// MAP_NORESERVE) and aligned so that IPA/host congruence, and so block mappings, can be
// arranged at will.

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>

#include "vmmu/core/address.hpp"

namespace vmmu::arm64::testing {

inline constexpr std::uint64_t k2M = std::uint64_t{2} << 20;
inline constexpr Ipa kRam(0x4000'0000);  // 1 GiB: the tests' slots start here

class HostBuffer {
 public:
  // `bytes` usable bytes starting `skew` bytes after an `align`-aligned address.
  HostBuffer(std::uint64_t bytes, std::uint64_t align, std::uint64_t skew = 0) : size_(bytes + align + skew) {
    void* p = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error("mmap failed");
    raw_ = static_cast<std::byte*>(p);
    const auto at = reinterpret_cast<std::uintptr_t>(raw_);
    data_ = raw_ + (((at + align - 1) & ~(align - 1)) - at) + skew;
  }
  ~HostBuffer() { ::munmap(raw_, size_); }
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;

  [[nodiscard]] std::byte* data() const { return data_; }
  [[nodiscard]] Hpa hpa() const { return Hpa(reinterpret_cast<std::uintptr_t>(data_)); }

 private:
  std::size_t size_;
  std::byte* raw_;
  std::byte* data_;
};

}  // namespace vmmu::arm64::testing
