// The per-VM shadow-page quota (issue 12 item 9): KVM's default, and the least recently used
// non-root pages reclaimed before a fault builds, roots kept.

#include <gtest/gtest.h>

#include "shadow/support/shadow_vm.hpp"

namespace vmmu::shadow::test {
namespace {

constexpr std::uint64_t k2M = std::uint64_t{1} << 21;

TEST(ShadowQuota, TheDefaultIsTwentyPerMilleOfGuestPagesAtLeast64) {
  ShadowVm small;  // 4 MiB: 1024 pages -> 20, so 64
  EXPECT_EQ(small.mmu->page_quota(), 64u);
  vmmu::test::HostMemory big(std::uint64_t{16} << 30);  // 16 GiB, never touched
  ASSERT_TRUE(small.slots.add({SlotId{2}, Gfn(std::uint64_t{1} << 30), big.pages(), big.data(), MemslotFlags::none()}));
  EXPECT_EQ(small.mmu->page_quota(), (1024 + big.pages()) * 20 / 1000);
  ShadowVm set({.host_levels = 4, .huge_on_dirty_log = tdp::HugeOnDirtyLog::WriteProtect, .page_quota = 9});
  EXPECT_EQ(set.mmu->page_quota(), 9u);
}

TEST(ShadowQuota, OverTheQuotaTheLeastRecentlyUsedPagesGoAndRootsStay) {
  ShadowVm vm({.host_levels = 4, .huge_on_dirty_log = tdp::HugeOnDirtyLog::WriteProtect, .page_quota = 12});
  // 16 page tables: PD entry k -> PT at 0x10000 + k * 4 KiB, its entry 0 -> data page k.
  for (std::uint64_t k = 1; k < 16; ++k) {
    vm.put(0x3000 + k * 8, (0x10000 + k * kPageSize) | kTableBits);
    vm.put(0x10000 + k * kPageSize, (kData + k * kPageSize) | kLeafBits);
  }
  ShadowVcpu v(*vm.mmu);
  const auto p = long4(0x1000);
  for (std::uint64_t k = 0; k < 16; ++k) {
    vm.put(kData + k * kPageSize, k);
    std::uint64_t got = 99;
    ASSERT_TRUE(vm.read64(v, p, k * k2M, &got).guest.has_value());
    EXPECT_EQ(got, k);
    EXPECT_LE(vm.mmu->stats().shadow_pages, 12u);
    EXPECT_TRUE(vm.mmu->pages().tracked(Gfn(4))) << "page table 0's shadow page reclaimed at " << k;
    // A fault through page table 0 after every other: it is never the least recently used
    // (a page of another group of 8 each time: a fault maps its group, prefetch.cpp).
    if (k > 0) {
      ASSERT_TRUE(vm.read64(v, p, k * 8 * kPageSize, &got).guest.has_value());
      EXPECT_TRUE(vm.mmu->pages().tracked(Gfn(0x10 + k))) << "page table " << k << " reclaimed just after its use";
    }
    const std::optional<std::string> bad = vm.mmu->check_invariants();
    ASSERT_FALSE(bad) << *bad;
  }
  EXPECT_GT(vm.mmu->stats().reclaimed, 0u);
  EXPECT_FALSE(v.root()->role().invalid());
  EXPECT_EQ(vm.mmu->stats().roots_built, 1u);
  EXPECT_TRUE(vm.mmu->pages().tracked(Gfn(4)));  // page table 0's shadow page survived
  EXPECT_FALSE(vm.mmu->pages().tracked(Gfn(0x11)));  // page table 1's was reclaimed
}

}  // namespace
}  // namespace vmmu::shadow::test
