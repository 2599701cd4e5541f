// `vmmu maps` and `vmmu translate` through the CLI library: output forms exactly as
// x86-maps.md gives them, the --merge rule, the image left untouched, and every error case
// answered with one line and a non-zero status.

#include <elf.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "image/support/image_builder.hpp"
#include "image/support/page_sizes.hpp"
#include "image/support/x86_tables.hpp"

#ifdef VMMU_CLI_PATH
#include <fmt/format.h>

#include "maps_commands.hpp"

namespace vmmu::image {
namespace {

using testing::GuestPages;
using testing::TempDir;
using testing::X86Tables;
using x86::PagingMode;
namespace b = testing::bits;


struct CommandRun {
  int status;
  std::string out;
  std::string err;
};

class Commands : public ::testing::Test {
 protected:
  void write_regs(const std::string& text) { std::ofstream(regs) << text; }
  void write_long4_regs(std::uint64_t cr3 = 0x1000, std::uint64_t efer = 0xd00) {
    write_regs(fmt::format(R"({{"maxphyaddr": 40, "regs": {{"cr0": "0x80010033", "cr3": "{:#x}", "cr4": "0x20", )"
                           R"("efer": "{:#x}"}}}})",
                           cr3, efer));
  }
  void write_image() { testing::write_raw_image(memory, pages, 0x400000); }

  CommandRun maps(bool json, bool merge) {
    std::ostringstream out, err;
    cli::MapsOptions options;
    options.memory = memory;
    options.regs = regs;
    options.json = json;
    options.merge = merge;
    const int status = cli::run_maps(options, out, err);
    return {status, out.str(), err.str()};
  }
  CommandRun translate(std::vector<std::string> gvas, std::string op = "read", unsigned cpl = 0) {
    std::ostringstream out, err;
    const int status = cli::run_translate({memory, regs, std::move(op), cpl, std::move(gvas)}, out, err);
    return {status, out.str(), err.str()};
  }
  static std::size_t lines(const std::string& s) { return static_cast<std::size_t>(std::count(s.begin(), s.end(), '\n')); }

  TempDir dir;
  std::string memory = dir.file("guest.img");
  std::string regs = dir.file("regs.json");
  GuestPages pages;
  X86Tables tables{pages, PagingMode::Long4, Gpa(0x1000), Gpa(0x10000)};
};

TEST_F(Commands, TextLineHasAddressesSizePermissionsAndLeafFlags) {
  tables.map(0xffffffff81000000, 0x1000000, M2, b::RW | b::A | b::D | b::G);
  write_image();
  write_long4_regs();
  const CommandRun r = maps(false, false);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "ffffffff81000000: 0000000001000000 2M  user=0 write=1 nx=0  A D G\n");
}

TEST_F(Commands, JsonLineHasTheFormatsFieldsInOrder) {
  tables.map(0xffffffff81000000, 0x1000000, M2, b::RW | b::A | b::D | b::G);
  tables.map(0x7fff00000000, 0x80000000, G1, b::US | b::XD);
  write_image();
  write_long4_regs();
  const CommandRun r = maps(true, false);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out,
            R"({"gva": "0x7fff00000000", "gpa": "0x80000000", "page_size": "1G", "user": true, "write": false, )"
            R"("nx": true, "accessed": false, "dirty": false, "global": false, "pwt": false, "pcd": false, "pat": false})"
            "\n"
            R"({"gva": "0xffffffff81000000", "gpa": "0x1000000", "page_size": "2M", "user": false, "write": true, )"
            R"("nx": false, "accessed": true, "dirty": true, "global": true, "pwt": false, "pcd": false, "pat": false})"
            "\n");
}

TEST_F(Commands, MergeJoinsContiguousLeavesWithEqualPermissions) {
  // Three contiguous RW pages on scattered frames, then a 2M page right after them: one range.
  tables.map(0x1ff000, 0x90000, K4, b::RW);
  tables.map(0x200000, 0x800000, M2, b::RW);
  tables.map(0x1fd000, 0x30000, K4, b::RW);
  tables.map(0x1fe000, 0x50000, K4, b::RW);
  write_image();
  write_long4_regs();
  const CommandRun r = maps(true, true);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, R"({"gva": "0x1fd000", "size": "0x203000", "user": false, "write": true, "nx": false})"
                   "\n");
}

TEST_F(Commands, MergeSplitsAtGapsAndAtAnyPermissionChange) {
  tables.map(0x1000, 0x5000, K4, b::RW);
  tables.map(0x2000, 0x6000, K4, b::RW | b::XD);  // nx differs
  tables.map(0x3000, 0x7000, K4, b::RW | b::XD);
  tables.map(0x4000, 0x8000, K4, 0);              // write differs
  tables.map(0x5000, 0x9000, K4, b::US);          // user differs
  tables.map(0x7000, 0xa000, K4, b::US);          // a gap before it
  write_image();
  write_long4_regs();
  const CommandRun r = maps(false, true);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out,
            "0000000000001000-0000000000002000 0000000000001000 user=0 write=1 nx=0\n"
            "0000000000002000-0000000000004000 0000000000002000 user=0 write=1 nx=1\n"
            "0000000000004000-0000000000005000 0000000000001000 user=0 write=0 nx=0\n"
            "0000000000005000-0000000000006000 0000000000001000 user=1 write=0 nx=0\n"
            "0000000000007000-0000000000008000 0000000000001000 user=1 write=0 nx=0\n");
}

