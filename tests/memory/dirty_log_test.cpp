// Dirty logging: which accesses mark a page, and get / clear of the whole slot or a range.

#include <gtest/gtest.h>

#include <initializer_list>
#include <vector>

#include "memory/support/host_pages.hpp"
#include "vmmu/memory/dirty_bitmap.hpp"
#include "vmmu/memory/guest_memory.hpp"

namespace vmmu {
namespace {

using test::HostPages;

class DirtyLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(slots.add({SlotId{1}, Gfn(0x100), kPages, host.data(), MemslotFlags::log_dirty()}));
    ASSERT_TRUE(slots.add({SlotId{2}, Gfn(0x300), 4, plain.data(), {}}));
  }
  static Gpa page(std::uint64_t i, std::uint64_t offset = 0) { return gpa_of(Gfn(0x100 + i)) + offset; }
  // The dirty pages of slot 1, peeked (not cleared).
  std::vector<std::uint64_t> dirty_pages() {
    auto bits = slots.dirty_log_peek(SlotId{1});
    EXPECT_TRUE(bits.has_value());
    std::vector<std::uint64_t> out;
    for (std::uint64_t p = 0; p < kPages; ++p) {
      if (((*bits)[p / 64] >> (p % 64)) & 1) out.push_back(p);
    }
    return out;
  }
  using Pages = std::vector<std::uint64_t>;

  static constexpr std::uint64_t kPages = 200;  // more than three bitmap words
  HostPages host{kPages}, plain{4}, overlay{1};
  Memslots slots;
  GuestMemory mem{slots};
};

TEST_F(DirtyLogTest, WriteMarksItsPageDirty) {
  ASSERT_TRUE(mem.write<std::uint64_t>(page(3, 8), 1));
  ASSERT_TRUE(mem.write<std::uint8_t>(page(130, 1), 1));
  EXPECT_EQ(dirty_pages(), (Pages{3, 130}));
}

TEST_F(DirtyLogTest, SuccessfulCompareExchangeMarksDirtyAndFailedDoesNot) {
  std::uint64_t e = 5;
  EXPECT_FALSE(mem.compare_exchange<std::uint64_t>(page(7), e, 9));
  EXPECT_EQ(dirty_pages(), Pages{});
  EXPECT_TRUE(mem.compare_exchange<std::uint64_t>(page(7), e, 9));
  EXPECT_EQ(dirty_pages(), Pages{7});
}

TEST_F(DirtyLogTest, ReadsDoNotMarkDirty) {
  (void)mem.read<std::uint64_t>(page(1));
  std::array<std::byte, 64> buf{};
  ASSERT_TRUE(mem.read_bytes(page(2), buf));
  EXPECT_EQ(dirty_pages(), Pages{});
}

TEST_F(DirtyLogTest, ByteWriteAcrossPagesMarksEachPage) {
  std::array<std::byte, kPageSize + 2> buf{};
  ASSERT_TRUE(mem.write_bytes(page(63, kPageSize - 1), buf));
  EXPECT_EQ(dirty_pages(), (Pages{63, 64, 65}));
}

TEST_F(DirtyLogTest, WriteThroughAnOverlayMarksTheSlotsPage) {
  ASSERT_TRUE(slots.overlay_add(Gfn(0x100 + 70), 1, overlay.data()));
  ASSERT_TRUE(mem.write<std::uint64_t>(page(70), 1));
  ASSERT_TRUE(mem.write<std::uint64_t>(page(71), 1));
  EXPECT_EQ(dirty_pages(), (Pages{70, 71}));
  EXPECT_EQ(overlay.word(0), 1u);
}

TEST_F(DirtyLogTest, TakeReturnsAndClearsTheWholeSlot) {
  for (std::uint64_t p : std::initializer_list<std::uint64_t>{0, 63, 64, 199}) ASSERT_TRUE(mem.write<std::uint32_t>(page(p), 1));
  auto log = slots.dirty_log_take(SlotId{1});
  ASSERT_TRUE(log.has_value());
  ASSERT_EQ(log->size(), 4u);
  EXPECT_EQ((*log)[0], (std::uint64_t{1} << 63) | 1);
  EXPECT_EQ((*log)[1], 1u);
  EXPECT_EQ((*log)[2], 0u);
  EXPECT_EQ((*log)[3], std::uint64_t{1} << (199 - 192));
  EXPECT_EQ(dirty_pages(), Pages{});
}

TEST_F(DirtyLogTest, TakeOfASubRangeClearsOnlyThatRange) {
  for (std::uint64_t p : std::initializer_list<std::uint64_t>{9, 10, 74, 75, 150}) ASSERT_TRUE(mem.write<std::uint32_t>(page(p), 1));
  auto log = slots.dirty_log_take(SlotId{1}, 10, 65);  // pages 10..74, not word aligned
  ASSERT_TRUE(log.has_value());
  ASSERT_EQ(log->size(), 2u);
  EXPECT_EQ((*log)[0], 1u);                       // page 10 -> bit 0
  EXPECT_EQ((*log)[1], 1u);                       // page 74 -> bit 64
  EXPECT_EQ(dirty_pages(), (Pages{9, 75, 150}));
}

