// Replay under the adaptive MMU (agile paging per process): a process whose tables settle
// stays shadowed and walks as shadow does; one that keeps mapping new pages moves to
// two-dimensional paging at the end of the first window over the threshold; the done-means
// counts hold across the move.

#include <gtest/gtest.h>

#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "sim/support/trace_support.hpp"
#include "vmmu/sim/replay.hpp"

namespace vmmu::sim {
namespace {

using namespace vmmu::sim::test;

// Writes to `n` new pages, each in a table of its own (512 pages apart), inside one level-2
// table: every access is a guest fault, and mapping it writes one entry of that shadowed
// level-2 table (emulated: it cannot go unsync) and fills a fresh level-1 table.
std::vector<Access> new_page_every_access(std::size_t n) {
  std::vector<Access> out;
  for (std::size_t i = 0; i < n; ++i) out.push_back({TraceKind::Write, 0x4000'0000 + i * 512});
  return out;
}

// 32 pages of one table written once, then read round and round: the tables settle at once.
std::vector<Access> steady(std::size_t rounds) {
  std::vector<Access> out;
  for (std::uint64_t v = 0; v < 32; ++v) out.push_back({TraceKind::Write, 0x1000 + v});
  for (std::size_t r = 0; r < rounds; ++r) {
    for (std::uint64_t v = 0; v < 32; ++v) out.push_back({TraceKind::Read, 0x1000 + v});
  }
  return out;
}

TEST(AdaptiveReplay, SettledTablesStayShadowedAndWalkAsShadow) {
  const std::string p = write_trace("adaptive-steady", steady(200 / kTraceDivisor));
  ReplayConfig c = small_config();
  c.tlb = {16, 0};  // 32 pages round-robin through 16 entries: every access misses
  c.adaptive = {.window = 64, .threshold = 8};
  c.mmu = MmuKind::Shadow;
  auto shadow = replay({p}, c);
  c.mmu = MmuKind::Adaptive;
  auto adaptive = replay({p}, c);
  ASSERT_TRUE(shadow) << shadow.error().message;
  ASSERT_TRUE(adaptive) << adaptive.error().message;
  EXPECT_TRUE(adaptive->switches.empty());
  EXPECT_GT(adaptive->tlb.misses, 32u * 100 / kTraceDivisor);
  EXPECT_EQ(adaptive->tlb.walk_refs(), shadow->tlb.walk_refs());
  EXPECT_EQ(adaptive->tlb.nested_refs, 0u);
  std::filesystem::remove(p);
}

// Each access is two vCPU accesses through the MMU (the guest fault, then the retry after the
// kernel mapped the page) and one emulated table write: a window of 64 ends during trace
// access 31 with 32 events or so, over the threshold of 16.
TEST(AdaptiveReplay, ChangingTablesMoveToTdpAtTheFirstWindowOverTheThreshold) {
  const auto accesses = new_page_every_access(200);
  const std::string p = write_trace("adaptive-moves", accesses);
  ReplayConfig c = small_config();
  c.mmu = MmuKind::Adaptive;
  c.adaptive = {.window = 64, .threshold = 16};
  c.nested_tlb_entries = 0;  // every two-dimensional walk is a nested walk
  auto r = replay({p}, c);
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->switches.size(), 1u);
  EXPECT_EQ(r->switches[0].process, 0u);
  EXPECT_EQ(r->switches[0].access, 31u);
  EXPECT_EQ(r->guest_page_faults, accesses.size());
  // Walks follow the mode: one-dimensional before the move, two-dimensional from the access
  // during which it happened on (every access misses the TLB: a new page each).
  EXPECT_EQ(r->tlb.guest_walks, 31u);
  EXPECT_EQ(r->tlb.nested_walks, accesses.size() - 31);
  for (const Metric& m : r->stats) {
    if (m.key == "switched") {
      EXPECT_EQ(m.value, 1u);
    }
  }
  std::filesystem::remove(p);
}

// Adaptive with windows of 64 vCPU accesses, 16 table writes to move, 2 quiet windows to move
// back, through a 16-entry TLB.
ReplayConfig moving_back_config() {
  ReplayConfig c = small_config();
  c.mmu = MmuKind::Adaptive;
  c.tlb = {16, 0};
  c.adaptive = {.window = 64, .threshold = 16, .return_after = 2};
  return c;
}

// Changing, then quiet: 200 new pages (each a guest fault writing the shadowed level-2 table),
// then reads round and round over 32 of them through a 16-entry TLB (each a miss: one vCPU
// access, no table write). The window of 64 vCPU accesses moves the process to TDP during
// access 31 (as above). On TDP, the kernel's write to the level-2 table -- one of the tables
// the process had when it moved, watched -- counts on: accesses 32..199 are 336 vCPU
// accesses, five busy windows and 16 accesses (8 writes) into the sixth. That window ends 48
// quiet accesses later, during access 247, with 8 writes, under the threshold: quiet 1; the
// next ends during access 311: quiet 2 = return_after, back to shadow. Reads stay quiet there.
TEST(AdaptiveReplay, QuietTablesReturnToShadowAfterReturnAfterQuietWindows) {
  std::vector<Access> accesses = new_page_every_access(200);
  for (std::size_t r = 0; r < 8; ++r) {
    for (std::uint64_t i = 0; i < 32; ++i) accesses.push_back({TraceKind::Read, 0x4000'0000 + i * 512});
  }
  const std::string p = write_trace("adaptive-back", accesses);
  ReplayConfig c = moving_back_config();
  auto r = replay({p}, c);
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->switches.size(), 2u);
  EXPECT_TRUE(r->switches[0].to_tdp);
  EXPECT_EQ(r->switches[0].access, 31u);
  EXPECT_FALSE(r->switches[1].to_tdp);
  EXPECT_EQ(r->switches[1].access, 311u);
  std::uint64_t moved = 0, back = 0;
  for (const Metric& m : r->stats) {
    if (m.key == "switched") moved = m.value;
    if (m.key == "switched_back") back = m.value;
  }
  EXPECT_EQ(moved, 1u);
  EXPECT_EQ(back, 1u);
  // Never returning (0), the same trace stays on TDP after the move.
  c.adaptive.return_after = 0;
  auto stay = replay({p}, c);
  ASSERT_TRUE(stay) << stay.error().message;
  EXPECT_EQ(stay->switches.size(), 1u);
  std::filesystem::remove(p);
}

// Hysteresis: tables that change in every other window (busy, quiet, busy...) never give
// return_after = 2 quiet windows in a row, so the process moves once and stays.
TEST(AdaptiveReplay, TablesBusyEveryOtherWindowDoNotFlap) {
  std::vector<Access> accesses;
  std::uint64_t next = 0;
  for (unsigned round = 0; round < 6; ++round) {
    // 32 new pages: 64 vCPU accesses with 32 table writes (busy), then 64 reads (quiet).
    for (std::uint64_t i = 0; i < 32; ++i, ++next) accesses.push_back({TraceKind::Write, 0x4000'0000 + next * 512});
    for (std::uint64_t i = 0; i < 64; ++i) accesses.push_back({TraceKind::Read, 0x4000'0000 + (next - 32 + i % 32) * 512});
  }
  const std::string p = write_trace("adaptive-alternate", accesses);
  ReplayConfig c = moving_back_config();
  auto r = replay({p}, c);
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->switches.size(), 1u);
  EXPECT_TRUE(r->switches[0].to_tdp);
  std::filesystem::remove(p);
}

// The done-means counts across a move: faults = distinct pages, the minimum tables, and the
// data pages logged = the distinct pages written, logging from the start, before and after
// the move (the shadow MMU's pages zapped, the TDP MMU's taking over) -- whether the
// MMUs log by write protection or by D bits (folded from the TDP tables into the bitmap the
// shadow MMU logs into).
TEST(AdaptiveReplay, DoneMeansCountsHoldAcrossAMove) {
  const auto accesses = generated(11, 30000);
  const std::string p = write_trace("adaptive-dirty", accesses);
  std::set<std::uint64_t> vpns;
  for (const Access& a : accesses) vpns.insert(a.vpn);
  const std::set<std::uint64_t> written = pages_written(accesses, 0, accesses.size());
  for (const tdp::DirtyTracking tracking : {tdp::DirtyTracking::WriteProtect, tdp::DirtyTracking::DirtyBits}) {
    ReplayConfig c = small_config();
    c.mmu = MmuKind::Adaptive;
    c.adaptive = {.window = 256, .threshold = 8};
    c.policies.dirty_tracking = tracking;
    c.dirty_log_at = 0.0;
    c.tlb = {16384, 16};
    auto r = replay({p}, c);
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_GE(r->switches.size(), 1u);  // and back, when the tables went quiet long enough
    EXPECT_TRUE(r->switches[0].to_tdp);
    EXPECT_GT(r->switches[0].access, 0u);  // logging ran under both MMUs
    EXPECT_EQ(r->guest_page_faults, vpns.size());
    EXPECT_EQ(r->guest_table_pages, minimum_tables(vpns, 4, 1));
    EXPECT_EQ(r->data_pages_logged, written.size()) << static_cast<int>(tracking);
  }
  std::filesystem::remove(p);
}

}  // namespace
}  // namespace vmmu::sim
