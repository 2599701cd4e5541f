#include "run_report.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <ostream>

#include "json_types.hpp"
#include "run_scenario_json.hpp"
#include "vmmu/core/page_size.hpp"
#include "vmmu/tdp/policy.hpp"

namespace vmmu::cli {
namespace {


std::string direct_vm_line(const sim::Scenario& s) {
  const sim::VmParams& vm = s.vm;
  std::string slots;
  std::uint64_t total = 0;
  std::vector<std::string> backings;
  for (const sim::MemslotParams& m : s.memslots) {
    total += m.size;
    const std::string b = size_name(m.backing_page_size);
    if (std::find(backings.begin(), backings.end(), b) == backings.end()) backings.push_back(b);
  }
  std::string backing;
  for (const std::string& b : backings) backing += (backing.empty() ? "" : "/") + b;
  const bool ad = vm.tdp == tdp::TdpKind::Npt || vm.ad_bits;
  if (vm.mmu == mmu::MmuKind::Shadow) {
    return fmt::format("shadow MMU, {}-level shadow tables; {} vCPU{}; {} in {} memslot{} ({} backing); dirty bitmaps",
                       vm.levels, vm.vcpus, vm.vcpus == 1 ? "" : "s", size_name(total), s.memslots.size(),
                       s.memslots.size() == 1 ? "" : "s", backing);
  }
  return fmt::format("{} {}-level{}{}; {} vCPU{}; {} in {} memslot{} ({} backing); {}",
                     vm.tdp == tdp::TdpKind::Ept ? "EPT" : "NPT", vm.levels, ad ? ", A/D bits" : "",
                     vm.pages_1g ? ", 1G pages" : "", vm.vcpus, vm.vcpus == 1 ? "" : "s", size_name(total),
                     s.memslots.size(), s.memslots.size() == 1 ? "" : "s", backing,
                     vm.dirty_ring_size == 0 ? "dirty bitmaps" : fmt::format("dirty rings of {}", vm.dirty_ring_size));
}

std::string vm_line(const sim::Scenario& s) {
  if (!s.vm.nested) return direct_vm_line(s);
  const sim::NestedParams& n = *s.vm.nested;
  if (n.kind == sim::NestedKind::Npt)
    return fmt::format("{}; phases in an L2 guest under L1's NPT{}", direct_vm_line(s),
                       n.prefault ? " (prefaulted)" : "");
  return fmt::format("{}; phases in an L2 guest under L1's EPT ({}{})", direct_vm_line(s),
                     n.ept_ad ? "A/D bits" : "no A/D bits", n.prefault ? ", prefaulted" : "");
}

std::string policies_line(const tdp::Policies& p, std::string_view except = {}) {
  std::string out;
  for (std::string_view name : tdp::kPolicyNames) {
    if (name == except) continue;
    out += fmt::format("{}{}={}", out.empty() ? "" : ", ", name, tdp::policy_value(p, name));
  }
  return out;
}

void print_header(std::ostream& out, const sim::Scenario& s, std::string_view title, std::string_view except = {}) {
  out << title << s.name;
  if (!s.description.empty()) out << " -- " << s.description;
  out << "\n  VM: " << vm_line(s) << "\n  policies: " << policies_line(s.policies, except) << "\n";
}

// The rows a phase shows: time, results, migration, then statistics that are not zero
// (gauges always).
std::vector<sim::Metric> shown_metrics(const sim::PhaseReport& p) {
  std::vector<sim::Metric> out = all_metrics(p);
  const std::size_t stats_begin = out.size() - p.stats.size();
  std::vector<sim::Metric> kept(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(stats_begin));
  for (const sim::Metric& m : p.stats) {
    if (m.value != 0 || sim::is_gauge(m.key)) kept.push_back(m);
  }
  return kept;
}

std::string_view unit_name(sim::Unit u) { return u == sim::Unit::Nanoseconds ? "ns" : "count"; }

OJson metrics_object(const std::vector<sim::Metric>& metrics) {
  OJson o = OJson::object();
  for (const sim::Metric& m : metrics) o[m.key] = m.value;
  return o;
}

OJson phase_json(const sim::PhaseReport& p) {
  OJson j;
  j["name"] = p.name;
  j["kind"] = sim::to_string(p.kind);
  j["time_ns"] = p.time_ns;
  j["results"] = metrics_object(p.results);
  if (!p.migration.empty()) {
    const sim::MigrationReport& m = p.migration[0];
    OJson its = OJson::array();
    for (const sim::MigrationIteration& it : m.iterations) {
      its.push_back({{"dirty_memory_ns", it.dirty_ns},
                     {"get_dirty_log_ns", it.get_ns},
                     {"clear_dirty_log_ns", it.clear_ns},
                     {"pages_written", it.pages_written},
                     {"pages_dirty", it.pages_dirty},
                     {"pages_lost", it.pages_lost}});
      if (m.harvest_while_writing) its.back()["harvests_while_writing"] = it.harvests_while_writing;
    }
    j["migration"] = {
        {"populate_ns", m.populate_ns}, {"enable_ns", m.enable_ns}, {"iterations", its}, {"disable_ns", m.disable_ns}};
  }
  j["stats"] = metrics_object(p.stats);
  j["failures"] = p.failures;
  return j;
}

std::string ratio_text(const sim::CompareRow& row) {
  if (row.values.size() != 2 || !row.values[0] || !row.values[1] || *row.values[0] == 0) return "-";
  return fmt::format("{:.2f}", static_cast<double>(*row.values[1]) / static_cast<double>(*row.values[0]));
}

}  // namespace

std::string with_separators(std::uint64_t n) {
  std::string digits = std::to_string(n);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i != 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string metric_text(std::uint64_t value, sim::Unit unit) {
  if (unit == sim::Unit::Nanoseconds) return fmt::format("{:.3f} ms", static_cast<double>(value) / 1e6);
  return with_separators(value);
}

void print_run_text(std::ostream& out, const sim::RunReport& report) {
  print_header(out, report.scenario, "vmmu run: ");
  out << "  setup: " << metric_text(report.setup_ns, sim::Unit::Nanoseconds)
      << " (host memory mapped and faulted in, memslots and vCPUs created; of which host first touch: "
      << metric_text(report.host_touch_ns, sim::Unit::Nanoseconds) << " for "
      << with_separators(report.host_pages_touched) << " pages)\n";
  std::size_t label_width = 0, value_width = 0;
  std::vector<std::vector<sim::Metric>> rows;
  for (const sim::PhaseReport& p : report.phases) {
    rows.push_back(shown_metrics(p));
    for (const sim::Metric& m : rows.back()) {
      label_width = std::max(label_width, m.label.size());
      value_width = std::max(value_width, metric_text(m.value, m.unit).size());
    }
  }
  std::uint64_t total_ns = 0;
  for (std::size_t i = 0; i < report.phases.size(); ++i) {
    const sim::PhaseReport& p = report.phases[i];
    total_ns += p.time_ns;
    const std::string title = fmt::format("phase {}/{}: {}", i + 1, report.phases.size(), p.name);
    out << "\n"
        << fmt::format("{:<{}}  {:>{}}\n", title, label_width + 2, metric_text(p.time_ns, sim::Unit::Nanoseconds),
                       value_width);
    for (const sim::Metric& m : rows[i]) {
      if (m.key == "time_ns") continue;
      out << fmt::format("  {:<{}}  {:>{}}\n", m.label, label_width, metric_text(m.value, m.unit), value_width);
    }
    for (const std::string& f : p.failures) out << "  FAILED: " << f << "\n";
  }
  if (const auto totals = sim::nested_totals(report); !totals.empty()) {
    out << "\nnested, all phases:\n";
    for (const sim::Metric& m : totals)
      out << fmt::format("  {:<{}}  {:>{}}\n", m.label, label_width, metric_text(m.value, m.unit), value_width);
  }
  out << "\n"
      << fmt::format("result: {} ({} phase{}, {})\n", report.ok() ? "ok" : "FAILED", report.phases.size(),
                     report.phases.size() == 1 ? "" : "s", metric_text(total_ns, sim::Unit::Nanoseconds));
}

OJson run_json(const sim::RunReport& report) {
  OJson j;
  j["format"] = kRunReportFormat;
  j["scenario"] = scenario_to_json(report.scenario);
  j["setup_ns"] = report.setup_ns;
  j["host_touch_ns"] = report.host_touch_ns;
  j["host_pages_touched"] = report.host_pages_touched;
  j["ok"] = report.ok();
  j["failures"] = report.failures();
  OJson phases = OJson::array();
  for (const sim::PhaseReport& p : report.phases) phases.push_back(phase_json(p));
  j["phases"] = phases;
  if (report.scenario.vm.nested) j["nested"] = metrics_object(sim::nested_totals(report));
  return j;
}

void print_compare_text(std::ostream& out, const sim::CompareReport& report) {
  const sim::CompareTable& t = report.table;
  if (!report.runs.empty())
    print_header(out, report.runs[0].scenario, fmt::format("vmmu run --compare {}: ", t.policy), t.policy);
  print_compare_table(out, t);
  out << "\n" << fmt::format("result: {}\n", report.ok() ? "ok" : "FAILED");
}

void print_compare_table(std::ostream& out, const sim::CompareTable& t) {
  std::vector<std::string> header = {"phase", "figure"};
  for (const std::string& v : t.values) header.push_back(v);
  const bool ratio = t.values.size() == 2;
  if (ratio) header.push_back(fmt::format("{} / {}", t.values[1], t.values[0]));
  std::vector<std::vector<std::string>> cells;
  std::string last_phase;
  for (const sim::CompareRow& row : t.rows) {
    if (!row.result && row.all_zero()) continue;
    std::vector<std::string> line = {row.phase == last_phase ? "" : row.phase, row.label};
    last_phase = row.phase;
    for (const auto& v : row.values) line.push_back(v ? metric_text(*v, row.unit) : "-");
    if (ratio) line.push_back(ratio_text(row));
    cells.push_back(std::move(line));
  }
  std::vector<std::size_t> width(header.size());
  for (std::size_t c = 0; c < header.size(); ++c) width[c] = header[c].size();
  for (const auto& line : cells) {
    for (std::size_t c = 0; c < line.size(); ++c) width[c] = std::max(width[c], line[c].size());
  }
  auto print_line = [&](const std::vector<std::string>& line) {
    std::string s = fmt::format("{:<{}}  {:<{}}", line[0], width[0], line[1], width[1]);
    for (std::size_t c = 2; c < line.size(); ++c) s += fmt::format("  {:>{}}", line[c], width[c]);
    out << s << "\n";
  };
  out << "\n";
  print_line(header);
  for (const auto& line : cells) print_line(line);
}

OJson compare_rows_json(const sim::CompareTable& t) {
  OJson rows = OJson::array();
  for (const sim::CompareRow& row : t.rows) {
    OJson values = OJson::array();
    for (const auto& v : row.values) values.push_back(v ? OJson(*v) : OJson(nullptr));
    rows.push_back({{"phase", row.phase}, {"key", row.key}, {"unit", unit_name(row.unit)}, {"values", values}});
  }
  return rows;
}

OJson compare_json(const sim::CompareReport& report) {
  OJson j;
  j["format"] = kRunCompareFormat;
  j["policy"] = report.table.policy;
  j["values"] = report.table.values;
  j["ok"] = report.ok();
  OJson failures = OJson::array();
  for (std::size_t i = 0; i < report.runs.size(); ++i) {
    for (const std::string& f : report.runs[i].failures())
      failures.push_back(fmt::format("{}={}: {}", report.table.policy, report.table.values[i], f));
  }
  j["failures"] = failures;
  j["rows"] = compare_rows_json(report.table);
  OJson runs = OJson::array();
  for (const sim::RunReport& r : report.runs) runs.push_back(run_json(r));
  j["runs"] = runs;
  return j;
}

}  // namespace vmmu::cli
