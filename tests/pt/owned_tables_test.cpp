// The format-generic owned-table layer on a toy format: each operation's contract, table-page
// accounting, break-before-make sequencing and flush tokens.

#include <gtest/gtest.h>

#include "pt/owned_toy_format.hpp"
#include "vmmu/core/rcu.hpp"
#include "vmmu/pt/owned_tables.hpp"

namespace vmmu::pt {
namespace {

using namespace toy;  // the toy format, kRw / kRo / kOut, Tables, ToyTablesSetup

class HostTablesTest : public ::testing::TestWithParam<bool>, protected ToyTablesSetup {
 protected:
  HostTablesTest() { f.break_before_make = GetParam(); }
  // Every table the iterator reaches is counted, and nothing else is.
  void expect_accounting(const Tables& t) {
    const auto reach = t.reachable_tables();
    for (unsigned l = 1; l <= 3; ++l) EXPECT_EQ(memory.tables_in_use(l), reach[l]) << "level " << l;
  }
  static void apply(Result<TlbFlush<Gpa>, TableError> r, TlbLog<Gpa>& log) {
    ASSERT_TRUE(r.has_value()) << to_string(r.error());
    std::move(*r).apply(log);
  }
};

TEST_P(HostTablesTest, MapUsesLargestBlockAlignmentAllows) {
  Tables t = make();
  apply(t.map(range(0, 16 * kBlock), kOut, kRw), tlb);
  std::uint64_t blocks = 0;
  t.for_each_leaf(range(0, toy::kSpace), [&](const Tables::Mapping& m) { blocks += m.level == 2 ? 1 : 0; });
  EXPECT_EQ(blocks, 16u);
  EXPECT_EQ(memory.tables_in_use(2), 1u);
  EXPECT_EQ(memory.tables_in_use(1), 0u);
  auto m = t.lookup(Gpa(3 * kBlock + 0x1234));
  ASSERT_TRUE(m);
  EXPECT_EQ(m->output, kOut + 3 * kBlock + 0x1234);
  EXPECT_EQ(tlb.total(), 0u) << "mapping empty entries needs no invalidation";
}

TEST_P(HostTablesTest, MapWithMisalignedOutputFallsBackToPages) {
  Tables t = make();
  apply(t.map(range(0, kBlock), kOut + 0x1000, kRw), tlb);
  unsigned pages = 0;
  t.for_each_leaf(range(0, kBlock), [&](const Tables::Mapping& m) { pages += m.level == 1 ? 1 : 0; });
  EXPECT_EQ(pages, 16u);
  EXPECT_EQ(memory.tables_in_use(1), 1u);
  expect_accounting(t);
}

TEST_P(HostTablesTest, MapRejectsBadRanges) {
  Tables t = make();
  auto misaligned = t.map(range(0x800, 0x2000), kOut, kRw);
  ASSERT_FALSE(misaligned);
  EXPECT_EQ(misaligned.error(), TableError::Misaligned);
  auto beyond = t.map(range(0, toy::kSpace + 0x1000), kOut, kRw);
  ASSERT_FALSE(beyond);
  EXPECT_EQ(beyond.error(), TableError::OutOfRange);
}

TEST_P(HostTablesTest, MapOverTablesCoalescesIntoBlockAndFreesThem) {
  Tables t = make();
  apply(t.map(range(0, kBlock), kOut + 0x1000, kRw), tlb);
  ASSERT_EQ(memory.tables_in_use(1), 1u);
  apply(t.map(range(0, kBlock), kOut, kRw), tlb);
  EXPECT_EQ(memory.tables_in_use(1), 0u);
  EXPECT_EQ(t.lookup(Gpa(0x5000))->level, 2u);
  expect_accounting(t);
}

TEST_P(HostTablesTest, UnmapFreesEveryTableItEmptied) {
  Tables t = make();
  apply(t.map(range(0x1000, 3 * kBlock + 0x3000), kOut + 0x1000, kRw), tlb);
  EXPECT_GT(memory.tables_in_use(), 1u);
  apply(t.unmap(range(0, 4 * kBlock)), tlb);
  EXPECT_EQ(memory.tables_in_use(), 1u) << "only the root is left";
  EXPECT_FALSE(t.lookup(Gpa(0x1000)));
  expect_accounting(t);
}

TEST_P(HostTablesTest, UnmapInsideBlockSplitsItAndKeepsTheRest) {
  Tables t = make();
  apply(t.map(range(0, kBlock), kOut, kRw), tlb);
  apply(t.unmap(range(0x3000, 0x5000)), tlb);
  EXPECT_FALSE(t.lookup(Gpa(0x3000)));
  EXPECT_FALSE(t.lookup(Gpa(0x4fff)));
  ASSERT_TRUE(t.lookup(Gpa(0x5000)));
  EXPECT_EQ(t.lookup(Gpa(0x5000))->output, kOut + 0x5000);
  EXPECT_EQ(t.lookup(Gpa(0x2000))->attrs, kRw);
  expect_accounting(t);
}

TEST_P(HostTablesTest, UnmapReturnsRangeFlushTheCallerMustApply) {
  Tables t = make();
  apply(t.map(range(0, 2 * kBlock), kOut, kRw), tlb);
  auto r = t.unmap(range(0, 2 * kBlock));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->kind(), TlbFlush<Gpa>::Kind::Range);
  EXPECT_EQ(r->range(), range(0, 16 * kBlock)) << "the emptied level-2 table was unlinked too";
  EXPECT_EQ(r->unlinked_tables(), 1u);
  const auto before = tlb.by_range();
  std::move(*r).apply(tlb);
  EXPECT_EQ(tlb.by_range(), before + 1);
}

TEST_P(HostTablesTest, WriteProtectClearsWriteOnWholeLeavesTouched) {
  Tables t = make();
  apply(t.map(range(0, 2 * kBlock), kOut, kRw), tlb);
  apply(t.write_protect(range(0x1000, 0x2000)), tlb);
  EXPECT_FALSE(t.lookup(Gpa(0xf000))->attrs.write) << "the whole block is protected";
  EXPECT_TRUE(t.lookup(Gpa(kBlock))->attrs.write);
}

TEST_P(HostTablesTest, AgeClearsAccessedAndCountsYoungLeaves) {
  Tables t = make();
  apply(t.map(range(0, 2 * kBlock), kOut, kRw), tlb);
  EXPECT_TRUE(t.test_age(range(0, kBlock)));
  auto aged = t.age(range(0, kBlock));
  ASSERT_TRUE(aged);
  EXPECT_EQ(aged->count, 1u);
  std::move(aged->flush).drop();
  EXPECT_FALSE(t.test_age(range(0, kBlock)));
  EXPECT_TRUE(t.test_age(range(kBlock, 2 * kBlock)));
  auto again = t.age(range(0, kBlock));
  EXPECT_EQ(again->count, 0u);
  std::move(again->flush).drop();
}

TEST_P(HostTablesTest, RelaxOnlyAddsPermissions) {
  Tables t = make();
  apply(t.map(range(0, kBlock), kOut, kRo), tlb);
  apply(t.relax(Gpa(0x3000), LeafAttrs{false, true, false, false, false}), tlb);
  const LeafAttrs now = t.lookup(Gpa(0))->attrs;
  EXPECT_TRUE(now.write);
  EXPECT_TRUE(now.read) << "relax never removes a permission";
  EXPECT_EQ(t.lookup(Gpa(0))->level, 2u) << "relaxing keeps the block";
}

TEST_P(HostTablesTest, RelaxOnUnmappedAddressIsNotMapped) {
  Tables t = make();
  auto r = t.relax(Gpa(0x3000), kRw);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), TableError::NotMapped);
}

