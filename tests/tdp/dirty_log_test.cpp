// Dirty logging: enabling it (eager / lazy splitting, huge leaves write-protected or
// dropped), the bitmap with get / clear-and-reprotect, the rings, dirty-bit tracking.
#include <gtest/gtest.h>

#include <random>
#include <set>

#include "tdp/support/tdp_fixture.hpp"

namespace vmmu::tdp {
namespace {

using test::HostMemory;
using test::TdpVm;

using test::k2M;

std::set<std::uint64_t> bits_of(const std::vector<std::uint64_t>& words) {
  std::set<std::uint64_t> out;
  for (std::size_t i = 0; i < words.size(); ++i) {
    for (std::uint64_t w = words[i]; w != 0; w &= w - 1) out.insert(i * 64 + static_cast<unsigned>(__builtin_ctzll(w)));
  }
  return out;
}

struct Setup {
  const char* name;
  SplitPolicy split;
  HugeOnDirtyLog huge;
  DirtyTracking tracking;
  TdpKind kind;
};

class DirtyLog : public ::testing::TestWithParam<Setup> {
 protected:
  TdpConfig config() const {
    TdpConfig c;
    c.policies.split = GetParam().split;
    c.policies.huge_on_dirty_log = GetParam().huge;
    c.policies.dirty_tracking = GetParam().tracking;
    c.format.kind = GetParam().kind;
    return c;
  }
};

// Writes to random pages are exactly the pages the next harvest reports, round after round,
// whatever the policies; huge mappings made before logging are handled by each policy.
TEST_P(DirtyLog, EveryWriteIsReportedOnceAndNothingElse) {
  TdpVm vm(config());
  HostMemory mem(8 * k2M);
  vm.add_slot(1, Gfn(0), mem, k2M);
  auto& v = vm.vcpu();
  for (std::uint64_t p = 0; p < mem.pages(); p += 7) ASSERT_TRUE(vm.write64(v, gpa_of(Gfn(p)), p));
  EXPECT_GT(vm.mmu->stats().leaves[2], 0u) << "populated with 2M leaves";
  ASSERT_TRUE(vm.slots.set_flags(SlotId{1}, MemslotFlags::log_dirty()));
  EXPECT_FALSE(vm.mmu->check_invariants().has_value());
  std::mt19937_64 rng(42);
  for (int round = 0; round < 20; ++round) {
    std::set<std::uint64_t> written;
    for (int i = 0; i < 200; ++i) {
      const std::uint64_t p = rng() % mem.pages();
      written.insert(p);
      ASSERT_TRUE(vm.write64(v, gpa_of(Gfn(p)) + 8, static_cast<std::uint64_t>(round)));
      // Reads never dirty anything.
      ASSERT_TRUE(vm.read64(v, gpa_of(Gfn(rng() % mem.pages()))));
    }
    auto log = vm.mmu->get_dirty_log(SlotId{1});
    ASSERT_TRUE(log);
    EXPECT_EQ(bits_of(*log), written) << "round " << round;
    ASSERT_FALSE(vm.mmu->check_invariants().has_value());
  }
  // Data written through the tables is in the slot's memory.
  for (std::uint64_t p = 0; p < mem.pages(); p += 7) {
    std::uint64_t raw = 0;
    std::memcpy(&raw, mem.data() + (p << kPageShift), 8);
    ASSERT_EQ(raw, p);
  }
  ASSERT_TRUE(vm.slots.set_flags(SlotId{1}, MemslotFlags::none()));
  EXPECT_FALSE(vm.mmu->check_invariants().has_value());
}

INSTANTIATE_TEST_SUITE_P(
    Policies, DirtyLog,
    ::testing::Values(Setup{"eager", SplitPolicy::Eager, HugeOnDirtyLog::WriteProtect, DirtyTracking::WriteProtect, TdpKind::Ept},
                      Setup{"lazy_wp", SplitPolicy::Lazy, HugeOnDirtyLog::WriteProtect, DirtyTracking::WriteProtect, TdpKind::Ept},
                      Setup{"lazy_drop", SplitPolicy::Lazy, HugeOnDirtyLog::Drop, DirtyTracking::WriteProtect, TdpKind::Ept},
                      Setup{"dbits_eager", SplitPolicy::Eager, HugeOnDirtyLog::WriteProtect, DirtyTracking::DirtyBits, TdpKind::Ept},
                      Setup{"dbits_lazy", SplitPolicy::Lazy, HugeOnDirtyLog::WriteProtect, DirtyTracking::DirtyBits, TdpKind::Npt},
                      Setup{"npt_lazy_wp", SplitPolicy::Lazy, HugeOnDirtyLog::WriteProtect, DirtyTracking::WriteProtect, TdpKind::Npt}),
    [](const ::testing::TestParamInfo<Setup>& param) { return std::string(param.param.name); });

TEST(DirtyLogPolicy, EagerSplitsWithoutFaultsLazyKeepsHugeReadable) {
  for (SplitPolicy split : {SplitPolicy::Eager, SplitPolicy::Lazy}) {
    TdpConfig c;
    c.policies.split = split;
    TdpVm vm(c);
    HostMemory mem(4 * k2M);
    vm.add_slot(1, Gfn(0), mem, k2M);
    auto& v = vm.vcpu();
    for (std::uint64_t p = 0; p < mem.pages(); p += 512) ASSERT_TRUE(vm.write64(v, gpa_of(Gfn(p)), 1));
    ASSERT_EQ(vm.mmu->stats().leaves[2], 4u);
    ASSERT_TRUE(vm.slots.set_flags(SlotId{1}, MemslotFlags::log_dirty()));
    const TdpStats s = vm.mmu->stats();
    if (split == SplitPolicy::Eager) {
      EXPECT_EQ(s.eager_splits, 4u);
      EXPECT_EQ(s.leaves[1], mem.pages());
      EXPECT_EQ(s.leaves[2], 0u);
    } else {
      EXPECT_EQ(s.leaves[2], 4u) << "huge leaves stay, read-only";
      const std::uint64_t faults = v.stats().faults;
      for (std::uint64_t p = 0; p < mem.pages(); ++p) ASSERT_TRUE(vm.read64(v, gpa_of(Gfn(p))));
      EXPECT_EQ(v.stats().faults, faults) << "reads of write-protected huge leaves do not fault";
      ASSERT_TRUE(vm.write64(v, Gpa(0x1000), 2));
      EXPECT_EQ(v.stats().lazy_splits, 1u);
      EXPECT_EQ(vm.mmu->stats().leaves[2], 3u);
    }
  }
}

TEST(DirtyLogPolicy, DroppedHugeLeavesMakeEveryReadFault) {
  TdpConfig c;
  c.policies.split = SplitPolicy::Lazy;
  c.policies.huge_on_dirty_log = HugeOnDirtyLog::Drop;
  TdpVm vm(c);
  HostMemory mem(2 * k2M);
  vm.add_slot(1, Gfn(0), mem, k2M);
  auto& v = vm.vcpu();
  for (std::uint64_t p = 0; p < mem.pages(); p += 512) ASSERT_TRUE(vm.write64(v, gpa_of(Gfn(p)), 1));
  ASSERT_TRUE(vm.slots.set_flags(SlotId{1}, MemslotFlags::log_dirty()));
  EXPECT_EQ(vm.mmu->stats().leaves[2], 0u);
  const std::uint64_t faults = v.stats().faults;
  for (std::uint64_t p = 0; p < mem.pages(); ++p) ASSERT_TRUE(vm.read64(v, gpa_of(Gfn(p))));
  EXPECT_EQ(v.stats().faults - faults, mem.pages());
  EXPECT_FALSE(vm.mmu->check_invariants().has_value());
}

TEST(DirtyLogClear, ManualProtectClearsAndReprotectsOnlyTheMask) {
  TdpVm vm;
  HostMemory mem(256 * kPageSize);
  vm.add_slot(1, Gfn(0), mem);
  auto& v = vm.vcpu();
  ASSERT_TRUE(vm.slots.set_flags(SlotId{1}, MemslotFlags::log_dirty()));
  for (std::uint64_t p : {1u, 2u, 3u, 70u}) ASSERT_TRUE(vm.write64(v, gpa_of(Gfn(p)), p));
  auto peek = vm.mmu->peek_dirty_log(SlotId{1});
  ASSERT_TRUE(peek);
  EXPECT_EQ(bits_of(*peek), (std::set<std::uint64_t>{1, 2, 3, 70}));
  // Clear pages 1 and 70 only.
  std::vector<std::uint64_t> mask(2, 0);
  mask[0] = 1u << 1;
  mask[1] = std::uint64_t{1} << 6;
  ASSERT_TRUE(vm.mmu->clear_dirty_log(SlotId{1}, 0, 128, mask));
  EXPECT_FALSE(vm.mmu->lookup(gpa_of(Gfn(1)))->attrs.write);
  EXPECT_TRUE(vm.mmu->lookup(gpa_of(Gfn(2)))->attrs.write);
  EXPECT_FALSE(vm.mmu->lookup(gpa_of(Gfn(70)))->attrs.write);
  auto after = vm.mmu->peek_dirty_log(SlotId{1});
  EXPECT_EQ(bits_of(*after), (std::set<std::uint64_t>{2, 3}));
  ASSERT_TRUE(vm.write64(v, gpa_of(Gfn(1)), 9));  // re-protected: faults and logs again
  EXPECT_EQ(bits_of(*vm.mmu->peek_dirty_log(SlotId{1})), (std::set<std::uint64_t>{1, 2, 3}));
  EXPECT_FALSE(vm.mmu->check_invariants().has_value());
  // Errors are the memslots' own, and change nothing.
  EXPECT_EQ(vm.mmu->clear_dirty_log(SlotId{9}, 0, 64, mask).error(), MemslotError::UnknownSlot);
  EXPECT_EQ(vm.mmu->clear_dirty_log(SlotId{1}, 250, 64, mask).error(), MemslotError::RangeOutsideSlot);
}

TEST(DirtyRingLog, HarvestResetReprotects) {
  TdpConfig c;
  c.dirty_ring_size = 64;
  TdpVm vm(c);
  HostMemory mem(256 * kPageSize);
  vm.add_slot(3, Gfn(0x1000), mem);
  auto& v = vm.vcpu();
  ASSERT_TRUE(vm.slots.set_flags(SlotId{3}, MemslotFlags::log_dirty()));
  for (std::uint64_t p : {5u, 6u, 5u}) ASSERT_TRUE(vm.write64(v, gpa_of(Gfn(0x1000 + p)), p));
  std::vector<DirtyGfn> got;
  EXPECT_EQ(vm.mmu->harvest_dirty_ring(v, got), 2u) << "the second write to page 5 did not fault";
  EXPECT_EQ(got, (std::vector<DirtyGfn>{{SlotId{3}, 5}, {SlotId{3}, 6}}));
  EXPECT_FALSE(vm.mmu->check_invariants().has_value());
  EXPECT_EQ(vm.mmu->reset_dirty_ring(v), 2u);
  EXPECT_FALSE(vm.mmu->lookup(gpa_of(Gfn(0x1005)))->attrs.write);
  ASSERT_TRUE(vm.write64(v, gpa_of(Gfn(0x1005)), 1));
  got.clear();
  EXPECT_EQ(vm.mmu->harvest_dirty_ring(v, got), 1u);
  EXPECT_FALSE(vm.mmu->check_invariants().has_value());
}

TEST(DirtyRingLog, FullRingExitsUntilReset) {
  TdpConfig c;
  c.dirty_ring_size = 16;  // 16 entries, 8 kept in reserve
  TdpVm vm(c);
  HostMemory mem(256 * kPageSize);
  vm.add_slot(1, Gfn(0), mem);
  auto& v = vm.vcpu();
  ASSERT_TRUE(vm.slots.set_flags(SlotId{1}, MemslotFlags::log_dirty()));
  std::uint64_t p = 0;
  for (; p < 8; ++p) ASSERT_TRUE(vm.write64(v, gpa_of(Gfn(p)), p));
  auto full = vm.write64(v, gpa_of(Gfn(p)), p);
  ASSERT_FALSE(full);
  EXPECT_EQ(full.error(), AccessExit::RingFull);
  std::vector<DirtyGfn> got;
  vm.mmu->harvest_dirty_ring(v, got);
  vm.mmu->reset_dirty_ring(v);
  EXPECT_TRUE(vm.write64(v, gpa_of(Gfn(p)), p));
}

}  // namespace
}  // namespace vmmu::tdp
