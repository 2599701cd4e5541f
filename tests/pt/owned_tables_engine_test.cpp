// The engine steps an MMU builds its own operations from: walk-and-build (reach), range
// updates in both modes, bitmap-driven page updates and the predicate-driven shared collapse.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "pt/owned_toy_format.hpp"
#include "vmmu/core/rcu.hpp"
#include "vmmu/pt/owned_tables.hpp"

namespace vmmu::pt {
namespace {

using namespace toy;  // the toy format, kRw / kRo / kOut, Tables, ToyTablesSetup
constexpr std::uint64_t kPage = 0x1000;

class HostTablesEngine : public ::testing::Test, protected ToyTablesSetup {
 protected:
  void map(Tables& t, Range<Gpa> r, unsigned max_level) {
    auto m = t.map(r, kOut + r.begin.raw(), kRw, {.max_level = max_level});
    ASSERT_TRUE(m);
    std::move(*m).apply(tlb);
  }
  bool writable(const Tables& t, std::uint64_t addr) { return t.lookup(Gpa(addr))->attrs.write; }
};

TEST_F(HostTablesEngine, ReachSplitsTheBlockAboveTheTargetAndStopsOnThePage) {
  Tables t = make();
  map(t, range(0, kBlock), 2);
  auto ops = t.entry_ops();
  Tables::Iterator it = t.path(Gpa(0x3000));
  TlbFlush<Gpa> flush(&memory);
  auto r = ops.reach(it, 1, flush);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->split);
  EXPECT_EQ(it.level(), 1u);
  ASSERT_TRUE(it.is_leaf());
  EXPECT_EQ(f.leaf_address(it.entry(), 1), kOut + 0x3000);
  EXPECT_EQ(ops.install(it, f.make_leaf(kOut + 0x3000, 1, kRo), flush), ops::Installed::Done);
  std::move(flush).apply(tlb);
  EXPECT_FALSE(writable(t, 0x3000));
  EXPECT_TRUE(writable(t, 0x4000)) << "the rest of the block keeps its permissions";
  EXPECT_EQ(memory.tables_in_use(1), 1u);
}

TEST_F(HostTablesEngine, ReachBuildsMissingTablesDownToTheTarget) {
  Tables t = make();
  auto ops = t.entry_ops();
  Tables::Iterator it = t.path(Gpa(5 * kBlock + 0x2000));
  TlbFlush<Gpa> flush(&memory);
  ops.settle(it);
  EXPECT_EQ(it.level(), 3u) << "a look-up builds nothing";
  EXPECT_EQ(memory.tables_in_use(2), 0u);
  auto r = ops.reach(it, 1, flush);
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->split);
  EXPECT_EQ(it.level(), 1u);
  EXPECT_EQ(it.entry(), 0u);
  EXPECT_EQ(memory.tables_in_use(2), 1u);
  EXPECT_EQ(memory.tables_in_use(1), 1u);
  std::move(flush).apply(tlb);
}

// look_up() is a fault's look-up and at() the iterator it builds or installs with: they must
// end, and stand, exactly where path() + settle() would -- on a block, a page, an empty entry
// at each level.
TEST_F(HostTablesEngine, LookUpEndsWhereSettleEndsAndAtStandsThere) {
  Tables t = make();
  map(t, range(0, kBlock), 2);
  map(t, range(4 * kBlock, 4 * kBlock + kPage), 1);
  const std::uint64_t addrs[] = {0x3000, 4 * kBlock, 4 * kBlock + 0x5000, 2 * kBlock + 0x1000, 20 * kBlock + 0x7000};
  std::vector<unsigned> levels;
  for (const std::uint64_t a : addrs) {
    Tables::Iterator it = t.path(Gpa(a));
    t.entry_ops().settle(it);
    const WalkResult<HostToyFormat> w = t.look_up(Gpa(a));
    EXPECT_EQ(w.level, it.level()) << std::hex << a;
    EXPECT_EQ(w.entry, it.entry()) << std::hex << a;
    EXPECT_EQ(w.entry_address, it.entry_address()) << std::hex << a;
    EXPECT_EQ(w.end == WalkEnd::Leaf, it.is_leaf()) << std::hex << a;
    const Tables::Iterator at = t.at(w, Gpa(a));
    EXPECT_EQ(at.level(), it.level()) << std::hex << a;
    EXPECT_EQ(at.entry(), it.entry()) << std::hex << a;
    EXPECT_EQ(at.entry_address(), it.entry_address()) << std::hex << a;
    EXPECT_EQ(at.address(), it.address()) << std::hex << a;
    EXPECT_EQ(at.is_leaf(), it.is_leaf()) << std::hex << a;
    levels.push_back(w.level);
  }
  EXPECT_EQ(levels, (std::vector<unsigned>{2, 1, 1, 2, 3})) << "a block, a page, empty entries at levels 1, 2, 3";
}

