// `vmmu s2walk` in-process: the format page's example answered exactly as its result example,
// unknown fields as errors naming them, the table form, and the samples as the default input.

#include <gtest/gtest.h>

#include <sstream>
#include <string>

#include "cli_test_support.hpp"
#include "s2walk_command.hpp"

namespace vmmu::cli::test {
namespace {

const std::string kSample = std::string(VMMU_TEST_SAMPLES_DIR) + "/s2walk/format-example.json";

CliRun s2walk(std::vector<std::string> files, bool table = false) {
  std::ostringstream out, err;
  S2walkCommandOptions options;
  options.files = std::move(files);
  options.table = table;
  options.samples_dir = std::string(VMMU_TEST_SAMPLES_DIR) + "/s2walk";
  CliRun run;
  run.status = run_s2walk(options, out, err);
  run.out = out.str();
  run.err = err.str();
  return run;
}

TEST(S2walk, FormatPageExampleAnsweredAsItsResultExample) {
  const CliRun run = s2walk({kSample});
  EXPECT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(run.out, read_text(std::string(VMMU_CLI_CASES_DIR) + "/s2walk/format-example.expected"));
}

TEST(S2walk, NoFileWalksTheSamples) {
  const CliRun run = s2walk({});
  EXPECT_EQ(run.status, 0) << run.err;
  EXPECT_NE(run.out.find(R"("pa":"0x80234000")"), std::string::npos) << run.out;
}

TEST(S2walk, TableHasARowPerAccess) {
  const CliRun run = s2walk({kSample}, true);
  EXPECT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(count_lines(run.out), 4u) << run.out;  // header + 3 accesses
  EXPECT_NE(run.out.find("s2-4K"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("pa 0x80234000 (2M)"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("permission fault, level 3"), std::string::npos) << run.out;
}

class S2UnknownKey : public ::testing::TestWithParam<Misspelt> {};

// arm64-s2-walk.md: "Other fields this page does not name are errors, except informational ones".
TEST_P(S2UnknownKey, IsAnErrorNamingTheField) {
  const Misspelt& m = GetParam();
  const CliRun run = s2walk({write_case(std::string(m.name) + ".json", with_misspelt(read_text(kSample), m))});
  EXPECT_EQ(run.status, 2);
  EXPECT_NE(run.err.find(std::string("field '") + m.field + "': is not a field of this format"), std::string::npos)
      << run.err;
  EXPECT_EQ(count_lines(run.out), 1u);
  EXPECT_EQ(run.out.rfind("{\"error\":", 0), 0u) << run.out;
}

INSTANTIATE_TEST_SUITE_P(
    Keys, S2UnknownKey,
    ::testing::Values(Misspelt{"TopLevel", "\"pa_bits\"", "\"pa_bit\": 48, \"pa_bits\"", "pa_bit"},
                      Misspelt{"Register", "\"vttbr_el2\"", "\"vmid\": 1, \"vttbr_el2\"", "regs.vmid"},
                      Misspelt{"Access", "\"op\": \"write\"", "\"op\": \"write\", \"el\": 1", "accesses[2].el"},
                      Misspelt{"Chunk", "\"pa\": \"0x40002000\"", "\"pa\": \"0x40002000\", \"n\": 1", "memory[3].n"}),
    misspelt_name);

TEST(S2walk, InformationalFieldsAreIgnored) {
  std::string text = read_text(kSample);
  text.replace(text.find("\"pa_bits\""), 9, R"("notes": "n", "comment": 1, "x-src": {}, "pa_bits")");
  const CliRun run = s2walk({write_case("notes.json", text)});
  EXPECT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(run.out, s2walk({kSample}).out);
}

}  // namespace
}  // namespace vmmu::cli::test
