// The MMU as the VM's choice (issue 12 item 1): the same guest, under the TDP MMU and under the
// shadow MMU, behind the one interface -- every access gives the same data, translation and
// exit (with the exact #PF error code) through CR0.WP / CR4.SMEP / CR3 changes; and under
// shadow a CR0.WP or SMEP flip switches roots without zapping any shadow page.

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "vm/support/guest_vm.hpp"
#include "vmmu/shadow/shadow_mmu.hpp"

namespace vmmu::vm::test {
namespace {

namespace cr0 = x86::cr0;
namespace cr4 = x86::cr4;

constexpr Gva kKernel(0x4000'0000);  // supervisor, writable
constexpr Gva kRom(0x4010'0000);     // supervisor, read-only
constexpr Gva kUser(0x4020'0000);    // user, writable, NX
constexpr Gva kHole(0x4030'0000);    // unmapped

GuestVmOptions options(mmu::MmuKind kind) {
  GuestVmOptions o;
  o.memory = 16 * MiB;
  o.config.mmu = kind;
  return o;
}

void map_guest(GuestVm& g) {
  g.map(kKernel, Gpa(0x10'0000), 4 * kPageSize);
  g.map(kRom, Gpa(0x20'0000), 4 * kPageSize, kPageSize, GuestPageFlags{.writable = false});
  g.map(kUser, Gpa(0x30'0000), 4 * kPageSize, kPageSize, GuestPageFlags{.user = true, .nx = true});
}

// What one access gave, printed: data read, gpa, or the exit.
std::string outcome(Vcpu& v, Gva gva, AccessKind kind, bool user, unsigned salt) {
  std::vector<std::byte> buf(8);
  for (std::size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<std::byte>(salt + i);
  Status<GuestExit> s = kind == AccessKind::Write   ? v.write(gva, buf, user)
                        : kind == AccessKind::Fetch ? v.fetch(gva, buf, user)
                                                    : v.read(gva, buf, user);
  if (!s) return to_string(s.error());
  std::uint64_t word = 0;
  std::memcpy(&word, buf.data(), 8);
  const Result<GvaTranslation, GuestExit> t = v.translate(gva, Access::read(user));
  return "ok " + std::to_string(word) + " gpa " + (t ? std::to_string(t->gpa.raw()) : to_string(t.error()));
}

// A guest's life: accesses of every kind at every privilege over each mapping, then again
// after CR0.WP = 0 (a supervisor write to read-only memory goes through), SMEP on (a
// supervisor fetch from user memory faults), a CR3 reload, and back.
std::vector<std::string> life(mmu::MmuKind kind) {
  GuestVm g(options(kind));
  map_guest(g);
  Vcpu& v = g.add_vcpu();
  std::vector<std::string> out;
  unsigned salt = 1;
  auto round = [&](const char* what) {
    for (Gva base : {kKernel, kRom, kUser, kHole}) {
      for (AccessKind k : {AccessKind::Read, AccessKind::Write, AccessKind::Fetch}) {
        for (bool user : {false, true}) out.push_back(std::string(what) + ": " + outcome(v, base + 0x18, k, user, ++salt));
      }
    }
  };
  const x86::Registers start = v.registers();
  round("start");
  v.set_cr0(start.cr0 & ~cr0::WP::mask);
  round("wp=0");
  v.set_cr4(start.cr4 | cr4::SMEP::mask);
  round("wp=0 smep");
  v.set_cr3(start.cr3);
  v.set_cr0(start.cr0);
  round("wp=1 smep");
  v.set_cr4(start.cr4);
  round("back");
  return out;
}

TEST(MmuChoice, ShadowGivesTheTdpVmsDataTranslationsAndExitsThroughRegisterChanges) {
  const std::vector<std::string> tdp = life(mmu::MmuKind::Tdp);
  const std::vector<std::string> shadow = life(mmu::MmuKind::Shadow);
  ASSERT_EQ(tdp.size(), shadow.size());
  unsigned faults = 0, ok = 0;
  for (std::size_t i = 0; i < tdp.size(); ++i) {
    EXPECT_EQ(shadow[i], tdp[i]) << "access " << i;
    faults += tdp[i].find("page fault") != std::string::npos ? 1u : 0u;
    ok += tdp[i].find(": ok ") != std::string::npos ? 1u : 0u;
  }
  EXPECT_GE(faults, 20u);  // the sequence exercises refusals...
  EXPECT_GE(ok, 20u);      // ...and accesses that go through
}

TEST(MmuChoice, ShadowCr0WpAndSmepFlipsSwitchRootsAndZapNothing) {
  GuestVm g(options(mmu::MmuKind::Shadow));
  ASSERT_NE(g.vm().mmu().shadow(), nullptr);
  EXPECT_EQ(g.vm().tdp_mmu(), nullptr);
  map_guest(g);
  Vcpu& v = g.add_vcpu();
  std::vector<std::byte> buf(8);
  ASSERT_TRUE(v.read(kKernel, buf));
  const x86::Registers start = v.registers();
  // Both roles built once (WP=1, then WP=0 and SMEP)...
  v.set_cr0(start.cr0 & ~cr0::WP::mask);
  ASSERT_TRUE(v.read(kKernel, buf));
  v.set_cr4(start.cr4 | cr4::SMEP::mask);
  ASSERT_TRUE(v.read(kKernel, buf));
  v.set_cr0(start.cr0);
  v.set_cr4(start.cr4);
  ASSERT_TRUE(v.read(kKernel, buf));
  const shadow::ShadowStats s0 = g.vm().mmu().shadow()->stats();
  const VcpuStats v0 = v.stats();
  // ...then flipping back and forth builds nothing, zaps nothing, faults nothing.
  for (int i = 0; i < 10; ++i) {
    v.set_cr0(start.cr0 & ~cr0::WP::mask);
    ASSERT_TRUE(v.read(kKernel, buf));
    v.set_cr4(start.cr4 | cr4::SMEP::mask);
    ASSERT_TRUE(v.read(kKernel, buf));
    v.set_cr0(start.cr0);
    v.set_cr4(start.cr4);
    ASSERT_TRUE(v.read(kKernel, buf));
  }
  const shadow::ShadowStats s1 = g.vm().mmu().shadow()->stats();
  EXPECT_EQ(s1.zapped_pages, s0.zapped_pages);
  EXPECT_EQ(s1.roots_built, s0.roots_built);
  EXPECT_EQ(s1.faults, s0.faults);
  EXPECT_EQ(v.stats().root_switches - v0.root_switches, 40u);  // every role change switched
  EXPECT_EQ(v.stats().root_unloads, 0u);
  if (auto bad = g.vm().mmu().check_invariants()) ADD_FAILURE() << *bad;
}

}  // namespace
}  // namespace vmmu::vm::test
