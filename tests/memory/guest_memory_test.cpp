// GuestMemory: the TableMemory contract (reads, compare-exchange on writable, read-only and
// unbacked memory), byte access across pages and slots, and the hit cache's invalidation.

#include "vmmu/memory/guest_memory.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <numeric>

#include "memory/support/host_pages.hpp"
#include "vmmu/pt/walk.hpp"

namespace vmmu {
namespace {

using test::HostPages;

class GuestMemoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    a.fill(0xa);
    b.fill(0xb);
    rom.fill(0xc);
    // [0x10, 0x14) a | [0x14, 0x18) b | gap | [0x20, 0x22) rom
    ASSERT_TRUE(slots.add({SlotId{1}, Gfn(0x10), 4, a.data(), {}}));
    ASSERT_TRUE(slots.add({SlotId{2}, Gfn(0x14), 4, b.data(), {}}));
    ASSERT_TRUE(slots.add({SlotId{3}, Gfn(0x20), 2, rom.data(), MemslotFlags::read_only()}));
  }
  static Gpa at(std::uint64_t gfn, std::uint64_t offset = 0) { return gpa_of(Gfn(gfn)) + offset; }

  HostPages a{4}, b{4}, rom{2}, other{1};
  Memslots slots;
  GuestMemory mem{slots};
};

TEST_F(GuestMemoryTest, ReadReturnsTheHostMemorysBytes) {
  EXPECT_EQ(mem.read<std::uint64_t>(at(0x12, 0x18)), HostPages::tag_of(0xa, 2));
  EXPECT_EQ(mem.read<std::uint64_t>(at(0x17, 0xff8)), HostPages::tag_of(0xb, 3));
  EXPECT_EQ(mem.read<std::uint32_t>(at(0x21, 4)), 0xcu);  // high half of tag_of(0xc, 1)
  EXPECT_EQ(mem.read<std::uint8_t>(at(0x21)), 1u);
}

TEST_F(GuestMemoryTest, ReadOfUnbackedMemoryIsNullopt) {
  EXPECT_FALSE(mem.read<std::uint64_t>(at(0x18)).has_value());
  EXPECT_FALSE(mem.read<std::uint64_t>(at(0xf, 0xff8)).has_value());
  EXPECT_FALSE(mem.read<std::uint32_t>(at(0x22)).has_value());
}

TEST_F(GuestMemoryTest, UnalignedReadMayCrossIntoTheNextSlot) {
  // Last 4 bytes of slot 1 (low half of a's tag for page 3) then first 4 of slot 2.
  const auto v = mem.read<std::uint64_t>(at(0x13, 0xffc));
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(*v, (std::uint64_t{HostPages::tag_of(0xb, 0) & 0xffffffff} << 32) | 0xa);
  EXPECT_FALSE(mem.read<std::uint64_t>(at(0x17, 0xffc)).has_value());  // runs into the gap
}

TEST_F(GuestMemoryTest, CompareExchangeSwapsWhenExpectedMatches) {
  std::uint64_t expected = HostPages::tag_of(0xa, 1);
  EXPECT_TRUE(mem.compare_exchange<std::uint64_t>(at(0x11, 8), expected, 0x1234));
  EXPECT_EQ(a.word(kPageSize + 8), 0x1234u);
}

TEST_F(GuestMemoryTest, CompareExchangeMismatchReloadsExpected) {
  std::uint64_t expected = 99;
  EXPECT_FALSE(mem.compare_exchange<std::uint64_t>(at(0x11, 8), expected, 0x1234));
  EXPECT_EQ(expected, HostPages::tag_of(0xa, 1));
  EXPECT_EQ(a.word(kPageSize + 8), HostPages::tag_of(0xa, 1));
}

