#include "vmmu/sim/runner.hpp"

#include "l1_hypervisor.hpp"
#include "phase.hpp"
#include "vmmu/sim/host_capacity.hpp"

namespace vmmu::sim {
namespace {

Status<std::string> dispatch(PhaseContext& c, const Phase& phase) {
  return std::visit(
      [&](const auto& p) -> Status<std::string> {
        using T = std::decay_t<decltype(p)>;
        if constexpr (std::is_same_v<T, PopulatePhase>)
          return run_populate(c);
        else if constexpr (std::is_same_v<T, RandomAccessPhase>)
          return run_random_access(c, p);
        else if constexpr (std::is_same_v<T, SmepStormPhase>)
          return run_smep_storm(c, p);
        else if constexpr (std::is_same_v<T, MigrationPhase>)
          return run_migration(c, p);
        else if constexpr (std::is_same_v<T, ReadAllPhase>)
          return run_read_all(c);
        else if constexpr (std::is_same_v<T, DirtyLogEnablePhase>)
          return run_dirty_log_enable(c);
        else if constexpr (std::is_same_v<T, DirtyLogDisablePhase>)
          return run_dirty_log_disable(c);
        else if constexpr (std::is_same_v<T, ConversionPhase>)
          return run_conversion(c, p);
        else if constexpr (std::is_same_v<T, ForkPhase>)
          return run_fork(c, p);
        else if constexpr (std::is_same_v<T, RewriteTablesPhase>)
          return run_rewrite_tables(c, p);
        else
          return run_cr3_switch(c, p);
      },
      phase.params);
}

}  // namespace

Result<RunReport, std::string> run(const Scenario& scenario, const RunOptions& options) {
  RunReport report;
  report.scenario = scenario;
  name_phases(report.scenario);
  const Scenario& s = report.scenario;
  if (auto e = validate(s)) return Unexpected{e->key + ": " + e->message};
  if (auto host = host_capacity()) {
    if (auto e = check_host_memory(s, *host)) return Unexpected{e->key + ": " + e->message};
  }
  Result<std::unique_ptr<SimVm>, std::string> vm = Unexpected{std::string()};
  report.setup_ns = timed([&] { vm = SimVm::create(s); });
  if (!vm) return Unexpected{vm.error()};
  report.host_touch_ns = (*vm)->host_touch_ns();
  report.host_pages_touched = (*vm)->host_pages_touched();

  for (std::size_t i = 0; i < s.phases.size(); ++i) {
    const Phase& phase = s.phases[i];
    PhaseReport r;
    r.name = phase.name;
    r.kind = phase.kind();
    PhaseProgress progress(options, phase.name, i, s.phases.size());
    PhaseContext c(s, i, **vm, progress, r);
    const StatsSnapshot before = (*vm)->snapshot();
    Status<std::string> done;
    r.time_ns = timed([&] { done = dispatch(c, phase); });
    if (!done) return Unexpected{phase.name + ": " + done.error()};
    progress.finish();
    auto stats = stats_metrics(before, (*vm)->snapshot());
    if (!stats) return Unexpected{phase.name + ": " + stats.error()};
    r.stats = std::move(*stats);
#ifdef VMMU_CHECK_INVARIANTS
    if (L1Hypervisor* l1 = (*vm)->l1()) {
      if (auto bad = l1->check_invariants()) r.failures.push_back("nested MMU invariant: " + *bad);
    }
#endif
    report.phases.push_back(std::move(r));
  }
  return report;
}

}  // namespace vmmu::sim
