// The guest-kernel phases (fork, rewrite-tables, cr3-switch; issue 12 item 11) under both
// MMUs: each phase checks its own data and counts (a failure fails run_ok), and these tests
// check the figures it reports and what the shadow MMU did. Small sizes: debug builds check the
// shadow invariants after every fault.

#include <gtest/gtest.h>

#include "support/sim_test_support.hpp"

namespace vmmu::sim::test {
namespace {

// Under adaptive (vm.mmu adaptive) each process starts shadowed and moves to TDP while its
// tables change often: the phases' data checks must hold across the moves.
constexpr mmu::MmuKind kBoth[] = {mmu::MmuKind::Tdp, mmu::MmuKind::Shadow, mmu::MmuKind::Adaptive};

// Debug builds check the MMUs' invariants after every operation: smaller runs keep each test
// under a second or two under ASan.
#ifdef VMMU_CHECK_INVARIANTS
constexpr std::uint64_t kPages = 8;
constexpr std::uint32_t kRounds = 3;
constexpr std::uint64_t kSwitches = 24;
#else
constexpr std::uint64_t kPages = 32;
constexpr std::uint32_t kRounds = 6;
constexpr std::uint64_t kSwitches = 60;
#endif

Scenario on(mmu::MmuKind kind, std::vector<PhaseParams> phases, unsigned vcpus = 2, bool unsync = true) {
  Scenario s = tiny(std::move(phases), 8 * MiB, 2 * MiB, vcpus);
  s.vm.mmu = kind;
  s.vm.shadow_unsync = unsync;
  return s;
}

std::string name_of(mmu::MmuKind k) { return std::string(mmu::to_string(k)); }

TEST(ForkPhase, BothSidesWritingEveryPageTakeOneCowFaultEachAndCopyOnce) {
  for (mmu::MmuKind kind : kBoth) {
    SCOPED_TRACE(name_of(kind));
    const RunReport r = run_ok(on(kind, {ForkPhase{kPages, 1.0}}));
    // 2 vCPUs: the parent copies each page, the child then owns the original.
    EXPECT_EQ(metric(r, "fork", "cow_faults"), 2 * 2 * kPages);
    EXPECT_EQ(metric(r, "fork", "cow_copies"), 2 * kPages);
    EXPECT_EQ(metric(r, "fork", "cow_reuses"), 2 * kPages);
  }
}

TEST(ForkPhase, PartialWritesFaultOncePerPageWrittenAndCopyOncePerPageShared) {
  for (mmu::MmuKind kind : kBoth) {
    SCOPED_TRACE(name_of(kind));
    const RunReport r = run_ok(on(kind, {ForkPhase{2 * kPages, 0.5}}, 1));
    const std::uint64_t faults = metric(r, "fork", "cow_faults");
    EXPECT_EQ(faults, metric(r, "fork", "cow_copies") + metric(r, "fork", "cow_reuses"));
    EXPECT_GT(metric(r, "fork", "cow_reuses"), 0u);  // pages both sides wrote
    EXPECT_LT(faults, 4 * kPages);                   // not every page by both
  }
}

TEST(ForkPhase, UnderShadowTheCopiedTablesAreTheGuestsOwnWrites) {
  for (bool unsync : {true, false}) {
    SCOPED_TRACE(unsync ? "unsync" : "emulate");
    const RunReport r = run_ok(on(mmu::MmuKind::Shadow, {ForkPhase{kPages, 0.5}}, 1, unsync));
    EXPECT_GT(metric(r, "fork", "emulated"), 0u);
    if (unsync)
      EXPECT_GT(metric(r, "fork", "unsyncs"), 0u);
    else
      EXPECT_EQ(metric(r, "fork", "unsyncs"), 0u);
  }
}

TEST(RewriteTablesPhase, EveryAccessSeesTheRewrittenMappingUnderBothMmusAndFlushes) {
  for (mmu::MmuKind kind : kBoth) {
    for (RewriteFlush flush : {RewriteFlush::Invlpg, RewriteFlush::Cr3}) {
      SCOPED_TRACE(name_of(kind) + (flush == RewriteFlush::Invlpg ? " invlpg" : " cr3"));
      const RunReport r = run_ok(on(kind, {RewriteTablesPhase{kPages, kRounds, flush}}));
      EXPECT_EQ(metric(r, "rewrite-tables", "reads"), 2u * kPages * kRounds);
      EXPECT_GT(metric(r, "rewrite-tables", "remaps"), 0u);
      EXPECT_GT(metric(r, "rewrite-tables", "unmaps"), 0u);
      EXPECT_GT(metric(r, "rewrite-tables", "guest_faults"), 0u);
    }
  }
}

TEST(RewriteTablesPhase, UnderShadowRewritesGoUnsyncOrAreEmulatedAsConfigured) {
  const RunReport u = run_ok(on(mmu::MmuKind::Shadow, {RewriteTablesPhase{kPages, kRounds, RewriteFlush::Cr3}}, 1, true));
  EXPECT_GT(metric(u, "rewrite-tables", "unsyncs"), 0u);
  EXPECT_GT(metric(u, "rewrite-tables", "syncs"), 0u);
  const RunReport e = run_ok(on(mmu::MmuKind::Shadow, {RewriteTablesPhase{kPages, kRounds, RewriteFlush::Cr3}}, 1, false));
  EXPECT_EQ(metric(e, "rewrite-tables", "unsyncs"), 0u);
  EXPECT_GT(metric(e, "rewrite-tables", "emulated"), metric(u, "rewrite-tables", "emulated"));
}

TEST(Cr3SwitchPhase, WithPcidsNothingIsFlushedAndUnderShadowEverySwitchHitsACachedRoot) {
  for (mmu::MmuKind kind : kBoth) {
    SCOPED_TRACE(name_of(kind));
    const RunReport r = run_ok(on(kind, {Cr3SwitchPhase{3, kSwitches, 4, true}}));
    EXPECT_EQ(metric(r, "cr3-switch", "switches"), 2u * (kSwitches - 3));
    EXPECT_EQ(metric(r, "cr3-switch", "guest_tlb_flushes"), 0u);
    if (kind == mmu::MmuKind::Shadow) {
      EXPECT_EQ(metric(r, "cr3-switch", "roots_built"), 0u);
      EXPECT_EQ(metric(r, "cr3-switch", "root_syncs"), 0u);
      EXPECT_EQ(metric(r, "cr3-switch", "root_cache_hits"), 2u * (kSwitches - 3));
    }
  }
}

TEST(Cr3SwitchPhase, WithoutPcidsEverySwitchFlushesAndUnderShadowSyncsTheCachedRoot) {
  for (mmu::MmuKind kind : kBoth) {
    SCOPED_TRACE(name_of(kind));
    const RunReport r = run_ok(on(kind, {Cr3SwitchPhase{4, kSwitches, 4, false}}, 1));
    EXPECT_EQ(metric(r, "cr3-switch", "guest_tlb_flushes"), kSwitches - 4);
    if (kind == mmu::MmuKind::Shadow) {
      EXPECT_EQ(metric(r, "cr3-switch", "roots_built"), 0u);
      EXPECT_EQ(metric(r, "cr3-switch", "root_syncs"), kSwitches - 4);
    }
  }
}

TEST(Cr3SwitchPhase, MoreProcessesThanCachedRootsMissTheCacheUnderShadowButKeepTheirData) {
  const RunReport r = run_ok(on(mmu::MmuKind::Shadow, {Cr3SwitchPhase{kShadowCachedRoots + 2, kSwitches, 2, true}}, 1));
  // Round robin over 6 roots with 4 kept: every switch misses the vCPU's cache; the root is
  // found in the MMU, not built again.
  EXPECT_EQ(metric(r, "cr3-switch", "root_cache_hits"), 0u);
  EXPECT_EQ(metric(r, "cr3-switch", "roots_built"), 0u);
}

TEST(KernelPhases, RefuseSizesBeyondAVcpusShareNamingTheKey) {
  Scenario s = on(mmu::MmuKind::Shadow, {ForkPhase{kMaxGuestKernelPages, 0.5}});  // 1024 pages per share
  auto e = validate(s);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->key, "phases[0].pages");
  s = on(mmu::MmuKind::Tdp, {RewriteTablesPhase{8, 0, RewriteFlush::Invlpg}});
  e = validate(s);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->key, "phases[0].rounds");
  s = on(mmu::MmuKind::Tdp, {Cr3SwitchPhase{64, 10, 512, true}});
  e = validate(s);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->key, "phases[0].touch_pages");
  s = on(mmu::MmuKind::Tdp, {Cr3SwitchPhase{0, 10, 4, true}});
  e = validate(s);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->key, "phases[0].processes");
}

}  // namespace
}  // namespace vmmu::sim::test