TEST_F(DirtyLogTest, ClearWithAMaskClearsOnlyTheSelectedPages) {
  for (std::uint64_t p : std::initializer_list<std::uint64_t>{60, 61, 62, 66, 100}) ASSERT_TRUE(mem.write<std::uint32_t>(page(p), 1));
  const std::vector<std::uint64_t> mask{(1u << 0) | (1u << 2) | (1u << 6)};  // pages 60, 62, 66
  ASSERT_TRUE(slots.dirty_log_clear(SlotId{1}, 60, 10, mask));
  EXPECT_EQ(dirty_pages(), (Pages{61, 100}));
}

TEST_F(DirtyLogTest, RangesPastTheSlotEndAreRejected) {
  auto take = slots.dirty_log_take(SlotId{1}, 150, 51);
  ASSERT_FALSE(take.has_value());
  EXPECT_EQ(take.error(), MemslotError::RangeOutsideSlot);
  const std::vector<std::uint64_t> mask{1};
  auto clear = slots.dirty_log_clear(SlotId{1}, 199, 2, mask);
  ASSERT_FALSE(clear.has_value());
  EXPECT_EQ(clear.error(), MemslotError::RangeOutsideSlot);
  auto short_mask = slots.dirty_log_clear(SlotId{1}, 0, 65, mask);  // needs two words
  ASSERT_FALSE(short_mask.has_value());
  EXPECT_EQ(short_mask.error(), MemslotError::RangeOutsideSlot);
  EXPECT_TRUE(slots.dirty_log_take(SlotId{1}, 150, 50).has_value());  // up to the end is fine
}

TEST_F(DirtyLogTest, SlotsWithoutLogDirtyHaveNoLog) {
  auto take = slots.dirty_log_take(SlotId{2});
  ASSERT_FALSE(take.has_value());
  EXPECT_EQ(take.error(), MemslotError::NotLoggingDirty);
  auto unknown = slots.dirty_log_take(SlotId{9});
  ASSERT_FALSE(unknown.has_value());
  EXPECT_EQ(unknown.error(), MemslotError::UnknownSlot);
  ASSERT_TRUE(mem.write<std::uint64_t>(gpa_of(Gfn(0x300)), 1));  // no bitmap to mark: fine
}

TEST_F(DirtyLogTest, TheBitmapFollowsTheSlotWhenItMoves) {
  ASSERT_TRUE(mem.write<std::uint64_t>(page(5), 1));
  ASSERT_TRUE(slots.move(SlotId{1}, Gfn(0x1000)));
  ASSERT_TRUE(mem.write<std::uint64_t>(gpa_of(Gfn(0x1000 + 6)), 1));
  EXPECT_EQ(dirty_pages(), (Pages{5, 6}));
}

TEST_F(DirtyLogTest, EnablingLogDirtyStartsCleanAndDisablingDropsTheLog) {
  ASSERT_TRUE(mem.write<std::uint64_t>(page(5), 1));
  ASSERT_TRUE(slots.set_flags(SlotId{1}, MemslotFlags::none()));
  ASSERT_TRUE(mem.write<std::uint64_t>(page(6), 1));
  EXPECT_EQ(slots.dirty_log_peek(SlotId{1}).error(), MemslotError::NotLoggingDirty);
  ASSERT_TRUE(slots.set_flags(SlotId{1}, MemslotFlags::log_dirty()));
  EXPECT_EQ(dirty_pages(), Pages{});
  ASSERT_TRUE(mem.write<std::uint64_t>(page(7), 1));
  EXPECT_EQ(dirty_pages(), Pages{7});
}

TEST(DirtyBitmap, GetAndClearMatchesABitByBitModelOnEveryAlignment) {
  // Exhaustive over small ranges: every (first, count) with first + count <= 130.
  DirtyBitmap bm(130);
  for (std::uint64_t first = 0; first <= 130; ++first) {
    for (std::uint64_t count = 0; first + count <= 130; count += 7) {
      for (std::uint64_t p = 0; p < 130; p += 3) bm.mark(p);
      auto got = bm.get_and_clear(first, count);
      for (std::uint64_t i = 0; i < count; ++i) {
        const bool want = (first + i) % 3 == 0;
        ASSERT_EQ(((got[i / 64] >> (i % 64)) & 1) != 0, want) << "first " << first << " count " << count << " i " << i;
      }
      for (std::uint64_t p = 0; p < 130; ++p) {
        const bool inside = p >= first && p < first + count;
        ASSERT_EQ(bm.test(p), p % 3 == 0 && !inside) << "first " << first << " count " << count << " p " << p;
      }
      (void)bm.get_and_clear(0, 130);
    }
  }
}

}  // namespace
}  // namespace vmmu
