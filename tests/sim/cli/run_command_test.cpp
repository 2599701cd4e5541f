// `vmmu run` in-process: exit statuses, the text report's and the compare table's shape, and the
// JSON reports' stable keys.

#include "run_command.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "run_report.hpp"
#include "sim/support/run_cli.hpp"

namespace vmmu::cli {
namespace {

using Json = nlohmann::json;


// Options without designated initializers (-Wmissing-field-initializers).
RunCommandOptions opts(std::string file, bool json = false, std::string compare = {},
                       std::vector<std::string> sets = {}) {
  RunCommandOptions o;
  o.file = std::move(file);
  o.json = json;
  o.compare = std::move(compare);
  o.sets = std::move(sets);
  return o;
}


// Writes `text` to a file in a directory of the running test's own (ctest runs tests in parallel).
std::string write_scenario(std::string_view name, std::string_view text) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const auto dir = std::filesystem::path(::testing::TempDir()) /
                   (std::string("vmmu-run-") + info->test_suite_name() + "-" + info->name());
  std::filesystem::create_directories(dir);
  const auto path = dir / name;
  std::ofstream(path) << text;
  return path.string();
}

constexpr std::string_view kSmallScenario = R"({"format": "vmmu-scenario/1", "name": "small",
  "vm": {"vcpus": 1}, "memslots": [{"size": "8M", "backing_page_size": "2M"}],
  "phases": ["populate", "dirty-log-enable", "read-all", "dirty-log-disable"]})";


TEST(RunCommand, MissingFileIsStatus2AndOneLine) {
  const Ran r = run_with(opts("/nonexistent/scenario.json"));
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("/nonexistent/scenario.json"), std::string::npos);
  EXPECT_TRUE(r.out.empty());
}

TEST(RunCommand, MalformedScenarioIsStatus2AndOneLineNamingTheKey) {
  const Ran r = run_with(opts(write_scenario("bad.json", R"({"format": "vmmu-scenario/1", "memslots": [{"size": "8M"}],
    "phases": [{"kind": "random-access", "acesses": 5}]})")));
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("phases[0].acesses: unknown key"), std::string::npos) << r.err;
}

TEST(RunCommand, BadSetAndUnknownPolicyAreStatus2) {
  EXPECT_EQ(run_with(opts("", false, "", {"vcpus=many"})).status, 2);
  EXPECT_EQ(run_with(opts("", false, "", {"nothing"})).status, 2);
  const Ran r = run_with(opts(write_scenario("small.json", kSmallScenario), false, "colour"));
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("--compare colour: unknown policy"), std::string::npos) << r.err;
}

TEST(RunCommand, TextReportHasATablePerPhaseAndAResultLine) {
  const Ran r = run_with(opts(write_scenario("small.json", kSmallScenario)));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(r.err.empty()) << r.err;
  for (const char* want :
       {"vmmu run: small", "phase 1/4: populate", "phase 3/4: read-all", "  mapped 2M", "result: ok (4 phases"})
    EXPECT_NE(r.out.find(want), std::string::npos) << want << "\n" << r.out;
  // Zero statistics are left out; results are not.
  EXPECT_EQ(r.out.find("retried faults"), std::string::npos);
}

TEST(RunCommand, JsonReportKeepsTheSameStatisticsKeysInEveryPhase) {
  const Ran r = run_with(opts(write_scenario("small.json", kSmallScenario), true));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(lines(r.out), 1u);
  const Json j = Json::parse(r.out);
  EXPECT_EQ(j["format"], "vmmu-run-report/1");
  EXPECT_EQ(j["scenario"]["format"], "vmmu-scenario/1");
  EXPECT_EQ(j["ok"], true);
  ASSERT_EQ(j["phases"].size(), 4u);
  std::set<std::string> first;
  for (const auto& [k, v] : j["phases"][0]["stats"].items()) first.insert(k);
  EXPECT_TRUE(first.count("faults") && first.count("merges_in_place") && first.count("tables_in_use"));
  for (const Json& p : j["phases"]) {
    std::set<std::string> keys;
    for (const auto& [k, v] : p["stats"].items()) keys.insert(k);
    EXPECT_EQ(keys, first) << p["name"];
    EXPECT_TRUE(p["time_ns"].is_number_unsigned());
  }
  EXPECT_EQ(j["phases"][2]["stats"]["faults"], 0);  // write-protected huge leaves: reads do not fault
}

