#include "vmmu/sim/report.hpp"

#include <fmt/format.h>

namespace vmmu::sim {
namespace {

// Counters only grow; a counter that went backwards (not expected) reads as 0.
std::uint64_t delta(std::uint64_t before, std::uint64_t after) { return after >= before ? after - before : 0; }

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
  return key == "leaves_4k" || key == "leaves_2m" || key == "leaves_1g" || key == "tables_in_use";
}

std::vector<Metric> stats_metrics(const StatsSnapshot& b, const StatsSnapshot& a) {
  const tdp::FaultStats& fb = b.tdp.faults;
  const tdp::FaultStats& fa = a.tdp.faults;
  const tdp::TdpStats& tb = b.tdp;
  const tdp::TdpStats& ta = a.tdp;
  return {
      count("faults", "faults", delta(fb.faults, fa.faults)),
      count("spurious", "spurious faults", delta(fb.spurious, fa.spurious)),
      count("retried", "retried faults", delta(fb.retried, fa.retried)),
      count("mmio", "MMIO exits", delta(fb.mmio, fa.mmio)),
      count("mmio_fast", "MMIO exits from markers", delta(fb.mmio_fast, fa.mmio_fast)),
      count("relaxed", "leaves made writable", delta(fb.relaxed, fa.relaxed)),
      count("mapped_4k", "mapped 4K", delta(fb.mapped[1], fa.mapped[1])),
      count("mapped_2m", "mapped 2M", delta(fb.mapped[2], fa.mapped[2])),
      count("mapped_1g", "mapped 1G", delta(fb.mapped[3], fa.mapped[3])),
      count("lazy_splits", "lazy splits", delta(fb.lazy_splits, fa.lazy_splits)),
      count("eager_splits", "eager splits", delta(tb.eager_splits, ta.eager_splits)),
      count("merges_in_place", "merges in place", delta(tb.merges_in_place, ta.merges_in_place)),
      count("merge_races", "merge races", delta(tb.merge_races, ta.merge_races)),
      count("recovered_by_zap", "recovered by zap", delta(tb.recovered_by_zap, ta.recovered_by_zap)),
      count("zaps", "zaps", delta(tb.zaps, ta.zaps)),
      count("zapped_leaves", "zapped leaves", delta(tb.zapped_leaves, ta.zapped_leaves)),
      count("write_protected", "write-protected leaves", delta(tb.write_protected, ta.write_protected)),
      count("dirty_cleared", "D bits cleared", delta(tb.dirty_cleared, ta.dirty_cleared)),
      count("dirtied", "pages logged dirty by faults", delta(fb.dirtied, fa.dirtied)),
      count("ring_full", "dirty ring full exits", delta(fb.ring_full, fa.ring_full)),
      count("tlb_flushes", "TLB flushes", delta(tb.tlb_flushes, ta.tlb_flushes)),
      count("invalidations", "MMU-notifier invalidations", delta(tb.invalidations, ta.invalidations)),
      count("aged", "leaves found young", delta(tb.aged, ta.aged)),
      count("roots_created", "roots created", delta(tb.roots_created, ta.roots_created)),
      count("roots_freed", "roots freed", delta(tb.roots_freed, ta.roots_freed)),
      count("roots_invalidated", "roots invalidated", delta(tb.roots_invalidated, ta.roots_invalidated)),
      count("root_loads", "root loads by vCPUs", delta(b.root_loads, a.root_loads)),
      count("leaves_4k", "4K leaves after", ta.leaves[1]),
      count("leaves_2m", "2M leaves after", ta.leaves[2]),
      count("leaves_1g", "1G leaves after", ta.leaves[3]),
      count("tables_in_use", "table pages after", ta.tables_in_use),
  };
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
