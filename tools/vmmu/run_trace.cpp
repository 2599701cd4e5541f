#include "run_trace.hpp"

#include <fmt/format.h>

#include <charconv>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <sstream>

#include "json_types.hpp"
#include "vmmu/sim/replay_plots.hpp"
#include "vmmu/tdp/policy.hpp"

#include "exit_status.hpp"
#include "run_report.hpp"

namespace vmmu::cli {
namespace {


constexpr std::uint32_t kPlotSamples = 200;  // time-series points: smooth, small SVGs

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  for (std::size_t from = 0;;) {
    const std::size_t at = s.find(sep, from);
    out.emplace_back(s.substr(from, at - from));
    if (at == std::string_view::npos) return out;
    from = at + 1;
  }
}

std::string replace_all(std::string s, std::string_view from, std::string_view to) {
  for (std::size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
    s.replace(at, from.size(), to);
  return s;
}

std::string policy_names() {
  std::string out;
  for (std::string_view n : tdp::kPolicyNames) out += (out.empty() ? "" : ", ") + std::string(n);
  return out;
}

// The replay options that are axes of a comparison, as typed.
struct AxisOption {
  std::string_view flag, axis;
  const std::string TraceOptions::*value;
};
constexpr AxisOption kAxisOptions[] = {{"--mmu", "mmu", &TraceOptions::mmu},
                                       {"--guest-pages", "guest-pages", &TraceOptions::guest_pages},
                                       {"--tlb", "tlb", &TraceOptions::tlb}};

// The figures a report shows: all but zero statistics.
std::vector<sim::Metric> shown(const sim::ReplayReport& r) {
  std::vector<sim::Metric> out;
  for (sim::Metric& m : sim::replay_metrics(r)) {
    if (!m.key.starts_with("stats.") || m.value != 0) out.push_back(std::move(m));
  }
  return out;
}

}  // namespace

Result<sim::ReplayConfig, std::string> replay_config(const TraceOptions& o) {
  sim::ReplayConfig c;
  for (const AxisOption& a : kAxisOptions) {
    const std::string& v = o.*a.value;
    if (v.empty()) continue;
    if (auto s = sim::set_replay_axis(c, a.axis, v); !s) return Unexpected{fmt::format("{} {}: {}", a.flag, v, s.error())};
  }
  if (o.guest_levels == "5") {
    c.guest_levels = 5;
  } else if (!o.guest_levels.empty() && o.guest_levels != "4") {
    return Unexpected{fmt::format("--guest-levels {}: expected 4 or 5", o.guest_levels)};
  }
  if (!o.dirty_log_at.empty()) {
    double f = 0;
    const auto [end, ec] = std::from_chars(o.dirty_log_at.data(), o.dirty_log_at.data() + o.dirty_log_at.size(), f);
    if (ec != std::errc() || end != o.dirty_log_at.data() + o.dirty_log_at.size() || !(f >= 0.0 && f <= 1.0))
      return Unexpected{fmt::format("--dirty-log-at {}: expected a fraction from 0 to 1", o.dirty_log_at)};
    c.dirty_log_at = f;
  }
  if (!o.adaptive.empty()) {
    const std::vector<std::string> parts = split(o.adaptive, ':');
    auto number = [](std::string_view s, std::uint64_t& v) {
      const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
      return !s.empty() && ec == std::errc() && end == s.data() + s.size();
    };
    if ((parts.size() != 2 && parts.size() != 3) || !number(parts[0], c.adaptive.window) ||
        !number(parts[1], c.adaptive.threshold) || (parts.size() == 3 && !number(parts[2], c.adaptive.return_after)))
      return Unexpected{fmt::format("--adaptive {}: expected WINDOW:THRESHOLD[:RETURN], counts (4096:64:8)", o.adaptive)};
    if (c.adaptive.return_after == 1)
      return Unexpected{fmt::format("--adaptive {}: RETURN must be 0 (never back) or at least 2 quiet windows, "
                                    "so a process cannot move every window", o.adaptive)};
  }
  for (const std::string& p : o.policies) {
    const std::size_t eq = p.find('=');
    const std::string name = p.substr(0, eq);
    if (eq == std::string::npos || tdp::policy_values(name).empty())
      return Unexpected{fmt::format("--policy {}: expected NAME=VALUE, NAME one of {}", p, policy_names())};
    if (auto s = sim::set_replay_axis(c, name, p.substr(eq + 1)); !s)
      return Unexpected{fmt::format("--policy {}: {}", p, s.error())};
  }
  return c;
}

OJson replay_json(const TraceOptions& o, const sim::ReplayReport& r) {
  OJson j;
  j["format"] = kReplayReportFormat;
  j["traces"] = o.traces;
  j["mmu"] = to_string(r.mmu);
  j["guest_pages"] = r.guest_page_size == kPageSize ? "4k" : "2m";
  j["guest_levels"] = r.hardware.guest_levels;
  OJson policies;
  for (std::string_view name : tdp::kPolicyNames) policies[std::string(name)] = tdp::policy_value(r.policies, name);
  j["policies"] = policies;
  OJson rep = OJson::object();
  OJson stats = OJson::object();
  for (const sim::Metric& m : sim::replay_metrics(r)) {
    if (m.key == "time_ns")
      j["time_ns"] = m.value;
    else if (m.key.starts_with("stats."))
      stats[m.key.substr(6)] = m.value;
    else
      rep[OJson::json_pointer("/" + replace_all(m.key, ".", "/"))] = m.value;
  }
  j["replay"] = rep;
  j["stats"] = stats;
  return j;
}

void print_replay_text(std::ostream& out, const TraceOptions& o, const sim::ReplayReport& r) {
  out << fmt::format("vmmu run --trace: {} trace(s), --mmu {}, {} guest pages, {}-level guest\n", o.traces.size(),
                     to_string(r.mmu), r.guest_page_size == kPageSize ? "4k" : "2m", r.hardware.guest_levels);
  for (const sim::Metric& m : shown(r)) out << fmt::format("  {:<40} {:>16}\n", m.label, metric_text(m.value, m.unit));
}

OJson replay_compare_json(const TraceOptions& o, const sim::ReplayCompareReport& r) {
  OJson j;
  j["format"] = kReplayCompareFormat;
  j["traces"] = o.traces;
  j["axis"] = r.table.policy;
  j["values"] = r.table.values;
  j["notes"] = r.notes;
  j["rows"] = compare_rows_json(r.table);
  OJson runs = OJson::array();
  for (const auto& run : r.runs) runs.push_back(run ? replay_json(o, *run) : OJson(nullptr));
  j["runs"] = runs;
  return j;
}

void print_replay_compare_text(std::ostream& out, const TraceOptions& o, const sim::ReplayCompareReport& r) {
  out << fmt::format("vmmu run --trace --compare {}: {} trace(s)\n", r.table.policy, o.traces.size());
  print_compare_table(out, r.table);
  for (const std::string& n : r.notes) out << "note: " << n << "\n";
}

int run_trace(const TraceOptions& o, bool json, std::ostream& out, std::ostream& err) {
  auto config = replay_config(o);
  if (!config) {
    err << "vmmu run: " << config.error() << '\n';
    return kExitBadInput;
  }
  if (!o.plot.empty()) config->samples = kPlotSamples;
  OJson report_json;
  std::string text;
  std::optional<std::string> plot_error;
  // The report as JSON, as text unless --json, and as plots with --plot.
  auto present = [&](const auto& report, auto to_json, auto print, auto plot) {
    report_json = to_json(o, report);
    if (!json) {
      std::ostringstream s;
      print(s, o, report);
      text = s.str();
    }
    if (!o.plot.empty()) {
      if (auto w = plot(o.plot, report); !w) plot_error = w.error();
    }
  };
  auto failed = [&err](const sim::ReplayError& e) {
    err << "vmmu run: " << e.message << '\n';
    return e.bad_input ? kExitBadInput : kExitFailed;
  };
  if (!o.compare.empty()) {
    const std::size_t eq = o.compare.find('=');
    const std::string axis = o.compare.substr(0, eq);
    std::vector<std::string> values;
    if (eq != std::string::npos) values = split(o.compare.substr(eq + 1), ',');
    if (axis == "dirty-tracking" && !config->dirty_log_at) config->dirty_log_at = 0.5;  // else nothing to compare
    auto report = sim::run_replay_compare(o.traces, *config, axis, values);
    if (!report) return failed(report.error());
    present(*report, replay_compare_json, print_replay_compare_text, sim::write_compare_plots);
  } else {
    auto report = sim::replay(o.traces, *config);
    if (!report) return failed(report.error());
    present(*report, replay_json, print_replay_text, sim::write_replay_plots);
  }
  if (!o.plot.empty() && !plot_error) {
    std::ofstream f(std::filesystem::path(o.plot) / "report.json");
    f << report_json.dump(2) << '\n';
    if (!f) plot_error = fmt::format("--plot {}: cannot write report.json", o.plot);
  }
  out << (json ? report_json.dump() + "\n" : text);
  out.flush();
  if (plot_error) {
    err << "vmmu run: " << *plot_error << '\n';
    return kExitFailed;
  }
  return kExitOk;
}

}  // namespace vmmu::cli
