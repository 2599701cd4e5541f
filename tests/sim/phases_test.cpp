// Each phase on a tiny VM: what it must do to the tables, read from its own figures and the
// MMU's statistics.

#include <gtest/gtest.h>

#include "support/sim_test_support.hpp"

namespace vmmu::sim::test {
namespace {

constexpr std::uint64_t kPages8M = 8 * MiB / kPageSize;

TEST(PopulatePhase, MapsEachHugeBackedRangeWithOneHugeLeaf) {
  const RunReport r = run_ok(tiny({PopulatePhase{}}));
  EXPECT_EQ(metric(r, "populate", "pages"), kPages8M);
  EXPECT_EQ(metric(r, "populate", "mapped_2m"), 4u);
  EXPECT_EQ(metric(r, "populate", "leaves_2m"), 4u);
  EXPECT_EQ(metric(r, "populate", "mapped_4k"), 0u);
  EXPECT_GE(metric(r, "populate", "faults"), 4u);
}

TEST(PopulatePhase, Maps4KBackedMemoryWith4KLeaves) {
  const RunReport r = run_ok(tiny({PopulatePhase{}}, 8 * MiB, 4 * KiB));
  EXPECT_EQ(metric(r, "populate", "mapped_4k"), kPages8M);
  EXPECT_EQ(metric(r, "populate", "leaves_4k"), kPages8M);
  EXPECT_EQ(metric(r, "populate", "mapped_2m"), 0u);
}

TEST(ReadAllPhase, FaultsNothingAfterPopulate) {
  const RunReport r = run_ok(tiny({PopulatePhase{}, ReadAllPhase{}}, 8 * MiB, 4 * KiB));
  EXPECT_EQ(metric(r, "read-all", "pages"), kPages8M);
  EXPECT_EQ(metric(r, "read-all", "faults"), 0u);
}

TEST(ReadAllPhase, FaultsEveryPageInOnFreshMemory) {
  const RunReport r = run_ok(tiny({ReadAllPhase{}}, 8 * MiB, 4 * KiB));
  EXPECT_EQ(metric(r, "read-all", "mapped_4k"), kPages8M);
}

TEST(RandomAccessPhase, SplitsAccessesIntoReadsAndWritesByFraction) {
  const RunReport r = run_ok(tiny({RandomAccessPhase{20'000, 0.25}}));
  const std::uint64_t writes = metric(r, "random-access", "writes");
  EXPECT_EQ(metric(r, "random-access", "reads") + writes, 20'000u);
  EXPECT_GT(writes, 4'000u);  // 5,000 expected; far outside binomial noise
  EXPECT_LT(writes, 6'000u);
}

TEST(RandomAccessPhase, SameSeedSameFaults) {
  Scenario s = tiny({RandomAccessPhase{5'000, 0.5}}, 8 * MiB, 4 * KiB, 1);
  const RunReport a = run_ok(s);
  const RunReport b = run_ok(s);
  EXPECT_EQ(metric(a, "random-access", "mapped_4k"), metric(b, "random-access", "mapped_4k"));
  s.seed = 2;
  const RunReport c = run_ok(s);
  EXPECT_NE(metric(a, "random-access", "mapped_4k"), metric(c, "random-access", "mapped_4k"));
}

TEST(DirtyLogPhases, EagerSplitOnEnableAndMergeInPlaceOnDisable) {
  const RunReport r = run_ok(tiny({PopulatePhase{}, DirtyLogEnablePhase{}, DirtyLogDisablePhase{}}));
  EXPECT_EQ(metric(r, "dirty-log-enable", "eager_splits"), 4u);
  EXPECT_EQ(metric(r, "dirty-log-enable", "leaves_2m"), 0u);
  EXPECT_EQ(metric(r, "dirty-log-disable", "merges_in_place"), 4u);
  EXPECT_EQ(metric(r, "dirty-log-disable", "leaves_2m"), 4u);
}

TEST(DirtyLogPhases, ZapAndRefaultRecoveryZapsInsteadOfMerging) {
  Scenario s = tiny({PopulatePhase{}, DirtyLogEnablePhase{}, DirtyLogDisablePhase{}, ReadAllPhase{}});
  s.policies.recovery = tdp::RecoveryPolicy::ZapAndRefault;
  const RunReport r = run_ok(s);
  EXPECT_EQ(metric(r, "dirty-log-disable", "merges_in_place"), 0u);
  EXPECT_EQ(metric(r, "dirty-log-disable", "recovered_by_zap"), 4u);
  EXPECT_EQ(metric(r, "read-all", "mapped_2m"), 4u);
}

TEST(MigrationPhase, ReportsEveryWrittenPageInEachIteration) {
  const RunReport r = run_ok(tiny({MigrationPhase{3, 1.0}}));
  const PhaseReport& p = phase(r, "migration");
  ASSERT_EQ(p.migration.size(), 1u);
  ASSERT_EQ(p.migration[0].iterations.size(), 3u);
  for (const MigrationIteration& it : p.migration[0].iterations) {
    EXPECT_EQ(it.pages_written, kPages8M);
    EXPECT_EQ(it.pages_dirty, kPages8M);
    EXPECT_EQ(it.pages_lost, 0u);
  }
  EXPECT_TRUE(r.ok());
}

TEST(MigrationPhase, WriteFractionWritesAboutThatShareOfPages) {
  const RunReport r = run_ok(tiny({MigrationPhase{2, 0.5}}));
  for (const MigrationIteration& it : phase(r, "migration").migration.at(0).iterations) {
    EXPECT_GT(it.pages_written, kPages8M * 4 / 10);
    EXPECT_LT(it.pages_written, kPages8M * 6 / 10);
    EXPECT_GE(it.pages_dirty, it.pages_written);
    EXPECT_EQ(it.pages_lost, 0u);
  }
}

TEST(MigrationPhase, WithoutManualProtectGetAloneReprotectsAndNothingIsCleared) {
  const RunReport r = run_ok(tiny({MigrationPhase{3, 1.0, false}}));
  for (const MigrationIteration& it : phase(r, "migration").migration.at(0).iterations) {
    EXPECT_EQ(it.clear_ns, 0u);
    EXPECT_EQ(it.pages_dirty, kPages8M);
    EXPECT_EQ(it.pages_lost, 0u);
  }
  // Each round's writes fault again: get write-protected what it returned.
  EXPECT_EQ(metric(r, "migration", "dirtied"), 3 * kPages8M);
}

TEST(MigrationPhase, FiguresAreLabelledAsDirtyLogPerfTestPrintsThem) {
  const RunReport r = run_ok(tiny({MigrationPhase{2, 1.0}}));
  std::vector<std::string> labels;
  for (const Metric& m : all_metrics(phase(r, "migration"))) labels.push_back(m.label);
  for (const char* want :
       {"Populate memory time", "Enabling dirty logging time", "Iteration 1 dirty memory time",
        "Iteration 2 get dirty log time", "Iteration 2 clear dirty log time", "Disabling dirty logging time",
        "Get dirty log over 2 iterations took", "Clear dirty log average"}) {
    EXPECT_NE(std::find(labels.begin(), labels.end(), want), labels.end()) << want;
  }
}

TEST(ConversionPhase, SplitsEachRangeAndMergesItBackWithItsData) {
  const RunReport r = run_ok(tiny({PopulatePhase{}, ConversionPhase{3}}));
  EXPECT_EQ(metric(r, "conversion", "ranges"), 3u);
  EXPECT_EQ(metric(r, "conversion", "huge_before"), 3u);
  EXPECT_EQ(metric(r, "conversion", "huge_after"), 3u);
  EXPECT_EQ(metric(r, "conversion", "shared_ok"), 3u);
  EXPECT_EQ(metric(r, "conversion", "bad_words"), 0u);
  EXPECT_EQ(metric(r, "conversion", "eager_splits"), 3u);
  EXPECT_EQ(metric(r, "conversion", "merges_in_place"), 3u);
}

TEST(ConversionPhase, KeepsDataOn4KBackedMemoryThatCannotBeHuge) {
  const RunReport r = run_ok(tiny({ConversionPhase{2}}, 8 * MiB, 4 * KiB));
  EXPECT_EQ(metric(r, "conversion", "huge_after"), 0u);
  EXPECT_EQ(metric(r, "conversion", "merges_in_place"), 0u);
  EXPECT_EQ(metric(r, "conversion", "bad_words"), 0u);
}

TEST(SmepStormPhase, KeepPolicyCostsNoFaultZapOrRoot) {
  const RunReport r = run_ok(tiny({PopulatePhase{}, SmepStormPhase{2'000, 4}}));
  EXPECT_EQ(metric(r, "smep-storm", "flips"), 4'000u);
  EXPECT_EQ(metric(r, "smep-storm", "storm_faults"), 0u);
  EXPECT_EQ(metric(r, "smep-storm", "storm_zaps"), 0u);
  EXPECT_EQ(metric(r, "smep-storm", "storm_roots_created"), 0u);
  EXPECT_EQ(metric(r, "smep-storm", "root_unloads"), 0u);
  EXPECT_EQ(metric(r, "smep-storm", "role_refreshes"), 4'000u);
}

TEST(SmepStormPhase, RebuildPolicyDropsTheRootOnEveryFlip) {
  Scenario s = tiny({PopulatePhase{}, SmepStormPhase{500, 4}}, 8 * MiB, 2 * MiB, 1);
  s.policies.roots = tdp::RootPolicy::Rebuild;
  const RunReport r = run_ok(s);
  EXPECT_EQ(metric(r, "smep-storm", "root_unloads"), 500u);
  EXPECT_GE(metric(r, "smep-storm", "root_loads"), 500u);
}

TEST(Runner, ReportsEveryPhaseInOrderWithItsTime) {
  const RunReport r = run_ok(tiny({PopulatePhase{}, ReadAllPhase{}, ReadAllPhase{}}));
  ASSERT_EQ(r.phases.size(), 3u);
  EXPECT_EQ(r.phases[0].name, "populate");
  EXPECT_EQ(r.phases[1].name, "read-all");
  EXPECT_EQ(r.phases[2].name, "read-all#2");
  for (const PhaseReport& p : r.phases) EXPECT_GT(p.time_ns, 0u);
}

TEST(Runner, RefusesAnInvalidScenarioNamingTheKey) {
  Scenario s = tiny({PopulatePhase{}});
  s.vm.vcpus = 0;
  auto r = run(s);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().rfind("vm.vcpus: ", 0), 0u) << r.error();
}

TEST(Runner, ReportsProgressForEveryPhaseAndEndsItAtTotal) {
  RunOptions o;
  std::vector<std::string> seen;
  bool last_complete = false;
  o.progress = [&](const Progress& p) {
    if (seen.empty() || seen.back() != p.phase) seen.emplace_back(p.phase);
    last_complete = p.done == p.total;
  };
  auto r = run(tiny({PopulatePhase{}, MigrationPhase{1, 1.0}}), o);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(seen, (std::vector<std::string>{"populate", "migration"}));
  EXPECT_TRUE(last_complete);
}

}  // namespace
}  // namespace vmmu::sim::test
