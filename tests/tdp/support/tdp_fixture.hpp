#pragma once
// A VM-sized setup for TDP MMU tests: guest memory (aligned for huge pages), memslots, an MMU
// and vCPU handles, and helpers to access guest-physical memory the way the hardware would.

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <sys/mman.h>
#include <string>
#include <memory>
#include <utility>
#include <vector>

#include "vmmu/memory/memslots.hpp"
#include "vmmu/tdp/tdp_mmu.hpp"

namespace vmmu::test {

inline constexpr std::uint64_t k2M = std::uint64_t{1} << 21;

// Zeroed host memory aligned to `align`, from mmap so untouched pages cost nothing.
class HostMemory {
 public:
  HostMemory(std::uint64_t bytes, std::uint64_t align = std::uint64_t{1} << 21) : bytes_(bytes) {
    map_bytes_ = bytes + align;
    void* m = mmap(nullptr, map_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) std::abort();
    map_ = static_cast<std::byte*>(m);
    const std::uintptr_t a = (reinterpret_cast<std::uintptr_t>(map_) + align - 1) & ~(align - 1);
    p_ = reinterpret_cast<std::byte*>(a);
  }
  ~HostMemory() { munmap(map_, map_bytes_); }
  HostMemory(const HostMemory&) = delete;
  HostMemory& operator=(const HostMemory&) = delete;
  [[nodiscard]] std::byte* data() const { return p_; }
  [[nodiscard]] std::uint64_t bytes() const { return bytes_; }
  [[nodiscard]] std::uint64_t pages() const { return bytes_ >> kPageShift; }

 private:
  std::uint64_t bytes_;
  std::uint64_t map_bytes_;
  std::byte* map_;
  std::byte* p_;
};

struct TdpVm {
  // Default format and budget; the policies `set` leaves in a default Policies.
  template <class Set>
    requires std::invocable<Set, tdp::Policies&>
  explicit TdpVm(Set&& set) : TdpVm(with_policies(std::forward<Set>(set))) {}
  explicit TdpVm(tdp::TdpConfig config = {}) {
    auto m = tdp::TdpMmu::create(config, slots);
    if (!m) std::abort();
    mmu = std::move(*m);
  }
  // Adds slot `id` at gfn `base` backed by `mem` with the given backing page size.
  void add_slot(std::uint32_t id, Gfn base, const HostMemory& mem, std::uint64_t backing = kPageSize,
                MemslotFlags flags = MemslotFlags::none()) {
    MemslotSpec s{SlotId{id}, base, mem.pages(), mem.data(), flags};
    s.backing_page_size = backing;
    if (!slots.add(s)) std::abort();
  }
  tdp::VcpuMmu& vcpu() {
    vcpus.push_back(std::make_unique<tdp::VcpuMmu>(*mmu));
    return *vcpus.back();
  }
  // Writes / reads 8 bytes at gpa through the tables (faulting them in).
  Status<tdp::AccessExit> write64(tdp::VcpuMmu& v, Gpa gpa, std::uint64_t value) {
    return mmu->access(v, gpa, Access::write(), [&](std::byte* p) {
      std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(p)).store(value, std::memory_order_relaxed);
    });
  }
  Result<std::uint64_t, tdp::AccessExit> read64(tdp::VcpuMmu& v, Gpa gpa) {
    std::uint64_t value = 0;
    auto s = mmu->access(v, gpa, Access::read(), [&](std::byte* p) {
      value = std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(p)).load(std::memory_order_relaxed);
    });
    if (!s) return Unexpected{s.error()};
    return value;
  }

  template <class Set>
  static tdp::TdpConfig with_policies(Set&& set) {
    tdp::TdpConfig c;
    set(c.policies);
    return c;
  }

  Memslots slots;
  std::unique_ptr<tdp::TdpMmu> mmu;
  std::vector<std::unique_ptr<tdp::VcpuMmu>> vcpus;  // destroyed before the MMU
  ~TdpVm() { vcpus.clear(); }
};

}  // namespace vmmu::test
