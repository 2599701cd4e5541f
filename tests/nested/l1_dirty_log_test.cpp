// Dirty logging across levels (issue 13 item 5): L1 on memslots being migrated while L2 runs
// (L2's writes through the shadow EPT appear in L1's dirty log), L1's own logging of L2 through
// its EPT's D bits, and what memslot changes and MMU-notifier invalidations do to the shadow EPT.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <random>
#include <thread>
#include <set>
#include <vector>

#include "nested/support/slot_l1.hpp"

namespace vmmu::nested::test {
namespace {

// Debug builds check every invariant after each operation, over every shadow leaf: a smaller
// migration there keeps the test well under a second under ASan.
#ifdef VMMU_CHECK_INVARIANTS
constexpr std::uint64_t kPoolHalf = 32, kRounds = 4, kWritesPerRound = 16;
#else
constexpr std::uint64_t kPoolHalf = 128, kRounds = 6, kWritesPerRound = 48;
#endif

void expect_invariants(const ShadowEptMmu& mmu) {
  const std::optional<std::string> bad = mmu.check_invariants();
  EXPECT_EQ(bad, std::nullopt) << *bad;
}

// L1's dirty log (both slots) as a set of L1 gfns, taken and cleared.
std::set<std::uint64_t> harvest(SlotL1& l1) {
  std::set<std::uint64_t> out;
  for (const auto& [slot, base, pages] : {std::tuple{SlotId{1}, std::uint64_t{0}, std::uint64_t{1024}},
                                          std::tuple{SlotId{2}, kHuge, std::uint64_t{512}}}) {
    const auto bits = l1.mmu->get_dirty_log(slot);
    EXPECT_TRUE(bits.has_value());
    if (!bits) continue;
    for (std::uint64_t p = 0; p < pages; ++p) {
      if (dirty_bit(*bits, p)) out.insert(base + p);
    }
  }
  return out;
}

std::byte* host_of(SlotL1& l1, std::uint64_t gfn) {
  return gfn < kHuge ? l1.small.data() + (gfn << 12) : l1.huge.data() + ((gfn - kHuge) << 12);
}

bool is_ept_table(std::uint64_t gfn) { return gfn >= (kPml4 >> 12) && gfn <= (kPt >> 12); }

// The migration: L0 copies all of L1's memory once logging starts, then, after each round of
// L2 writes, the frames the log names. At the end the copy must equal L1's memory, and each
// round's log must hold every frame L2 wrote (the completeness check). The log may hold, beyond
// the frames L2 wrote, only L1's EPT table frames, and must hold each whose bytes changed (A/D
// bits set by the walk, L1's own D clearing): without A/D it is exactly the frames L2 wrote.
// With A/D (EPTP bit 6) L1 also logs L2 itself: before each round it clears the D bits of its
// leaves and issues INVEPT; after it, a D bit must be set exactly where L2 wrote.
void migrate_while_l2_runs(bool ad) {
  SCOPED_TRACE(ad ? "EPT A/D on" : "EPT A/D off");
  SlotL1 l1(ad);
  std::vector<std::uint64_t> pool;  // L2 pages behind 4 KiB leaves, and as many in the 2 MiB one
  for (std::uint64_t i = 0; i < kPoolHalf; ++i) pool.push_back(i);
  for (std::uint64_t i = 512; i < 512 + kPoolHalf; ++i) pool.push_back(i);
  // Before the migration L2 has written all of them: their leaves are writable when logging starts.
  for (const std::uint64_t i : pool) ASSERT_TRUE(l1.l2_write(i, i));

  ASSERT_TRUE(l1.slots.set_flags(SlotId{1}, MemslotFlags::log_dirty()));
  ASSERT_TRUE(l1.slots.set_flags(SlotId{2}, MemslotFlags::log_dirty()));
  expect_invariants(*l1.mmu);
  std::vector<std::byte> copy_small(l1.small.bytes()), copy_huge(l1.huge.bytes());
  std::memcpy(copy_small.data(), l1.small.data(), copy_small.size());
  std::memcpy(copy_huge.data(), l1.huge.data(), copy_huge.size());
  auto copy = [&](std::uint64_t gfn) {
    std::byte* to = gfn < kHuge ? copy_small.data() + (gfn << 12) : copy_huge.data() + ((gfn - kHuge) << 12);
    std::memcpy(to, host_of(l1, gfn), kPageSize);
  };
  auto tables = [&] { return std::vector<std::byte>(l1.small.data() + kPml4, l1.small.data() + kPt + kPageSize); };

  std::mt19937_64 rng(0x6d69'6772);
  std::uniform_int_distribution<std::size_t> pick(0, pool.size() - 1);
  std::vector<std::byte> before = tables();
  for (std::uint64_t round = 0; round < kRounds; ++round) {
    SCOPED_TRACE(round);
    std::set<std::uint64_t> written, l2_written;
    if (ad) {
      // L1 starts a round of its own log of L2: it clears the D bits of its leaves (trapped
      // writes to its EPT) and issues INVEPT.
      for (const std::uint64_t i : pool) {
        const std::uint64_t e = l1.peek(SlotL1::l1_leaf(i));
        if (ept::D::get(e)) l1.mmu->write_l1(Gpa(SlotL1::l1_leaf(i)), ept::D::set(e, false));
      }
      l1.mmu->invept_single(l1.eptp);
      expect_invariants(*l1.mmu);
    }
    for (std::uint64_t n = 0; n < kWritesPerRound; ++n) {
      const std::uint64_t i = pool[pick(rng)];
      ASSERT_TRUE(l1.l2_write(i, (round << 32) | i));
      ASSERT_TRUE(l1.mmu->access(l1.vcpu, Gpa(SlotL1::l2_gpa(pool[pick(rng)])), AccessKind::Read));
      written.insert(SlotL1::l1_frame(i));
      l2_written.insert(i);
    }
    const std::set<std::uint64_t> log = harvest(l1);
    expect_invariants(*l1.mmu);
    for (const std::uint64_t f : written) EXPECT_TRUE(log.contains(f)) << "L1 frame " << f << " written by L2, not logged";
    const std::vector<std::byte> after = tables();
    for (const std::uint64_t f : log) {
      if (written.contains(f)) continue;
      EXPECT_TRUE(ad && is_ept_table(f)) << "L1 frame " << f << " logged, not written";
    }
    for (std::uint64_t t = kPml4 >> 12; t <= kPt >> 12; ++t) {
      const std::size_t at = (t - (kPml4 >> 12)) << 12;
      if (std::memcmp(before.data() + at, after.data() + at, kPageSize) != 0) {
        EXPECT_TRUE(log.contains(t)) << "L1 EPT table frame " << t << " changed, not logged";
      }
    }
    for (const std::uint64_t f : log) copy(f);
    if (ad) {
      // L1's own log of L2: D set exactly on the leaves L2 wrote through (one D for the 2 MiB leaf).
      bool huge_written = false;
      for (const std::uint64_t i : pool) {
        if (i >= 512) {
          huge_written |= l2_written.contains(i);
        } else {
          EXPECT_EQ(ept::D::get(l1.peek(SlotL1::l1_leaf(i))), l2_written.contains(i)) << "L2 page " << i;
        }
      }
      EXPECT_EQ(ept::D::get(l1.peek(kPd + 8)), huge_written);
    }
    before = after;
  }
  // The last pass, L2 stopped: nothing left to log.
  EXPECT_TRUE(harvest(l1).empty());
  EXPECT_EQ(std::memcmp(copy_small.data(), l1.small.data(), copy_small.size()), 0);
  EXPECT_EQ(std::memcmp(copy_huge.data(), l1.huge.data(), copy_huge.size()), 0);
}

TEST(NestedMigration, L2WritesAppearInL1sDirtyLogEveryRound) {
  migrate_while_l2_runs(false);
  migrate_while_l2_runs(true);
}

// L1 logging L2 by itself (no migration): EPTP bit 6 on, an L2 write sets D in L1's leaf, and
// once L1 clears it (a trapped write to its EPT) and issues INVEPT the shadow leaf is no longer
// writable: the next write faults and sets D again. A 4 KiB leaf and a 2 MiB one.
TEST(L1DirtyLogOfL2, AfterL1ClearsDAndInveptsTheNextL2WriteSetsDAgain) {
  SlotL1 l1(true);
  for (const std::uint64_t i : {std::uint64_t{5}, std::uint64_t{520}}) {
    SCOPED_TRACE(i);
    ASSERT_TRUE(l1.l2_write(i, 1));
    EXPECT_TRUE(ept::D::get(l1.peek(SlotL1::l1_leaf(i))));
    const std::uint64_t hits = l1.mmu->stats().hits;
    ASSERT_TRUE(l1.l2_write(i, 2));
    EXPECT_EQ(l1.mmu->stats().hits, hits + 1);  // dirty: the leaf is writable
    l1.mmu->write_l1(Gpa(SlotL1::l1_leaf(i)), ept::D::set(l1.peek(SlotL1::l1_leaf(i)), false));
    l1.mmu->invept_single(l1.eptp);
    ASSERT_TRUE(l1.mmu->access(l1.vcpu, Gpa(SlotL1::l2_gpa(i)), AccessKind::Read));
    EXPECT_FALSE(ept::D::get(l1.peek(SlotL1::l1_leaf(i))));  // a read leaves it clean
    ASSERT_TRUE(l1.l2_write(i, 3));
    EXPECT_TRUE(ept::D::get(l1.peek(SlotL1::l1_leaf(i)))) << "L2's write did not reach L1's D bit";
  }
  EXPECT_FALSE(ept::D::get(l1.peek(SlotL1::l1_leaf(6))));  // never written
  expect_invariants(*l1.mmu);
}

TEST(NestedMigration, LoggingStartsOnlyOnTheSlotsFlagAndHarvestErrorsAreNamed) {
  SlotL1 l1(false);
  EXPECT_EQ(l1.mmu->get_dirty_log(SlotId{1}).error(), MemslotError::NotLoggingDirty);
  EXPECT_EQ(l1.mmu->get_dirty_log(SlotId{9}).error(), MemslotError::UnknownSlot);
  ASSERT_TRUE(l1.slots.set_flags(SlotId{2}, MemslotFlags::log_dirty()));
  // A read maps the logged frame read-only; the write that follows faults and logs it.
  ASSERT_TRUE(l1.mmu->access(l1.vcpu, Gpa(SlotL1::l2_gpa(515)), AccessKind::Read));
  EXPECT_TRUE(l1.mmu->get_dirty_log(SlotId{2})->at(0) == 0);
  const std::uint64_t faults = l1.mmu->stats().faults;
  ASSERT_TRUE(l1.l2_write(515, 1));
  EXPECT_EQ(l1.mmu->stats().faults, faults + 1);
  ASSERT_TRUE(l1.l2_write(515, 2));  // now writable: a hit
  EXPECT_EQ(l1.mmu->stats().faults, faults + 1);
  // clear_dirty_log write-protects the cleared frame: the next write logs it again.
  const std::vector<std::uint64_t> mask{std::uint64_t{1} << 3};
  ASSERT_TRUE(l1.mmu->clear_dirty_log(SlotId{2}, 0, 64, mask));
  EXPECT_EQ(l1.slots.dirty_log_peek(SlotId{2})->at(0), 0u);
  ASSERT_TRUE(l1.l2_write(515, 3));
  EXPECT_EQ(l1.slots.dirty_log_peek(SlotId{2})->at(0), std::uint64_t{1} << 3);
  expect_invariants(*l1.mmu);
}

// An MMU over a bare GuestRam (a case file's L1) has no slots to log.
TEST(NestedMigration, WithoutMemslotsThereIsNoDirtyLog) {
  L1 l1;
  EXPECT_EQ(l1.mmu.get_dirty_log(SlotId{1}).error(), MemslotError::UnknownSlot);
}

TEST(ShadowEptOnMemslots, RemovedL1MemoryIsUnmapped) {
  SlotL1 l1(false);
  ASSERT_TRUE(l1.l2_write(512, 1));
  ASSERT_TRUE(l1.l2_write(512, 2));
  EXPECT_EQ(l1.mmu->stats().hits, 1u);
  ASSERT_TRUE(l1.slots.remove(SlotId{2}));
  expect_invariants(*l1.mmu);
  const L2Access a = l1.mmu->access(l1.vcpu, Gpa(SlotL1::l2_gpa(512)), AccessKind::Read);
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().kind, ExitKind::L1Mmio);
  EXPECT_EQ(a.error().l1_gpa, Gpa(kHuge << 12));
}

TEST(ShadowEptOnMemslots, MovedL1MemoryIsUnmappedAndFoundAtItsNewPlace) {
  SlotL1 l1(false);
  ASSERT_TRUE(l1.l2_write(513, 7));
  ASSERT_TRUE(l1.slots.move(SlotId{2}, Gfn(0x800)));
  expect_invariants(*l1.mmu);
  // L1's EPT still names the old frames: nothing there now.
  const L2Access a = l1.mmu->access(l1.vcpu, Gpa(SlotL1::l2_gpa(513)), AccessKind::Read);
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().kind, ExitKind::L1Mmio);
  // L1 follows the move: the same host page, at its new L1 gpa.
  l1.mmu->write_l1(Gpa(kPd + 8), (std::uint64_t{0x800} << 12) | kRwx | kWb | ept::PS::mask);
  const L2Access b = l1.mmu->access(l1.vcpu, Gpa(SlotL1::l2_gpa(513)), AccessKind::Read);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->l1_gpa, Gpa(0x801000));
  EXPECT_EQ(b->host, Hpa(reinterpret_cast<std::uintptr_t>(l1.huge.data() + 0x1000)));
}

