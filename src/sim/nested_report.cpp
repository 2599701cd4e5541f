// The statistics a phase reports under vm.nested: the nested MMU's, as deltas (report.hpp).

#include <algorithm>

#include "stat_deltas.hpp"
#include "vmmu/sim/report.hpp"

namespace vmmu::sim {

Result<std::vector<Metric>, std::string> nested_stats_metrics(const StatsSnapshot& b, const StatsSnapshot& a) {
  const nested::NestedStats nb = b.nested.value_or(nested::NestedStats{});
  const nested::NestedStats na = a.nested.value_or(nested::NestedStats{});
  const bool npt = a.nested_kind == NestedKind::Npt;
  const auto term = [npt](const char* ept, const char* npt_term) { return npt ? npt_term : ept; };
  StatDeltas d;
  d.counter("nested_faults", term("L2 faults (walks of L1's EPT)", "L2 faults (walks of L1's NPT)"), nb.faults,
            na.faults);
  d.counter("nested_exits_to_l1", "exits reflected to L1", nb.reflected, na.reflected);
  d.counter("nested_l1_ept_writes", term("EPT entries L1 wrote", "NPT entries L1 wrote"), nb.l1_writes, na.l1_writes);
  d.counter("nested_invepts", term("INVEPTs", "TLB flushes to L1's tables"), nb.invepts, na.invepts);
  d.counter("nested_roots_built", term("shadow EPT roots built", "shadow NPT roots built"), nb.roots_built,
            na.roots_built);
  d.counter("nested_root_switches", term("EPTP switches to a cached root", "nCR3 switches to a cached root"),
            nb.root_switches, na.root_switches);
  d.counter("nested_logged", "L1 frames logged dirty", nb.logged, na.logged);
  d.gauge("nested_shadow_pages", term("shadow EPT pages after", "shadow NPT pages after"), na.pages);
  return d.take();
}

std::vector<Metric> nested_totals(const RunReport& r) {
  std::vector<Metric> out;
  if (!r.scenario.vm.nested) return out;
  for (const PhaseReport& p : r.phases) {
    for (const Metric& m : p.stats) {
      if (m.key.rfind("nested_", 0) != 0) continue;
      auto t = std::find_if(out.begin(), out.end(), [&](const Metric& x) { return x.key == m.key; });
      if (t == out.end()) {
        out.push_back(m);
      } else {
        t->value = is_gauge(m.key) ? m.value : t->value + m.value;
      }
    }
  }
  return out;
}

}  // namespace vmmu::sim
