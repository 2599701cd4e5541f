// A real guest: boot Linux under QEMU (TCG), dump its memory, and check that `vmmu maps` over
// the dump lists exactly what QEMU's own monitor says the page tables hold.
//
// QEMU's `info tlb` (target/i386/monitor.c, print_pte) prints one line per present leaf in
// ascending canonical gva order:
//     GVA: GPA XGPDACTUW
// GPA is the entry masked to its frame (no offset); the letters are the LEAF's own bits
// (X = XD, G, P = PS (never for a 4K PTE), D, A, C = PCD, T = PWT, U = U/S, W = R/W). It does
// not check reserved bits and does not print the page size. `info mem` prints ranges of equal
// effective U/S and R/W (AND over the path, nx not considered):
//     START-END SIZE urw      (u or -, always r, w or -)
// with canonical addresses; a range running to the very top of the address space ends at
// 1 << 48 (QEMU canonicalises the end address as it does gvas).

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <regex>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "image/support/image_builder.hpp"
#include "image/support/qemu_guest.hpp"
#include "vmmu/image/guest_mappings.hpp"

#ifdef VMMU_CLI_PATH

namespace vmmu::image {
namespace {

using testing::TempDir;

std::uint64_t hex_of(const std::string& s) { return std::stoull(s, nullptr, 16); }

std::uint64_t register_value(const std::string& registers, const std::string& name) {
  const std::regex re("(^|\\s)" + name + "=([0-9a-f]+)");
  std::smatch m;
  if (!std::regex_search(registers, m, re)) throw std::runtime_error(name + " not in info registers");
  return hex_of(m[2]);
}

struct TlbLine {
  std::uint64_t gva, gpa;
  bool xd, global, large, dirty, accessed, pcd, pwt, user, write;
};

std::vector<TlbLine> parse_tlb(const std::string& text) {
  static const std::regex re("^([0-9a-f]{16}): ([0-9a-f]{16}) ([X-])([G-])([P-])([D-])([A-])([C-])([T-])([U-])([W-])$");
  std::vector<TlbLine> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    std::smatch m;
    if (!std::regex_match(line, m, re)) throw std::runtime_error("unexpected info tlb line: " + line);
    out.push_back({hex_of(m[1]), hex_of(m[2]), m[3] == "X", m[4] == "G", m[5] == "P", m[6] == "D", m[7] == "A",
                   m[8] == "C", m[9] == "T", m[10] == "U", m[11] == "W"});
  }
  return out;
}

struct MemRange {
  std::uint64_t begin, end;  // end 0: the top of the address space
  bool user, write;
  friend bool operator==(const MemRange&, const MemRange&) = default;
};

std::ostream& operator<<(std::ostream& os, const MemRange& r) {
  return os << std::hex << r.begin << "-" << r.end << (r.user ? " u" : " -") << (r.write ? "w" : "-");
}

std::vector<MemRange> parse_mem(const std::string& text) {
  static const std::regex re("^([0-9a-f]{16})-([0-9a-f]{16}) ([0-9a-f]{16}) ([u-])r([w-])$");
  std::vector<MemRange> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    std::smatch m;
    if (!std::regex_match(line, m, re)) throw std::runtime_error("unexpected info mem line: " + line);
    std::uint64_t end = hex_of(m[2]);
    if (end == std::uint64_t{1} << 48) end = 0;  // QEMU's canonical form of the top
    out.push_back({hex_of(m[1]), end, m[4] == "u", m[5] == "w"});
  }
  return out;
}

// Runs the vmmu executable; stdout is returned, stderr kept in `err`, the exit status in `status`.
std::string run_cli(const std::string& args, const std::string& dir, int& status, std::string& err) {
  const std::string err_path = dir + "/cli.err";
  const std::string cmd = std::string(VMMU_CLI_PATH) + " " + args + " 2>" + err_path;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) throw std::runtime_error("popen failed");
  std::string out;
  char buf[65536];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  const int rc = ::pclose(p);
  status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  std::ifstream e(err_path);
  std::stringstream ss;
  ss << e.rdbuf();
  err = ss.str();
  return out;
}

std::vector<nlohmann::json> json_lines(const std::string& text) {
  std::vector<nlohmann::json> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
  return out;
}

std::uint64_t hex_field(const nlohmann::json& j, const char* key) { return hex_of(j.at(key).get<std::string>()); }

