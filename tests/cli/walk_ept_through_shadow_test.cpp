// `vmmu walk --mmu shadow` on EPT cases (x86-ept-walk.md cases, issue 13 item 6): each case's tables
// are an L1's EPT and each access an L2 guest-physical access through vmmu's shadow EPT; the
// result file is the direct EPT walk's byte for byte -- every EPT case of samples/,
// tests/cli/cases/ and the EPT fuzz target's seeds.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "cli_test_support.hpp"

namespace vmmu::cli::test {
namespace {

bool is_ept_case(const std::string& file) { return read_text(file).find("vmmu-ept-case/1") != std::string::npos; }

TEST(WalkEptThroughShadow, GivesTheDirectWalksResultOnEveryEptCase) {
  std::vector<std::string> files = sample_files(VMMU_TEST_SAMPLES_DIR);
  for (const std::string& f : sample_files(VMMU_CLI_CASES_DIR)) files.push_back(f);
  for (const std::string& f : sample_files(VMMU_CLI_CASES_DIR "/../../fuzz/seeds/ept_case_fuzz")) files.push_back(f);
  unsigned compared = 0;
  for (const std::string& file : files) {
    if (!is_ept_case(file)) continue;
    SCOPED_TRACE(file);
    const CliRun direct = walk_through(file, "");
    const CliRun shadow = walk_through(file, "shadow");
    EXPECT_EQ(shadow.status, direct.status);
    EXPECT_EQ(shadow.out, direct.out);
    EXPECT_EQ(shadow.err, direct.err);
    ++compared;
  }
  // 4 samples (A/D with 1G/2M/execute-only, 5-level, invalid EPTP, the format example), the
  // mixed batch, 3 fuzz seeds (self-reference, loop, outside memory).
  EXPECT_GE(compared, 8u);
}

}  // namespace
}  // namespace vmmu::cli::test