TEST_F(GuestMemoryTest, CompareExchangeOnReadOnlySlotDropsTheWriteAndReportsTheValue) {
  // Matching expected: false, expected unchanged, memory unchanged ("not writable").
  std::uint64_t expected = HostPages::tag_of(0xc, 1);
  EXPECT_FALSE(mem.compare_exchange<std::uint64_t>(at(0x21, 16), expected, 0x1234));
  EXPECT_EQ(expected, HostPages::tag_of(0xc, 1));
  EXPECT_EQ(rom.word(kPageSize + 16), HostPages::tag_of(0xc, 1));
  // Mismatching expected: false, expected = current value. Also when the cache is warm.
  (void)mem.read<std::uint64_t>(at(0x21));
  std::uint64_t wrong = 5;
  EXPECT_FALSE(mem.compare_exchange<std::uint64_t>(at(0x21, 16), wrong, 0x1234));
  EXPECT_EQ(wrong, HostPages::tag_of(0xc, 1));
  std::uint32_t narrow = 1;
  EXPECT_FALSE(mem.compare_exchange<std::uint32_t>(at(0x21, 16), narrow, 7));
  EXPECT_EQ(narrow, 1u);
  EXPECT_EQ(rom.word(kPageSize + 16), HostPages::tag_of(0xc, 1));
}

TEST_F(GuestMemoryTest, CompareExchangeOnUnbackedMemoryFailsWithExpectedZero) {
  std::uint64_t expected = 42;
  EXPECT_FALSE(mem.compare_exchange<std::uint64_t>(at(0x18), expected, 1));
  EXPECT_EQ(expected, 0u);
}

TEST_F(GuestMemoryTest, TryCompareExchangeNamesWhyNothingWasWritten) {
  std::uint64_t e = 1;
  auto unbacked = mem.try_compare_exchange(at(0x18), e, 2);
  ASSERT_FALSE(unbacked.has_value());
  EXPECT_EQ(unbacked.error(), (GuestMemoryError{GuestMemoryErrorKind::Unbacked, at(0x18)}));
  EXPECT_EQ(e, 0u);
  e = 1;
  auto ro = mem.try_compare_exchange(at(0x20, 8), e, 2);
  ASSERT_FALSE(ro.has_value());
  EXPECT_EQ(ro.error().kind, GuestMemoryErrorKind::ReadOnly);
  EXPECT_EQ(e, HostPages::tag_of(0xc, 0));
  auto mis = mem.try_compare_exchange(at(0x10, 4), e, 2);
  ASSERT_FALSE(mis.has_value());
  EXPECT_EQ(mis.error().kind, GuestMemoryErrorKind::Misaligned);
  e = HostPages::tag_of(0xa, 0);
  auto ok = mem.try_compare_exchange(at(0x10, 8), e, 2);
  ASSERT_TRUE(ok.has_value());
  EXPECT_TRUE(*ok);
  auto differs = mem.try_compare_exchange(at(0x10, 8), e, 3);
  ASSERT_TRUE(differs.has_value());
  EXPECT_FALSE(*differs);
  EXPECT_EQ(e, 2u);
}

TEST_F(GuestMemoryTest, WriteToReadOnlySlotIsANamedErrorAndWritesNothing) {
  auto s = mem.write<std::uint64_t>(at(0x20, 8), 1);
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error(), (GuestMemoryError{GuestMemoryErrorKind::ReadOnly, at(0x20, 8)}));
  EXPECT_EQ(to_string(s.error()), "gpa:0x20008: write to a read-only memslot");
  EXPECT_EQ(rom.word(8), HostPages::tag_of(0xc, 0));
}

TEST_F(GuestMemoryTest, WriteToUnbackedMemoryIsANamedError) {
  auto s = mem.write<std::uint32_t>(at(0x19), 1);
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error(), (GuestMemoryError{GuestMemoryErrorKind::Unbacked, at(0x19)}));
}

TEST_F(GuestMemoryTest, ByteReadCrossesPagesAndAdjacentSlots) {
  std::array<std::byte, kPageSize + 16> buf{};
  ASSERT_TRUE(mem.read_bytes(at(0x13, 8), buf));
  EXPECT_EQ(std::memcmp(buf.data(), a.page(3) + 8, kPageSize - 8), 0);
  EXPECT_EQ(std::memcmp(buf.data() + kPageSize - 8, b.page(0), 24), 0);
}