TEST_F(HostTablesEngine, AtResumesTheBuildFromWhereTheLookUpStopped) {
  Tables t = make();
  auto ops = t.entry_ops();
  const Gpa a(3 * kBlock + 0x2000);
  const WalkResult<HostToyFormat> w = t.look_up(a);
  ASSERT_EQ(w.level, 3u);
  Tables::Iterator it = t.at(w, a);
  TlbFlush<Gpa> flush(&memory);
  ASSERT_TRUE(ops.reach(it, 1, flush));
  ASSERT_EQ(it.level(), 1u);
  EXPECT_EQ(ops.install(it, f.make_leaf(kOut + 0x2000, 1, kRw), flush), ops::Installed::Done);
  std::move(flush).apply(tlb);
  const auto m = t.lookup(a);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->output, kOut + 0x2000);
  EXPECT_EQ(m->level, 1u);
}

TEST_F(HostTablesEngine, InstallEmptyPutsALeafInTheEmptyEntryFoundAndLosesToAnEarlierWriter) {
  Tables t = make();
  map(t, range(4 * kBlock, 4 * kBlock + kPage), 1);
  auto ops = t.entry_ops();
  const Gpa a(4 * kBlock + 0x5000);
  const WalkResult<HostToyFormat> w = t.look_up(a);
  ASSERT_EQ(w.end, WalkEnd::NotPresent);
  ASSERT_EQ(w.level, 1u);
  EXPECT_EQ(ops.install_empty(w, f.make_leaf(kOut + 0x5000, 1, kRw)), ops::Installed::Done);
  const auto m = t.lookup(a);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->output, kOut + 0x5000);
  EXPECT_TRUE(m->attrs.write);

  // Another writer fills the entry between this look-up and its install: it must lose.
  const Gpa b(4 * kBlock + 0x6000);
  const WalkResult<HostToyFormat> stale = t.look_up(b);
  Tables::Iterator it = t.at(stale, b);
  TlbFlush<Gpa> flush(&memory);
  ASSERT_EQ(ops.install(it, f.make_leaf(kOut + 0x6000, 1, kRo), flush), ops::Installed::Done);
  std::move(flush).apply(tlb);
  EXPECT_EQ(ops.install_empty(stale, f.make_leaf(kOut + 0x6000, 1, kRw)), ops::Installed::Lost);
  EXPECT_FALSE(writable(t, b.raw())) << "the earlier writer's entry stays";
}

