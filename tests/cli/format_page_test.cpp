// The examples and rules of the format pages (x86-walk.md, x86-ept-walk.md), answered through
// the command's per-case function, compared field by field and byte by byte.

#include <gtest/gtest.h>

#include <string>

#include "batch.hpp"
#include "case_json.hpp"
#include "cli_test_support.hpp"
#include "walk_case.hpp"

namespace vmmu::cli::test {
namespace {

std::string answer(std::string_view text) {
  auto r = answer_case_text(text, CaseLocation{"case.json", 0}, answer_walk_case);
  EXPECT_TRUE(r.has_value()) << (r ? "" : r.error());
  return r ? *r : std::string();
}

Json results_of(std::string_view text) { return Json::parse(answer(text)).at("results"); }

// x86-ept-walk.md, "Case", verbatim.
constexpr std::string_view kEptPageCase = R"({"format": "vmmu-ept-case/1", "arch": "x86-ept", "maxphyaddr": 40,
 "eptp": "0x100005e",
 "memory": [{"pa": "0x1000000", "u64": ["0x1001007"]},
            {"pa": "0x1001008", "u64": ["0x1002007"]},
            {"pa": "0x1002008", "u64": ["0x1003007", "0x2468a000bf"]},
            {"pa": "0x1003008", "u64": ["0x123456037"]}],
 "accesses": [{"gpa": "0x40201123", "op": "read"}, {"gpa": "0x7", "op": "fetch"},
              {"gpa": "0x40400000", "op": "read"}]})";

TEST(EptFormatPage, ExampleAnsweredExactlyAsThePageSays) {
  const std::string out = answer(kEptPageCase);
  // The page's results, in its key order, compact.
  const std::string results =
      R"({"format":"vmmu-ept-result/1","results":[)"
      R"({"gpa":"0x40201123","ok":true,"pa":"0x123456123","page_size":"4K"},)"
      R"({"gpa":"0x7","ok":false,"fault":"ept_violation","exit_qualification":"0x184"},)"
      R"({"gpa":"0x40400000","ok":false,"fault":"ept_misconfig"}],)";
  EXPECT_EQ(out.substr(0, results.size()), results);
  // The page shows the first chunk of memory_after; the rest follow in input order.
  EXPECT_EQ(Json::parse(out).at("memory_after").at(0), Json::parse(R"({"pa": "0x1000000", "u64": ["0x1001107"]})"));
  EXPECT_EQ(Json::parse(out).at("memory_after").size(), 4u);
}

TEST(EptFormatPage, MemoryAfterOnlyWhenEptpBit6IsSet) {
  std::string no_ad(kEptPageCase);
  no_ad.replace(no_ad.find("0x100005e"), 9, "0x100001e");
  const Json out = Json::parse(answer(no_ad));
  EXPECT_FALSE(out.contains("memory_after"));
  EXPECT_EQ(out.at("results").at(0).at("pa"), "0x123456123");
}

TEST(EptFormatPage, FiveLevelWalksOnlyWhenTheCaseSaysSo) {
  const std::string base =
      R"({"format":"vmmu-ept-case/1","maxphyaddr":48,"eptp":"0x26",FIVE"accesses":[{"gpa":"0x0","op":"read"}]})";
  std::string with = base, without = base;
  with.replace(with.find("FIVE"), 4, R"("five_level":true,)");
  without.replace(without.find("FIVE"), 4, "");
  EXPECT_EQ(results_of(with).at(0).at("fault"), "ept_violation");  // valid EPTP, empty tables
  EXPECT_EQ(results_of(without).at(0).at("fault"), "invalid_eptp");
}

// x86-walk.md, "Case", verbatim; its "Result" is the answer (derivation in tests/cli/cases/README.md).
constexpr std::string_view kX86PageCase = R"({
  "format": "vmmu-walk-case/1",
  "arch": "x86",
  "maxphyaddr": 40,
  "regs": {"cr0": "0x80010033", "cr3": "0x1000", "cr4": "0x30",
           "efer": "0xd00", "rflags": "0x2", "pkru": "0x0"},
  "memory": [ {"gpa": "0x1000", "u64": ["0x2007"]},
              {"gpa": "0x2000", "u64": ["0x3007"]},
              {"gpa": "0x3010", "u64": ["0x4007", "0x0", "0x5007"]},
              {"gpa": "0x4000", "u64": ["0x7007"]},
              {"gpa": "0x5000", "u64": ["0x8005"]},
              {"gpa": "0x9000", "u32": ["0x00400083"]} ],
  "accesses": [ {"gva": "0x400123", "op": "read", "cpl": 3},
                {"gva": "0x800000", "op": "write", "cpl": 3},
                {"gva": "0x8000000000000000", "op": "read", "cpl": 0} ]
}
)";