TEST(RealGuest, MapsOfAQemuDumpMatchInfoTlbAndInfoMem) {
  std::string why;
  const auto setup = testing::find_qemu_guest(why);
  if (!setup) GTEST_SKIP() << "real-guest test skipped: " << why;

  TempDir dir;
  // TCG boots this kernel to its "no root file system" panic in about 10 s on an idle machine;
  // any later point in long mode serves as well, so a slow machine just stops it earlier.
  const auto guest = testing::run_qemu_guest(*setup, dir.path(), "end Kernel panic", std::chrono::seconds(40));
  std::cout << "guest stopped after " << guest.boot_seconds << " s (kernel " << setup->kernel << ")\n";

  const std::uint64_t cr0 = register_value(guest.registers, "CR0");
  const std::uint64_t efer = register_value(guest.registers, "EFER");
  ASSERT_TRUE((cr0 >> 31) & 1) << "guest stopped before enabling paging:\n" << guest.console;
  ASSERT_TRUE((efer >> 10) & 1) << "guest not in long mode yet:\n" << guest.console;
  // QEMU's TCG CPUs have a 40-bit physical address width (phys-bits).
  const std::string regs = dir.file("regs.json");
  std::ofstream(regs) << nlohmann::json{{"maxphyaddr", 40},
                                        {"regs",
                                         {{"cr0", register_value(guest.registers, "CR0")},
                                          {"cr3", register_value(guest.registers, "CR3")},
                                          {"cr4", register_value(guest.registers, "CR4")},
                                          {"efer", efer}}}}
                                .dump();

  // ---- every leaf: vmmu maps --json against info tlb, line for line ----
  int status = 0;
  std::string err;
  const auto maps = json_lines(run_cli("maps --json --memory " + guest.dump_path + " --regs " + regs, dir.path(), status, err));
  ASSERT_EQ(status, 0) << err;
  EXPECT_NE(err.find("0 paths through an entry with a reserved bit"), std::string::npos) << err;
  const auto tlb = parse_tlb(guest.tlb);
  ASSERT_GT(tlb.size(), 1000u) << "the guest maps suspiciously little:\n" << guest.tlb.substr(0, 2000);
  ASSERT_EQ(maps.size(), tlb.size());
  std::size_t large = 0;
  for (std::size_t i = 0; i < tlb.size(); ++i) {
    const auto& q = tlb[i];
    const auto& v = maps[i];
    SCOPED_TRACE(::testing::Message() << "line " << i << ": " << v.dump());
    ASSERT_EQ(hex_field(v, "gva"), q.gva);
    ASSERT_EQ(hex_field(v, "gpa"), q.gpa);
    const std::string size = v.at("page_size");
    // info tlb shows no size, only PS: a large leaf is 2M or 1G, and its gva is aligned to it.
    ASSERT_EQ(size != "4K", q.large);
    if (q.large) ++large;
    ASSERT_TRUE(size == "4K" || size == "2M" || size == "1G");
    ASSERT_EQ(v.at("accessed").get<bool>(), q.accessed);
    ASSERT_EQ(v.at("dirty").get<bool>(), q.dirty);
    ASSERT_EQ(v.at("global").get<bool>(), q.global);
    ASSERT_EQ(v.at("pcd").get<bool>(), q.pcd);
    ASSERT_EQ(v.at("pwt").get<bool>(), q.pwt);
    // Effective rights are bounded by the leaf's own (the path's AND / OR): exact values are
    // checked against info mem below.
    ASSERT_TRUE(!v.at("user").get<bool>() || q.user);
    ASSERT_TRUE(!v.at("write").get<bool>() || q.write);
    ASSERT_TRUE(!q.xd || v.at("nx").get<bool>());
  }
  std::cout << tlb.size() << " leaves (" << large << " large) agree with info tlb\n";

  // ---- merged ranges: vmmu maps --merge --json against info mem ----
  const auto merged =
      json_lines(run_cli("maps --merge --json --memory " + guest.dump_path + " --regs " + regs, dir.path(), status, err));
  ASSERT_EQ(status, 0) << err;
  // Our ranges split where nx differs; info mem does not look at nx: join those to compare.
  std::vector<MemRange> ours;
  for (const auto& r : merged) {
    const std::uint64_t begin = hex_field(r, "gva");
    const std::uint64_t end = begin + hex_field(r, "size");
    const bool u = r.at("user"), w = r.at("write");
    if (!ours.empty() && ours.back().end == begin && ours.back().user == u && ours.back().write == w) {
      ours.back().end = end;
    } else {
      ours.push_back({begin, end, u, w});
    }
  }
  for (auto& r : ours) r.end = r.end == 0 ? 0 : canonical_gva(r.end & ((std::uint64_t{1} << 48) - 1), 48).raw();
  const auto mem = parse_mem(guest.mem);
  ASSERT_GT(mem.size(), 10u);
  EXPECT_EQ(ours, mem);
  // ---- vmmu translate through the dump agrees with the listing (every 500th leaf) ----
  std::string gvas;
  std::vector<std::size_t> picked;
  for (std::size_t i = 0; i < maps.size(); i += 500) {
    picked.push_back(i);
    gvas += fmt::format(" {:#x}", hex_field(maps[i], "gva") + 0x123);
  }
  const auto walked = nlohmann::json::parse(
      run_cli("translate --memory " + guest.dump_path + " --regs " + regs + gvas, dir.path(), status, err));
  ASSERT_EQ(status, 0) << err;
  ASSERT_EQ(walked.at("results").size(), picked.size());
  for (std::size_t k = 0; k < picked.size(); ++k) {
    const auto& r = walked.at("results")[k];
    const auto& m = maps[picked[k]];
    ASSERT_TRUE(r.at("ok").get<bool>()) << r.dump();
    EXPECT_EQ(hex_field(r, "gpa"), hex_field(m, "gpa") + 0x123) << r.dump() << " vs " << m.dump();
    EXPECT_EQ(r.at("page_size"), m.at("page_size")) << r.dump();
  }

  std::cout << merged.size() << " merged ranges (" << mem.size() << " without nx) agree with info mem\n";
}

}  // namespace
}  // namespace vmmu::image

#endif  // VMMU_CLI_PATH