TEST_F(HostTablesEngine, LookUpWaitsOutAFrozenEntry) {
  Tables t = make();
  map(t, range(4 * kBlock, 4 * kBlock + kPage), 1);
  const Gpa a(4 * kBlock + 0x3000);
  Tables::Iterator it = t.at(t.look_up(a), a);
  ASSERT_TRUE(it.try_set(f.frozen_entry()));  // break...
  std::atomic<bool> done{false};
  WalkResult<HostToyFormat> w{};
  std::thread looker([&] {
    w = t.look_up(a);
    done.store(true);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(done.load()) << "a look-up must not end on a frozen entry";
  const std::uint64_t leaf = f.make_leaf(kOut + 0x3000, 1, kRw);
  ASSERT_TRUE(it.try_set(leaf));  // ...make
  looker.join();
  EXPECT_EQ(w.end, WalkEnd::Leaf);
  EXPECT_EQ(w.entry, leaf);
}

TEST_F(HostTablesEngine, UpdatePagesChangesExactlyThePagesItsBitsName) {
  Tables t = make();
  map(t, range(0, 16 * kBlock), 1);  // 256 pages in 16 page tables of 16 entries
  // Start mid-table so words straddle page tables: page p = 3 + bit.
  const std::uint64_t first = 3;
  const std::vector<std::uint64_t> pages = {3, 12, 13, 18, 19, 40, 66, 67, 130, 200};
  std::vector<std::uint64_t> words(4, 0);
  for (std::uint64_t p : pages) words[(p - first) / 64] |= std::uint64_t{1} << ((p - first) % 64);
  auto r = t.update_pages(Gpa(first * kPage), words, ops::LeafFlag::Write);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->count, pages.size());
  std::move(r->flush).apply(tlb);
  for (std::uint64_t p = 0; p < 256; ++p) {
    const bool named = std::find(pages.begin(), pages.end(), p) != pages.end();
    EXPECT_EQ(writable(t, p * kPage), !named) << "page " << p;
  }
}

TEST_F(HostTablesEngine, SharedUpdateChangesWhatExclusiveWould) {
  Tables a = make();
  map(a, range(0, 4 * kBlock), 1);
  map(a, range(4 * kBlock, 8 * kBlock), 2);
  auto r = a.update(range(kPage, 6 * kBlock), ops::LeafFlag::Write, Shared{});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->count, (4 * kBlock - kPage) / kPage + 2) << "pages after the first, then two blocks";
  std::move(r->flush).apply(tlb);
  EXPECT_TRUE(writable(a, 0));
  for (std::uint64_t p = kPage; p < 4 * kBlock; p += kPage) EXPECT_FALSE(writable(a, p)) << p;
  EXPECT_FALSE(writable(a, 5 * kBlock));
  EXPECT_TRUE(writable(a, 6 * kBlock));
}

TEST_F(HostTablesEngine, SharedCollapseMergesWriteWhenAskedAndAsksThePredicate) {
  Tables t = make();
  map(t, range(0, 2 * kBlock), 1);
  auto w = t.write_protect(range(kPage, 2 * kPage));
  ASSERT_TRUE(w);
  std::move(*w).apply(tlb);
  std::vector<std::uint64_t> asked;
  auto c = t.collapse(range(0, 2 * kBlock), {.merge = ops::LeafMerge::WriteAndAgeMerged}, Shared{},
                      [&](Range<Gpa> span, unsigned level) {
                        asked.push_back(span.begin.raw());
                        return level == 2 && span.begin.raw() == 0;
                      });
  ASSERT_TRUE(c);
  EXPECT_EQ(c->count, 1u) << "the second table is refused by the predicate";
  EXPECT_EQ(c->raced, 0u);
  std::move(c->flush).apply(tlb);
  EXPECT_EQ(asked, (std::vector<std::uint64_t>{0, kBlock}));
  EXPECT_EQ(t.lookup(Gpa(0))->level, 2u);
  EXPECT_FALSE(writable(t, 0)) << "a block is writable only if every page was";
  EXPECT_EQ(t.lookup(Gpa(kBlock))->level, 1u);
  auto equal = t.collapse(range(0, 2 * kBlock));
  ASSERT_TRUE(equal);
  EXPECT_EQ(equal->count, 1u) << "equal pages of the second table still collapse";
  std::move(equal->flush).apply(tlb);
}

TEST_F(HostTablesEngine, SharedCollapseRefusesATableWhoseLastPageMapsElsewhere) {
  Tables t = make();
  map(t, range(0, kBlock), 1);
  auto m = t.map(range(kBlock - kPage, kBlock), kOut + 4 * kBlock, kRw, {.max_level = 1});
  ASSERT_TRUE(m);
  std::move(*m).apply(tlb);
  auto c = t.collapse(range(0, kBlock), {.merge = ops::LeafMerge::WriteAndAgeMerged}, Shared{},
                      [](Range<Gpa>, unsigned) { return true; });
  ASSERT_TRUE(c);
  EXPECT_EQ(c->count, 0u) << "the last page breaks the contiguity";
  std::move(c->flush).apply(tlb);
  EXPECT_EQ(t.lookup(Gpa(0))->level, 1u);
}

}  // namespace
}  // namespace vmmu::pt
