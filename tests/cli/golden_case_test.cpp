// Golden cases: every case in tests/cli/cases/ and every sample in samples/ is answered exactly as
// its .expected file says (derivations in tests/cli/cases/README.md).

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <string>
#include <vector>

#include "case_json.hpp"
#include "cli_test_support.hpp"

namespace vmmu::cli::test {
namespace {

namespace fs = std::filesystem;

struct Golden {
  std::string input;
  std::string expected;
  std::string name;
};

void add_dir(std::vector<Golden>& cases, const fs::path& dir, const fs::path& expected_dir, const std::string& prefix) {
  std::vector<fs::path> inputs;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() == ".json" || e.path().extension() == ".jsonl") inputs.push_back(e.path());
  }
  std::sort(inputs.begin(), inputs.end());
  for (const auto& p : inputs) {
    std::string name = prefix + p.stem().string();
    std::replace_if(name.begin(), name.end(), [](char c) { return !std::isalnum(static_cast<unsigned char>(c)); }, '_');
    cases.push_back({p.string(), (expected_dir / (p.stem().string() + ".expected")).string(), name});
  }
}

std::vector<Golden> golden_cases() {
  std::vector<Golden> cases;
  add_dir(cases, VMMU_CLI_CASES_DIR, VMMU_CLI_CASES_DIR, "case_");
  add_dir(cases, VMMU_TEST_SAMPLES_DIR, fs::path(VMMU_CLI_CASES_DIR) / "samples", "sample_");
  return cases;
}

class GoldenCase : public ::testing::TestWithParam<Golden> {};

TEST_P(GoldenCase, AnswersExactlyAsExpected) {
  const Golden& g = GetParam();
  ASSERT_TRUE(fs::exists(g.expected)) << "no expected answer for " << g.input << " (want " << g.expected << ")";
  std::string expected = read_text(g.expected);
  for (std::size_t at = expected.find("@FILE@"); at != std::string::npos; at = expected.find("@FILE@", at)) {
    expected.replace(at, 6, g.input);
  }
  const CliRun run = walk_files({g.input});
  EXPECT_EQ(run.out, expected) << g.input;
  const bool has_errors = expected.find("{\"error\":") != std::string::npos;
  EXPECT_EQ(run.status, has_errors ? 2 : 0) << run.err;
  EXPECT_EQ(run.err.empty(), !has_errors) << run.err;
}

INSTANTIATE_TEST_SUITE_P(Files, GoldenCase, ::testing::ValuesIn(golden_cases()),
                         [](const ::testing::TestParamInfo<Golden>& p) { return p.param.name; });

TEST(GoldenCases, SamplesCoverEveryPagingModeAndEpt) {
  std::vector<std::string> names;
  for (const auto& g : golden_cases()) names.push_back(g.name);
  for (const char* want : {"sample_paging_off", "sample_bits32_4k_and_4m", "sample_bits32_pse36",
                           "sample_pae_2m_and_reserved_pdpte", "sample_long4_pages_nx_canonical", "sample_long5_la57",
                           "sample_long4_smep_smap_pku", "sample_long4_reserved_bits", "sample_ept_ad_1g_2m_exec_only",
                           "sample_x86_walk_format_example", "sample_ept_walk_format_example"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), want), names.end()) << want;
  }
}

}  // namespace
}  // namespace vmmu::cli::test
