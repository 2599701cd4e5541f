// Vcpu::read / write / fetch through guest page tables the test builds in guest memory:
// data lands in the memslot's host memory, huge pages, exact #PF error codes, #GP, MMIO
// exits, paging off, physical access, and the A/D bits the walk writes.

#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <vector>

#include "vm/support/guest_vm.hpp"
#include "vmmu/x86/walk.hpp"

namespace vmmu::vm::test {
namespace {

namespace gpte = x86::gpte;
namespace pferr = x86::pferr;


class VcpuAccess : public ::testing::Test {
 protected:
  VcpuAccess() { g.map(kData, kDataGpa, 64 * KiB); }

  // The #PF error code of an access that must fault, or ~0u.
  std::uint32_t fault(Gva gva, AccessKind kind, bool user = false) {
    std::array<std::byte, 8> buf{};
    Status<GuestExit> s = kind == AccessKind::Write ? v.write(gva, buf, user)
                          : kind == AccessKind::Read ? v.read(gva, buf, user)
                                                     : v.fetch(gva, buf, user);
    if (s || s.error().kind != GuestExitKind::PageFault) {
      ADD_FAILURE() << "no page fault at " << std::hex << gva.raw();
      return ~0u;
    }
    EXPECT_EQ(s.error().gva, gva);
    return s.error().error_code;
  }

