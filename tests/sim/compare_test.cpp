// Policies side by side: one table, a column per value, and the differences each policy is
// there to show -- counted in faults, roots and merges, never in time.

#include "vmmu/sim/compare.hpp"

#include <gtest/gtest.h>

#include <set>

#include "support/sim_test_support.hpp"

namespace vmmu::sim::test {
namespace {

const CompareRow* find_row(const CompareTable& t, std::string_view phase_name, std::string_view key) {
  for (const CompareRow& r : t.rows) {
    if (r.phase == phase_name && r.key == key) return &r;
  }
  ADD_FAILURE() << "no row " << phase_name << " / " << key;
  return nullptr;
}

CompareReport compare_ok(const Scenario& s, std::string_view policy) {
  auto r = run_compare(s, policy);
  EXPECT_TRUE(r.has_value()) << (r ? "" : r.error());
  if (!r) return {};
  for (const RunReport& run : r->runs) {
    for (const std::string& f : run.failures()) ADD_FAILURE() << f;
  }
  return std::move(*r);
}

// The seed comparison of the issue, at a size a test can afford: huge leaves mapped, dirty
// logging on with lazy splitting, every page read.
Scenario huge_pages_on_dirty_log(std::uint64_t size) {
  Scenario s = tiny({PopulatePhase{}, DirtyLogEnablePhase{}, ReadAllPhase{}, DirtyLogDisablePhase{}}, size, 2 * MiB, 1);
  s.policies.split = tdp::SplitPolicy::Lazy;
  return s;
}

TEST(Compare, TableHasAColumnPerValueAndARowPerPhaseFigure) {
  const CompareReport r = compare_ok(tiny({PopulatePhase{}, MigrationPhase{2, 1.0}}), "split");
  const CompareTable& t = r.table;
  EXPECT_EQ(t.policy, "split");
  EXPECT_EQ(t.values, (std::vector<std::string>{"eager", "lazy"}));
  ASSERT_EQ(r.runs.size(), 2u);
  EXPECT_EQ(r.runs[0].scenario.policies.split, tdp::SplitPolicy::Eager);
  EXPECT_EQ(r.runs[1].scenario.policies.split, tdp::SplitPolicy::Lazy);
  std::set<std::pair<std::string, std::string>> seen;
  for (const CompareRow& row : t.rows) {
    EXPECT_EQ(row.values.size(), 2u);
    for (const auto& v : row.values) EXPECT_TRUE(v.has_value()) << row.phase << " / " << row.key;
    EXPECT_TRUE(seen.emplace(row.phase, row.key).second) << "twice: " << row.phase << " / " << row.key;
  }
  // Every figure of every phase of every run is a row.
  EXPECT_EQ(t.rows.size(), all_metrics(r.runs[0].phases[0]).size() + all_metrics(r.runs[0].phases[1]).size());
  // Rows keep the scenario's phase order, time first.
  EXPECT_EQ(t.rows.front().phase, "populate");
  EXPECT_EQ(t.rows.front().key, "time_ns");
  EXPECT_TRUE(t.rows.front().result);
  EXPECT_EQ(t.rows.back().phase, "migration");
}

TEST(Compare, EagerSplittingSplitsWithoutFaultsAndLazyByWriteFaults) {
  const CompareReport r = compare_ok(tiny({PopulatePhase{}, MigrationPhase{1, 1.0}}), "split");
  const CompareRow* eager = find_row(r.table, "migration", "eager_splits");
  const CompareRow* lazy = find_row(r.table, "migration", "lazy_splits");
  ASSERT_TRUE(eager && lazy);
  EXPECT_EQ(*eager->values[0], 4u);  // 8 MiB of 2M leaves, split when logging starts
  EXPECT_EQ(*eager->values[1], 0u);
  EXPECT_EQ(*lazy->values[0], 0u);
  EXPECT_EQ(*lazy->values[1], 4u);  // each split by its first write fault
}

TEST(Compare, WriteProtectedHugeLeavesReadWithAtLeastHalfTheFaultsOfDroppedOnes) {
  const Scenario s = huge_pages_on_dirty_log(64 * MiB);
  const CompareReport r = compare_ok(s, "huge-on-dirty-log");
  ASSERT_EQ(r.table.values, (std::vector<std::string>{"write-protect", "drop"}));
  const CompareRow* faults = find_row(r.table, "read-all", "faults");
  ASSERT_TRUE(faults);
  const std::uint64_t write_protect = *faults->values[0];
  const std::uint64_t drop = *faults->values[1];
  EXPECT_GE(drop, 2 * write_protect) << "write-protect " << write_protect << ", drop " << drop;
  // Dropped huge leaves come back as one 4K mapping per page read while logging.
  EXPECT_EQ(drop, 64 * MiB / kPageSize);
  EXPECT_EQ(write_protect, 0u);
  const CompareRow* zapped = find_row(r.table, "dirty-log-enable", "zapped_leaves");
  ASSERT_TRUE(zapped);
  EXPECT_EQ(*zapped->values[0], 0u);
  EXPECT_EQ(*zapped->values[1], 32u);
}

TEST(Compare, KeepingRootsCostsTheStormNothingAndRebuildingUnloadsThem) {
  Scenario s = tiny({PopulatePhase{}, SmepStormPhase{1'000, 4}}, 8 * MiB, 2 * MiB, 1);
  const CompareReport r = compare_ok(s, "roots");
  const CompareRow* unloads = find_row(r.table, "smep-storm", "root_unloads");
  const CompareRow* faults = find_row(r.table, "smep-storm", "storm_faults");
  ASSERT_TRUE(unloads && faults);
  EXPECT_EQ(*unloads->values[0], 0u);
  EXPECT_EQ(*unloads->values[1], 1'000u);
  EXPECT_EQ(*faults->values[0], 0u);
}

TEST(Compare, MergeInPlaceRecoversWithoutZapsAndZapAndRefaultByZaps) {
  const CompareReport r = compare_ok(tiny({PopulatePhase{}, MigrationPhase{1, 1.0}, ReadAllPhase{}}), "recovery");
  const CompareRow* merges = find_row(r.table, "migration", "merges_in_place");
  const CompareRow* zapped = find_row(r.table, "migration", "recovered_by_zap");
  const CompareRow* refaults = find_row(r.table, "read-all", "mapped_2m");
  ASSERT_TRUE(merges && zapped && refaults);
  EXPECT_EQ(*merges->values[0], 4u);
  EXPECT_EQ(*zapped->values[0], 0u);
  EXPECT_EQ(*refaults->values[0], 0u);  // merged: still mapped huge, nothing to fault
  EXPECT_EQ(*merges->values[1], 0u);
  EXPECT_EQ(*zapped->values[1], 4u);
  EXPECT_EQ(*refaults->values[1], 4u);  // zapped: faults map the 2M leaves again
}

TEST(Compare, RefusesAnUnknownPolicyNamingTheKnownOnes) {
  auto r = run_compare(tiny({PopulatePhase{}}), "colour");
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().find("huge-on-dirty-log, split, recovery, roots, dirty-tracking"), std::string::npos)
      << r.error();
}

TEST(Compare, AValueTheScenarioCannotRunIsAnErrorNamingIt) {
  Scenario s = tiny({PopulatePhase{}});
  s.vm.ad_bits = false;
  auto r = run_compare(s, "dirty-tracking");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().rfind("dirty-tracking=dirty-bits: policies.dirty-tracking: ", 0), 0u) << r.error();
}

}  // namespace
}  // namespace vmmu::sim::test