TEST_P(HostTablesTest, SplitKeepsEveryTranslationAndAttribute) {
  Tables t = make();
  apply(t.map(range(0, 2 * kBlock), kOut, kRo), tlb);
  const auto breaks = tlb.breaks();
  apply(t.split(range(0, 2 * kBlock)), tlb);
  for (std::uint64_t a = 0; a < 2 * kBlock; a += 0x1000) {
    auto m = t.lookup(Gpa(a));
    ASSERT_TRUE(m);
    EXPECT_EQ(m->level, 1u);
    EXPECT_EQ(m->output, kOut + a);
    EXPECT_EQ(m->attrs, kRo);
  }
  EXPECT_EQ(tlb.breaks() - breaks, GetParam() ? 2u : 0u) << "one break-before-make per block";
  EXPECT_EQ(memory.tables_in_use(1), 2u);
  expect_accounting(t);
}

TEST_P(HostTablesTest, CollapseTurnsUniformTableBackIntoBlock) {
  Tables t = make();
  apply(t.map(range(0, kBlock), kOut, kRw, {.max_level = 1}), tlb);
  ASSERT_EQ(memory.tables_in_use(1), 1u);
  auto c = t.collapse(range(0, kBlock));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->count, 1u);
  std::move(c->flush).apply(tlb);
  EXPECT_EQ(t.lookup(Gpa(0x7000))->level, 2u);
  EXPECT_EQ(t.lookup(Gpa(0x7000))->output, kOut + 0x7000);
  EXPECT_EQ(memory.tables_in_use(1), 0u);
  expect_accounting(t);
}