TEST_F(Commands, ReservedPathsAreCountedOnStandardError) {
  tables.map(0x1000, 0x5000, K4, b::RW);
  tables.map(0x2000, 0x6000, K4, b::XD);  // XD without EFER.NXE: reserved
  write_image();
  write_long4_regs(0x1000, /*efer=*/0x500);
  const CommandRun r = maps(false, false);
  ASSERT_EQ(r.status, 0);
  EXPECT_EQ(lines(r.out), 1u);
  EXPECT_NE(r.err.find("1 paths through an entry with a reserved bit set"), std::string::npos) << r.err;
}

TEST_F(Commands, TranslatePrintsWalkResultsAndNeverWritesTheImage) {
  tables.map(0x400000, 0x7000, K4, b::RW | b::US);  // A and D clear: a walk would set them
  write_image();
  write_long4_regs();
  const auto before = testing::read_file(memory);
  const auto mtime = testing::mtime_ns(memory);
  const CommandRun r = translate({"0x400123", "0x800000", "0x8000000000000000"}, "write", 3);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out,
            R"({"format":"vmmu-walk-result/1","results":[)"
            R"({"gva":"0x400123","ok":true,"gpa":"0x7123","page_size":"4K"},)"
            R"({"gva":"0x800000","ok":false,"fault":"page_fault","error_code":"0x6"},)"
            R"({"gva":"0x8000000000000000","ok":false,"fault":"general_protection"}]})"
            "\n");
  EXPECT_EQ(testing::read_file(memory), before);
  EXPECT_EQ(testing::mtime_ns(memory), mtime);
}

TEST_F(Commands, TranslateAppliesPermissionRules) {
  tables.map(0x400000, 0x7000, K4, 0);  // supervisor, read-only
  write_image();
  write_long4_regs();
  const CommandRun r = translate({"0x400000"}, "write", 3);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find(R"("error_code":"0x7")"), std::string::npos) << r.out;  // P | W | U
}

// ---- errors: one line, non-zero status ----

TEST_F(Commands, MissingMemoryFileIsOneLineError) {
  write_long4_regs();
  const CommandRun r = maps(false, false);
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "vmmu maps: " + memory + ": cannot open the memory image: No such file or directory\n");
}

TEST_F(Commands, ElfThatIsNotA64BitCoreIsOneLineError) {
  testing::write_elf_core(memory, pages, {{Gpa(0), 0x1000}});
  const unsigned char c = ELFCLASS32;
  const int fd = ::open(memory.c_str(), O_WRONLY);
  ASSERT_EQ(::pwrite(fd, &c, 1, EI_CLASS), 1);
  ::close(fd);
  write_long4_regs();
  const CommandRun r = maps(false, false);
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(lines(r.err), 1u);
  EXPECT_NE(r.err.find("not a 64-bit ELF core"), std::string::npos) << r.err;
}

TEST_F(Commands, TruncatedElfIsOneLineError) {
  testing::write_elf_core(memory, pages, {{Gpa(0), 0x10000}});
  ASSERT_EQ(::truncate(memory.c_str(), 0x3000), 0);
  write_long4_regs();
  const CommandRun r = maps(true, false);
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(lines(r.err), 1u);
  EXPECT_NE(r.err.find("truncated ELF core"), std::string::npos) << r.err;
}

TEST_F(Commands, RegsWithoutCr3IsOneLineError) {
  write_image();
  write_regs(R"({"regs": {"cr0": "0x80000001", "cr4": "0x20", "efer": "0x500"}})");
  const CommandRun r = maps(false, false);
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(lines(r.err), 1u);
  EXPECT_NE(r.err.find("regs.cr3"), std::string::npos) << r.err;
}

TEST_F(Commands, RegsFileWithoutRegsObjectIsOneLineError) {
  write_image();
  write_regs(R"({"cr3": "0x1000"})");
  const CommandRun r = translate({"0x1000"});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("no 'regs' object"), std::string::npos) << r.err;
}

TEST_F(Commands, RegsThatAreNotJsonIsOneLineError) {
  write_image();
  write_regs("cr3=0x1000");
  const CommandRun r = maps(false, false);
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(lines(r.err), 1u);
}

TEST_F(Commands, GvaThatIsNotANumberIsOneLineError) {
  write_image();
  write_long4_regs();
  const CommandRun r = translate({"0x1000", "0xfoo"});
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "vmmu translate: GVA '0xfoo' is not a number (hex 0x... or decimal)\n");
}

TEST_F(Commands, GvaWiderThanTheModeIsOneLineError) {
  write_image();
  write_regs(R"({"regs": {"cr0": "0x80000001", "cr3": "0x1000", "cr4": "0x0"}})");
  const CommandRun r = translate({"0x100000000"});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("wider than 32 bits"), std::string::npos) << r.err;
}

TEST_F(Commands, WalkCaseFileServesAsRegsFile) {
  tables.map(0x400000, 0x7000, K4, b::RW);
  write_image();
  write_regs(R"({"format": "vmmu-walk-case/1", "arch": "x86", "maxphyaddr": 40,
                 "regs": {"cr0": "0x80010033", "cr3": "0x1000", "cr4": "0x20", "efer": "0xd00", "rflags": "0x2"},
                 "memory": [], "accesses": [{"gva": "0x400000", "op": "read", "cpl": 0}]})");
  const CommandRun r = maps(false, false);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "0000000000400000: 0000000000007000 4K  user=0 write=1 nx=0\n");
}

TEST_F(Commands, PagingOffListsNothingAndSaysWhy) {
  write_image();
  write_regs(R"({"regs": {"cr0": "0x11", "cr3": "0x1000"}})");
  const CommandRun r = maps(false, false);
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("paging is off"), std::string::npos);
}

}  // namespace
}  // namespace vmmu::image

#endif  // VMMU_CLI_PATH
