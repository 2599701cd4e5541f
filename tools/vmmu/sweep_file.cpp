#include "sweep_file.hpp"

#include <fmt/format.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>

#include "batch.hpp"
#include "json_types.hpp"
#include "vmmu/sim/replay_compare.hpp"
#include "vmmu/tdp/policy.hpp"

namespace vmmu::cli {
namespace {

namespace fs = std::filesystem;

// The grid's axes in point order: sweep key, `vmmu run` option, replay axis.
struct Axis {
  std::string_view key, option, axis;
};
constexpr Axis kAxes[] = {{"mmu", "--mmu", "mmu"}, {"guest_pages", "--guest-pages", "guest-pages"}, {"tlb", "--tlb", "tlb"}};

bool known_key(std::string_view k) {
  if (k == "format" || k == "traces" || k == "policies" || k == "dirty_log_at" || k == "out" || k == "notes" ||
      k == "comment" || k.starts_with("x-"))
    return true;
  for (const Axis& a : kAxes) {
    if (a.key == k) return true;
  }
  return false;
}

// A non-empty array of strings at `key`.
Result<std::vector<std::string>, std::string> strings(const Json& j, std::string_view key) {
  if (!j.is_array() || j.empty()) return Unexpected{fmt::format("{}: expected a non-empty array of strings", key)};
  std::vector<std::string> out;
  for (const Json& v : j) {
    if (!v.is_string()) return Unexpected{fmt::format("{}[{}]: expected a string", key, out.size())};
    out.push_back(v.get<std::string>());
  }
  return out;
}

struct Dimension {
  std::vector<std::string> option;  // the arguments before each value ("--mmu")
  std::vector<std::string> values;  // as passed: "tdp", or "dirty-tracking=dirty-bits" for --policy
};

}  // namespace

std::string shell_quote(std::string_view s) {
  const bool plain = !s.empty() && s.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                                      "0123456789_./:=,+-") == std::string_view::npos;
  if (plain) return std::string(s);
  std::string out = "'";
  for (const char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string point_command(std::string_view vmmu, const SweepPoint& p) {
  std::string out = shell_quote(vmmu);
  // Appended piece by piece: g++ 12 at -O3 misreads `" " + std::string&&` as an overflow.
  for (const std::string& a : p.args) {
    out += ' ';
    out += shell_quote(a);
  }
  out += " > ";
  out += shell_quote(p.report);
  return out;
}

std::string slurm_script(std::string_view vmmu, std::string_view sweep_file, const Sweep& sweep) {
  std::string out = fmt::format(
      "#!/bin/bash\n"
      "#SBATCH --job-name=vmmu-sweep\n"
      "#SBATCH --array=0-{}\n"
      "#SBATCH --ntasks=1\n"
      "#SBATCH --cpus-per-task=1\n"
      "#SBATCH --output={}/slurm-%A_%a.log\n"
      "# vmmu sweep {}: {} points, one `vmmu run` each (task N runs point N). Afterwards:\n"
      "#   {} report merge {}/point-*.json --plot {}/plots\n"
      "set -euo pipefail\n"
      "mkdir -p {}\n"
      "case \"$SLURM_ARRAY_TASK_ID\" in\n",
      sweep.points.size() - 1, shell_quote(sweep.out), sweep_file, sweep.points.size(), shell_quote(vmmu),
      shell_quote(sweep.out), shell_quote(sweep.out), shell_quote(sweep.out));
  for (std::size_t i = 0; i < sweep.points.size(); ++i)
    out += fmt::format("  {}) {} ;;\n", i, point_command(vmmu, sweep.points[i]));
  out += "  *) echo \"vmmu sweep: no point $SLURM_ARRAY_TASK_ID\" >&2; exit 2 ;;\nesac\n";
  return out;
}

Result<Sweep, std::string> load_sweep(const std::string& path) {
  auto text = read_file(path);
  if (!text) return Unexpected{to_string(text.error())};
  const Json doc = Json::parse(*text, nullptr, /*allow_exceptions=*/false);
  auto error = [&path](std::string m) { return Unexpected{fmt::format("{}: {}", path, m)}; };
  if (doc.is_discarded()) return error("not JSON");
  if (!doc.is_object()) return error("expected an object (a sweep)");
  for (const auto& [k, v] : doc.items()) {
    if (!known_key(k)) return error(fmt::format("{}: unknown key", k));
  }
  if (doc.value("format", Json()) != Json(kSweepFormat)) return error(fmt::format("format: expected \"{}\"", kSweepFormat));
  const fs::path base = fs::absolute(fs::path(path)).parent_path();

  std::vector<Dimension> dims;
  if (!doc.contains("traces")) return error("traces: missing (a non-empty array of trace files)");
  auto traces = strings(doc["traces"], "traces");
  if (!traces) return error(traces.error());
  Dimension trace_dim{{"--trace"}, {}};
  for (std::size_t i = 0; i < traces->size(); ++i) {
    const fs::path t = (base / (*traces)[i]).lexically_normal();
    if (!fs::is_regular_file(t)) return error(fmt::format("traces[{}]: {}: no such file", i, t.string()));
    trace_dim.values.push_back(t.string());
  }
  dims.push_back(std::move(trace_dim));

  Sweep sweep;
  for (const Axis& a : kAxes) {
    if (!doc.contains(a.key)) continue;
    auto values = strings(doc[std::string(a.key)], a.key);
    if (!values) return error(values.error());
    Dimension d{{std::string(a.option)}, {}};
    for (std::size_t i = 0; i < values->size(); ++i) {
      sim::ReplayConfig c;
      if (auto s = sim::set_replay_axis(c, a.axis, (*values)[i]); !s)
        return error(fmt::format("{}[{}]: {}: {}", a.key, i, (*values)[i], s.error()));
      if (auto why = a.axis == "mmu" ? sim::replay_lacks(c.mmu) : std::nullopt) {
        sweep.notes.push_back(fmt::format("mmu {}: not run: {}", (*values)[i], *why));
        continue;
      }
      d.values.push_back((*values)[i]);
    }
    if (d.values.empty()) return error(fmt::format("{}: no value this build can run", a.key));
    dims.push_back(std::move(d));
  }
  if (doc.contains("policies")) {
    const Json& p = doc["policies"];
    if (!p.is_object()) return error("policies: expected an object, policy name -> array of values");
    for (const auto& [name, v] : p.items()) {
      const std::string key = "policies." + name;
      if (tdp::policy_values(name).empty()) return error(fmt::format("{}: unknown policy", key));
      auto values = strings(v, key);
      if (!values) return error(values.error());
      Dimension d{{"--policy"}, {}};
      for (std::size_t i = 0; i < values->size(); ++i) {
        sim::ReplayConfig c;
        if (auto s = sim::set_replay_axis(c, name, (*values)[i]); !s)
          return error(fmt::format("{}[{}]: {}: {}", key, i, (*values)[i], s.error()));
        d.values.push_back(name + "=" + (*values)[i]);
      }
      dims.push_back(std::move(d));
    }
  }
  std::vector<std::string> fixed;
  if (doc.contains("dirty_log_at")) {
    const Json& f = doc["dirty_log_at"];
    if (!f.is_number() || !(f.get<double>() >= 0.0 && f.get<double>() <= 1.0))
      return error("dirty_log_at: expected a fraction from 0 to 1");
    fixed = {"--dirty-log-at", fmt::format("{}", f.get<double>())};
  }
  std::string out = fs::path(path).stem().string() + ".results";
  if (doc.contains("out")) {
    if (!doc["out"].is_string() || doc["out"].get<std::string>().empty()) return error("out: expected a directory name");
    out = doc["out"].get<std::string>();
  }
  sweep.out = (base / out).lexically_normal().string();

  // Every combination, the first dimension outermost.
  std::vector<std::size_t> at(dims.size(), 0);
  for (;;) {
    SweepPoint pt;
    pt.args = {"run"};
    for (std::size_t d = 0; d < dims.size(); ++d) {
      pt.args.insert(pt.args.end(), dims[d].option.begin(), dims[d].option.end());
      pt.args.push_back(dims[d].values[at[d]]);
    }
    pt.args.insert(pt.args.end(), fixed.begin(), fixed.end());
    pt.args.push_back("--json");
    pt.report = (fs::path(sweep.out) / fmt::format("point-{:04}.json", sweep.points.size())).string();
    sweep.points.push_back(std::move(pt));
    std::size_t d = dims.size();
    while (d > 0 && ++at[d - 1] == dims[d - 1].values.size()) at[--d] = 0;
    if (d == 0) break;
  }
  return sweep;
}

}  // namespace vmmu::cli
