// Dirty logging under the shadow MMU, with the TDP MMU's calls: starting it write-protects,
// a write logs its page, harvesting write-protects again, clear_dirty_log (manual protect).

#include <gtest/gtest.h>

#include "shadow/support/shadow_vm.hpp"

namespace vmmu::shadow::test {
namespace {

constexpr std::uint64_t kDataPage = kData >> kPageShift;

TEST(ShadowDirtyLog, EveryWriteAfterAHarvestIsInTheNextOne) {
  ShadowVm vm;
  ShadowVcpu v(*vm.mmu);
  const auto p = long4(0x1000);
  // Writable leaves before logging starts.
  for (std::uint64_t i = 0; i < 4; ++i) ASSERT_TRUE(vm.write64(v, p, i * kPageSize, i).guest.has_value());
  EXPECT_EQ(vm.mmu->get_dirty_log(SlotId{1}).error(), MemslotError::NotLoggingDirty);
  EXPECT_EQ(vm.mmu->get_dirty_log(SlotId{9}).error(), MemslotError::UnknownSlot);
  ASSERT_TRUE(vm.slots.set_flags(SlotId{1}, MemslotFlags::log_dirty()));
  expect_invariants(*vm.mmu);
  // Reads do not log; a write to a page that was writable before logging does.
  std::uint64_t got = 0;
  ASSERT_TRUE(vm.read64(v, p, 2 * kPageSize, &got).guest.has_value());
  ASSERT_TRUE(vm.write64(v, p, 1 * kPageSize, 10).guest.has_value());
  ASSERT_TRUE(vm.write64(v, p, 1 * kPageSize, 11).guest.has_value());
  const auto peek = vm.mmu->peek_dirty_log(SlotId{1});
  ASSERT_TRUE(peek.has_value());
  EXPECT_TRUE(dirty_bit(*peek, kDataPage + 1));
  auto log = vm.mmu->get_dirty_log(SlotId{1});
  ASSERT_TRUE(log.has_value());
  EXPECT_TRUE(dirty_bit(*log, kDataPage + 1));
  EXPECT_FALSE(dirty_bit(*log, kDataPage + 2));
  EXPECT_FALSE(dirty_bit(*log, kDataPage + 0));
  expect_invariants(*vm.mmu);
  // Harvested: the next write to the same page faults and logs again.
  ASSERT_TRUE(vm.write64(v, p, 1 * kPageSize, 12).guest.has_value());
  log = vm.mmu->get_dirty_log(SlotId{1});
  ASSERT_TRUE(log.has_value());
  EXPECT_TRUE(dirty_bit(*log, kDataPage + 1));
  // A device's write logs too.
  ASSERT_TRUE(vm.mmu->access_gpa(Gpa(kData + 3 * kPageSize), Access::write(), [](std::byte* b) { *b = std::byte{1}; }));
  log = vm.mmu->get_dirty_log(SlotId{1});
  EXPECT_TRUE(dirty_bit(*log, kDataPage + 3));
  expect_invariants(*vm.mmu);
}

TEST(ShadowDirtyLog, ClearDirtyLogWriteProtectsTheClearedPagesOnly) {
  ShadowVm vm;
  ShadowVcpu v(*vm.mmu);
  const auto p = long4(0x1000);
  ASSERT_TRUE(vm.slots.set_flags(SlotId{1}, MemslotFlags::log_dirty()));
  ASSERT_TRUE(vm.write64(v, p, 0, 1).guest.has_value());
  ASSERT_TRUE(vm.write64(v, p, kPageSize, 1).guest.has_value());
  const std::uint64_t first = kDataPage / 64 * 64;
  std::vector<std::uint64_t> mask{std::uint64_t{1} << (kDataPage - first)};
  ASSERT_TRUE(vm.mmu->clear_dirty_log(SlotId{1}, first, 64, mask).has_value());
  const auto peek = vm.mmu->peek_dirty_log(SlotId{1});
  EXPECT_FALSE(dirty_bit(*peek, kDataPage));
  EXPECT_TRUE(dirty_bit(*peek, kDataPage + 1));
  const std::uint64_t faults = vm.mmu->stats().faults;
  ASSERT_TRUE(vm.write64(v, p, kPageSize, 2).guest.has_value());  // still writable
  EXPECT_EQ(vm.mmu->stats().faults, faults);
  ASSERT_TRUE(vm.write64(v, p, 0, 2).guest.has_value());  // protected again: faults, logs
  EXPECT_EQ(vm.mmu->stats().faults, faults + 1);
  EXPECT_TRUE(dirty_bit(*vm.mmu->peek_dirty_log(SlotId{1}), kDataPage));
  EXPECT_FALSE(vm.mmu->clear_dirty_log(SlotId{1}, vm.mem.pages(), 1, mask).has_value());
  expect_invariants(*vm.mmu);
}

}  // namespace
}  // namespace vmmu::shadow::test
