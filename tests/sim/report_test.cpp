// Phase statistics: deltas of counters, and a counter that went backwards is an error, never
// the 0 that "no zaps" checks accept.

#include <gtest/gtest.h>

#include "support/sim_test_support.hpp"

namespace vmmu::sim::test {
namespace {

TEST(StatsMetrics, CountersAreDeltasAndGaugesLevels) {
  StatsSnapshot before, after;
  before.tdp.zaps = 3;
  after.tdp.zaps = 10;
  after.tdp.tables_in_use = 7;
  before.host_page_faults = 100;
  after.host_page_faults = 140;
  const auto m = stats_metrics(before, after);
  ASSERT_TRUE(m) << m.error();
  PhaseReport p;
  p.stats = *m;
  EXPECT_EQ(find_metric(p, "zaps"), 7u);
  EXPECT_EQ(find_metric(p, "tables_in_use"), 7u);
  EXPECT_EQ(find_metric(p, "host_page_faults"), 40u);
}

TEST(StatsMetrics, ACounterThatWentBackwardsIsAnErrorNamingIt) {
  StatsSnapshot before, after;
  before.tdp.zaps = 5;
  after.tdp.zaps = 3;
  const auto m = stats_metrics(before, after);
  ASSERT_FALSE(m.has_value()) << "a counter that went backwards was reported";
  EXPECT_NE(m.error().find("zaps went backwards (5 before the phase, 3 after)"), std::string::npos) << m.error();
}

}  // namespace
}  // namespace vmmu::sim::test
