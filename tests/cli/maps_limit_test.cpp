// `vmmu maps` on page tables that point back at themselves: a PML4 whose every entry is the
// PML4 itself maps 512^4 4K leaves. --limit stops the listing (--merge too), and output reaches
// the stream as the listing goes instead of once at the end.

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>

#include "cli_test_support.hpp"
#include "maps_commands.hpp"

namespace vmmu::cli::test {
namespace {

constexpr std::uint64_t kPml4 = 0x1000;

// A raw image whose PML4 at 0x1000 points every entry at itself (P|RW|US); entry 511 is
// read-only when `last_read_only`, so leaves with index 511 at any level are read-only.
MapsOptions self_referencing_tables(bool last_read_only) {
  std::array<std::uint64_t, 512> pml4{};
  pml4.fill(kPml4 | 0x7);
  if (last_read_only) pml4[511] = kPml4 | 0x5;
  const std::string memory = write_case("self.img", std::string(kPml4, '\0'));
  std::ofstream(memory, std::ios::binary | std::ios::app)
      .write(reinterpret_cast<const char*>(pml4.data()), static_cast<std::streamsize>(sizeof pml4));
  MapsOptions o;
  o.memory = memory;
  o.regs = write_case("regs.json", R"({"regs": {"cr0": "0x80000001", "cr3": "0x1000", "cr4": "0x20", "efer": "0x500"}})");
  return o;
}

// Counts the writes that reach it and the bytes they carry.
class CountingBuf : public std::stringbuf {
 public:
  std::size_t writes = 0;

 protected:
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    ++writes;
    return std::stringbuf::xsputn(s, n);
  }
};

TEST(MapsLimit, StopsASelfReferencingTableAfterNLeaves) {
  MapsOptions o = self_referencing_tables(false);
  o.limit = 1000;
  std::ostringstream out, err;
  ASSERT_EQ(run_maps(o, out, err), 0) << err.str();
  EXPECT_EQ(count_lines(out.str()), 1000u);
  EXPECT_NE(err.str().find("stopped after 1000 mappings (--limit 1000)"), std::string::npos) << err.str();
  EXPECT_NE(err.str().find("vmmu maps: 1000 mappings;"), std::string::npos) << err.str();
}

TEST(MapsLimit, StopsMergeWhoseOneRangeNeverEnds) {
  MapsOptions o = self_referencing_tables(false);
  o.merge = true;
  o.json = true;
  o.limit = 1000;
  std::ostringstream out, err;
  ASSERT_EQ(run_maps(o, out, err), 0) << err.str();
  EXPECT_EQ(out.str(), R"({"gva": "0x0", "size": "0x3e8000", "user": true, "write": true, "nx": false})"
                       "\n");
}

TEST(MapsLimit, NoMessageWhenTheTablesEndFirst) {
  MapsOptions o = self_referencing_tables(false);
  std::array<std::uint64_t, 512> pml4{};
  pml4[0] = 0x2000 | 0x87;  // PML4E with PS set is reserved: nothing listed, nothing to stop
  std::ofstream(o.memory, std::ios::binary | std::ios::trunc).write(std::string(kPml4, '\0').data(), static_cast<std::streamsize>(kPml4));
  std::ofstream(o.memory, std::ios::binary | std::ios::app).write(reinterpret_cast<const char*>(pml4.data()), static_cast<std::streamsize>(sizeof pml4));
  o.limit = 5;
  std::ostringstream out, err;
  ASSERT_EQ(run_maps(o, out, err), 0) << err.str();
  EXPECT_EQ(err.str().find("stopped"), std::string::npos) << err.str();
}

TEST(MapsLimit, OutputReachesTheStreamAsTheListingGoes) {
  // Ranges of 511 read-write leaves and one read-only: about 120 KB of merged output over 2^20
  // leaves. Handed on whenever it has waited flush_after (here: at every look at the clock), it
  // arrives in many writes, not in one at the end.
  MapsOptions o = self_referencing_tables(true);
  o.merge = true;
  o.json = true;
  o.limit = std::uint64_t{1} << 20;
  o.flush_after = std::chrono::milliseconds(0);
  CountingBuf buf;
  std::ostream out(&buf);
  std::ostringstream err;
  ASSERT_EQ(run_maps(o, out, err), 0) << err.str();
  EXPECT_LT(buf.str().size(), std::size_t{1} << 20);
  EXPECT_GE(count_lines(buf.str()), 2000u);
  EXPECT_GE(buf.writes, 100u) << buf.str().size() << " bytes";
}

}  // namespace
}  // namespace vmmu::cli::test
