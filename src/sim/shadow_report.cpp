// The statistics a phase reports under vm.mmu shadow, and a replay under adaptive: both
// MMUs' sums (report.hpp).

#include <fmt/format.h>

#include "vmmu/sim/report.hpp"

namespace vmmu::sim {

Result<std::vector<Metric>, std::string> shadow_stats_metrics(const StatsSnapshot& b, const StatsSnapshot& a) {
  std::vector<Metric> out;
  std::string backwards;
  auto counter = [&](std::string key, std::string label, std::uint64_t before, std::uint64_t after) {
    if (after < before && backwards.empty())
      backwards = fmt::format("statistic {} went backwards ({} before the phase, {} after)", key, before, after);
    out.push_back(Metric{std::move(key), std::move(label), after - before, Unit::Count});
  };
  counter("faults", "faults", b.mmu.faults, a.mmu.faults);
  counter("reflected", "guest faults reflected", b.mmu.reflected, a.mmu.reflected);
  counter("emulated", "emulated writes", b.mmu.emulated, a.mmu.emulated);
  counter("syncs", "shadow pages synced", b.mmu.syncs, a.mmu.syncs);
  counter("unsyncs", "shadow pages let go unsync", b.mmu.unsyncs, a.mmu.unsyncs);
  counter("zapped_pages", "shadow pages zapped", b.mmu.zapped, a.mmu.zapped);
  counter("tlb_flushes", "TLB flushes", b.mmu.tlb_flushes, a.mmu.tlb_flushes);
  counter("roots_created", "roots created", b.mmu.roots_created, a.mmu.roots_created);
  counter("root_loads", "root loads by vCPUs", b.root_loads, a.root_loads);
  if (a.kind == mmu::MmuKind::Adaptive) {
    counter("switched", "moves to two-dimensional paging", b.mmu.switched, a.mmu.switched);
    counter("switched_back", "moves back to shadow paging", b.mmu.switched_back, a.mmu.switched_back);
  }
  counter("host_page_faults", "host page faults (the process's)", b.host_page_faults, a.host_page_faults);
  out.push_back(Metric{"tables_in_use", "table pages after", a.mmu.table_pages, Unit::Count});
  if (!backwards.empty()) return Unexpected{backwards};
  return out;
}

}  // namespace vmmu::sim
