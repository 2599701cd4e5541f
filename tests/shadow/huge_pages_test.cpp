// Huge shadow leaves (issue 12 item 8, contract item 5): a guest huge page backed by a huge
// enough host mapping is one shadow leaf; never over a write-tracked frame; when dirty
// logging starts it is write-protected (reads keep it) or dropped, as the policy says, and
// the first write replaces it by a table of read-only small leaves.

#include <gtest/gtest.h>

#include "shadow/support/shadow_vm.hpp"

namespace vmmu::shadow::test {
namespace {

constexpr std::uint64_t k2M = std::uint64_t{1} << 21;
constexpr std::uint64_t kHugeGva = std::uint64_t{1} << 30;  // PDPT entry 1
constexpr std::uint64_t kHugeData = 4 * k2M;                // guest 2 MiB pages at 8 and 10 MiB

// ShadowVm plus two guest 2 MiB pages: gva 1 GiB + i * 2 MiB -> gpa 8 MiB + i * 2 MiB, with the
// PD at `pd` (a frame outside the huge pages, or inside one: a guest table in its own page).
struct HugeVm : ShadowVm {
  explicit HugeVm(ShadowConfig c = {}, std::uint64_t backing = k2M, std::uint64_t pd = 0x5000)
      : ShadowVm(c, std::uint64_t{12} << 20, backing) {
    put(0x2000 + 8, pd | kTableBits);
    for (std::uint64_t i = 0; i < 2; ++i) put(pd + i * 8, (kHugeData + i * k2M) | kLeafBits | x86::gpte::PS::mask);
  }
  std::uint64_t faults() const { return mmu->stats().faults; }
};

TEST(ShadowHugePages, AGuestHugePageBackedHugeIsOneShadowLeaf) {
  HugeVm vm;
  ShadowVcpu v(*vm.mmu);
  const auto p = long4(0x1000);
  std::uint64_t got = 0;
  vm.put(kHugeData + 5 * kPageSize + 8, 55);
  ASSERT_TRUE(vm.read64(v, p, kHugeGva + 5 * kPageSize + 8, &got).guest.has_value());
  EXPECT_EQ(got, 55u);
  const Outcome o = vm.read64(v, p, kHugeGva + 9 * kPageSize, &got);
  ASSERT_TRUE(o.guest.has_value());
  EXPECT_EQ(o.guest->page_size, k2M);
  EXPECT_EQ(o.guest->gpa, Gpa(kHugeData + 9 * kPageSize));
  EXPECT_EQ(vm.mmu->stats().huge_leaves, 1u);
  EXPECT_EQ(vm.faults(), 1u);  // the second page was mapped by the first fault
  // A write to a page whose guest D bit is set maps it writable, still huge.
  ASSERT_TRUE(vm.write64(v, p, kHugeGva + 17 * kPageSize, 3).guest.has_value());
  EXPECT_EQ(vm.get(kHugeData + 17 * kPageSize), 3u);
  EXPECT_EQ(vm.mmu->pages().rmap(Gfn(kHugeData >> kPageShift)).size(), 1u);
  expect_invariants(*vm.mmu);
}

TEST(ShadowHugePages, HostBackingSmallerThanTheGuestPageMapsSmall) {
  HugeVm vm({}, kPageSize);
  ShadowVcpu v(*vm.mmu);
  const auto p = long4(0x1000);
  std::uint64_t got = 0;
  ASSERT_TRUE(vm.read64(v, p, kHugeGva, &got).guest.has_value());
  ASSERT_TRUE(vm.read64(v, p, kHugeGva + kPageSize, &got).guest.has_value());
  EXPECT_EQ(vm.mmu->stats().huge_leaves, 0u);
  EXPECT_EQ(vm.faults(), 2u);
  expect_invariants(*vm.mmu);
}

TEST(ShadowHugePages, AGuestHugePageHoldingItsOwnTablesIsMappedSmall) {
  // The PD lies in the first huge page (at 8 MiB + 4 KiB): that page is mapped at 4K.
  HugeVm vm({}, k2M, kHugeData + kPageSize);
  ShadowVcpu v(*vm.mmu);
  const auto p = long4(0x1000);
  std::uint64_t got = 0;
  ASSERT_TRUE(vm.read64(v, p, kHugeGva, &got).guest.has_value());
  ASSERT_TRUE(vm.read64(v, p, kHugeGva + k2M, &got).guest.has_value());
  EXPECT_EQ(vm.mmu->stats().huge_leaves, 1u);  // the second page only
  EXPECT_TRUE(vm.mmu->pages().tracked(Gfn((kHugeData >> kPageShift) + 1)));
  // Writing the PD through the guest's own mapping of it is emulated (and seen).
  ASSERT_TRUE(vm.write64(v, p, kHugeGva + kPageSize + 8, (kHugeData + k2M) | kLeafBits | x86::gpte::PS::mask).guest);
  EXPECT_EQ(vm.mmu->stats().emulated, 1u);
  expect_invariants(*vm.mmu);
}

TEST(ShadowHugePages, ATableShadowedLaterInsideAHugeLeafTakesItsHugeLeafAway) {
  HugeVm vm;
  ShadowVcpu v(*vm.mmu);
  const auto p = long4(0x1000);
  std::uint64_t got = 0;
  ASSERT_TRUE(vm.read64(v, p, kHugeGva, &got).guest.has_value());
  ASSERT_EQ(vm.mmu->stats().huge_leaves, 1u);
  // A second guest address space whose PML4 lies inside the mapped huge page.
  const std::uint64_t pml4 = kHugeData + 3 * kPageSize;
  vm.put(pml4, 0x2000 | kTableBits);
  ASSERT_TRUE(vm.read64(v, long4(pml4), 0, &got).guest.has_value());
  EXPECT_TRUE(vm.mmu->pages().rmap(Gfn(kHugeData >> kPageShift)).empty());
  expect_invariants(*vm.mmu);
  ASSERT_TRUE(vm.read64(v, p, kHugeGva + 3 * kPageSize, &got).guest.has_value());
  EXPECT_EQ(got & ~x86::gpte::A::mask, 0x2000 | kTableBits);  // the PML4 entry (its A bit set by the walk)
  expect_invariants(*vm.mmu);
}

TEST(ShadowHugePages, DirtyLoggingWriteProtectsHugeLeavesReadsKeepThemAWriteSplitsOne) {
  HugeVm vm;
  ShadowVcpu v(*vm.mmu);
  const auto p = long4(0x1000);
  std::uint64_t got = 0;
  for (std::uint64_t i = 0; i < 2; ++i) ASSERT_TRUE(vm.write64(v, p, kHugeGva + i * k2M, i).guest.has_value());
  ASSERT_EQ(vm.mmu->stats().huge_leaves, 2u);
  ASSERT_TRUE(vm.slots.set_flags(SlotId{1}, MemslotFlags::log_dirty()));
  expect_invariants(*vm.mmu);
  const std::uint64_t before = vm.faults();
  for (std::uint64_t off = 0; off < 2 * k2M; off += 64 * kPageSize) {
    ASSERT_TRUE(vm.read64(v, p, kHugeGva + off, &got).guest.has_value());
  }
  EXPECT_EQ(vm.faults(), before);  // reads kept the huge leaves
  // The first write: a table of small read-only leaves replaces the huge one; only that page
  // is logged and writable.
  ASSERT_TRUE(vm.write64(v, p, kHugeGva + 7 * kPageSize, 70).guest.has_value());
  EXPECT_EQ(vm.mmu->stats().huge_splits, 1u);
  const std::uint64_t after_split = vm.faults();
  ASSERT_TRUE(vm.read64(v, p, kHugeGva + 8 * kPageSize, &got).guest.has_value());  // still mapped
  EXPECT_EQ(vm.faults(), after_split);
  ASSERT_TRUE(vm.write64(v, p, kHugeGva + 9 * kPageSize, 90).guest.has_value());  // faults, logs
  EXPECT_EQ(vm.faults(), after_split + 1);
  const auto log = vm.mmu->get_dirty_log(SlotId{1});
  ASSERT_TRUE(log.has_value());
  const std::uint64_t first = kHugeData >> kPageShift;
  for (std::uint64_t i = 0; i < 1024; ++i) EXPECT_EQ(dirty_bit(*log, first + i), i == 7 || i == 9) << i;
  expect_invariants(*vm.mmu);
}

TEST(ShadowHugePages, DropPolicyZapsHugeLeavesWhenLoggingStarts) {
  HugeVm vm({.host_levels = 4, .huge_on_dirty_log = tdp::HugeOnDirtyLog::Drop});
  ShadowVcpu v(*vm.mmu);
  const auto p = long4(0x1000);
  std::uint64_t got = 0;
  for (std::uint64_t i = 0; i < 2; ++i) ASSERT_TRUE(vm.read64(v, p, kHugeGva + i * k2M, &got).guest.has_value());
  ASSERT_TRUE(vm.slots.set_flags(SlotId{1}, MemslotFlags::log_dirty()));
  EXPECT_EQ(vm.mmu->stats().huge_dropped, 2u);
  const std::uint64_t before = vm.faults();
  ASSERT_TRUE(vm.read64(v, p, kHugeGva, &got).guest.has_value());
  EXPECT_EQ(vm.faults(), before + 1);
  expect_invariants(*vm.mmu);
}

}  // namespace
}  // namespace vmmu::shadow::test
