// Malformed input: each rule of the format pages gives one error line naming the case (its
// file) and the field, exit status 2, and an error object in the case's place on the output;
// a batch answers its other lines. Nothing makes the command crash.

#include <gtest/gtest.h>

#include <string>

#include "batch.hpp"
#include "case_json.hpp"
#include "cli_test_support.hpp"

namespace vmmu::cli::test {
namespace {

struct Malformed {
  const char* name;
  std::string text;
  const char* field;  // the field the error must name ("" for the case as a whole)
};

const std::string kRegs32 = R"("regs":{"cr0":"0x80000001","cr3":"0x1000"})";
const std::string kAccess = R"("accesses":[{"gva":"0x10","op":"read","cpl":0}])";

// A walk case; regs (required) is {} unless the body gives it.
std::string x86(const std::string& body) {
  const std::string regs = body.find("\"regs\"") == std::string::npos ? R"("regs":{},)" : "";
  return R"({"format":"vmmu-walk-case/1",)" + regs + body + "}";
}
std::string x86_access(const std::string& access) {
  return x86(kRegs32 + R"(,"accesses":[{"gva":"0x0","op":"read","cpl":0},)" + access + "]");
}
std::string x86_memory(const std::string& chunks) { return x86(R"("memory":[)" + chunks + "]," + kAccess); }
std::string ept(const std::string& body) { return R"({"format":"vmmu-ept-case/1",)" + body + "}"; }
const std::string kEptAccess = R"("accesses":[{"gpa":"0x10","op":"read"}])";

std::vector<Malformed> malformed_cases() {
  return {
      {"FormatMissing", R"({"accesses":[]})", "format"},
      {"FormatUnknown", R"({"format":"vmmu-walk-case/2","accesses":[]})", "format"},
      {"FormatNotAString", R"({"format":7,"accesses":[]})", "format"},
      {"ArchDoesNotMatchFormat", x86(R"("arch":"arm64-s2",)" + kAccess), "arch"},
      {"AccessesMissing", x86(kRegs32), "accesses"},
      {"AccessesNotAnArray", x86(R"("accesses":{"gva":"0x1"})"), "accesses"},
      {"AccessNotAnObject", x86_access("\"0x10\""), "accesses[1]"},
      {"GvaMissing", x86_access(R"({"op":"read","cpl":0})"), "accesses[1].gva"},
      {"GvaNegative", x86_access(R"({"gva":-4096,"op":"read","cpl":0})"), "accesses[1].gva"},
      {"GvaFractional", x86_access(R"({"gva":4096.5,"op":"read","cpl":0})"), "accesses[1].gva"},
      {"GvaHugeInteger", x86_access(R"({"gva":184467440737095516160,"op":"read","cpl":0})"), "accesses[1].gva"},
      {"GvaHexTooLong", x86_access(R"({"gva":"0x1ffffffffffffffff","op":"read","cpl":0})"), "accesses[1].gva"},
      {"GvaNotHex", x86_access(R"({"gva":"4096","op":"read","cpl":0})"), "accesses[1].gva"},
      {"GvaBadDigit", x86_access(R"({"gva":"0x10g0","op":"read","cpl":0})"), "accesses[1].gva"},
      {"GvaBarePrefix", x86_access(R"({"gva":"0x","op":"read","cpl":0})"), "accesses[1].gva"},
      {"GvaBoolean", x86_access(R"({"gva":true,"op":"read","cpl":0})"), "accesses[1].gva"},
      {"GvaTooWideOutsideLongMode", x86_access(R"({"gva":"0x100000000","op":"read","cpl":0})"), "accesses[1].gva"},
      {"GvaTooWideWithPagingOff", x86(R"("accesses":[{"gva":"0x123456789","op":"read","cpl":0}])"), "accesses[0].gva"},
      {"OpMissing", x86_access(R"({"gva":"0x10","cpl":0})"), "accesses[1].op"},
      {"OpUnknown", x86_access(R"({"gva":"0x10","op":"execute","cpl":0})"), "accesses[1].op"},
      {"OpNotAString", x86_access(R"({"gva":"0x10","op":1,"cpl":0})"), "accesses[1].op"},
      {"CplMissing", x86_access(R"({"gva":"0x10","op":"read"})"), "accesses[1].cpl"},
      {"CplOne", x86_access(R"({"gva":"0x10","op":"read","cpl":1})"), "accesses[1].cpl"},
      {"CplFour", x86_access(R"({"gva":"0x10","op":"read","cpl":4})"), "accesses[1].cpl"},
      {"RegsNotAnObject", x86(R"("regs":["0x1"],)" + kAccess), "regs"},
      {"RegisterNotANumber", x86(R"("regs":{"cr3":"cr3"},)" + kAccess), "regs.cr3"},
      {"PkruWiderThan32Bits", x86(R"("regs":{"pkru":"0x100000000"},)" + kAccess), "regs.pkru"},
      {"MaxphyaddrAbove52", x86(R"("maxphyaddr":53,)" + kAccess), "maxphyaddr"},
      {"MaxphyaddrBelow32", x86(R"("maxphyaddr":"0x1f",)" + kAccess), "maxphyaddr"},
      {"MemoryNotAnArray", x86(R"("memory":{},)" + kAccess), "memory"},
      {"ChunkNotAnObject", x86_memory(R"({"gpa":"0x0","u8":[]},3)"), "memory[1]"},
      {"ChunkWithoutAddress", x86_memory(R"({"u64":["0x1"]})"), "memory[0].gpa"},
      {"ChunkWithoutWords", x86_memory(R"({"gpa":"0x1000"})"), "memory[0].u64"},
      {"ChunkWithTwoWordLists", x86_memory(R"({"gpa":"0x1000","u64":["0x1"],"u8":["0x1"]})"), "memory[0].u8"},
      {"ChunkWordsNotAnArray", x86_memory(R"({"gpa":"0x1000","u32":"0x1"})"), "memory[0].u32"},
      {"U32WordTooWide", x86_memory(R"({"gpa":"0x1000","u32":["0x1","0x100000000"]})"), "memory[0].u32[1]"},
      {"U8WordTooWide", x86_memory(R"({"gpa":"0x1000","u8":["0x100"]})"), "memory[0].u8[0]"},
      {"U64ChunkMisaligned", x86_memory(R"({"gpa":"0x1004","u64":["0x1"]})"), "memory[0].gpa"},
      {"U32ChunkMisaligned", x86_memory(R"({"gpa":"0x1002","u32":["0x1"]})"), "memory[0].gpa"},
      {"ChunksOverlap", x86_memory(R"({"gpa":"0x1000","u64":["0x1","0x2"]},{"gpa":"0x1008","u8":["0x1"]})"), "memory[1]"},
      {"ChunksOverlapOutOfOrder", x86_memory(R"({"gpa":"0x2000","u8":["0x1"]},{"gpa":"0x1ff8","u64":["0x1","0x2"]})"),
       "memory[1]"},
      {"ChunkWrapsPastTop", x86_memory(R"({"gpa":"0xfffffffffffffff8","u64":["0x1","0x2"]})"), "memory[0].u64"},
      {"EptMaxphyaddrMissing", ept(R"("eptp":"0x1e",)" + kEptAccess), "maxphyaddr"},
      {"EptEptpMissing", ept(R"("maxphyaddr":40,)" + kEptAccess), "eptp"},
      {"EptFiveLevelNotBoolean", ept(R"("maxphyaddr":40,"eptp":"0x1e","five_level":"yes",)" + kEptAccess), "five_level"},
      {"EptChunkOfU32", ept(R"("maxphyaddr":40,"eptp":"0x1e","memory":[{"pa":"0x0","u32":["0x1"]}],)" + kEptAccess),
       "memory[0].u32"},
      {"EptChunkWithGpaNotPa", ept(R"("maxphyaddr":40,"eptp":"0x1e","memory":[{"gpa":"0x0","u64":["0x1"]}],)" + kEptAccess),
       "memory[0].pa"},
      {"EptGpaAtMaxphyaddr", ept(R"("maxphyaddr":40,"eptp":"0x1e","accesses":[{"gpa":"0x10000000000","op":"read"}])"),
       "accesses[0].gpa"},
      {"EptOpUnknown", ept(R"("maxphyaddr":40,"eptp":"0x1e","accesses":[{"gpa":"0x1","op":"exec"}])"), "accesses[0].op"},
      {"EmptyFile", "", ""},
      {"WhitespaceOnly", " \n\t\n", ""},
      {"TruncatedJson", R"({"format":"vmmu-walk-case/1","accesses":[{"gva")", ""},
      {"TopLevelArray", "[1,2,3]", ""},
      {"TopLevelNull", "null", ""},
      {"TrailingGarbage", x86(kAccess) + " }", ""},
      {"InvalidUtf8", "{\"format\":\"\xff\xfe\"}", ""},
      {"BinaryGarbage", std::string("\x00\x01\x02{\"", 5), ""},
      {"RegsMissing", R"({"format":"vmmu-walk-case/1",)" + kAccess + "}", "regs"},
      {"RegsMisspelt", R"({"format":"vmmu-walk-case/1","reg":{"cr0":"0x80000001"},)" + kAccess + "}", "reg"},
      {"RegisterUnknown", x86(R"("regs":{"cr2":"0x1"},)" + kAccess), "regs.cr2"},
      {"TopLevelKeyUnknown", x86(R"("maxphyadr":36,)" + kAccess), "maxphyadr"},
      {"AccessKeyUnknown", x86_access(R"({"gva":"0x10","op":"read","cpl":0,"size":8})"), "accesses[1].size"},
      {"ChunkKeyUnknown", x86_memory(R"({"gpa":"0x1000","u64":["0x1"],"len":1})"), "memory[0].len"},
      {"WordNotANumberInAList", x86_memory(R"({"gpa":"0x1000","u64":["0x1",{"v":1}]})"), "memory[0].u64[1]"},
      {"WordNestedList", x86_memory(R"({"gpa":"0x1000","u8":[["0x1"]]})"), "memory[0].u8[0]"},
      {"EptKeyUnknown", ept(R"("maxphyaddr":40,"eptp":"0x1e","ad":true,)" + kEptAccess), "ad"},
      {"DeeplyNested", std::string(100000, '[') + std::string(100000, ']'), ""},
  };
}

class MalformedCase : public ::testing::TestWithParam<Malformed> {};

TEST_P(MalformedCase, OneErrorLineNamingCaseAndFieldAndNonZeroExit) {
  const Malformed& m = GetParam();
  const std::string path = write_case(std::string(m.name) + ".json", m.text);
  const CliRun run = walk_files({path});
  EXPECT_EQ(run.status, 2);
  EXPECT_EQ(run.out, error_line(run.err.substr(std::string_view("vmmu walk: ").size(),
                                               run.err.size() - std::string_view("vmmu walk: ").size() - 1)) +
                         "\n");
  EXPECT_EQ(count_lines(run.err), 1u) << run.err;
  EXPECT_EQ(run.err.rfind("vmmu walk: " + path + ": ", 0), 0u) << run.err;
  if (*m.field != '\0') {
    EXPECT_NE(run.err.find(std::string("field '") + m.field + "': "), std::string::npos) << run.err;
  } else {
    EXPECT_EQ(run.err.find("field '"), std::string::npos) << run.err;
  }
}

TEST_P(MalformedCase, BatchLineIsAnErrorObjectAndOtherLinesAreAnswered) {
  const Malformed& m = GetParam();
  std::string line = m.text;
  for (char& c : line) {
    if (c == '\n') c = ' ';
  }
  const std::string good = x86(R"("accesses":[{"gva":"0x5","op":"read","cpl":0}])");
  const std::string path = write_case(std::string(m.name) + ".jsonl", good + "\n" + line + "\n" + good + "\n");
  const CliRun run = walk_files({path});
  EXPECT_EQ(run.status, 2);
  ASSERT_EQ(count_lines(run.out), 3u) << run.out;
  const std::string first = run.out.substr(0, run.out.find('\n'));
  const std::string second = run.out.substr(first.size() + 1, run.out.find('\n', first.size() + 1) - first.size() - 1);
  const std::string third = run.out.substr(first.size() + second.size() + 2);
  EXPECT_EQ(third, first + "\n");
  EXPECT_NE(first.find(R"("ok":true)"), std::string::npos) << first;
  const Json error = Json::parse(second);
  ASSERT_TRUE(error.is_object() && error.size() == 1 && error.contains("error")) << second;
  const std::string message = error.at("error");
  EXPECT_EQ(message.rfind(path + ":2: ", 0), 0u) << message;
  if (*m.field != '\0') {
    EXPECT_NE(message.find(std::string("field '") + m.field + "'"), std::string::npos) << message;
  }
  EXPECT_EQ(count_lines(run.err), 1u) << run.err;
}

INSTANTIATE_TEST_SUITE_P(Rules, MalformedCase, ::testing::ValuesIn(malformed_cases()),
                         [](const ::testing::TestParamInfo<Malformed>& p) { return std::string(p.param.name); });

TEST(CaseFiles, MissingFileIsOneErrorLine) {
  const CliRun run = walk_files({"/nonexistent/vmmu-case.json"});
  EXPECT_EQ(run.status, 2);
  EXPECT_EQ(run.out, "{\"error\":\"/nonexistent/vmmu-case.json: cannot open: No such file or directory\"}\n");
  EXPECT_EQ(run.err, "vmmu walk: /nonexistent/vmmu-case.json: cannot open: No such file or directory\n");
}

TEST(CaseFiles, DirectoryIsOneErrorLine) {
  const std::string dir = ::testing::TempDir();
  const CliRun run = walk_files({dir});
  EXPECT_EQ(run.status, 2);
  EXPECT_EQ(count_lines(run.err), 1u) << run.err;
  EXPECT_NE(run.err.find("is a directory"), std::string::npos) << run.err;
}

TEST(CaseFiles, EmptyBatchAnswersNothingAndSucceeds) {
  const CliRun run = walk_files({write_case("empty.jsonl", "")});
  EXPECT_EQ(run.status, 0);
  EXPECT_EQ(run.out, "");
  EXPECT_EQ(run.err, "");
}

TEST(CaseFiles, BatchEmptyLineIsAMalformedCaseSoLinesStayAligned) {
  const std::string good = x86(R"("accesses":[{"gva":"0x5","op":"read","cpl":0}])");
  const CliRun run = walk_files({write_case("gap.jsonl", good + "\r\n\r\n" + good)});  // CRLF, no final newline
  EXPECT_EQ(run.status, 2);
  EXPECT_EQ(count_lines(run.out), 3u) << run.out;
  EXPECT_NE(run.out.find(":2: empty line"), std::string::npos) << run.out;
}

TEST(CaseFiles, LaterFilesAreAnsweredAfterABadOne) {
  const std::string good = write_case("good.json", x86(R"("accesses":[{"gva":"0x5","op":"read","cpl":0}])"));
  const CliRun run = walk_files({"/nonexistent.json", good});
  EXPECT_EQ(run.status, 2);
  EXPECT_EQ(count_lines(run.out), 2u);
}

// Issue 15: `vmmu walk a.json bad.json c.json` printed two lines for three files.
TEST(CaseFiles, OutputLinesFollowTheInputsWhateverFails) {
  const std::string good = write_case("good.json", x86(R"("accesses":[{"gva":"0x5","op":"read","cpl":0}])"));
  const std::string bad = write_case("bad.json", x86(R"("accesses":[{"gva":"0x5","op":"jump","cpl":0}])"));
  const std::string batch = write_case("two.jsonl", "{}\n" + x86(R"("accesses":[])") + "\n");
  const CliRun run = walk_files({good, bad, "/nonexistent.json", batch, good});
  EXPECT_EQ(run.status, 2);
  std::vector<std::string> lines;
  for (std::size_t at = 0, nl = 0; (nl = run.out.find('\n', at)) != std::string::npos; at = nl + 1) {
    lines.push_back(run.out.substr(at, nl - at));
  }
  ASSERT_EQ(lines.size(), 6u) << run.out;
  for (std::size_t i : {0u, 4u, 5u}) EXPECT_EQ(lines[i].find("{\"error\""), std::string::npos) << i << lines[i];
  EXPECT_EQ(lines[1].rfind("{\"error\":\"" + bad + ": field 'accesses[0].op'", 0), 0u) << lines[1];
  EXPECT_EQ(lines[2].rfind("{\"error\":\"/nonexistent.json: cannot open", 0), 0u) << lines[2];
  EXPECT_EQ(lines[3].rfind("{\"error\":\"" + batch + ":1: ", 0), 0u) << lines[3];
  EXPECT_EQ(count_lines(run.err), 3u) << run.err;
}

TEST(CaseFiles, TableShowsErrorsAsRowsAndExitsNonZero) {
  const std::string good = write_case("good.json", x86(R"("accesses":[{"gva":"0x5","op":"write","cpl":3}])"));
  const std::string bad = write_case("bad.json", x86(R"("accesses":[{"gva":"0x5","op":"jump","cpl":3}])"));
  const CliRun run = walk_files({good, bad}, true);
  EXPECT_EQ(run.status, 2);
  EXPECT_EQ(count_lines(run.out), 3u) << run.out;  // header, the good access, the error row
  EXPECT_NE(run.out.find("error: "), std::string::npos);
  EXPECT_NE(run.out.find("gpa 0x5 (4K)"), std::string::npos) << run.out;
}

}  // namespace
}  // namespace vmmu::cli::test
