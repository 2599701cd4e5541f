#include "run_command.hpp"

#include <fmt/format.h>

#include <iostream>
#include <memory>

#include "batch.hpp"
#include "exit_status.hpp"
#include "run_progress.hpp"
#include "run_report.hpp"
#include "run_scenario_json.hpp"
#include "vmmu/sim/compare.hpp"
#include "vmmu/sim/runner.hpp"
#include "vmmu/tdp/policy.hpp"

namespace vmmu::cli {
namespace {

constexpr int kBadInput = kExitBadInput;
constexpr int kFailed = kExitFailed;

int report_failures(const std::vector<std::string>& failures, std::ostream& err) {
  for (const std::string& f : failures) err << "vmmu run: FAILED: " << f << '\n';
  return failures.empty() ? 0 : kFailed;
}

}  // namespace

int run_run(const RunCommandOptions& options, std::ostream& out, std::ostream& err) {
  if (!options.trace.traces.empty()) {
    if (!options.file.empty() || !options.sets.empty()) {
      err << "vmmu run: --trace replays traces; SCENARIO and --set are for scenarios\n";
      return kBadInput;
    }
    TraceOptions t = options.trace;
    t.compare = options.compare;
    return run_trace(t, options.json, out, err);
  }
  if (options.trace.any_replay_option()) {
    err << "vmmu run: --mmu, --guest-pages, --guest-levels, --tlb, --dirty-log-at, --policy, --adaptive and --plot "
           "need --trace\n";
    return kBadInput;
  }
  std::string text;
  std::string origin = "built-in default scenario";
  if (options.file.empty()) {
    text = default_scenario_text();
  } else {
    auto contents = read_file(options.file);
    if (!contents) {
      err << "vmmu run: " << to_string(contents.error()) << '\n';
      return kBadInput;
    }
    text = std::move(*contents);
    origin = options.file;
  }
  auto scenario = load_scenario(text, origin, options.sets);
  if (!scenario) {
    err << "vmmu run: " << scenario.error() << '\n';
    return kBadInput;
  }
  if (!options.compare.empty() && sim::compare_values(options.compare).empty()) {
    err << fmt::format("vmmu run: --compare {}: unknown policy (expected one of: {})\n", options.compare,
                       sim::compare_dimensions());
    return kBadInput;
  }

  ProgressLine line(err);
  sim::RunOptions run_options;
  if (options.progress) run_options.progress = [&line](const sim::Progress& p) { line(p); };

  if (!options.compare.empty()) {
    auto report = sim::run_compare(*scenario, options.compare, run_options);
    if (!report) {
      err << "vmmu run: " << report.error() << '\n';
      return kFailed;
    }
    if (options.json)
      out << compare_json(*report).dump() << '\n';
    else
      print_compare_text(out, *report);
    out.flush();
    std::vector<std::string> failures;
    for (std::size_t i = 0; i < report->runs.size(); ++i) {
      for (const std::string& f : report->runs[i].failures())
        failures.push_back(fmt::format("{}={}: {}", options.compare, report->table.values[i], f));
    }
    return report_failures(failures, err);
  }

  auto report = sim::run(*scenario, run_options);
  if (!report) {
    err << "vmmu run: " << report.error() << '\n';
    return kFailed;
  }
  if (options.json)
    out << run_json(*report).dump() << '\n';
  else
    print_run_text(out, *report);
  out.flush();
  return report_failures(report->failures(), err);
}

void register_run_command(CLI::App& app) {
  auto options = std::make_shared<RunCommandOptions>();
  CLI::App* cmd = app.add_subcommand(
      "run",
      "Run a scenario (vmmu-scenario/1 JSON; the built-in default without a file): a VM whose vCPU threads go "
      "through phases -- populate, random-access, smep-storm, migration, read-all, dirty-log-enable/-disable, "
      "conversion, fork, rewrite-tables, cr3-switch -- and a report of the times and MMU statistics of each");
  cmd->add_option("SCENARIO", options->file,
                  "scenario file; none: the built-in default (samples/scenarios/default.json)")
      ->type_name("FILE");
  cmd->add_flag("--json", options->json, "print JSON (vmmu-run-report/1, or vmmu-run-compare/1 with --compare)");
  cmd->add_option("--compare", options->compare,
                  "run once per value of POLICY (huge-on-dirty-log, split, recovery, roots, dirty-tracking) or "
                  "of the VM's MMU (mmu: tdp, shadow, adaptive), or the phases run directly and in an L2 guest (nested: "
                  "direct, nested), and print one table with a column per value; with --trace "
                  "also guest-pages or tlb, and AXIS=V,V... chooses the values")
      ->type_name("POLICY");
  cmd->add_option("--set", options->sets,
                  "override a scenario parameter: NAME=VALUE, NAME a key path (vm.vcpus, memslots[0].size, "
                  "phases[2].flips), a policy name, a vm key, or KIND.PARAM (migration.iterations)")
      ->allow_extra_args(false)
      ->type_name("NAME=VALUE");
  TraceOptions& t = options->trace;
  cmd->add_option("--trace", t.traces,
                  "replay page traces (../shared/formats/page-trace.md; plain or .xz), one guest process each")
      ->type_name("FILE");
  cmd->add_option("--mmu", t.mmu, "with --trace: the MMU, tdp (default), shadow or adaptive")->type_name("KIND");
  cmd->add_option("--adaptive", t.adaptive,
                  "with --trace: under --mmu adaptive a process moves from shadow to TDP when its tables take "
                  "THRESHOLD writes within WINDOW accesses, and back after RETURN windows in a row with fewer "
                  "(default 4096:64:8; 0:0 never moves; RETURN 0 never back, else at least 2)")
      ->type_name("WINDOW:THRESHOLD[:RETURN]");
  cmd->add_option("--guest-pages", t.guest_pages, "with --trace: the guest kernel's pages, 4k (default) or 2m")
      ->type_name("SIZE");
  cmd->add_option("--guest-levels", t.guest_levels, "with --trace: guest paging levels, 4 (default) or 5")
      ->type_name("N");
  cmd->add_option("--tlb", t.tlb, "with --trace: TLB entries and ways (default 64, fully associative)")
      ->type_name("ENTRIES[:WAYS]");
  cmd->add_option("--dirty-log-at", t.dirty_log_at,
                  "with --trace: start dirty logging before this fraction of the accesses (0 to 1)")
      ->type_name("FRACTION");
  cmd->add_option("--policy", t.policies, "with --trace: a TDP policy, NAME=VALUE (dirty-tracking=dirty-bits)")
      ->allow_extra_args(false)
      ->type_name("NAME=VALUE");
  cmd->add_option("--plot", t.plot,
                  "with --trace: write time series and comparisons as SVG plots, index.html showing them and "
                  "report.json into DIR")
      ->type_name("DIR");
  cmd->callback([options] {
    RunCommandOptions o = *options;
    o.progress = stderr_is_terminal();
    const int status = run_run(o, std::cout, std::cerr);
    if (status != 0) throw CLI::RuntimeError(status);
  });
}

}  // namespace vmmu::cli
