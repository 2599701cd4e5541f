#pragma once
// What a scenario run measured: per phase its wall time, its own figures (pages touched,
// migration times...), and the deltas of the MMU's statistics while it ran.
//
// Every figure is a Metric with a stable key (JSON, compare rows) and a label (text), so the
// text report, the JSON report and `--compare` tables are all built from the same list.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "vmmu/core/result.hpp"
#include "vmmu/sim/scenario.hpp"
#include "vmmu/mmu/mmu.hpp"
#include "vmmu/nested/shadow_ept_mmu.hpp"
#include "vmmu/tdp/stats.hpp"

namespace vmmu::sim {

enum class Unit : std::uint8_t {
  Count,        // a plain number
  Nanoseconds,  // a duration (text: milliseconds)
};

struct Metric {
  std::string key;    // snake_case, stable: "faults", "mapped_2m", "iteration_1_dirty_memory_ns"
  std::string label;  // for people: "faults", "Iteration 1 dirty memory time"
  std::uint64_t value = 0;
  Unit unit = Unit::Count;
};

// One round of the migration loop (times in ns).
struct MigrationIteration {
  std::uint64_t dirty_ns = 0;       // vCPUs writing their shares
  std::uint64_t get_ns = 0;         // get dirty log (bitmaps) / harvest dirty rings
  std::uint64_t clear_ns = 0;       // clear dirty log (manual protect) / reset dirty rings
  std::uint64_t pages_written = 0;  // distinct pages vCPUs wrote this round
  std::uint64_t pages_dirty = 0;    // distinct pages the harvest reported
  std::uint64_t pages_lost = 0;     // written and not reported: must be 0
  std::uint64_t harvests_while_writing = 0;  // harvest_while_writing: harvests during the writes
};

// What dirty_log_perf_test prints, in ns.
struct MigrationReport {
  bool harvest_while_writing = false;  // the phase's parameter (its iterations count them)
  std::uint64_t populate_ns = 0;
  std::uint64_t enable_ns = 0;
  std::vector<MigrationIteration> iterations;
  std::uint64_t disable_ns = 0;
};

struct PhaseReport {
  std::string name;
  PhaseKind kind = PhaseKind::Populate;
  std::uint64_t time_ns = 0;
  std::vector<Metric> results;             // the phase's own figures
  std::vector<Metric> stats;               // statistics: deltas of counters, levels of gauges after the phase
  std::vector<MigrationReport> migration;  // one element for a migration phase, else empty
  std::vector<std::string> failures;       // checks that failed (lost dirty pages, wrong data...)
};

struct RunReport {
  Scenario scenario;           // as run (phases named)
  std::uint64_t setup_ns = 0;  // creating the VM: host memory (faulted in), memslots, vCPUs
  // Part of setup: one write to every 4 KiB host page of the memslots after faulting them in,
  // which a virtualized host may still trap (see host_buffer.hpp); and how many pages.
  std::uint64_t host_touch_ns = 0;
  std::uint64_t host_pages_touched = 0;
  std::vector<PhaseReport> phases;
  [[nodiscard]] bool ok() const;
  [[nodiscard]] std::vector<std::string> failures() const;  // "phase: failure", in phase order
};

// The statistics a phase reports, from snapshots before and after it (`root_loads`: vCPUs'
// root loads summed). Counter keys: faults, spurious, retried, mmio, mmio_fast, relaxed,
// lazy_splits, dirtied, ring_full, mapped_4k/2m/1g, roots_created, roots_freed,
// roots_invalidated, root_loads, zaps, zapped_leaves, eager_splits, merges_in_place,
// merge_races, recovered_by_zap, write_protected, dirty_cleared, tlb_flushes, invalidations,
// aged, host_page_faults (deltas); leaves_4k/2m/1g, tables_in_use (after).
struct StatsSnapshot {
  mmu::MmuKind kind = mmu::MmuKind::Tdp;
  tdp::TdpStats tdp;   // TDP MMU (zero under shadow)
  mmu::MmuStats mmu;   // what both MMUs count; the shadow figures are reported from it
  std::uint64_t root_loads = 0;
  std::uint64_t host_page_faults = 0;  // the process's minor + major faults (getrusage)
  std::optional<nested::NestedStats> nested;  // vm.nested: the nested MMU's
  NestedKind nested_kind = NestedKind::Ept;   // vm.nested: L1's tables (the figures' labels)
};
// The process's page faults so far (all threads, live and joined).
std::uint64_t host_page_faults();
// Error: a counter that went backwards, named ("statistic zaps went backwards (...)").
Result<std::vector<Metric>, std::string> stats_metrics(const StatsSnapshot& before, const StatsSnapshot& after);
// Under vm.mmu shadow (stats_metrics calls it): faults, reflected, emulated, syncs, unsyncs,
// zapped_pages, tlb_flushes, roots_created, root_loads, host_page_faults (deltas);
// tables_in_use (shadow pages after). Keys both MMUs have are spelled alike, for --compare mmu.
Result<std::vector<Metric>, std::string> shadow_stats_metrics(const StatsSnapshot& before, const StatsSnapshot& after);
// Under vm.tdp (stats_metrics calls it): the keys above.
Result<std::vector<Metric>, std::string> tdp_stats_metrics(const StatsSnapshot& before, const StatsSnapshot& after);
// Under vm.nested (stats_metrics adds them after the L1 MMU's): nested_faults (L2 accesses that
// walked L1's tables), nested_exits_to_l1, nested_l1_ept_writes (entries L1 wrote),
// nested_invepts (INVEPTs, or under NPT TLB_CONTROL flushes), nested_roots_built,
// nested_root_switches, nested_logged (L1 frames logged dirty) (deltas); nested_shadow_pages
// (shadow pages after). The keys are the same for EPT and NPT, the labels name the kind's
// terms. Error: a counter that went backwards.
Result<std::vector<Metric>, std::string> nested_stats_metrics(const StatsSnapshot& before, const StatsSnapshot& after);
// The nested_* statistics summed over a run's phases (gauges: after the last phase); empty
// without vm.nested.
std::vector<Metric> nested_totals(const RunReport& r);
// True for the keys stats_metrics() reports as levels after the phase, not deltas.
bool is_gauge(std::string_view key);

// The migration report as metrics, labelled as dirty_log_perf_test prints them.
std::vector<Metric> migration_metrics(const MigrationReport& m);

// Every figure of a phase in report order: time, results, migration, stats.
std::vector<Metric> all_metrics(const PhaseReport& p);

}  // namespace vmmu::sim
