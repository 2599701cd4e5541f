// `vmmu run --trace` comparisons and plots, `vmmu report merge` and sweep files, in-process on
// the shipped trace of `ls /`: columns per value, plot files written and shown by one page,
// merged tables that agree with the reports merged, sweep grids and their Slurm script.

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "report_command.hpp"
#include "run_command.hpp"
#include "sim/support/run_cli.hpp"
#include "sweep_file.hpp"

namespace vmmu::cli {
namespace {

using Json = nlohmann::json;
namespace fs = std::filesystem;

const std::string kTrace = std::string(VMMU_TEST_SAMPLES_DIR) + "/traces/ls.trace.xz";

Ran run_trace_with(std::vector<std::string> traces, std::string compare, std::vector<std::pair<std::string, std::string>> opts,
                   bool json = true) {
  RunCommandOptions o;
  o.json = json;
  o.compare = std::move(compare);
  o.trace.traces = std::move(traces);
  for (auto& [k, v] : opts) {
    if (k == "tlb") o.trace.tlb = v;
    if (k == "plot") o.trace.plot = v;
    if (k == "dirty-log-at") o.trace.dirty_log_at = v;
    if (k == "mmu") o.trace.mmu = v;
  }
  return run_with(o);
}

fs::path test_dir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const fs::path d = fs::path(::testing::TempDir()) / (std::string("vmmu-replay-report-") + info->name());
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

const Json& row(const Json& rows, std::string_view key) {
  for (const Json& r : rows) {
    if (r["key"] == key) return r;
  }
  ADD_FAILURE() << "no row " << key;
  static const Json none;
  return none;
}

TEST(ReplayCompareCli, MmuKindsAreOneTableWithAColumnEach) {
  const Ran r = run_trace_with({kTrace}, "mmu", {});
  ASSERT_EQ(r.status, 0) << r.err;
  const Json j = Json::parse(r.out);
  EXPECT_EQ(j["format"], "vmmu-replay-compare/1");
  EXPECT_EQ(j["values"], Json({"tdp", "shadow", "adaptive"}));
  const Json& faults = row(j["rows"], "guest.page_faults");
  EXPECT_EQ(faults["values"][0], j["runs"][0]["replay"]["guest"]["page_faults"]);
  EXPECT_GT(faults["values"][0].get<std::uint64_t>(), 0u);
  // Shadow and adaptive replay (same guest faults: the guest kernel model is the same);
  // adaptive's column has its switches, the others none.
  EXPECT_EQ(faults["values"][1], faults["values"][0]);
  EXPECT_EQ(faults["values"][2], faults["values"][0]);
  EXPECT_EQ(j["runs"][1]["mmu"], "shadow");
  EXPECT_EQ(j["runs"][2]["mmu"], "adaptive");
  EXPECT_GT(row(j["rows"], "stats.reflected")["values"][1].get<std::uint64_t>(), 0u);
  const Json& switches = row(j["rows"], "adaptive.switches");
  ASSERT_TRUE(switches.contains("values"));
  EXPECT_TRUE(switches["values"][0].is_null());
  EXPECT_TRUE(switches["values"][2].is_number_unsigned());
  EXPECT_EQ(j["notes"].size(), 0u);

  const Ran text = run_trace_with({kTrace}, "mmu", {}, false);
  ASSERT_EQ(text.status, 0) << text.err;
  EXPECT_NE(text.out.find("figure"), std::string::npos);
  EXPECT_TRUE(std::regex_search(text.out, std::regex("figure +tdp +shadow +adaptive"))) << text.out;
  EXPECT_EQ(text.out.find("note:"), std::string::npos);
}

TEST(ReplayCompareCli, ChosenValuesAreTheColumns) {
  const Ran r = run_trace_with({kTrace}, "tlb=16,1536:12", {});
  ASSERT_EQ(r.status, 0) << r.err;
  const Json j = Json::parse(r.out);
  EXPECT_EQ(j["values"], Json({"16", "1536:12"}));
  EXPECT_EQ(row(j["rows"], "tlb.entries")["values"], Json({16, 1536}));
  EXPECT_EQ(row(j["rows"], "tlb.ways")["values"], Json({16, 12}));
  const auto misses = row(j["rows"], "tlb.misses")["values"];
  EXPECT_GT(misses[0].get<std::uint64_t>(), misses[1].get<std::uint64_t>());  // a bigger TLB misses less

  const Ran bad = run_trace_with({kTrace}, "colour", {});
  EXPECT_EQ(bad.status, 2);
  EXPECT_NE(bad.err.find("unknown axis \"colour\""), std::string::npos) << bad.err;
  EXPECT_EQ(std::count(bad.err.begin(), bad.err.end(), '\n'), 1);
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

TEST(ReplayPlotCli, WritesEveryTimeSeriesAndAPageShowingThem) {
  const fs::path dir = test_dir() / "plots";
  const Ran r = run_trace_with({kTrace}, "", {{"plot", dir.string()}, {"dirty-log-at", "0.5"}});
  ASSERT_EQ(r.status, 0) << r.err;
  const std::string page = slurp(dir / "index.html");
  for (const char* f : {"faults.svg", "table-memory.svg", "tlb-miss-rate.svg", "dirty-pages.svg"}) {
    ASSERT_TRUE(fs::exists(dir / f)) << f;
    const std::string svg = slurp(dir / f);
    EXPECT_NE(svg.find("<polyline"), std::string::npos) << f;
    EXPECT_NE(page.find(svg), std::string::npos) << f << " is not shown by index.html";
  }
  EXPECT_EQ(Json::parse(slurp(dir / "report.json")), Json::parse(r.out));  // the report beside its plots
}

TEST(ReplayPlotCli, ComparisonsAddABarPlotPerFigure) {
  const fs::path dir = test_dir() / "plots";
  const Ran r = run_trace_with({kTrace}, "guest-pages", {{"plot", dir.string()}});
  ASSERT_EQ(r.status, 0) << r.err;
  for (const char* f : {"compare-tlb-misses.svg", "compare-guest-page-faults.svg", "faults.svg"})
    EXPECT_TRUE(fs::exists(dir / f)) << f;
  const std::string faults = slurp(dir / "faults.svg");
  EXPECT_NE(faults.find(">4k: guest</text>"), std::string::npos);  // every run's series, named
  EXPECT_NE(faults.find(">2m: MMU</text>"), std::string::npos);
}

TEST(ReportMerge, ColumnsAreNamedByWhatDiffersAndAgreeWithTheReports) {
  const fs::path dir = test_dir();
  std::vector<std::string> files;
  std::vector<Json> reports;
  for (const char* tlb : {"16", "256"}) {
    const Ran r = run_trace_with({kTrace}, "", {{"tlb", tlb}});
    ASSERT_EQ(r.status, 0) << r.err;
    files.push_back((dir / (std::string("tlb-") + tlb + ".json")).string());
    std::ofstream(files.back()) << r.out;
    reports.push_back(Json::parse(r.out));
  }
  auto t = merge_reports(files);
  ASSERT_TRUE(t) << t.error();
  EXPECT_EQ(t->policy, "tlb");
  EXPECT_EQ(t->values, (std::vector<std::string>{"16", "256"}));
  for (const sim::CompareRow& row : t->rows) {
    if (row.key != "tlb.misses" && row.key != "stats.faults") continue;
    const std::string k = row.key.substr(row.key.find('.') + 1);
    for (std::size_t i = 0; i < 2; ++i) {
      const Json& want = row.key.starts_with("tlb") ? reports[i]["replay"]["tlb"][k] : reports[i]["stats"][k];
      EXPECT_EQ(row.values[i], want.get<std::uint64_t>()) << row.key;
    }
  }
  std::ofstream(dir / "bad.json") << R"({"format": "vmmu-run-report/1"})";
  auto bad = merge_reports({files[0], (dir / "bad.json").string()});
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().find("bad.json: not a replay report"), std::string::npos) << bad.error();
}

TEST(SweepFile, ExpandsTheGridOnePointEach) {
  const fs::path dir = test_dir();
  std::ofstream(dir / "a.trace") << "R 10 1\n";
  std::ofstream(dir / "b b.trace") << "W 20 2\n";
  std::ofstream(dir / "sweep.json") << R"({"format": "vmmu-sweep/1", "traces": ["a.trace", "b b.trace"],
    "mmu": ["tdp", "shadow"], "tlb": ["16", "64:4", "1536"],
    "policies": {"dirty-tracking": ["write-protect", "dirty-bits"]}, "dirty_log_at": 0.5, "out": "res"})";
  auto s = load_sweep((dir / "sweep.json").string());
  ASSERT_TRUE(s) << s.error();
  ASSERT_EQ(s->points.size(), 2u * 2u * 3u * 2u);  // traces x mmu x tlb x dirty tracking
  EXPECT_TRUE(s->notes.empty());
  EXPECT_EQ(s->out, (dir / "res").string());
  const SweepPoint& p = s->points[1];
  EXPECT_EQ(p.args, (std::vector<std::string>{"run", "--trace", (dir / "a.trace").string(), "--mmu", "tdp", "--tlb",
                                              "16", "--policy", "dirty-tracking=dirty-bits", "--dirty-log-at", "0.5",
                                              "--json"}));
  EXPECT_EQ(p.report, (dir / "res" / "point-0001.json").string());
  EXPECT_NE(s->points[12].args[2].find("b b.trace"), std::string::npos);  // the second trace after the first's 12
  EXPECT_EQ(s->points[6].args[4], "shadow");