TEST(X86FormatPage, CaseExampleAnsweredExactlyAsTheResultExample) {
  EXPECT_EQ(answer(kX86PageCase),
            R"({"format":"vmmu-walk-result/1","results":[{"gva":"0x400123","ok":true,"gpa":"0x7123","page_size":"4K"},{"gva":"0x800000","ok":false,"fault":"page_fault","error_code":"0x7"},{"gva":"0x8000000000000000","ok":false,"fault":"general_protection"}],"memory_after":[{"gpa":"0x1000","u64":["0x2027"]},{"gpa":"0x2000","u64":["0x3027"]},{"gpa":"0x3010","u64":["0x4027","0x0","0x5007"]},{"gpa":"0x4000","u64":["0x7027"]},{"gpa":"0x5000","u64":["0x8005"]},{"gpa":"0x9000","u32":["0x400083"]}]})");
}

TEST(X86FormatPage, IntegersAndUpperCaseHexReadAsHexStrings) {
  std::string ints(kX86PageCase);
  ints.replace(ints.find("\"0x1000\", \"u64\""), 8, "4096");
  ints.replace(ints.find("\"0x400123\""), 10, "\"0X400123\"");
  EXPECT_EQ(answer(ints), answer(kX86PageCase));
}

TEST(X86FormatPage, MissingRegistersAreZeroExceptRflags) {
  // 32-bit paging, SMAP on: a CPL-0 read of a user page faults unless RFLAGS.AC (bit 18) is set;
  // with rflags absent it is 0x2, so AC is clear and the read faults with P = 0x1.
  const std::string base = R"({"format":"vmmu-walk-case/1","regs":{"cr0":"0x80000001","cr3":"0x1000","cr4":"0x200000"RFLAGS},
    "memory":[{"gpa":"0x1000","u32":["0x2007"]},{"gpa":"0x2000","u32":["0x3007"]}],
    "accesses":[{"gva":"0x10","op":"read","cpl":0}]})";
  std::string absent = base, ac = base;
  absent.replace(absent.find("RFLAGS"), 6, "");
  ac.replace(ac.find("RFLAGS"), 6, R"(,"rflags":"0x40002")");
  EXPECT_EQ(results_of(absent).at(0), Json::parse(R"({"gva":"0x10","ok":false,"fault":"page_fault","error_code":"0x1"})"));
  EXPECT_EQ(results_of(ac).at(0).at("gpa"), "0x3010");
}

TEST(X86FormatPage, MaxphyaddrDefaultsTo52) {
  // A PTE pointing at bit 40: reserved with maxphyaddr 40, an address with the default 52.
  const std::string base = R"({"format":"vmmu-walk-case/1",MAXPHY"regs":{"cr0":"0x80000001","cr3":"0x1000","cr4":"0x20","efer":"0x500"},
    "memory":[{"gpa":"0x1000","u64":["0x2007"]},{"gpa":"0x2000","u64":["0x3007"]},{"gpa":"0x3000","u64":["0x4007"]},
              {"gpa":"0x4000","u64":["0x10000005007"]}],
    "accesses":[{"gva":"0x0","op":"read","cpl":0}]})";
  std::string dflt = base, m40 = base;
  dflt.replace(dflt.find("MAXPHY"), 6, "");
  m40.replace(m40.find("MAXPHY"), 6, R"("maxphyaddr":40,)");
  EXPECT_EQ(results_of(dflt).at(0).at("gpa"), "0x10000005000");
  EXPECT_EQ(results_of(m40).at(0).at("error_code"), "0x9");
}

TEST(X86FormatPage, AccessesSeeTheAccessedAndDirtyBitsOfEarlierOnes) {
  // Paging off has no tables; with 32-bit paging the write sets D in the PTE, and the next
  // access's walk starts from that memory: memory_after shows A|D once, not twice.
  const std::string c = R"({"format":"vmmu-walk-case/1","regs":{"cr0":"0x80000001","cr3":"0x1000"},
    "memory":[{"gpa":"0x1000","u32":["0x2007"]},{"gpa":"0x2000","u32":["0x3007"]}],
    "accesses":[{"gva":"0x10","op":"write","cpl":3},{"gva":"0x10","op":"read","cpl":3}]})";
  const Json out = Json::parse(answer(c));
  EXPECT_EQ(out.at("memory_after").at(1).at("u32").at(0), "0x3067");
  EXPECT_EQ(out.at("results").size(), 2u);
}

