// vm.nested under concurrency: four L2 vCPU threads taking EPT violations on the same L1 tables
// at once (L1 installs under its lock, L0 emulates each store under the nested MMU's) while
// they store through the host pointers the nested MMU hands back, for TSan to watch.

#include <gtest/gtest.h>

#include "support/sim_test_support.hpp"

namespace vmmu::sim::test {
namespace {

TEST(NestedStress, L2VcpusFaultingTogetherMapEveryPageOnce) {
  Scenario s = tiny({RandomAccessPhase{40'000, 0.5}, PopulatePhase{}, MigrationPhase{4, 0.5, true, false}}, 2 * MiB,
                    4 * KiB, 4);
  s.vm.nested = NestedParams{};
  const RunReport r = run_ok(s);
  ASSERT_EQ(r.phases.size(), 3u);
  // Each L2 page is mapped by L1 exactly once, whichever vCPU took its violation first: 512
  // leaves, and one PML4E, PDPTE and PDE (racing vCPUs find the entry present and retry).
  EXPECT_EQ(metric(r, "random-access", "nested_l1_ept_writes") + metric(r, "populate", "nested_l1_ept_writes"),
            512u + 3u);
  EXPECT_GE(metric(r, "random-access", "nested_exits_to_l1") + metric(r, "populate", "nested_exits_to_l1"), 512u);
  for (const MigrationIteration& it : phase(r, "migration").migration.at(0).iterations) EXPECT_EQ(it.pages_lost, 0u);
  EXPECT_TRUE(r.ok());
}

}  // namespace
}  // namespace vmmu::sim::test
