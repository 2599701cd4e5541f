// vm.nested under concurrency, L1 on EPT and on NPT: four L2 vCPU threads taking EPT
// violations (not-present #NPFs) on the same L1 tables (every run starts with all of them
// missing the same PML4E, PDPTE and PDE) while they store through the host pointers the nested
// MMU hands back; L1 installs under its lock, L0 emulates each store under the nested MMU's.
// For TSan to watch, and counted exactly. (The threads start staggered, so two first exits
// rarely meet: removing L1's lock went unseen in 24 rounds; what this catches is a race TSan
// can see in the paths the vCPUs share.)

#include <gtest/gtest.h>

#include "support/sim_test_support.hpp"

namespace vmmu::sim::test {
namespace {

// Debug builds check the nested MMU's invariants after every operation: a smaller memory there.
#ifdef VMMU_CHECK_INVARIANTS
constexpr std::uint64_t kNestedStressPages = 64;
#else
constexpr std::uint64_t kNestedStressPages = 512;
#endif

class NestedStress : public ::testing::TestWithParam<NestedKind> {};
INSTANTIATE_TEST_SUITE_P(L1Tables, NestedStress, ::testing::Values(NestedKind::Ept, NestedKind::Npt),
                         [](const auto& param_info) {
                           return std::string(param_info.param == NestedKind::Npt ? "Npt" : "Ept");
                         });

TEST_P(NestedStress, L2VcpusFaultingTogetherMapEveryPageOnce) {
  for (int round = 0; round < 2; ++round) {
    Scenario s = tiny({PopulatePhase{}, RandomAccessPhase{8 * kNestedStressPages, 0.5},
                       MigrationPhase{2, 0.5, true, false}},
                      kNestedStressPages * 4 * KiB, 4 * KiB, 4);
    s.seed = static_cast<std::uint64_t>(round) + 1;
    s.vm.nested = NestedParams{GetParam(), true, false};
    const RunReport r = run_ok(s);
    ASSERT_EQ(r.phases.size(), 3u);
    // Each L2 page is mapped by L1 exactly once, whichever vCPU took its violation first: a
    // leaf each, and one PML4E, PDPTE and PDE (a vCPU that finds the entry made retries).
    EXPECT_EQ(metric(r, "populate", "nested_l1_ept_writes"), kNestedStressPages + 3) << "round " << round;
    EXPECT_EQ(metric(r, "random-access", "nested_l1_ept_writes"), 0u) << "round " << round;
    for (const MigrationIteration& it : phase(r, "migration").migration.at(0).iterations)
      EXPECT_EQ(it.pages_lost, 0u) << "round " << round;
    ASSERT_TRUE(r.ok()) << "round " << round;
  }
}

}  // namespace
}  // namespace vmmu::sim::test