TEST_F(GuestMemoryTest, ByteReadStopsAtTheFirstUnbackedByteAndLeavesTheBufferAlone) {
  std::array<std::byte, 32> buf{};
  buf.fill(std::byte{0x5a});
  auto s = mem.read_bytes(at(0x17, 0xff0), buf);
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error(), (GuestMemoryError{GuestMemoryErrorKind::Unbacked, at(0x18)}));
  for (std::byte x : buf) EXPECT_EQ(x, std::byte{0x5a});
}

TEST_F(GuestMemoryTest, ByteWriteCrossesAdjacentSlots) {
  std::array<std::byte, 16> in{};
  std::iota(reinterpret_cast<unsigned char*>(in.data()), reinterpret_cast<unsigned char*>(in.data()) + 16, 1);
  ASSERT_TRUE(mem.write_bytes(at(0x13, 0xff8), in));
  EXPECT_EQ(std::memcmp(a.page(3) + 0xff8, in.data(), 8), 0);
  EXPECT_EQ(std::memcmp(b.page(0), in.data() + 8, 8), 0);
}

TEST_F(GuestMemoryTest, ByteWriteIntoAGapWritesNothing) {
  std::array<std::byte, 16> in{};
  auto s = mem.write_bytes(at(0x17, 0xff8), in);
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error(), (GuestMemoryError{GuestMemoryErrorKind::Unbacked, at(0x18)}));
  EXPECT_EQ(b.word(3 * kPageSize + 0xff8), HostPages::tag_of(0xb, 3));
}

TEST_F(GuestMemoryTest, ByteWriteReachingAReadOnlySlotWritesNothing) {
  HostPages before_rom(1);
  ASSERT_TRUE(slots.add({SlotId{4}, Gfn(0x1f), 1, before_rom.data(), {}}));
  std::array<std::byte, 16> in{};
  auto s = mem.write_bytes(at(0x1f, 0xff8), in);
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error(), (GuestMemoryError{GuestMemoryErrorKind::ReadOnly, at(0x20)}));
  EXPECT_EQ(before_rom.word(0xff8), 0u);  // HostPages starts zeroed: untouched
  EXPECT_EQ(rom.word(0), HostPages::tag_of(0xc, 0));
}

TEST_F(GuestMemoryTest, CachedRegionIsDroppedWhenTheSlotMoves) {
  EXPECT_TRUE(mem.read<std::uint64_t>(at(0x10)).has_value());  // warm the cache
  ASSERT_TRUE(slots.move(SlotId{1}, Gfn(0x40)));
  EXPECT_FALSE(mem.read<std::uint64_t>(at(0x10)).has_value());
  EXPECT_EQ(mem.read<std::uint64_t>(at(0x40)), HostPages::tag_of(0xa, 0));
}

TEST_F(GuestMemoryTest, CachedRegionIsDroppedWhenTheSlotBecomesReadOnly) {
  std::uint64_t e = HostPages::tag_of(0xa, 0);
  EXPECT_TRUE(mem.compare_exchange<std::uint64_t>(at(0x10), e, e));
  ASSERT_TRUE(slots.set_flags(SlotId{1}, MemslotFlags::read_only()));
  EXPECT_FALSE(mem.compare_exchange<std::uint64_t>(at(0x10), e, 1));
  EXPECT_EQ(a.word(0), HostPages::tag_of(0xa, 0));
}

TEST_F(GuestMemoryTest, OverlayIsSeenThroughAWarmCache) {
  other.fill(0xd);
  EXPECT_EQ(mem.read<std::uint64_t>(at(0x11)), HostPages::tag_of(0xa, 1));
  auto id = slots.overlay_add(Gfn(0x11), 1, other.data());
  ASSERT_TRUE(id.has_value());
  EXPECT_EQ(mem.read<std::uint64_t>(at(0x11)), HostPages::tag_of(0xd, 0));
  EXPECT_EQ(mem.read<std::uint64_t>(at(0x12)), HostPages::tag_of(0xa, 2));
  ASSERT_TRUE(slots.overlay_remove(*id));
  EXPECT_EQ(mem.read<std::uint64_t>(at(0x11)), HostPages::tag_of(0xa, 1));
}