TEST(ShadowEptOnMemslots, ReadOnlyL1MemoryIsMappedReadOnly) {
  SlotL1 l1(false);
  ASSERT_TRUE(l1.l2_write(512, 1));
  ASSERT_TRUE(l1.slots.set_flags(SlotId{2}, MemslotFlags::read_only()));
  expect_invariants(*l1.mmu);
  const L2Access w = l1.mmu->access(l1.vcpu, Gpa(SlotL1::l2_gpa(512)), AccessKind::Write);
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().kind, ExitKind::L1Mmio);  // L0 emulates (drops) the write
  EXPECT_TRUE(l1.mmu->access(l1.vcpu, Gpa(SlotL1::l2_gpa(512)), AccessKind::Read));
  expect_invariants(*l1.mmu);
}

TEST(ShadowEptOnMemslots, InvalidationUnmapsL1FramesAndTheirTablesAndFaultsWaitForItsEnd) {
  SlotL1 l1(false);
  ASSERT_TRUE(l1.l2_write(3, 1));
  EXPECT_TRUE(l1.mmu->write_tracked(gfn_of(Gpa(kPt))));
  // L1's page table's frame: its shadow page goes (its contents came from that memory).
  l1.mmu->invalidate_begin({gfn_of(Gpa(kPt)), gfn_of(Gpa(kPt)) + 1});
  EXPECT_FALSE(l1.mmu->write_tracked(gfn_of(Gpa(kPt))));
  l1.mmu->invalidate_end({gfn_of(Gpa(kPt)), gfn_of(Gpa(kPt)) + 1});
  ASSERT_TRUE(l1.l2_write(3, 2));
  EXPECT_TRUE(l1.mmu->write_tracked(gfn_of(Gpa(kPt))));
  // A data frame: its leaf goes, and an L2 access to it waits until the invalidation ends.
  const Range<Gfn> frame{Gfn(SlotL1::l1_frame(3)), Gfn(SlotL1::l1_frame(3) + 1)};
  l1.mmu->invalidate_begin(frame);
  expect_invariants(*l1.mmu);
  std::atomic<bool> done{false};
  const std::uint64_t faults = l1.mmu->stats().faults;
  std::thread vcpu([&] {
    EXPECT_TRUE(l1.l2_write(3, 3));
    done = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(done.load());
  l1.mmu->invalidate_end(frame);
  vcpu.join();
  EXPECT_TRUE(done.load());
  EXPECT_GE(l1.mmu->stats().faults, faults + 1);
  expect_invariants(*l1.mmu);
}

}  // namespace
}  // namespace vmmu::nested::test
