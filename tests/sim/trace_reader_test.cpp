// Page-trace files: every malformed line is named by file and line; plain and .xz read the
// same records; the writer merges adjacent records; lackey lines convert page by page.

#include <gtest/gtest.h>

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "vmmu/sim/lackey.hpp"
#include "vmmu/sim/trace.hpp"

namespace vmmu::sim {
namespace {

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("vmmu-trace-test-" + std::to_string(::getpid()) + "-" + name))
      .string();
}

std::string write_file(const std::string& name, const std::string& text) {
  const std::string p = temp_path(name);
  std::ofstream(p, std::ios::binary) << text;
  return p;
}

Result<std::vector<TraceRecord>, std::string> read_all(const std::string& path) {
  auto r = TraceReader::open(path);
  if (!r) return Unexpected{r.error()};
  std::vector<TraceRecord> out;
  TraceRecord rec;
  for (;;) {
    auto more = (*r)->next(rec);
    if (!more) return Unexpected{more.error()};
    if (!*more) return out;
    out.push_back(rec);
  }
}

TEST(TraceReader, ReadsEveryKind) {
  const std::string p = write_file("kinds", "F 400 3\nR 4a2f 17\nW 0 1\nM 7fffffffe 2\n");
  auto recs = read_all(p);
  ASSERT_TRUE(recs) << recs.error();
  const std::vector<TraceRecord> want = {{TraceKind::Fetch, 0x400, 3},
                                         {TraceKind::Read, 0x4a2f, 17},
                                         {TraceKind::Write, 0, 1},
                                         {TraceKind::Modify, 0x7fffffffe, 2}};
  EXPECT_EQ(*recs, want);
  std::filesystem::remove(p);
}

TEST(TraceReader, MalformedLinesAreNamedByFileAndLine) {
  struct Case {
    std::string line, what;
  };
  for (const Case& c : {Case{"X 10 1", "unknown kind"}, Case{"R 1G 1", "bad vpn"}, Case{"R 0x10 1", "bad vpn"},
                        Case{"R 0a 1", "leading zero"}, Case{"R A 1", "bad vpn"}, Case{"R 10 0", "bad count"},
                        Case{"R 10 1 2", "extra field"}, Case{"R 10", "expected"}, Case{"", "blank line"},
                        Case{"R  10 1", "bad vpn"}, Case{"R 10 -1", "bad count"}, Case{"W 5 1", "repeats"}}) {
    const std::string p = write_file("bad", "R 5 1\nW 5 2\n" + c.line + "\nR 6 1\n");
    auto recs = read_all(p);
    ASSERT_FALSE(recs) << c.line;
    EXPECT_NE(recs.error().find(p + ":3: "), std::string::npos) << recs.error();
    EXPECT_NE(recs.error().find(c.what), std::string::npos) << recs.error();
    std::filesystem::remove(p);
  }
}

TEST(TraceReader, ALastLineWithoutNewlineCounts) {
  const std::string p = write_file("nonl", "R 1 1\nW 2 5");
  auto recs = read_all(p);
  ASSERT_TRUE(recs);
  ASSERT_EQ(recs->size(), 2u);
  EXPECT_EQ((*recs)[1], (TraceRecord{TraceKind::Write, 2, 5}));
  std::filesystem::remove(p);
}

TEST(TraceReader, XzReadsTheSameRecordsAcrossManyChunks) {
  std::string text;
  for (int i = 0; i < 50000; ++i) text += (i % 2 ? "R " : "W ") + fmt::format("{:x}", i * 7) + " " + std::to_string(i % 9 + 1) + "\n";
  const std::string plain = write_file("big", text);
  ASSERT_EQ(std::system(("xz -k -f " + plain).c_str()), 0);
  auto a = read_all(plain);
  auto b = read_all(plain + ".xz");
  ASSERT_TRUE(a) << a.error();
  ASSERT_TRUE(b) << b.error();
  EXPECT_EQ(a->size(), 50000u);
  EXPECT_EQ(*a, *b);
  // A corrupt stream is an xz error naming the file.
  const std::string bad = write_file("corrupt.xz", "this is not xz");
  auto c = read_all(bad);
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().find(bad + ": xz: "), std::string::npos) << c.error();
  for (const std::string& p : {plain, plain + ".xz", bad}) std::filesystem::remove(p);
}

TEST(TraceReader, MissingFileIsNamed) {
  auto r = TraceReader::open("/nonexistent/trace");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("/nonexistent/trace: cannot open"), std::string::npos);
}

TEST(TraceWriter, MergesAdjacentRecordsOfOneKindAndPage) {
  const std::string p = temp_path("writer");
  std::FILE* f = std::fopen(p.c_str(), "w");
  ASSERT_NE(f, nullptr);
  {
    TraceWriter w(f);
    w.add(TraceKind::Read, 0x10);
    w.add(TraceKind::Read, 0x10);
    w.add(TraceKind::Write, 0x10);
    w.add(TraceKind::Read, 0x10, 3);
    w.add(TraceKind::Fetch, 0xabc);
  }
  std::fclose(f);
  std::ifstream in(p);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "R 10 2\nW 10 1\nR 10 3\nF abc 1\n");
  std::filesystem::remove(p);
}

TEST(Lackey, ConvertsEveryKindAndSplitsPageCrossingAccesses) {
  const std::string p = temp_path("lackey");
  std::FILE* f = std::fopen(p.c_str(), "w");
  ASSERT_NE(f, nullptr);
  {
    TraceWriter w(f);
    LackeyConverter c(w);
    for (const char* line : {"==123== Lackey, an example Valgrind tool", "I  04010173,3", " L 1ffefffd40,8",
                             " S 1ffefffd38,8", " M 0421f8a0,4", " L 0421fffe,4", "--123-- note"})
      ASSERT_TRUE(c.line(line)) << line;
    EXPECT_EQ(c.accesses(), 5u);
    EXPECT_FALSE(c.line(" X 10,4"));
    EXPECT_FALSE(c.line("I  zz,4"));
    EXPECT_FALSE(c.line(" L 10,0"));
    EXPECT_FALSE(c.line("hello"));
  }
  std::fclose(f);
  std::ifstream in(p);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "F 4010 1\nR 1ffefff 1\nW 1ffefff 1\nM 421f 1\nR 421f 1\nR 4220 1\n");
  std::filesystem::remove(p);
}

}  // namespace
}  // namespace vmmu::sim