TEST_F(GuestMemoryTest, RegionLookupGoesThroughTheCache) {
  rcu::ReadGuard g;
  const MemslotRegion* r = mem.region(Gfn(0x15));
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->slot, SlotId{2});
  EXPECT_EQ(mem.region(Gfn(0x17)), r);
  EXPECT_EQ(mem.region(Gfn(0x18)), nullptr);
  EXPECT_EQ(mem.region(Gfn(0x10))->slot, SlotId{1});
}

// The per-walk reader (what pt::walk reads GuestMemory through) gives what read<T> gives,
// while it moves between slots, into gaps and across a slot boundary unaligned.
TEST_F(GuestMemoryTest, WalkReaderReadsWhatReadReads) {
  auto reader = mem.walk_reader();
  // at(0x14) right after at(0x11): the first word past the cached region.
  for (const Gpa gpa : {at(0x12, 0x18), at(0x17, 0xff8), at(0x11), at(0x14), at(0x21, 8), at(0x18), at(0x13, 0xffc),
                        at(0x10, 4)}) {
    EXPECT_EQ(reader.read<std::uint64_t>(gpa), mem.read<std::uint64_t>(gpa)) << gpa.raw();
    EXPECT_EQ(reader.read<std::uint32_t>(gpa + 4), mem.read<std::uint32_t>(gpa + 4)) << gpa.raw();
  }
  EXPECT_FALSE(reader.read<std::uint64_t>(at(0x18)).has_value());
}

// A reader taken after the memslots changed must not trust the hit cache's region.
TEST_F(GuestMemoryTest, WalkReaderDropsTheCachedRegionWhenTheSlotMoved) {
  EXPECT_TRUE(mem.read<std::uint64_t>(at(0x10)).has_value());  // warm the cache
  ASSERT_TRUE(slots.move(SlotId{1}, Gfn(0x40)));
  auto reader = mem.walk_reader();
  EXPECT_FALSE(reader.read<std::uint64_t>(at(0x10)).has_value());
  EXPECT_EQ(reader.read<std::uint64_t>(at(0x41)), HostPages::tag_of(0xa, 1));
}

// A two-level toy format walked through GuestMemory::Reader: the walker's view of memory.
struct TwoLevel {
  using Entry = std::uint64_t;
  using Input = Gva;
  using Output = Gpa;
  pt::Geometry g = pt::Geometry::uniform(2, 12, 9, 9, 8);
  const pt::Geometry& geometry() const { return g; }
  bool present(Entry e, unsigned) const { return (e & 1) != 0; }
  bool leaf(Entry, unsigned level) const { return level == 1; }
  Gpa table_address(Entry e, unsigned) const { return Gpa(e & ~0xfffULL); }
  Gpa leaf_address(Entry e, unsigned) const { return Gpa(e & ~0xfffULL); }
};

TEST_F(GuestMemoryTest, ReaderServesTheRadixEngine) {
  ASSERT_TRUE(mem.write<std::uint64_t>(at(0x10, 8 * 3), at(0x11).raw() | 1));
  ASSERT_TRUE(mem.write<std::uint64_t>(at(0x11, 8 * 5), at(0x15).raw() | 1));
  auto r = mem.reader();
  EXPECT_EQ(rcu::read_depth(), 1u);
  const std::uint64_t input = (3u << 21) | (5u << 12) | 0x123;
  auto w = pt::walk(TwoLevel{}, r, at(0x10), input, [](auto&) { return pt::Visit::Continue; });
  EXPECT_EQ(w.end, pt::WalkEnd::Leaf);
  EXPECT_EQ(TwoLevel{}.leaf_address(w.entry, 1), at(0x15));
  auto miss = pt::walk(TwoLevel{}, r, at(0x18), input, [](auto&) { return pt::Visit::Continue; });
  EXPECT_EQ(miss.end, pt::WalkEnd::Unreadable);
}

}  // namespace
}  // namespace vmmu