TEST(X86FormatPage, InformationalFieldsAreIgnoredEverywhere) {
  std::string extra(kX86PageCase);
  extra.replace(extra.find("\"arch\""), 6, R"("mode": "long4", "notes": "n", "comment": [1, {"x": null}], "x-tool": 3, "arch")");
  extra.replace(extra.find("\"cpl\": 0"), 8, R"("cpl": 0, "comment": "gp")");
  extra.replace(extra.find("\"gpa\": \"0x9000\""), 15, R"("x-why": 1, "gpa": "0x9000")");
  extra.replace(extra.find("\"pkru\""), 6, R"("x-msr": "0x1", "pkru")");
  EXPECT_EQ(answer(extra), answer(kX86PageCase));
}

// x86-walk.md: "a register name this page does not list is an error. Other top-level fields
// this page does not name are errors too" -- a misspelt key must not silently change the case.
class X86UnknownKey : public ::testing::TestWithParam<Misspelt> {};

TEST_P(X86UnknownKey, IsAnErrorNamingTheField) {
  const Misspelt& m = GetParam();
  auto r = answer_case_text(with_misspelt(std::string(kX86PageCase), m), CaseLocation{"case.json", 0}, answer_walk_case);
  ASSERT_FALSE(r.has_value()) << *r;
  EXPECT_NE(r.error().find(std::string("field '") + m.field + "': is not a field of this format"), std::string::npos)
      << r.error();
}

INSTANTIATE_TEST_SUITE_P(
    Keys, X86UnknownKey,
    ::testing::Values(Misspelt{"RegsMisspelt", "\"regs\"", "\"reg\"", "reg"},
                      Misspelt{"RegisterMisspelt", "\"cr4\"", "\"cr_4\"", "regs.cr_4"},
                      Misspelt{"UnknownRegister", "\"pkru\"", "\"xcr0\"", "regs.xcr0"},
                      Misspelt{"NoteNotNotes", "\"arch\"", "\"note\": \"x\", \"arch\"", "note"},
                      Misspelt{"ChunkKey", "\"gpa\": \"0x9000\"", "\"gpa\": \"0x9000\", \"size\": 4", "memory[5].size"},
                      Misspelt{"AccessKey", "\"cpl\": 0", "\"cpl\": 0, \"user\": true", "accesses[2].user"}),
    misspelt_name);

TEST(X86FormatPage, RegsIsRequiredSoAMisspeltOneIsNeverPagingOff) {
  std::string text(kX86PageCase);
  const std::size_t from = text.find("\"regs\"");
  text.erase(from, text.find("\"memory\"") - from);
  auto r = answer_case_text(text, CaseLocation{"case.json", 0}, answer_walk_case);
  ASSERT_FALSE(r.has_value()) << *r;
  EXPECT_NE(r.error().find("field 'regs': is required"), std::string::npos) << r.error();
}

TEST(EptFormatPage, UnknownFieldsAreErrorsAndInformationalOnesAreNot) {
  std::string typo(kEptPageCase);
  typo.replace(typo.find("\"eptp\""), 6, R"("five_levels": true, "eptp")");
  auto r = answer_case_text(typo, CaseLocation{"case.json", 0}, answer_walk_case);
  ASSERT_FALSE(r.has_value()) << *r;
  EXPECT_NE(r.error().find("field 'five_levels': is not a field"), std::string::npos) << r.error();
  std::string notes(kEptPageCase);
  notes.replace(notes.find("\"eptp\""), 6, R"("notes": "n", "x-src": 1, "eptp")");
  EXPECT_EQ(answer(notes), answer(kEptPageCase));
}

// A chunk's word list is read as a stream into one binary value (8 bytes a word), never a DOM
// node per word: a 60 MB chunk costs a few times its size (issue 15).
TEST(CaseText, ChunkWordListsBecomeOneBinaryValueOfCheckedWords) {
  auto doc = parse_case_text(R"({"memory": [{"gpa": "0x1000", "u32": ["0x7", 9, "0xffffffff"]}], "accesses": ["0x1"]})");
  ASSERT_TRUE(doc.has_value()) << to_string(doc.error());
  const Json& words = doc->at("memory").at(0).at("u32");
  ASSERT_TRUE(words.is_binary());
  EXPECT_EQ(words.get_binary().size(), 24u);
  EXPECT_TRUE(doc->at("accesses").is_array());  // only chunks' word lists are streamed
  auto wide = parse_case_text(R"({"memory": [{"gpa": "0x1000", "u32": ["0x7", "0x100000000"]}]})");
  ASSERT_FALSE(wide.has_value());
  EXPECT_EQ(wide.error().field, "memory[0].u32[1]");
}

}  // namespace
}  // namespace vmmu::cli::test
