// The statistics a phase reports under vm.mmu shadow, and a replay under adaptive: both
// MMUs' sums (report.hpp).

#include "stat_deltas.hpp"
#include "vmmu/sim/report.hpp"

namespace vmmu::sim {

Result<std::vector<Metric>, std::string> shadow_stats_metrics(const StatsSnapshot& b, const StatsSnapshot& a) {
  StatDeltas d;
  d.counter("faults", "faults", b.mmu.faults, a.mmu.faults);
  d.counter("reflected", "guest faults reflected", b.mmu.reflected, a.mmu.reflected);
  d.counter("emulated", "emulated writes", b.mmu.emulated, a.mmu.emulated);
  d.counter("syncs", "shadow pages synced", b.mmu.syncs, a.mmu.syncs);
  d.counter("unsyncs", "shadow pages let go unsync", b.mmu.unsyncs, a.mmu.unsyncs);
  d.counter("zapped_pages", "shadow pages zapped", b.mmu.zapped, a.mmu.zapped);
  d.counter("tlb_flushes", "TLB flushes", b.mmu.tlb_flushes, a.mmu.tlb_flushes);
  d.counter("roots_created", "roots created", b.mmu.roots_created, a.mmu.roots_created);
  d.counter("root_loads", "root loads by vCPUs", b.root_loads, a.root_loads);
  if (a.kind == mmu::MmuKind::Adaptive) {
    d.counter("switched", "moves to two-dimensional paging", b.mmu.switched, a.mmu.switched);
    d.counter("switched_back", "moves back to shadow paging", b.mmu.switched_back, a.mmu.switched_back);
  }
  d.counter("host_page_faults", "host page faults (the process's)", b.host_page_faults, a.host_page_faults);
  d.gauge("tables_in_use", "table pages after", a.mmu.table_pages);
  return d.take();
}

}  // namespace vmmu::sim