  GuestVm g;
  Vcpu& v = g.add_vcpu();
};

TEST_F(VcpuAccess, WriteLandsInHostMemoryAndReadsBack) {
  const std::vector<std::byte> data = pattern(3 * kPageSize + 100, 1);
  const Gva at = kData + 0x7f0;  // unaligned, crossing four pages
  ASSERT_TRUE(v.write(at, data));
  EXPECT_EQ(std::memcmp(g.host(kDataGpa + 0x7f0), data.data(), data.size()), 0);
  std::vector<std::byte> back(data.size());
  ASSERT_TRUE(v.read(at, back));
  EXPECT_EQ(back, data);
  // The same memory seen through a second mapping of it.
  g.map(Gva(0x7000'0000), kDataGpa, 16 * KiB);
  std::vector<std::byte> alias(data.size());
  ASSERT_TRUE(v.read(Gva(0x7000'07f0), alias));
  EXPECT_EQ(alias, data);
}

TEST_F(VcpuAccess, HugeGuestPagesTranslate) {
  g.map(Gva(0x8000'0000), Gpa(0x20'0000), 2 * MiB, 2 * MiB);
  g.map(Gva(0x40'0000'0000), Gpa(0), GiB, GiB);
  const std::vector<std::byte> data = pattern(64, 2);
  ASSERT_TRUE(v.write(Gva(0x8000'0000 + 0x12'3456), data));
  EXPECT_EQ(std::memcmp(g.host(Gpa(0x20'0000 + 0x12'3456)), data.data(), data.size()), 0);
  auto t = v.translate(Gva(0x40'0000'0000 + 0x33'3333), Access::read());
  ASSERT_TRUE(t);
  EXPECT_EQ(t->gpa, Gpa(0x33'3333));
  EXPECT_EQ(t->page_size, GiB);
  std::vector<std::byte> back(64);
  ASSERT_TRUE(v.read(Gva(0x40'0000'0000 + 0x20'0000 + 0x12'3456), back));
  EXPECT_EQ(back, data);
  // Past the memslot: the 1G page maps gpa 100 MiB, which no slot backs.
  std::array<std::byte, 8> buf{};
  Status<GuestExit> s = v.read(Gva(0x40'0000'0000 + 100 * MiB), buf);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().kind, GuestExitKind::Mmio);
  EXPECT_EQ(s.error().gpa, Gpa(100 * MiB));
}

TEST_F(VcpuAccess, PageFaultsCarryTheWalkersExactErrorCode) {
  const Gva ro(0x5000'0000), user(0x5000'1000), nx(0x5000'2000), rsvd(0x80'0000'0000), keyed(0x5000'3000);
  g.map(ro, Gpa(0x30'0000), kPageSize, kPageSize, {.writable = false});
  g.map(user, Gpa(0x30'1000), kPageSize, kPageSize, {.user = true});
  g.map(nx, Gpa(0x30'2000), kPageSize, kPageSize, {.nx = true});
  g.map(rsvd, Gpa(0x30'3000), kPageSize);
  g.map(keyed, Gpa(0x30'4000), kPageSize, kPageSize, {.user = true, .key = 1});
  g.set_entry(rsvd, 4, g.entry(rsvd, 4) | gpte::PS::mask);  // PS is reserved in a PML4E

  EXPECT_EQ(fault(Gva(0x6000'0000), AccessKind::Read), 0u);  // not present
  EXPECT_EQ(fault(Gva(0x6000'0000), AccessKind::Write, true), pferr::kWrite | pferr::kUser);
  EXPECT_EQ(fault(kData, AccessKind::Read, true), pferr::kPresent | pferr::kUser);  // supervisor page
  EXPECT_EQ(fault(ro, AccessKind::Write), pferr::kPresent | pferr::kWrite);         // CR0.WP = 1
  EXPECT_EQ(fault(nx, AccessKind::Fetch), pferr::kPresent | pferr::kFetch);
  EXPECT_EQ(fault(rsvd, AccessKind::Read), pferr::kPresent | pferr::kReserved);
  ASSERT_TRUE(v.set_cr4(v.registers().cr4 | x86::cr4::PKE::mask).has(Effect::RoleRefresh));
  v.set_pkru(0b0100);  // key 1: access disabled
  EXPECT_EQ(fault(keyed, AccessKind::Read, true), pferr::kPresent | pferr::kUser | pferr::kProtectionKey);
  EXPECT_EQ(v.stats().page_faults, 7u);
}

TEST_F(VcpuAccess, AnAccessStopsAtTheFirstPageThatFaults) {
  const std::vector<std::byte> data = pattern(2 * kPageSize, 3);
  const Gva last = kData + 64 * KiB - kPageSize;  // the last mapped page; the next is not mapped
  Status<GuestExit> s = v.write(last + 0x800, data);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().kind, GuestExitKind::PageFault);
  EXPECT_EQ(s.error().gva, last + kPageSize);  // CR2: the first byte of the unmapped page
  EXPECT_EQ(s.error().error_code, pferr::kWrite);
  // The mapped part was written.
  EXPECT_EQ(std::memcmp(g.host(kDataGpa + (64 * KiB - kPageSize) + 0x800), data.data(), 0x800), 0);
}

TEST_F(VcpuAccess, NonCanonicalAddressIsAGeneralProtectionFault) {
  std::array<std::byte, 8> buf{};
  Status<GuestExit> s = v.read(Gva(0x0000'8000'0000'0000), buf);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().kind, GuestExitKind::GeneralProtection);
}

TEST_F(VcpuAccess, AGuestTableOutsideEveryMemslotIsAnMmioExit) {
  const Gva gva(0x9000'0000);
  g.map(gva, Gpa(0x30'0000), kPageSize);
  // Point the PDE at a page table at 256 MiB, beyond the 64 MiB slot.
  g.set_entry(gva, 2, 0x1000'0000 | gpte::P::mask | gpte::RW::mask | gpte::US::mask);
  std::array<std::byte, 8> buf{};
  Status<GuestExit> s = v.read(gva, buf);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().kind, GuestExitKind::Mmio);
  EXPECT_EQ(s.error().gpa.align_down(kPageSize), Gpa(0x1000'0000));
}

TEST_F(VcpuAccess, WalkSetsAccessedThenDirty) {
  const Gva gva = kData + 5 * kPageSize;
  ASSERT_EQ(g.entry(gva, 1) & (gpte::A::mask | gpte::D::mask), 0u);
  std::array<std::byte, 8> buf{};
  ASSERT_TRUE(v.read(gva, buf));
  for (unsigned level = 1; level <= 4; ++level) EXPECT_NE(g.entry(gva, level) & gpte::A::mask, 0u) << level;
  EXPECT_EQ(g.entry(gva, 1) & gpte::D::mask, 0u);
  // The TLB now holds the page without D: a write must walk again and set it.
  const std::uint64_t walks = v.stats().walks;
  ASSERT_TRUE(v.write(gva, buf));
  EXPECT_EQ(v.stats().walks, walks + 1);
  EXPECT_NE(g.entry(gva, 1) & gpte::D::mask, 0u);
  ASSERT_TRUE(v.write(gva, buf));  // now a hit
  EXPECT_EQ(v.stats().walks, walks + 1);
}

TEST_F(VcpuAccess, PagingOffAccessesGuestPhysicalMemory) {
  x86::Registers off;
  off.cr0 = x86::cr0::PE::mask;
  EXPECT_TRUE(v.set_registers(off).has(Effect::RoleRefresh));
  const std::vector<std::byte> data = pattern(100, 4);
  ASSERT_TRUE(v.write(Gva(0x20'0ff0), data));
  EXPECT_EQ(std::memcmp(g.host(Gpa(0x20'0ff0)), data.data(), data.size()), 0);
  EXPECT_EQ(v.stats().walks, 0u);
}

TEST_F(VcpuAccess, PhysicalAccessGoesThroughTheVcpusRoot) {
  const std::vector<std::byte> data = pattern(kPageSize + 8, 5);
  ASSERT_TRUE(v.write_gpa(Gpa(0x28'0ffc), data));
  std::vector<std::byte> back(data.size());
  ASSERT_TRUE(v.read_gpa(Gpa(0x28'0ffc), back));
  EXPECT_EQ(back, data);
  EXPECT_EQ(std::memcmp(g.host(Gpa(0x28'0ffc)), data.data(), data.size()), 0);
  Status<GuestExit> s = v.read_gpa(Gpa(64 * MiB - 4), back);  // runs off the slot's end
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().kind, GuestExitKind::Mmio);
  EXPECT_EQ(s.error().gpa, Gpa(64 * MiB));
}

TEST(VcpuAccess5Level, FiveLevelGuestOnFiveLevelTdp) {
  GuestVmOptions o;
  o.guest_levels = 5;
  o.config.tdp.format.levels = 5;
  GuestVm g(o);
  Vcpu& v = g.add_vcpu();
  ASSERT_EQ(v.paging().mode(), x86::PagingMode::Long5);
  const Gva high(0x00ff'8000'0000'0000);  // needs 57-bit linear addresses
  g.map(high, Gpa(0x40'0000), 8 * KiB);
  const std::vector<std::byte> data = pattern(kPageSize, 6);
  ASSERT_TRUE(v.write(high + 0x800, data));
  EXPECT_EQ(std::memcmp(g.host(Gpa(0x40'0800)), data.data(), data.size()), 0);
  EXPECT_EQ(g.tdp().format().geometry().levels(), 5u);
}

}  // namespace
}  // namespace vmmu::vm::test
