#pragma once
// A VM for shadow MMU tests: host memory lent to memslots, a ShadowMmu over them, and a
// 4-level guest whose page tables live in that memory:
//   PML4 0x1000 -> PDPT 0x2000 -> PD 0x3000 -> PT 0x4000 (all P | RW | US)
//   gva i * 4 KiB -> gpa kData + i * 4 KiB for i < 512 (P | RW | US | A | D)

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tdp/support/tdp_fixture.hpp"
#include "vmmu/memory/memslots.hpp"
#include "vmmu/shadow/shadow_mmu.hpp"
#include "vmmu/x86/guest_entry.hpp"
#include "vmmu/x86/registers.hpp"

namespace vmmu::shadow::test {

inline constexpr std::uint64_t kTableBits = x86::gpte::P::mask | x86::gpte::RW::mask | x86::gpte::US::mask;
inline constexpr std::uint64_t kLeafBits = kTableBits | x86::gpte::A::mask | x86::gpte::D::mask;
inline constexpr std::uint64_t kData = 0x100000;

inline x86::GuestPaging long4(std::uint64_t cr3, bool wp = true) {
  x86::Registers r{.cr0 = x86::cr0::PE::mask | x86::cr0::PG::mask | (wp ? x86::cr0::WP::mask : 0),
                   .cr3 = cr3,
                   .cr4 = x86::cr4::PAE::mask,
                   .efer = x86::efer::LME::mask | x86::efer::LMA::mask | x86::efer::NXE::mask};
  return x86::GuestPaging::from(r, {});
}

struct ShadowVm {
  explicit ShadowVm(ShadowConfig config = {}, std::uint64_t bytes = std::uint64_t{4} << 20,
                    std::uint64_t backing = kPageSize)
      : mem(bytes, std::max<std::uint64_t>(backing, std::uint64_t{1} << 21)) {
    MemslotSpec s{SlotId{1}, Gfn(0), mem.pages(), mem.data(), MemslotFlags::none()};
    s.backing_page_size = backing;
    if (!slots.add(s)) std::abort();
    auto m = ShadowMmu::create(config, slots);
    if (!m) std::abort();
    mmu = std::move(*m);
    put(0x1000, 0x2000 | kTableBits);
    put(0x2000, 0x3000 | kTableBits);
    put(0x3000, 0x4000 | kTableBits);
    for (std::uint64_t i = 0; i < 512; ++i) put(0x4000 + i * 8, (kData + i * kPageSize) | kLeafBits);
  }
  // Guest memory, as the guest's own stores (not through the MMU).
  void put(std::uint64_t gpa, std::uint64_t v) {
    std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(mem.data() + gpa)).store(v);
  }
  [[nodiscard]] std::uint64_t get(std::uint64_t gpa) const {
    return std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(mem.data() + gpa)).load();
  }
  // 8 bytes at gva through the shadow MMU, as the vCPU `v` running `paging`.
  Outcome write64(ShadowVcpu& v, const x86::GuestPaging& paging, std::uint64_t gva, std::uint64_t value,
                  bool user = false) {
    return mmu->access(
        v, paging, Gva(gva), Access::write(user),
        [&](std::byte* p) {
          std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(p)).store(value, std::memory_order_relaxed);
        },
        8);
  }
  Outcome read64(ShadowVcpu& v, const x86::GuestPaging& paging, std::uint64_t gva, std::uint64_t* value) {
    return mmu->access(v, paging, Gva(gva), Access::read(), [&](std::byte* p) {
      *value = std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(p)).load(std::memory_order_relaxed);
    });
  }

  vmmu::test::HostMemory mem;
  Memslots slots;
  std::unique_ptr<ShadowMmu> mmu;
};

// Bit `page` of a dirty log.
inline bool dirty_bit(const std::vector<std::uint64_t>& bits, std::uint64_t page) {
  return (bits[page / 64] >> (page % 64)) & 1;
}

inline void expect_invariants(const ShadowMmu& mmu) {
  const std::optional<std::string> bad = mmu.check_invariants();
  EXPECT_FALSE(bad) << *bad;
}

}  // namespace vmmu::shadow::test
