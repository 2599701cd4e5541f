// The radix-table engine on a toy format: 3 levels of 2 index bits over 4-bit pages, so every
// table is small enough to reason about by hand.

#include <gtest/gtest.h>

#include <vector>

#include "vmmu/memory/sparse_memory.hpp"
#include "vmmu/pt/table_iterator.hpp"
#include "vmmu/pt/walk.hpp"

namespace vmmu::pt {
namespace {

// Entry: bit 0 present, bit 1 leaf ("huge" above level 1), bits 63:8 address.
struct ToyFormat {
  using Entry = std::uint64_t;
  using Input = Gva;
  using Output = Gpa;
  Geometry g = Geometry::uniform(3, 4, 2, 2, 8);
  const Geometry& geometry() const { return g; }
  bool present(Entry e, unsigned) const { return (e & 1) != 0; }
  bool leaf(Entry e, unsigned level) const { return level == 1 || (e & 2) != 0; }
  Gpa table_address(Entry e, unsigned) const { return Gpa(e & ~0xffULL); }
  Gpa leaf_address(Entry e, unsigned) const { return Gpa(e & ~0xffULL); }
};
static_assert(Format<ToyFormat>);
static_assert(TableMemory<SparseMemory<Gpa>, Gpa>);

constexpr std::uint64_t kRoot = 0x1000, kMid = 0x2000, kLow = 0x3000;

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    mem.write<std::uint64_t>(Gpa(kRoot + 8 * 1), kMid | 1);        // root[1] -> mid
    mem.write<std::uint64_t>(Gpa(kRoot + 8 * 3), 0x9000 | 3);      // root[3] huge leaf
    mem.write<std::uint64_t>(Gpa(kMid + 8 * 2), kLow | 1);         // mid[2] -> low
    mem.write<std::uint64_t>(Gpa(kLow + 8 * 0), 0x7000 | 1);       // low[0] leaf
    mem.write<std::uint64_t>(Gpa(kLow + 8 * 3), 0x8000 | 1);       // low[3] leaf
  }
  ToyFormat f;
  SparseMemory<Gpa> mem;
};

TEST_F(EngineTest, WalkReachesLeafThroughEveryLevel) {
  // input = root idx 1 (bits 9:8), mid idx 2 (bits 7:6), low idx 3 (bits 5:4), offset 5
  const std::uint64_t input = (1u << 8) | (2u << 6) | (3u << 4) | 5;
  std::vector<unsigned> levels;
  auto r = walk(f, mem, Gpa(kRoot), input, [&](Step<ToyFormat>& s) {
    levels.push_back(s.level);
    return Visit::Continue;
  });
  EXPECT_EQ(r.end, WalkEnd::Leaf);
  EXPECT_EQ(r.level, 1u);
  EXPECT_EQ(f.leaf_address(r.entry, 1), Gpa(0x8000));
  EXPECT_EQ(levels, (std::vector<unsigned>{3, 2, 1}));
}

TEST_F(EngineTest, WalkStopsAtHugeLeafAndNotPresent) {
  auto huge = walk(f, mem, Gpa(kRoot), 3u << 8, [](auto&) { return Visit::Continue; });
  EXPECT_EQ(huge.end, WalkEnd::Leaf);
  EXPECT_EQ(huge.level, 3u);
  auto missing = walk(f, mem, Gpa(kRoot), 2u << 8, [](auto&) { return Visit::Continue; });
  EXPECT_EQ(missing.end, WalkEnd::NotPresent);
  EXPECT_EQ(missing.level, 3u);
}

TEST_F(EngineTest, IteratorVisitsLeavesInAddressOrder) {
  std::vector<std::pair<std::uint64_t, unsigned>> leaves;
  for (TableIterator it(f, mem, Gpa(kRoot), 0, 1u << 10); it.valid(); it.next()) {
    if (it.is_leaf()) leaves.emplace_back(it.address(), it.level());
  }
  const std::vector<std::pair<std::uint64_t, unsigned>> want{
      {(1u << 8) | (2u << 6), 1}, {(1u << 8) | (2u << 6) | (3u << 4), 1}, {3u << 8, 3}};
  EXPECT_EQ(leaves, want);
}

TEST_F(EngineTest, IteratorHonoursRangeBounds) {
  std::vector<std::uint64_t> leaves;
  const std::uint64_t begin = (1u << 8) | (2u << 6) | (1u << 4);  // skips low[0]
  for (TableIterator it(f, mem, Gpa(kRoot), begin, 3u << 8); it.valid(); it.next()) {
    if (it.is_leaf()) leaves.push_back(it.address());
  }
  EXPECT_EQ(leaves, (std::vector<std::uint64_t>{(1u << 8) | (2u << 6) | (3u << 4)}));
}

TEST_F(EngineTest, NextSiblingSkipsSubtree) {
  unsigned visited = 0;
  for (TableIterator it(f, mem, Gpa(kRoot), 0, 1u << 10); it.valid();) {
    ++visited;
    if (it.is_table()) {
      it.next_sibling();
    } else {
      it.next();
    }
  }
  EXPECT_EQ(visited, 4u);  // only the four root entries
}

TEST_F(EngineTest, TrySetFailsWhenEntryChangedUnderneath) {
  TableIterator it(f, mem, Gpa(kRoot), 3u << 8, 1u << 10);
  ASSERT_TRUE(it.is_leaf());
  mem.write<std::uint64_t>(it.entry_address(), 0xa000 | 3);  // a racing writer
  EXPECT_FALSE(it.try_set(0));
  EXPECT_EQ(it.entry(), 0xa000u | 3);
  EXPECT_TRUE(it.try_set(0));
  EXPECT_FALSE(it.is_leaf());
}

TEST_F(EngineTest, MinLevelKeepsIteratorAboveIt) {
  unsigned lowest = 3;
  for (TableIterator it(f, mem, Gpa(kRoot), 0, 1u << 10, 2); it.valid(); it.next()) lowest = std::min(lowest, it.level());
  EXPECT_EQ(lowest, 2u);
}

}  // namespace
}  // namespace vmmu::pt
