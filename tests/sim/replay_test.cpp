// Trace replay's done-means checks on traces generated here: cold replays fault exactly once
// per page (4K) or 2 MiB region (2M), build the minimum page tables, log exactly the pages
// written after dirty logging starts, walk with the closed-form references, and miss the TLB
// exactly as a reference LRU model does -- under the TDP MMU and under the shadow MMU.

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "sim/support/trace_support.hpp"
#include "tlb/support/reference_lru.hpp"
#include "vmmu/sim/replay.hpp"
#include "vmmu/sim/trace.hpp"
#include "vmmu/tlb/walk_refs.hpp"

namespace vmmu::sim {
namespace {

using namespace vmmu::sim::test;

std::string mmu_name(const ::testing::TestParamInfo<MmuKind>& i) { return std::string(to_string(i.param)); }

class ColdReplay : public ::testing::TestWithParam<std::tuple<MmuKind, std::uint64_t, unsigned>> {};

TEST_P(ColdReplay, FaultsOncePerPageAndBuildsTheMinimumTables) {
  const auto [mmu, page_size, levels] = GetParam();
  const auto accesses = generated(7, 40000);
  const std::string p = write_trace("cold", accesses);
  ReplayConfig c = small_config();
  c.mmu = mmu;
  c.guest_page_size = page_size;
  c.guest_levels = levels;
  auto r = replay({p}, c);
  ASSERT_TRUE(r) << r.error().message;
  std::set<std::uint64_t> vpns, written, regions;
  for (const Access& a : accesses) {
    vpns.insert(a.vpn);
    regions.insert(a.vpn >> 9);
    if (is_write(a.kind)) written.insert(a.vpn);
  }
  EXPECT_EQ(r->accesses, accesses.size());
  EXPECT_EQ(r->pages_touched, vpns.size());
  EXPECT_EQ(r->pages_written, written.size());
  EXPECT_EQ(r->guest_page_faults, page_size == k2M ? regions.size() : vpns.size());
  EXPECT_EQ(r->guest_table_pages, minimum_tables(vpns, levels, page_size == k2M ? 2 : 1));
  EXPECT_EQ(r->tlb.lookups, accesses.size());
  EXPECT_EQ(r->mmu, mmu);
  std::filesystem::remove(p);
}

INSTANTIATE_TEST_SUITE_P(MmusPagesAndLevels, ColdReplay,
                         ::testing::Combine(::testing::Values(MmuKind::Tdp, MmuKind::Shadow),
                                            ::testing::Values(std::uint64_t{4096}, k2M), ::testing::Values(4u, 5u)));

class DirtyLogReplay : public ::testing::TestWithParam<std::tuple<MmuKind, std::uint64_t>> {};

std::uint64_t stat(const ReplayReport& r, std::string_view key) {
  for (const Metric& m : r.stats) {
    if (m.key == key) return m.value;
  }
  ADD_FAILURE() << "no statistic " << key;
  return 0;
}

TEST_P(DirtyLogReplay, LogsExactlyThePagesWrittenFromTheStart) {
  const auto accesses = generated(11, 30000);
  const std::string p = write_trace("dirty", accesses);
  ReplayConfig c = small_config();
  c.mmu = std::get<0>(GetParam());
  c.guest_page_size = std::get<1>(GetParam());
  c.dirty_log_at = 0.5;
  c.tlb = {16384, 16};  // holds the pages: writes after the start hit unless the TLB was flushed
  auto r = replay({p}, c);
  ASSERT_TRUE(r) << r.error().message;
  const std::uint64_t start = accesses.size() / 2;
  const std::set<std::uint64_t> written_after = pages_written(accesses, start, accesses.size());
  ASSERT_TRUE(r->dirty_log_start);
  EXPECT_EQ(*r->dirty_log_start, start);
  EXPECT_EQ(r->data_pages_logged, written_after.size());
  EXPECT_LE(r->table_pages_logged, r->guest_table_pages);
  std::filesystem::remove(p);
}

// Adaptive: AdaptiveReplay.DoneMeansCountsHoldAcrossAMove (kept out of these: ASan time).
INSTANTIATE_TEST_SUITE_P(MmusAndGuestPages, DirtyLogReplay,
                         ::testing::Combine(::testing::Values(MmuKind::Tdp, MmuKind::Shadow),
                                            ::testing::Values(std::uint64_t{4096}, k2M)));

// The time series adds up to the totals, and with dirty logging every interval after the
// start is a migration round whose harvests together log exactly the pages written.
TEST_P(DirtyLogReplay, SeriesAddUpAndMigrationRoundsLogEveryPageWritten) {
  const auto accesses = generated(11, 30000);
  const std::string p = write_trace("series", accesses);
  ReplayConfig c = small_config();
  c.mmu = std::get<0>(GetParam());
  c.guest_page_size = std::get<1>(GetParam());
  c.dirty_log_at = 0.5;
  c.samples = 10;
  c.tlb = {16384, 16};  // holds the pages: a round's writes are logged only if the harvest flushed it
  auto r = replay({p}, c);
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->series.size(), 10u);
  const std::uint64_t interval = accesses.size() / 10;
  EXPECT_EQ(r->sample_accesses, interval);
  std::uint64_t guest = 0, lookups = 0, misses = 0, mmu = 0, rounds = 0, harvested = 0;
  for (std::size_t i = 0; i < r->series.size(); ++i) {
    const ReplaySample& s = r->series[i];
    EXPECT_EQ(s.accesses, (i + 1) * interval);
    guest += s.guest_faults;
    lookups += s.tlb_lookups;
    misses += s.tlb_misses;
    mmu += s.mmu_faults;
    EXPECT_EQ(s.dirty_pages.has_value(), s.accesses > accesses.size() / 2) << i;  // rounds after the start
    if (s.dirty_pages) {
      ++rounds;
      harvested += *s.dirty_pages;
      EXPECT_EQ(*s.dirty_pages, pages_written(accesses, s.accesses - interval, s.accesses).size())
          << "round ending at " << s.accesses;
    }
    if (i > 0) {
      EXPECT_GE(s.table_pages, r->series[i - 1].table_pages);  // nothing frees tables here
    }
  }
  EXPECT_EQ(guest, r->guest_page_faults);
  EXPECT_EQ(lookups, r->tlb.lookups);
  EXPECT_EQ(misses, r->tlb.misses);
  EXPECT_EQ(mmu, stat(*r, "faults"));
  EXPECT_EQ(rounds, 5u);
  EXPECT_EQ(r->data_pages_logged, pages_written(accesses, accesses.size() / 2, accesses.size()).size());
  EXPECT_GT(harvested, r->data_pages_logged);  // pages written again in a later round count again
  std::filesystem::remove(p);
}

class ReplayUnder : public ::testing::TestWithParam<MmuKind> {};

TEST_P(ReplayUnder, SeveralTracesAreSeveralProcesses) {
  const auto a = generated(1, 5000), b = generated(2, 7000);
  const std::string pa = write_trace("proc-a", a), pb = write_trace("proc-b", b);
  ReplayConfig c = small_config();
  c.mmu = GetParam();
  c.slice_accesses = 1000;  // many switches
  c.tlb = {16384, 16};       // holds the pages: the other process's entries would hit without a flush
  auto r = replay({pa, pb}, c);
  ASSERT_TRUE(r) << r.error().message;
  std::set<std::uint64_t> va, vb;
  for (const Access& x : a) va.insert(x.vpn);
  for (const Access& x : b) vb.insert(x.vpn);
  EXPECT_EQ(r->guest_page_faults, va.size() + vb.size());  // same addresses, separate address spaces
  EXPECT_EQ(r->guest_table_pages, minimum_tables(va, 4, 1) + minimum_tables(vb, 4, 1));
  EXPECT_EQ(r->accesses, a.size() + b.size());
  for (const std::string& p : {pa, pb}) std::filesystem::remove(p);
}

// Without caches every walk costs the closed form of its mix; the nested page size follows
// the host backing the memslot declares (4K: the TDP MMU maps 4 KiB pages; 2M: 2 MiB).
TEST(Replay, WalksCostTheClosedFormWithoutCaches) {
  const auto accesses = generated(5, 20000);
  const std::string p = write_trace("refs", accesses);
  struct Mix {
    std::uint64_t guest_page, host_page;
    unsigned levels, refs;
  };
  for (const Mix& m : {Mix{4096, 4096, 4, 24}, Mix{k2M, 4096, 4, 19}, Mix{4096, k2M, 4, 19}, Mix{k2M, k2M, 4, 15},
                       Mix{4096, 4096, 5, 29}}) {
    ReplayConfig c = small_config();
    c.guest_page_size = m.guest_page;
    c.host_page_size = m.host_page;
    c.guest_levels = m.levels;
    c.psc_entries = 0;
    c.nested_tlb_entries = 0;
    auto r = replay({p}, c);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->tlb.walk_refs(), r->tlb.misses * m.refs) << m.guest_page << " over " << m.host_page;
    EXPECT_EQ(r->tlb.nested_walks, r->tlb.misses);
    EXPECT_EQ(r->tlb.refs_saved, 0u);
  }
  std::filesystem::remove(p);
}

