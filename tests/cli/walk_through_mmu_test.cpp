// `vmmu walk --mmu tdp|shadow [--host-levels 4|5]` (x86-walk.md, "Through an MMU"): every x86
// case of samples/ and tests/cli/cases/ gives the direct walk's result file byte for byte, under
// a 4-level and a 5-level host -- PAE cases included.

#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "cli_test_support.hpp"

namespace vmmu::cli::test {
namespace {

TEST(WalkThroughMmu, ShadowGivesTheDirectWalksResultOnEveryCase) {
  std::vector<std::string> files = sample_files(VMMU_TEST_SAMPLES_DIR);
  for (const std::string& f : sample_files(VMMU_CLI_CASES_DIR)) files.push_back(f);
  unsigned compared = 0, pae = 0;
  for (const std::string& file : files) {
    const CliRun direct = walk_through(file, "", 0);
    for (unsigned host : {4u, 5u}) {
      SCOPED_TRACE(file + " host levels " + std::to_string(host));
      const CliRun shadow = walk_through(file, "shadow", host);
      EXPECT_EQ(shadow.status, direct.status);
      EXPECT_EQ(shadow.out, direct.out);
      ++compared;
      if (file.find("pae") != std::string::npos) ++pae;
    }
  }
  EXPECT_GE(compared, 28u);  // 32-bit, PAE, 4-level, 5-level, paging off and EPT cases, both hosts
  EXPECT_GE(pae, 2u);
}

std::vector<std::string> every_case_file() {
  std::vector<std::string> files = sample_files(VMMU_TEST_SAMPLES_DIR);
  for (const std::string& f : sample_files(VMMU_CLI_CASES_DIR)) files.push_back(f);
  return files;
}

TEST(WalkThroughMmu, TdpGivesTheDirectWalksResultOnEveryCase) {
  unsigned compared = 0;
  for (const std::string& file : every_case_file()) {
    const CliRun direct = walk_through(file, "", 0);
    // 0: the default depth (4, or 5 when the case's maxphyaddr needs it).
    for (unsigned host : {0u, 5u}) {
      SCOPED_TRACE(file + " host levels " + std::to_string(host));
      const CliRun tdp = walk_through(file, "tdp", host);
      EXPECT_EQ(tdp.status, direct.status);
      EXPECT_EQ(tdp.out, direct.out);
      EXPECT_EQ(tdp.err, direct.err);
      ++compared;
    }
  }
  EXPECT_GE(compared, 30u);  // every paging mode (PAE too), and EPT cases, both depths
}

}  // namespace
}  // namespace vmmu::cli::test