TEST_P(HostTablesTest, CollapseLeavesMixedPermissionsAlone) {
  Tables t = make();
  apply(t.map(range(0, kBlock), kOut, kRw, {.max_level = 1}), tlb);
  apply(t.write_protect(range(0x2000, 0x3000)), tlb);
  auto c = t.collapse(range(0, kBlock));
  EXPECT_EQ(c->count, 0u);
  std::move(c->flush).apply(tlb);
  EXPECT_EQ(t.lookup(Gpa(0))->level, 1u);
}

TEST_P(HostTablesTest, CollapseLooksAtTheLastEntryToo) {
  // Entries are compared a block at a time: a difference in the last block must still count.
  Tables t = make();
  apply(t.map(range(0, kBlock), kOut, kRw, {.max_level = 1}), tlb);
  apply(t.write_protect(range(kBlock - 0x1000, kBlock)), tlb);
  auto c = t.collapse(range(0, kBlock));
  EXPECT_EQ(c->count, 0u);
  std::move(c->flush).apply(tlb);
  EXPECT_EQ(t.lookup(Gpa(0))->level, 1u);
}

TEST_P(HostTablesTest, CollapseNeedsPhysicallyContiguousAlignedLeaves) {
  Tables t = make();
  apply(t.map(range(0, kBlock), kOut + 0x1000, kRw), tlb);  // contiguous but misaligned base
  auto c = t.collapse(range(0, kBlock));
  EXPECT_EQ(c->count, 0u);
  std::move(c->flush).apply(tlb);
}

TEST_P(HostTablesTest, ChangingBlockOutputBreaksBeforeMakingWithOneAddressInvalidation) {
  Tables t = make();
  apply(t.map(range(0, kBlock), kOut, kRw), tlb);
  int seen = 0;
  tlb.set_observer([&](const TlbEvent<Gpa>& e) {
    ++seen;
    EXPECT_EQ(e.range, range(0, kBlock));
    if (GetParam()) {
      // At invalidation time the entry must be invalid (frozen), neither old nor new.
      EXPECT_EQ(e.op, TlbOp::Address);
      EXPECT_FALSE(t.lookup(Gpa(0)));
    } else {
      EXPECT_EQ(e.op, TlbOp::Range);  // applied after the in-place replacement
      EXPECT_EQ(t.lookup(Gpa(0))->output, kOut + kBlock);
    }
  });
  const auto addr_before = tlb.by_address();
  apply(t.map(range(0, kBlock), kOut + kBlock, kRw), tlb);
  tlb.set_observer(nullptr);
  EXPECT_EQ(t.lookup(Gpa(0))->output, kOut + kBlock);
  if (GetParam()) {
    EXPECT_EQ(seen, 1);
    EXPECT_EQ(tlb.by_address() - addr_before, 1u);
  } else {
    EXPECT_EQ(seen, 1) << "without break-before-make the flush token carries the range";
  }
}

TEST_P(HostTablesTest, PermissionChangeNeverBreaks) {
  Tables t = make();
  apply(t.map(range(0, kBlock), kOut, kRw), tlb);
  const auto breaks = tlb.breaks();
  apply(t.write_protect(range(0, kBlock)), tlb);
  apply(t.relax(Gpa(0), kRw), tlb);
  EXPECT_EQ(tlb.breaks(), breaks);
}

TEST_P(HostTablesTest, OutOfMemoryMidMapLeavesConsistentPartialState) {
  Tables t = make();
  memory.set_budget(2);  // root + one level-2 table: no level-1 table possible
  auto r = t.map(range(0, 2 * kBlock), kOut + 0x1000, kRw);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), TableError::OutOfMemory);
  EXPECT_EQ(memory.tables_in_use(), 2u);
  expect_accounting(t);
  memory.set_budget(~std::uint64_t{0});
  apply(t.unmap(range(0, 2 * kBlock)), tlb);
  EXPECT_EQ(memory.tables_in_use(), 1u);
}

TEST_P(HostTablesTest, DestroyFreesEveryTable) {
  {
    Tables t = make();
    apply(t.map(range(0, 40 * kBlock), kOut + 0x1000, kRw), tlb);
    EXPECT_GT(memory.tables_in_use(), 3u);
  }
  EXPECT_EQ(memory.tables_in_use(), 0u);
  rcu::barrier();
}

INSTANTIATE_TEST_SUITE_P(BreakBeforeMake, HostTablesTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& p) { return p.param ? "Bbm" : "NoBbm"; });

}  // namespace
}  // namespace vmmu::pt