TEST(RunCommand, CompareTableHasAColumnPerValueAndEqualWidthRows) {
  const Ran r = run_with(opts(write_scenario("small.json", kSmallScenario), false, "huge-on-dirty-log"));
  ASSERT_EQ(r.status, 0) << r.err;
  std::istringstream in(r.out);
  std::string line;
  std::vector<std::string> table;
  bool in_table = false;
  while (std::getline(in, line)) {
    if (line.rfind("phase ", 0) == 0) in_table = true;
    if (in_table && line.empty()) break;
    if (in_table) table.push_back(line);
  }
  ASSERT_GT(table.size(), 4u) << r.out;
  EXPECT_NE(table[0].find("write-protect"), std::string::npos);
  EXPECT_NE(table[0].find("drop / write-protect"), std::string::npos);
  for (const std::string& l : table) EXPECT_EQ(l.size(), table[0].size()) << l;
  EXPECT_NE(r.out.find("result: ok"), std::string::npos);
}

TEST(RunCommand, CompareJsonRowsLineUpWithTheRuns) {
  const Ran r = run_with(opts(write_scenario("small.json", kSmallScenario), true, "split"));
  ASSERT_EQ(r.status, 0) << r.err;
  const Json j = Json::parse(r.out);
  EXPECT_EQ(j["format"], "vmmu-run-compare/1");
  EXPECT_EQ(j["values"], Json::array({"eager", "lazy"}));
  ASSERT_EQ(j["runs"].size(), 2u);
  EXPECT_EQ(j["runs"][1]["scenario"]["policies"]["split"], "lazy");
  for (const Json& row : j["rows"]) {
    ASSERT_EQ(row["values"].size(), 2u);
    if (row["phase"] == "dirty-log-enable" && row["key"] == "eager_splits") {
      EXPECT_EQ(row["values"], Json::array({4, 0}));
      EXPECT_EQ(row["values"][0], j["runs"][0]["phases"][1]["stats"]["eager_splits"]);
    }
  }
}

TEST(RunCommand, HugePagesSampleShowsWriteProtectSavingAtLeastHalfTheFaults) {
  const std::string sample = std::string(VMMU_TEST_SAMPLES_DIR) + "/scenarios/huge-pages-on-dirty-log.json";
  const Ran r = run_with(opts(sample, true, "huge-on-dirty-log", {"memslots[0].size=64M"}));
  ASSERT_EQ(r.status, 0) << r.err;
  const Json j = Json::parse(r.out);
  for (const Json& row : j["rows"]) {
    if (row["phase"] != "read-all" || row["key"] != "faults") continue;
    const std::uint64_t write_protect = row["values"][0], drop = row["values"][1];
    EXPECT_GE(drop, 2 * write_protect);
    EXPECT_GT(drop, 0u);
    return;
  }
  ADD_FAILURE() << "no read-all faults row";
}

TEST(RunReport, NumbersGetThousandsSeparatorsAndTimesMilliseconds) {
  EXPECT_EQ(with_separators(0), "0");
  EXPECT_EQ(with_separators(999), "999");
  EXPECT_EQ(with_separators(1000), "1,000");
  EXPECT_EQ(with_separators(262144), "262,144");
  EXPECT_EQ(with_separators(1234567890), "1,234,567,890");
  EXPECT_EQ(metric_text(1'234'567, sim::Unit::Nanoseconds), "1.235 ms");
  EXPECT_EQ(metric_text(1'234'567, sim::Unit::Count), "1,234,567");
}

}  // namespace
}  // namespace vmmu::cli
