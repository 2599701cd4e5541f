// Replay policies side by side: a column per value, each column what a replay of that value
// alone reports; values this build cannot replay keep an empty column and a note.

#include "vmmu/sim/replay_compare.hpp"

#include <gtest/gtest.h>

#include <set>

#include "sim/support/trace_support.hpp"
#include "tlb/support/reference_lru.hpp"

namespace vmmu::sim {
namespace {

using namespace vmmu::sim::test;

const CompareRow& row(const CompareTable& t, std::string_view key) {
  for (const CompareRow& r : t.rows) {
    if (r.key == key) return r;
  }
  ADD_FAILURE() << "no row " << key;
  static const CompareRow none;
  return none;
}

class ReplayCompare : public ::testing::Test {
 protected:
  void SetUp() override {
    accesses_ = generated(21, 20000);
    trace_ = write_trace("compare", accesses_);
  }
  void TearDown() override { std::filesystem::remove(trace_); }
  std::vector<Access> accesses_;
  std::string trace_;
};

TEST_F(ReplayCompare, GuestPagesFaultOncePerPageOrRegion) {
  auto r = run_replay_compare({trace_}, small_config(), "guest-pages", {});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->table.values, (std::vector<std::string>{"4k", "2m"}));
  std::set<std::uint64_t> pages, regions;
  for (const Access& a : accesses_) pages.insert(a.vpn), regions.insert(a.vpn >> 9);
  const CompareRow& faults = row(r->table, "guest.page_faults");
  ASSERT_EQ(faults.values.size(), 2u);
  EXPECT_EQ(faults.values[0], pages.size());
  EXPECT_EQ(faults.values[1], regions.size());
  EXPECT_EQ(row(r->table, "guest.table_pages").values[1], minimum_tables(pages, 4, 2));
  EXPECT_TRUE(r->notes.empty());
}

TEST_F(ReplayCompare, TlbSizesMissAsAReferenceLruOfEachSize) {
  ReplayConfig c = small_config();
  c.host_page_size = 4096;  // one 4 KiB page per entry, as the reference
  auto r = run_replay_compare({trace_}, c, "tlb", {"16", "256"});
  ASSERT_TRUE(r) << r.error().message;
  const CompareRow& misses = row(r->table, "tlb.misses");
  for (std::size_t i = 0; i < 2; ++i) {
    const std::uint32_t entries = i == 0 ? 16 : 256;
    tlb::test_support::ReferenceLru ref(entries, entries);
    std::uint64_t expected = 0;
    for (const Access& a : accesses_) expected += ref.access(a.vpn, is_write(a.kind)) ? 1u : 0u;
    EXPECT_EQ(misses.values[i], expected) << entries;
    EXPECT_EQ(row(r->table, "tlb.entries").values[i], entries);
  }
}

TEST_F(ReplayCompare, DirtyTrackingPoliciesLogTheSamePages) {
  ReplayConfig c = small_config();
  c.dirty_log_at = 0.5;
  auto r = run_replay_compare({trace_}, c, "dirty-tracking", {});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->table.values, (std::vector<std::string>{"write-protect", "dirty-bits"}));
  const std::set<std::uint64_t> written = pages_written(accesses_, accesses_.size() / 2, accesses_.size());
  const CompareRow& logged = row(r->table, "dirty_log.data_pages_logged");
  EXPECT_EQ(logged.values[0], written.size());
  EXPECT_EQ(logged.values[1], written.size());
  // Write protection makes the first write to each logged page fault; D bits never do.
  const CompareRow& wp = row(r->table, "stats.write_protected");
  EXPECT_GT(wp.values[0].value_or(0), 0u);
  EXPECT_EQ(wp.values[1], 0u);
  ASSERT_TRUE(r->runs[1]);
  EXPECT_EQ(r->runs[1]->policies.dirty_tracking, tdp::DirtyTracking::DirtyBits);
}

TEST_F(ReplayCompare, MmuKindsThisBuildCannotReplayKeepAnEmptyColumnAndANote) {
  auto r = run_replay_compare({trace_}, small_config(), "mmu", {});
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->table.values, (std::vector<std::string>{"tdp", "shadow", "adaptive"}));
  const CompareRow& faults = row(r->table, "guest.page_faults");
  EXPECT_TRUE(faults.values[0]);
  for (std::size_t i = 0; i < 3; ++i) {
    const bool runs = !replay_lacks(kMmuKinds[i].kind);
    EXPECT_EQ(r->runs[i].has_value(), runs) << kMmuKinds[i].name;
    EXPECT_EQ(faults.values[i].has_value(), runs) << kMmuKinds[i].name;
  }
  std::size_t lacking = 0;
  for (const MmuKindName& k : kMmuKinds) lacking += replay_lacks(k.kind) ? 1u : 0u;
  EXPECT_EQ(r->notes.size(), lacking);
}

TEST_F(ReplayCompare, UnknownAxesAndValuesAreNamed) {
  auto axis = run_replay_compare({trace_}, small_config(), "colour", {});
  ASSERT_FALSE(axis);
  EXPECT_TRUE(axis.error().bad_input);
  EXPECT_NE(axis.error().message.find("unknown axis \"colour\""), std::string::npos) << axis.error().message;
  EXPECT_NE(axis.error().message.find("guest-pages"), std::string::npos);
  auto value = run_replay_compare({trace_}, small_config(), "guest-pages", {"4k", "1g"});
  ASSERT_FALSE(value);
  EXPECT_NE(value.error().message.find("guest-pages=1g: expected 4k or 2m"), std::string::npos)
      << value.error().message;
  auto tlb = run_replay_compare({trace_}, small_config(), "tlb", {"64:5"});
  ASSERT_FALSE(tlb);
  EXPECT_NE(tlb.error().message.find("tlb=64:5: the ways must divide"), std::string::npos) << tlb.error().message;
}

}  // namespace
}  // namespace vmmu::sim
