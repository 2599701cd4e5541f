#pragma once
// Trace replay (`vmmu run --trace`, ../shared/formats/page-trace.md): page traces run as
// guest processes of one VM, every access through the translation-hardware model and the
// MMU, with exact counts.
//
//   traces ──► one guest process each (own page tables, own CR3), time-sliced on one vCPU
//   access ──► TranslationHardware TLB ── hit ──► counted
//                 │ miss
//                 ▼
//   Vcpu::translate ── #PF ──► guest kernel model maps the page (first touch), retry
//     tdp: guest walk through the TDP tables, then TdpMmu::access(gpa) (faults the nested
//          tables in, logs dirty) ──► two-dimensional walk counted, TLB filled
//     shadow: hardware walk of the shadow tables, shadow fault path (reflects the guest's
//          #PF, builds shadow leaves, logs dirty) ──► one-dimensional walk counted, TLB filled

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "vmmu/core/result.hpp"
#include "vmmu/mmu/mmu.hpp"
#include "vmmu/sim/report.hpp"
#include "vmmu/tdp/policy.hpp"
#include "vmmu/tlb/translation_hardware.hpp"

namespace vmmu::sim {

// Tdp: two-dimensional paging. Shadow: the shadow MMU. Adaptive: a process starts shadowed
// and moves to two-dimensional paging when its tables change often (agile paging).
enum class MmuKind : std::uint8_t { Tdp, Shadow, Adaptive };

// The MMU kinds by name, in comparison order ("tdp", "shadow", "adaptive").
struct MmuKindName {
  std::string_view name;
  MmuKind kind;
};
inline constexpr MmuKindName kMmuKinds[] = {
    {"tdp", MmuKind::Tdp}, {"shadow", MmuKind::Shadow}, {"adaptive", MmuKind::Adaptive}};
std::string_view to_string(MmuKind k);
std::optional<MmuKind> mmu_kind(std::string_view name);
// Why replay cannot run `k` in this build (nullopt: it can).
std::optional<std::string_view> replay_lacks(MmuKind k);

struct ReplayConfig {
  MmuKind mmu = MmuKind::Tdp;
  std::uint64_t guest_page_size = std::uint64_t{1} << 12;  // 4 KiB or 2 MiB
  unsigned guest_levels = 4;                                // 4 or 5
  tlb::TlbShape tlb{64, 0};
  std::uint32_t psc_entries = 32;         // per guest level; 0: no paging-structure caches
  std::uint32_t nested_tlb_entries = 64;  // 0: none
  std::optional<double> dirty_log_at;     // fraction of the accesses in [0, 1]
  tdp::Policies policies;                 // the TDP MMU's (dirty_tracking: how pages are logged)
  // Intervals of the time series (ReplayReport::series), of equal numbers of accesses; 0: no
  // series. With dirty logging, each interval after the start is a migration round: its end
  // harvests and clears the log (write-protecting again, flushing the modelled TLBs).
  std::uint32_t samples = 0;
  // Guest-physical memory (one memslot, reserved, touched only where tables go) and the page
  // size declared for its host backing (the largest nested page the TDP MMU may map).
  std::uint64_t guest_memory = std::uint64_t{16} << 30;
  std::uint64_t host_page_size = std::uint64_t{2} << 20;
  std::uint64_t slice_accesses = 100'000;  // accesses a process runs before the next one's turn
  mmu::AdaptivePolicy adaptive;             // under MmuKind::Adaptive
};

// Under adaptive: a process moved to two-dimensional paging (`to_tdp`) or back to shadow
// paging during access number `access` (0-based, counting every process's accesses).
struct ReplaySwitch {
  unsigned process = 0;
  std::uint64_t access = 0;
  bool to_tdp = true;
};

// One interval of the replay: what happened during it, and the table memory at its end.
struct ReplaySample {
  std::uint64_t accesses = 0;     // replayed at the end of the interval, all processes
  std::uint64_t guest_faults = 0; // page faults the guest took in the interval
  std::uint64_t mmu_faults = 0;   // faults the MMU handled in the interval
  std::uint64_t table_pages = 0;  // guest table pages + the MMU's, at the end
  std::uint64_t tlb_lookups = 0;  // in the interval
  std::uint64_t tlb_misses = 0;
  std::optional<std::uint64_t> dirty_pages;  // logging: data pages the round's harvest found
};

struct ReplayReport {
  MmuKind mmu = MmuKind::Tdp;  // what ran
  std::uint64_t guest_page_size = 0;
  tdp::Policies policies;
  std::uint64_t records = 0;
  std::uint64_t accesses = 0;
  std::uint64_t pages_touched = 0;  // distinct 4 KiB pages, summed over processes
  std::uint64_t pages_written = 0;
  std::uint64_t guest_page_faults = 0;
  std::uint64_t guest_table_pages = 0;
  tlb::HardwareConfig hardware;
  tlb::HardwareStats tlb;
  std::optional<std::uint64_t> dirty_log_start;  // with dirty logging: its first access
  std::uint64_t data_pages_logged = 0;
  std::uint64_t table_pages_logged = 0;
  std::uint64_t time_ns = 0;
  std::vector<Metric> stats;  // the MMU's statistics over the replay (stats_metrics keys, per kind)
  std::uint64_t sample_accesses = 0;  // the interval of `series`
  std::vector<ReplaySample> series;   // with ReplayConfig::sample_accesses
  std::vector<ReplaySwitch> switches;  // adaptive: in replay order
};

// Every figure of a replay in report order, keyed by its path in the JSON report
// ("accesses", "pages.touched", "tlb.misses", "dirty_log.data_pages_logged", "stats.faults"),
// for comparison tables and merged reports.
std::vector<Metric> replay_metrics(const ReplayReport& r);

struct ReplayError {
  bool bad_input = false;  // a malformed or unreadable trace, a bad option: not the run's fault
  std::string message;     // "FILE:LINE: ..." for trace lines
};

// Replays `traces` (one process each). Errors: bad input (named file and line; nothing is
// replayed past a malformed line), or what stopped the run (memory, the MMU).
Result<ReplayReport, ReplayError> replay(const std::vector<std::string>& traces, const ReplayConfig& config);

}  // namespace vmmu::sim
