// Dirty-log completeness under concurrency: two vCPU threads dirtying memory while rounds of
// get / clear (or harvest / reset) run -- in bitmap modes also while another thread gets and
// clears the log again and again during the writes, as a live migration does -- with every
// page a vCPU wrote in a round required in that round's harvests, in every tracking mode, with
// huge pages split eagerly or lazily.

#include <gtest/gtest.h>

#include <tuple>

#include "support/sim_test_support.hpp"

namespace vmmu::sim::test {
namespace {

using Mode = std::tuple<std::uint32_t /*ring*/, tdp::DirtyTracking, tdp::SplitPolicy, double /*write fraction*/,
                        bool /*manual protect*/>;

class MigrationCompleteness : public ::testing::TestWithParam<Mode> {};

TEST_P(MigrationCompleteness, NoWrittenPageIsEverMissingFromItsRound) {
  const auto [ring, tracking, split, fraction, manual] = GetParam();
  // Rings have one collector (the vCPU on ring-full), so only bitmaps are harvested during writes.
  const bool concurrent = ring == 0;
  const MigrationPhase migration{40, fraction, manual, concurrent};
  Scenario s = tiny({PopulatePhase{}, migration, RandomAccessPhase{20'000, 0.5}, migration}, 4 * MiB, 2 * MiB, 2);
  s.vm.dirty_ring_size = ring;
  s.policies.dirty_tracking = tracking;
  s.policies.split = split;
  const RunReport r = run_ok(s);
  ASSERT_EQ(r.phases.size(), 4u);
  std::uint64_t written = 0, harvests_while_writing = 0;
  for (const PhaseReport& p : r.phases) {
    for (const MigrationReport& m : p.migration) {
      ASSERT_EQ(m.iterations.size(), 40u);
      for (const MigrationIteration& it : m.iterations) {
        EXPECT_EQ(it.pages_lost, 0u);
        EXPECT_GE(it.pages_dirty, it.pages_written);
        written += it.pages_written;
        harvests_while_writing += it.harvests_while_writing;
      }
    }
  }
  EXPECT_GT(written, 0u);
  if (concurrent) {
    EXPECT_GT(harvests_while_writing, 0u) << "no harvest ran while the vCPUs wrote";
  }
  EXPECT_TRUE(r.ok());
}

INSTANTIATE_TEST_SUITE_P(
    Modes, MigrationCompleteness,
    ::testing::Values(Mode{0, tdp::DirtyTracking::WriteProtect, tdp::SplitPolicy::Eager, 1.0, true},
                      Mode{0, tdp::DirtyTracking::WriteProtect, tdp::SplitPolicy::Lazy, 0.5, true},
                      Mode{0, tdp::DirtyTracking::WriteProtect, tdp::SplitPolicy::Eager, 0.5, false},
                      Mode{0, tdp::DirtyTracking::DirtyBits, tdp::SplitPolicy::Eager, 0.5, true},
                      Mode{0, tdp::DirtyTracking::DirtyBits, tdp::SplitPolicy::Lazy, 1.0, false},
                      Mode{64, tdp::DirtyTracking::WriteProtect, tdp::SplitPolicy::Eager, 0.5, true},
                      Mode{64, tdp::DirtyTracking::WriteProtect, tdp::SplitPolicy::Lazy, 1.0, true}));

}  // namespace
}  // namespace vmmu::sim::test
