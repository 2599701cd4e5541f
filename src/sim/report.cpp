#include "vmmu/sim/report.hpp"

#include <fmt/format.h>
#include <sys/resource.h>

#include "stat_deltas.hpp"

namespace vmmu::sim {
namespace {

Metric count(std::string key, std::string label, std::uint64_t v) {
  return Metric{std::move(key), std::move(label), v, Unit::Count};
}

Metric ns(std::string key, std::string label, std::uint64_t v) {
  return Metric{std::move(key), std::move(label), v, Unit::Nanoseconds};
}

}  // namespace

bool RunReport::ok() const {
  for (const PhaseReport& p : phases) {
    if (!p.failures.empty()) return false;
  }
  return true;
}

std::vector<std::string> RunReport::failures() const {
  std::vector<std::string> out;
  for (const PhaseReport& p : phases) {
    for (const std::string& f : p.failures) out.push_back(p.name + ": " + f);
  }
  return out;
}

bool is_gauge(std::string_view key) {
  return key == "leaves_4k" || key == "leaves_2m" || key == "leaves_1g" || key == "tables_in_use" ||
         key == "nested_shadow_pages";
}

std::uint64_t host_page_faults() {
  rusage u{};
  if (::getrusage(RUSAGE_SELF, &u) != 0) return 0;
  return static_cast<std::uint64_t>(u.ru_minflt) + static_cast<std::uint64_t>(u.ru_majflt);
}

Result<std::vector<Metric>, std::string> stats_metrics(const StatsSnapshot& b, const StatsSnapshot& a) {
  // adaptive: both MMUs' sums
  auto out = a.kind != mmu::MmuKind::Tdp ? shadow_stats_metrics(b, a) : tdp_stats_metrics(b, a);
  if (!out || !a.nested) return out;
  auto n = nested_stats_metrics(b, a);
  if (!n) return n;
  out->insert(out->end(), n->begin(), n->end());
  return out;
}

Result<std::vector<Metric>, std::string> tdp_stats_metrics(const StatsSnapshot& b, const StatsSnapshot& a) {
  const tdp::FaultStats& fb = b.tdp.faults;
  const tdp::FaultStats& fa = a.tdp.faults;
  const tdp::TdpStats& tb = b.tdp;
  const tdp::TdpStats& ta = a.tdp;
  StatDeltas d;
  d.counter("faults", "faults", fb.faults, fa.faults);
  d.counter("spurious", "spurious faults", fb.spurious, fa.spurious);
  d.counter("retried", "retried faults", fb.retried, fa.retried);
  d.counter("mmio", "MMIO exits", fb.mmio, fa.mmio);
  d.counter("mmio_fast", "MMIO exits from markers", fb.mmio_fast, fa.mmio_fast);
  d.counter("relaxed", "leaves made writable", fb.relaxed, fa.relaxed);
  d.counter("mapped_4k", "mapped 4K", fb.mapped[1], fa.mapped[1]);
  d.counter("mapped_2m", "mapped 2M", fb.mapped[2], fa.mapped[2]);
  d.counter("mapped_1g", "mapped 1G", fb.mapped[3], fa.mapped[3]);
  d.counter("lazy_splits", "lazy splits", fb.lazy_splits, fa.lazy_splits);
  d.counter("eager_splits", "eager splits", tb.eager_splits, ta.eager_splits);
  d.counter("merges_in_place", "merges in place", tb.merges_in_place, ta.merges_in_place);
  d.counter("merge_races", "merge races", tb.merge_races, ta.merge_races);
  d.counter("recovered_by_zap", "recovered by zap", tb.recovered_by_zap, ta.recovered_by_zap);
  d.counter("zaps", "zaps", tb.zaps, ta.zaps);
  d.counter("zapped_leaves", "zapped leaves", tb.zapped_leaves, ta.zapped_leaves);
  d.counter("write_protected", "write-protected leaves", tb.write_protected, ta.write_protected);
  d.counter("dirty_cleared", "D bits cleared", tb.dirty_cleared, ta.dirty_cleared);
  d.counter("dirtied", "pages logged dirty by faults", fb.dirtied, fa.dirtied);
  d.counter("ring_full", "dirty ring full exits", fb.ring_full, fa.ring_full);
  d.counter("tlb_flushes", "TLB flushes", tb.tlb_flushes, ta.tlb_flushes);
  d.counter("invalidations", "MMU-notifier invalidations", tb.invalidations, ta.invalidations);
  d.counter("aged", "leaves found young", tb.aged, ta.aged);
  d.counter("roots_created", "roots created", tb.roots_created, ta.roots_created);
  d.counter("roots_freed", "roots freed", tb.roots_freed, ta.roots_freed);
  d.counter("roots_invalidated", "roots invalidated", tb.roots_invalidated, ta.roots_invalidated);
  d.counter("root_loads", "root loads by vCPUs", b.root_loads, a.root_loads);
  d.counter("host_page_faults", "host page faults (the process's)", b.host_page_faults, a.host_page_faults);
  d.gauge("leaves_4k", "4K leaves after", ta.leaves[1]);
  d.gauge("leaves_2m", "2M leaves after", ta.leaves[2]);
  d.gauge("leaves_1g", "1G leaves after", ta.leaves[3]);
  d.gauge("tables_in_use", "table pages after", ta.tables_in_use);
  return d.take();
}

std::vector<Metric> migration_metrics(const MigrationReport& m) {
  std::vector<Metric> out;
  out.push_back(ns("populate_ns", "Populate memory time", m.populate_ns));
  out.push_back(ns("enable_ns", "Enabling dirty logging time", m.enable_ns));
  std::uint64_t get = 0, clear = 0, dirty = 0;
  for (std::size_t i = 0; i < m.iterations.size(); ++i) {
    const MigrationIteration& it = m.iterations[i];
    const std::size_t n = i + 1;
    out.push_back(ns(fmt::format("iteration_{}_dirty_memory_ns", n), fmt::format("Iteration {} dirty memory time", n),
                     it.dirty_ns));
    out.push_back(ns(fmt::format("iteration_{}_get_dirty_log_ns", n), fmt::format("Iteration {} get dirty log time", n),
                     it.get_ns));
    out.push_back(ns(fmt::format("iteration_{}_clear_dirty_log_ns", n),
                     fmt::format("Iteration {} clear dirty log time", n), it.clear_ns));
    out.push_back(count(fmt::format("iteration_{}_pages_written", n), fmt::format("Iteration {} pages written", n),
                        it.pages_written));
    out.push_back(count(fmt::format("iteration_{}_pages_dirty", n), fmt::format("Iteration {} dirty pages found", n),
                        it.pages_dirty));
    out.push_back(count(fmt::format("iteration_{}_pages_lost", n), fmt::format("Iteration {} dirty pages lost", n),
                        it.pages_lost));
    if (m.harvest_while_writing)
      out.push_back(count(fmt::format("iteration_{}_harvests_while_writing", n),
                          fmt::format("Iteration {} harvests while writing", n), it.harvests_while_writing));
    get += it.get_ns;
    clear += it.clear_ns;
    dirty += it.dirty_ns;
  }
  out.push_back(ns("disable_ns", "Disabling dirty logging time", m.disable_ns));
  const std::uint64_t n = m.iterations.empty() ? 1 : m.iterations.size();
  out.push_back(
      ns("dirty_memory_total_ns", fmt::format("Dirty memory over {} iterations took", m.iterations.size()), dirty));
  out.push_back(
      ns("get_dirty_log_total_ns", fmt::format("Get dirty log over {} iterations took", m.iterations.size()), get));
  out.push_back(ns("get_dirty_log_average_ns", "Get dirty log average", get / n));
  out.push_back(ns("clear_dirty_log_total_ns",
                   fmt::format("Clear dirty log over {} iterations took", m.iterations.size()), clear));
  out.push_back(ns("clear_dirty_log_average_ns", "Clear dirty log average", clear / n));
  return out;
}

std::vector<Metric> all_metrics(const PhaseReport& p) {
  std::vector<Metric> out;
  out.push_back(ns("time_ns", "time", p.time_ns));
  out.insert(out.end(), p.results.begin(), p.results.end());
  for (const MigrationReport& m : p.migration) {
    std::vector<Metric> mm = migration_metrics(m);
    out.insert(out.end(), mm.begin(), mm.end());
  }
  out.insert(out.end(), p.stats.begin(), p.stats.end());
  return out;
}

}  // namespace vmmu::sim