// Under shadow the hardware walks the shadow tables alone: a walk reads one entry per level
// from the root down to the shadow leaf, whose size is the guest page's where the host backing
// holds it -- 4, 3 or 5 references where two-dimensional paging needs 24, 15 or 29.
TEST(Replay, ShadowWalksAreOneDimensional) {
  const auto accesses = generated(5, 20000);
  const std::string p = write_trace("shadow-refs", accesses);
  struct Mix {
    std::uint64_t guest_page, host_page;
    unsigned levels, refs;
  };
  for (const Mix& m : {Mix{4096, 4096, 4, 4}, Mix{k2M, 4096, 4, 4}, Mix{4096, k2M, 4, 4}, Mix{k2M, k2M, 4, 3},
                       Mix{4096, 4096, 5, 5}, Mix{k2M, k2M, 5, 4}}) {
    ReplayConfig c = small_config();
    c.mmu = MmuKind::Shadow;
    c.guest_page_size = m.guest_page;
    c.host_page_size = m.host_page;
    c.guest_levels = m.levels;
    c.psc_entries = 0;
    c.nested_tlb_entries = 0;
    auto r = replay({p}, c);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->tlb.walk_refs(), r->tlb.misses * m.refs) << m.guest_page << " over " << m.host_page;
    EXPECT_EQ(r->tlb.nested_refs, 0u);
    EXPECT_EQ(r->tlb.nested_walks, 0u);
    EXPECT_EQ(r->tlb.guest_walks, r->tlb.misses);
    EXPECT_EQ(r->tlb.refs_saved, 0u);
  }
  std::filesystem::remove(p);
}

