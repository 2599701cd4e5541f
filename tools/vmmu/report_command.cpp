#include "report_command.hpp"

#include <fmt/format.h>

#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <set>

#include "batch.hpp"
#include "exit_status.hpp"
#include "json_types.hpp"
#include "run_report.hpp"
#include "run_trace.hpp"
#include "vmmu/sim/replay.hpp"
#include "vmmu/sim/replay_plots.hpp"

namespace vmmu::cli {
namespace {


// "tlb.misses" -> its metric (label, unit), from the replay's own list.
const std::map<std::string, sim::Metric>& known_metrics() {
  static const std::map<std::string, sim::Metric> kKnown = [] {
    sim::ReplayReport r;
    r.dirty_log_start = 0;
    std::map<std::string, sim::Metric> m;
    for (sim::Metric& x : sim::replay_metrics(r)) m.emplace(x.key, std::move(x));
    return m;
  }();
  return kKnown;
}

// The report's figures as metrics keyed as replay_metrics() keys them.
void flatten(const Json& j, const std::string& prefix, std::vector<sim::Metric>& out) {
  for (const auto& [k, v] : j.items()) {
    const std::string key = prefix.empty() ? k : prefix + "." + k;
    if (v.is_object()) {
      flatten(v, key, out);
    } else if (v.is_number_unsigned()) {
      const auto it = known_metrics().find(key);
      sim::Metric m{key, key, v.get<std::uint64_t>(), sim::Unit::Count};
      if (it != known_metrics().end()) m.label = it->second.label, m.unit = it->second.unit;
      out.push_back(std::move(m));
    }
  }
}

// What a report was run with, by name: its column is named by those that differ.
std::vector<std::pair<std::string, std::string>> run_options(const Json& j) {
  std::vector<std::pair<std::string, std::string>> out;
  std::string traces;
  for (const Json& t : j.value("traces", Json::array()))
    traces += (traces.empty() ? "" : "+") + std::filesystem::path(t.get<std::string>()).filename().string();
  out.emplace_back("trace", traces);
  out.emplace_back("mmu", j.value("mmu", ""));
  out.emplace_back("guest-pages", j.value("guest_pages", ""));
  out.emplace_back("guest-levels", std::to_string(j.value("guest_levels", 0)));
  const Json tlb = j.value("replay", Json::object()).value("tlb", Json::object());
  const std::uint64_t entries = tlb.value("entries", std::uint64_t{0}), ways = tlb.value("ways", std::uint64_t{0});
  out.emplace_back("tlb", ways == entries ? std::to_string(entries) : fmt::format("{}:{}", entries, ways));
  const Json policies = j.value("policies", Json::object());  // items() would outlive a temporary
  for (const auto& [k, v] : policies.items())
    out.emplace_back(k, v.is_string() ? v.get<std::string>() : v.dump());
  return out;
}

}  // namespace

Result<sim::CompareTable, std::string> merge_reports(const std::vector<std::string>& files) {
  if (files.empty()) return Unexpected{std::string("no report given")};
  std::vector<Json> docs;
  for (const std::string& f : files) {
    auto text = read_file(f);
    if (!text) return Unexpected{to_string(text.error())};
    Json doc = Json::parse(*text, nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded()) return Unexpected{fmt::format("{}: not JSON", f)};
    if (!doc.is_object() || doc.value("format", Json()) != Json(kReplayReportFormat))
      return Unexpected{fmt::format("{}: not a replay report (expected \"format\": \"{}\")", f, kReplayReportFormat)};
    docs.push_back(std::move(doc));
  }
  std::vector<std::vector<std::pair<std::string, std::string>>> options;
  for (const Json& d : docs) options.push_back(run_options(d));
  std::vector<std::size_t> differing;
  for (std::size_t o = 0; o < options[0].size(); ++o) {
    for (const auto& other : options) {
      if (o >= other.size() || other[o] != options[0][o]) {
        differing.push_back(o);
        break;
      }
    }
  }
  sim::CompareTable t;
  for (std::size_t o : differing) t.policy += (t.policy.empty() ? "" : " x ") + options[0][o].first;
  if (t.policy.empty()) t.policy = "report";
  for (std::size_t i = 0; i < docs.size(); ++i) {
    std::string name;
    for (std::size_t o : differing) {
      const std::string v = o < options[i].size() ? options[i][o].second : "-";
      name += (name.empty() ? "" : " ") + (differing.size() == 1 ? v : options[0][o].first + "=" + v);
    }
    t.values.push_back(name.empty() ? std::filesystem::path(files[i]).filename().string() : name);
  }
  for (std::size_t i = 0; i < docs.size(); ++i) {
    std::vector<sim::Metric> metrics;
    if (docs[i].contains("time_ns")) metrics.push_back({"time_ns", "time", docs[i]["time_ns"].get<std::uint64_t>(), sim::Unit::Nanoseconds});
    flatten(docs[i].value("replay", Json::object()), "", metrics);
    const std::size_t results = metrics.size();
    flatten(docs[i].value("stats", Json::object()), "stats", metrics);
    sim::add_to_column(t, i, "replay", metrics, results);
  }
  return t;
}

OJson merged_json(const sim::CompareTable& t, const std::vector<std::string>& files) {
  OJson j;
  j["format"] = kReportMergeFormat;
  j["reports"] = files;
  j["axis"] = t.policy;
  j["values"] = t.values;
  j["rows"] = compare_rows_json(t);
  return j;
}

int run_report_merge(const std::vector<std::string>& files, bool json, const std::string& plot, std::ostream& out,
                     std::ostream& err) {
  auto table = merge_reports(files);
  if (!table) {
    err << "vmmu report merge: " << table.error() << '\n';
    return kExitBadInput;
  }
  if (json) {
    out << merged_json(*table, files).dump() << '\n';
  } else {
    out << fmt::format("vmmu report merge: {} reports, by {}\n\n", files.size(), table->policy);
    print_compare_table(out, *table);
  }
  out.flush();
  if (!plot.empty()) {
    if (auto s = sim::write_table_plots(plot, *table); !s) {
      err << "vmmu report merge: " << s.error() << '\n';
      return kExitFailed;
    }
  }
  return kExitOk;
}

void register_report_command(CLI::App& app) {
  struct Options {
    std::vector<std::string> files;
    bool json = false;
    std::string plot;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("report", "Work on reports vmmu wrote");
  cmd->require_subcommand(1);
  CLI::App* merge = cmd->add_subcommand(
      "merge", "Join replay reports (vmmu run --trace --json, one per sweep point) into one comparison table");
  merge->add_option("REPORT", o->files, "vmmu-replay-report/1 files")->required()->type_name("FILE");
  merge->add_flag("--json", o->json, "print JSON (vmmu-report-merge/1)");
  merge->add_option("--plot", o->plot, "write the comparison's bar plots and index.html into DIR")->type_name("DIR");
  merge->callback([o] {
    const int status = run_report_merge(o->files, o->json, o->plot, std::cout, std::cerr);
    if (status != 0) throw CLI::RuntimeError(status);
  });
}

}  // namespace vmmu::cli
