// Guest-table writes counted per root (ShadowMmu::table_writes, the adaptive MMU's measure):
// once for each root above the written table, on every write -- the walk up the parent links
// reuses its scratch, so nothing of one write may leak into the next.

#include <gtest/gtest.h>

#include "shadow/support/shadow_vm.hpp"

namespace vmmu::shadow::test {
namespace {

TEST(ShadowTableWrites, AWriteCountsOnceForEachRootAboveTheTable) {
  // Process A: PML4 0x1000 -> PDPT 0x2000 -> PD 0x3000 -> PT 0x4000. Process B: PML4 0x8000 ->
  // PDPT 0x9000 -> the same PD. PT entries 500 and 501 map PT 0x4000 and B's PDPT, to write them.
  ShadowVm vm({.unsync = false});
  vm.put(0x8000, 0x9000 | kTableBits);
  vm.put(0x9000, 0x3000 | kTableBits);
  vm.put(0x4000 + 500 * 8, 0x4000 | kLeafBits);
  vm.put(0x4000 + 501 * 8, 0x9000 | kLeafBits);
  ShadowVcpu a(*vm.mmu), b(*vm.mmu);
  const auto pa = long4(0x1000), pb = long4(0x8000);
  std::uint64_t got = 0;
  ASSERT_TRUE(vm.read64(a, pa, 0x5000, &got).guest);
  ASSERT_TRUE(vm.read64(b, pb, 0x5000, &got).guest);  // shares A's PD and PT shadow pages
  const Gfn root_a(1), root_b(8);
  const std::uint64_t pt_entry = 500 * kPageSize, b_pdpt_entry = 501 * kPageSize;
  // The shared PT, twice (a read between: no write flooding).
  ASSERT_TRUE(vm.write64(a, pa, pt_entry + 5 * 8, (kData + 0x9000) | kLeafBits).guest);
  EXPECT_EQ(vm.mmu->table_writes(root_a), 1u);
  EXPECT_EQ(vm.mmu->table_writes(root_b), 1u);
  ASSERT_TRUE(vm.read64(a, pa, 0x5000, &got).guest);
  ASSERT_TRUE(vm.write64(a, pa, pt_entry + 6 * 8, (kData + 0xa000) | kLeafBits).guest);
  EXPECT_EQ(vm.mmu->table_writes(root_a), 2u);
  EXPECT_EQ(vm.mmu->table_writes(root_b), 2u);
  // B's own PDPT, written by A: B's alone.
  ASSERT_TRUE(vm.write64(a, pa, b_pdpt_entry + 511 * 8, 0).guest);
  EXPECT_EQ(vm.mmu->table_writes(root_a), 2u);
  EXPECT_EQ(vm.mmu->table_writes(root_b), 3u);
  expect_invariants(*vm.mmu);
}

}  // namespace
}  // namespace vmmu::shadow::test