// The shadow MMU's own figures reach the report: every guest fault was found by a shadow
// fault and reflected, and the pages mapped took shadow faults of their own. The guest kernel
// writes its tables as a guest does, through the vCPU: a write to a shadowed table is
// emulated or lets the table go unsync (a VMM write, Vm::write, would do neither).
TEST(Replay, ShadowFiguresAreReported) {
  const auto accesses = generated(7, 20000);
  const std::string p = write_trace("shadow-stats", accesses);
  ReplayConfig c = small_config();
  c.mmu = MmuKind::Shadow;
  auto r = replay({p}, c);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(stat(*r, "reflected"), r->guest_page_faults);
  EXPECT_GT(stat(*r, "faults"), stat(*r, "reflected"));
  EXPECT_GT(stat(*r, "tables_in_use"), 0u);
  EXPECT_GT(stat(*r, "emulated") + stat(*r, "unsyncs"), 0u);
  std::filesystem::remove(p);
}

TEST_P(ReplayUnder, TlbMissesEqualAReferenceLru) {
  const auto accesses = generated(9, 30000);
  const std::string p = write_trace("lru", accesses);
  for (std::uint32_t entries : {16u, 64u, 256u}) {
    ReplayConfig c = small_config();
    c.mmu = GetParam();
    c.tlb = {entries, 0};
    c.host_page_size = 4096;  // every entry maps one 4 KiB page, as the reference does
    auto r = replay({p}, c);
    ASSERT_TRUE(r) << r.error().message;
    tlb::test_support::ReferenceLru ref(entries, entries);
    std::uint64_t misses = 0;
    for (const Access& a : accesses) misses += ref.access(a.vpn, is_write(a.kind)) ? 1u : 0u;
    EXPECT_EQ(r->tlb.misses, misses) << entries << " entries";
  }
  std::filesystem::remove(p);
}

INSTANTIATE_TEST_SUITE_P(Mmus, ReplayUnder, ::testing::Values(MmuKind::Tdp, MmuKind::Shadow, MmuKind::Adaptive),
                         mmu_name);

TEST(Replay, BadInputIsNamed) {
  const std::string high = write_trace("high", {{TraceKind::Read, 1}, {TraceKind::Read, std::uint64_t{1} << 35}});
  auto r = replay({high}, small_config());
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().bad_input);
  EXPECT_NE(r.error().message.find(high + ":2: vpn 800000000 is outside"), std::string::npos) << r.error().message;
  std::filesystem::remove(high);
}

}  // namespace
}  // namespace vmmu::sim