  EXPECT_EQ(shell_quote("b b.trace"), "'b b.trace'");
  EXPECT_EQ(shell_quote("it's"), "'it'\\''s'");
  EXPECT_EQ(shell_quote("--tlb=64:4"), "--tlb=64:4");
  EXPECT_NE(point_command("/bin/vmmu", s->points[12]).find("'" + (dir / "b b.trace").string() + "'"), std::string::npos);

  const std::string script = slurm_script("/bin/vmmu", "sweep.json", *s);
  EXPECT_EQ(script.rfind("#!/bin/bash\n", 0), 0u);
  EXPECT_NE(script.find("#SBATCH --array=0-23\n"), std::string::npos);
  EXPECT_NE(script.find("case \"$SLURM_ARRAY_TASK_ID\" in\n"), std::string::npos);
  for (std::size_t i = 0; i < s->points.size(); ++i)
    EXPECT_NE(script.find(fmt::format("  {}) {} ;;\n", i, point_command("/bin/vmmu", s->points[i]))), std::string::npos) << i;
  EXPECT_NE(script.find("report merge " + (dir / "res").string() + "/point-*.json"), std::string::npos);
}

TEST(SweepFile, MistakesAreNamedByKey) {
  const fs::path dir = test_dir();
  std::ofstream(dir / "a.trace") << "R 10 1\n";
  auto load = [&](std::string_view text) {
    std::ofstream(dir / "s.json") << text;
    auto s = load_sweep((dir / "s.json").string());
    return s ? std::string("loaded") : s.error();
  };
  EXPECT_NE(load(R"({"format": "vmmu-sweep/1", "traces": ["a.trace"], "tbl": ["16"]})").find("tbl: unknown key"),
            std::string::npos);
  EXPECT_NE(load(R"({"format": "vmmu-sweep/1", "traces": ["a.trace"], "tlb": ["16", "64:5"]})")
                .find("tlb[1]: 64:5: the ways must divide"),
            std::string::npos);
  EXPECT_NE(load(R"({"format": "vmmu-sweep/1", "traces": ["missing.trace"]})").find("traces[0]:"), std::string::npos);
  EXPECT_NE(load(R"({"format": "vmmu-sweep/1", "traces": ["a.trace"], "policies": {"colour": ["red"]}})")
                .find("policies.colour: unknown policy"),
            std::string::npos);
  EXPECT_NE(load(R"({"traces": ["a.trace"]})").find("format: expected"), std::string::npos);
  EXPECT_NE(load("{").find("not JSON"), std::string::npos);
  EXPECT_EQ(load(R"({"format": "vmmu-sweep/1", "traces": ["a.trace"]})"), "loaded");
}

}  // namespace
}  // namespace vmmu::cli
