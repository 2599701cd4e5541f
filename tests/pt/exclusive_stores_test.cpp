// The engine's exclusive-mode entry writes (pt/ops/exclusive.hpp): fill never writes over a
// taken entry, and a page rewrite records a flush for exactly the present entries it replaced.

#include <gtest/gtest.h>

#include "pt/owned_toy_format.hpp"
#include "vmmu/pt/ops/exclusive.hpp"
#include "vmmu/pt/owned_tables.hpp"

namespace vmmu::pt {
namespace {

using namespace toy;  // the toy format, kRw / kRo / kOut, Tables, ToyTablesSetup

class ExclusiveStores : public ::testing::Test, protected ToyTablesSetup {
 protected:
  // The level-1 table under [0, kBlock) (16 pages of 4 KiB), only its page 0 mapped.
  Hpa page_table(Tables& t) {
    auto m = t.map(range(0, 0x1000), kOut, kRw, {.max_level = 1});
    EXPECT_TRUE(m);
    std::move(*m).apply(tlb);
    tlb_before = tlb.total();
    Tables::Iterator it = t.path(Gpa(0));
    t.entry_ops().settle(it);
    EXPECT_EQ(it.level(), 1u);
    return Hpa(it.entry_address().raw() & ~(kToyTableAlign - 1));
  }
  Hpa entry(Hpa table, unsigned i) { return entry_address<HostToyFormat>(table, i); }
  std::uint64_t read(Hpa table, unsigned i) { return memory.read<std::uint64_t>(entry(table, i)).value(); }
  std::uint64_t tlb_before = 0;
};

TEST_F(ExclusiveStores, FillWritesAnEmptyEntryAndRecordsNothing) {
  Tables t = make();
  const Hpa table = page_table(t);
  const std::uint64_t leaf = f.make_leaf(kOut + 0x3000, 1, kRw);
  EXPECT_TRUE(ops::fill<HostToyFormat>(entry(table, 3), leaf));
  EXPECT_EQ(read(table, 3), leaf);
  const auto found = t.lookup(Gpa(0x3000));
  ASSERT_TRUE(found);
  EXPECT_EQ(found->output, kOut + 0x3000) << "the walk sees the filled leaf";
  EXPECT_EQ(tlb.total(), tlb_before) << "filling an empty entry invalidates nothing";
}

TEST_F(ExclusiveStores, FillRefusesAPresentEntryAndLeavesItAlone) {
  Tables t = make();
  const Hpa table = page_table(t);
  const std::uint64_t was = f.make_leaf(kOut + 0x5000, 1, kRo);
  ASSERT_TRUE(ops::fill<HostToyFormat>(entry(table, 5), was));
  EXPECT_FALSE(ops::fill<HostToyFormat>(entry(table, 5), f.make_leaf(kOut + 0x9000, 1, kRw)));
  EXPECT_EQ(read(table, 5), was) << "a present leaf is replaced only where its flush is recorded";
  // The frozen marker is not present, but not empty either: only its freezer writes it.
  ASSERT_TRUE(ops::fill<HostToyFormat>(entry(table, 6), f.frozen_entry()));
  EXPECT_FALSE(ops::fill<HostToyFormat>(entry(table, 6), was));
  EXPECT_EQ(read(table, 6), f.frozen_entry());
}

TEST_F(ExclusiveStores, PageRewriteRecordsTheReplacedEntriesOnce) {
  Tables t = make();
  const Hpa table = page_table(t);
  for (unsigned i = 2; i < 8; ++i) ASSERT_TRUE(ops::fill<HostToyFormat>(entry(table, i), f.make_leaf(kOut + i * 0x1000, 1, kRw)));
  ops::PageRewrite<HostToyFormat> page(f, table, 1);
  TlbFlush<Gpa> flush(&memory);
  // Unchanged and empty-to-leaf stores need no invalidation.
  ASSERT_TRUE(page.set(2, page.entry(2)));
  ASSERT_TRUE(page.set(12, f.make_leaf(kOut + 0xc000, 1, kRo)));
  EXPECT_FALSE(page.pending());
  // Leaf -> read-only leaf, and leaf -> empty: both replace a present entry.
  ASSERT_TRUE(page.set(3, f.make_leaf(kOut + 0x3000, 1, kRo)));
  ASSERT_TRUE(page.set(6, 0));
  EXPECT_TRUE(page.pending());
  EXPECT_EQ(flush.kind(), TlbFlush<Gpa>::Kind::None) << "nothing recorded per entry";
  page.record(flush, Gpa(0));
  EXPECT_FALSE(page.pending());
  ASSERT_EQ(flush.kind(), TlbFlush<Gpa>::Kind::Range);
  EXPECT_EQ(flush.range().begin, Gpa(0x3000));
  EXPECT_EQ(flush.range().end, Gpa(0x7000)) << "the hull of entries 3 and 6";
  std::move(flush).apply(tlb);
  EXPECT_FALSE(t.lookup(Gpa(0x3000))->attrs.write);
  EXPECT_FALSE(t.lookup(Gpa(0x6000)));
  EXPECT_TRUE(t.lookup(Gpa(0x4000))->attrs.write);

  TlbFlush<Gpa> all(&memory);
  ASSERT_TRUE(page.set(4, 0));
  page.record_all(all);
  EXPECT_EQ(all.kind(), TlbFlush<Gpa>::Kind::All);
  std::move(all).apply(tlb);
}

TEST_F(ExclusiveStores, PageRewriteRefusesATableEntry) {
  Tables t = make();
  auto m = t.map(range(0, 0x1000), kOut, kRw, {.max_level = 1});
  ASSERT_TRUE(m);
  std::move(*m).apply(tlb);
  // Entry 0 of the level-2 table links the page table: replacing it would need its subtree retired.
  Tables::Iterator it = t.path(Gpa(0));
  it.next();
  ASSERT_EQ(it.level(), 2u);
  const Hpa level2(it.entry_address().raw() & ~(kToyTableAlign - 1));
  ops::PageRewrite<HostToyFormat> page(f, level2, 2);
  const std::uint64_t link = page.entry(0);
  EXPECT_FALSE(page.set(0, 0));
  EXPECT_EQ(page.entry(0), link);
  EXPECT_FALSE(page.pending());
}

}  // namespace
}  // namespace vmmu::pt
