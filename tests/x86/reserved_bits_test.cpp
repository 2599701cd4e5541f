// Reserved bits at every level of every mode fault with P | RSVD, before any permission check
// (Intel SDM vol. 3A 4.3-4.5 entry tables, 4.7; AMD APM vol. 2 5.3-5.4).

#include <gtest/gtest.h>

#include <type_traits>

#include "x86/support/guest_fixture.hpp"
#include "x86/support/bits.hpp"

namespace vmmu::x86::test {
namespace {

constexpr std::uint32_t kRsvd = pferr::kPresent | pferr::kReserved;

class Reserved : public GuestTest {};

// ---- 32-bit paging ----

TEST_F(Reserved, Bits32PseOffIgnoresPsAndWalksThePageTable) {
  use(PagingMode::Bits32);
  regs.cr4 &= ~cr4::PSE::mask;
  map(0x00401000, 1, 0x7000 | kUserRw);
  set(0x00401000, 2, entry(0x00401000, 2) | kPS);
  auto r = walk(0x00401234, kRead);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->gpa, Gpa(0x7234));
  EXPECT_EQ(r->page_size, 4096u);
}

TEST_F(Reserved, Bits32PseMapsFourMiBPages) {
  use(PagingMode::Bits32);
  map(0x00c00000, 2, 0x01c00000 | kUserRw | kPS);
  auto r = walk(0x00c12345, kRead);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->gpa, Gpa(0x01c12345));
  EXPECT_EQ(r->page_size, 4 * MiB);
}

TEST_F(Reserved, Pse36HighAddressBitsGivePhysicalBits39To32) {
  use(PagingMode::Bits32);
  cpu.maxphyaddr = 40;
  map(0x00c00000, 2, 0x01c00000 | (0xabULL << 13) | kUserRw | kPS);
  EXPECT_EQ(gpa(0x00c00010, kRead), 0xab'01c0'0010u);
}

TEST_F(Reserved, Pse36HighAddressBitsAboveMaxphyaddrAreReserved) {
  use(PagingMode::Bits32);
  cpu.maxphyaddr = 36;  // PDE bits 16:13 are PA 35:32; bits 20:17 reserved
  map(0x00c00000, 2, 0x01c00000 | (0xfULL << 13) | kUserRw | kPS);
  EXPECT_TRUE(walk(0x00c00000, kRead).has_value());
  set(0x00c00000, 2, 0x01c00000 | bit(17) | kUserRw | kPS);
  EXPECT_EQ(error(0x00c00000, kRead), kRsvd);
}

TEST_F(Reserved, Pse36Bit21IsAlwaysReserved) {
  use(PagingMode::Bits32);
  cpu.maxphyaddr = 52;
  map(0x00c00000, 2, 0x01c00000 | bit(21) | kUserRw | kPS);
  EXPECT_EQ(error(0x00c00000, kWrite), kRsvd | pferr::kWrite);
}

TEST_F(Reserved, Bits32WithoutPse36AllOfBits21To13AreReserved) {
  use(PagingMode::Bits32);
  cpu.pse36 = false;
  map(0x00c00000, 2, 0x01c00000 | bit(13) | kUserRw | kPS);
  EXPECT_EQ(error(0x00c00000, kRead), kRsvd);
}

TEST_F(Reserved, Bits32FourKEntriesHaveNoReservedBits) {
  use(PagingMode::Bits32);
  map(0x1000, 1, 0xfffff000 | 0xfff);  // every flag bit set, address at the top of 4 GiB
  EXPECT_EQ(gpa(0x1000, kRead), 0xfffff000u);
}

// ---- PAE ----

TEST_F(Reserved, PaePdpteReservedBitsFaultWithRsvd) {
  for (unsigned b : {1u, 2u, 5u, 6u, 7u, 8u, 63u}) {
    SCOPED_TRACE(b);
    mem = SparseMemory<Gpa>();
    use(PagingMode::Pae);
    map(0x1000, 1, 0x5000 | kUserRw);
    set(0x1000, 3, entry(0x1000, 3) | bit(b));
    EXPECT_EQ(error(0x1000, kRead), kRsvd);
  }
}

TEST_F(Reserved, PaePdpteAddressAboveMaxphyaddrIsReserved) {
  use(PagingMode::Pae);
  cpu.maxphyaddr = 36;
  map(0x1000, 1, 0x5000 | kUserRw);
  set(0x1000, 3, entry(0x1000, 3) | bit(36));
  EXPECT_EQ(error(0x1000, kRead), kRsvd);
}

TEST_F(Reserved, PaeNotPresentPdpteFaultsWithoutRsvd) {
  use(PagingMode::Pae);
  set(0x1000, 3, bit(5) | bit(63));  // reserved bits in a not-present entry are ignored
  EXPECT_EQ(error(0x1000, kRead), 0u);
}

TEST_F(Reserved, PaeBits62ToMaxphyaddrAreReservedInPdeAndPte) {
  use(PagingMode::Pae);
  cpu.maxphyaddr = 52;
  map(0x1000, 1, 0x5000 | kUserRw | bit(60));  // ignored (PK) in 4-level, reserved in PAE
  EXPECT_EQ(error(0x1000, kRead), kRsvd);
  set(0x1000, 1, 0x5000 | kUserRw);
  set(0x1000, 2, entry(0x1000, 2) | bit(55));
  EXPECT_EQ(error(0x1000, kRead), kRsvd);
}

TEST_F(Reserved, PaeTwoMiBLeafBits20To13AreReserved) {
  use(PagingMode::Pae);
  map(0x200000, 2, 0x400000 | kUserRw | kPS | gpte::PatLarge::mask);
  EXPECT_EQ(gpa(0x200123, kRead), 0x400123u);
  set(0x200000, 2, 0x400000 | kUserRw | kPS | bit(13));
  EXPECT_EQ(error(0x200123, kRead), kRsvd);
}

// ---- 4-level and 5-level ----

TEST_F(Reserved, BitsAtOrAboveMaxphyaddrAreReservedAtEveryLevel) {
  for (unsigned level = 1; level <= 4; ++level) {
    SCOPED_TRACE(level);
    mem = SparseMemory<Gpa>();
    use(PagingMode::Long4);
    cpu.maxphyaddr = 40;
    map(0x1000, 1, 0x5000 | kUserRw);
    set(0x1000, level, entry(0x1000, level) | bit(40));
    EXPECT_EQ(error(0x1000, kUserRead), kRsvd | pferr::kUser);
  }
}

TEST_F(Reserved, BitsAboveBit51AreNotReservedInLongMode) {
  use(PagingMode::Long4);
  map(0x1000, 1, 0x5000 | kUserRw | bit(52) | bit(58) | bit(62));
  EXPECT_EQ(gpa(0x1000, kRead), 0x5000u);
}

TEST_F(Reserved, XdIsReservedWithoutNxe) {
  use(PagingMode::Long4);
  regs.efer &= ~efer::NXE::mask;
  map(0x1000, 1, 0x5000 | kUserRw | kXD);
  EXPECT_EQ(error(0x1000, kRead), kRsvd);
}

TEST_F(Reserved, XdIsReservedWithoutNxeInPae) {
  use(PagingMode::Pae);
  regs.efer &= ~efer::NXE::mask;
  map(0x1000, 1, 0x5000 | kUserRw);
  set(0x1000, 2, entry(0x1000, 2) | kXD);
  EXPECT_EQ(error(0x1000, kRead), kRsvd);
}

TEST_F(Reserved, Pml4ePsBitIsReserved) {
  use(PagingMode::Long4);
  map(0x1000, 1, 0x5000 | kUserRw);
  set(0x1000, 4, entry(0x1000, 4) | kPS);
  EXPECT_EQ(error(0x1000, kRead), kRsvd);
}

TEST_F(Reserved, Pml5ePsBitIsReserved) {
  use(PagingMode::Long5);
  map(0x1000, 1, 0x5000 | kUserRw);
  set(0x1000, 5, entry(0x1000, 5) | kPS);
  EXPECT_EQ(error(0x1000, kRead), kRsvd);
  set(0x1000, 5, entry(0x1000, 5) & ~kPS);
  set(0x1000, 4, entry(0x1000, 4) | kPS);
  EXPECT_EQ(error(0x1000, kRead), kRsvd);
}

TEST_F(Reserved, OneGiBPageMapsWhenSupported) {
  use(PagingMode::Long4);
  map(0x40000000, 3, 0x80000000 | kUserRw | kPS | gpte::PatLarge::mask);
  auto r = walk(0x40123456, kRead);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->gpa, Gpa(0x80123456));
  EXPECT_EQ(r->page_size, GiB);
  EXPECT_EQ(r->level, 3u);
}

TEST_F(Reserved, OneGiBPageIsReservedWithoutTheCapability) {
  use(PagingMode::Long4);
  cpu.pages_1g = false;
  map(0x40000000, 3, 0x80000000 | kUserRw | kPS);
  EXPECT_EQ(error(0x40123456, kRead), kRsvd);
}

TEST_F(Reserved, OneGiBLeafBits29To13AreReserved) {
  for (unsigned b : {13u, 20u, 21u, 29u}) {
    SCOPED_TRACE(b);
    mem = SparseMemory<Gpa>();
    use(PagingMode::Long4);
    map(0x40000000, 3, 0x80000000 | kUserRw | kPS | bit(b));
    EXPECT_EQ(error(0x40000000, kRead), kRsvd);
  }
}

TEST_F(Reserved, TwoMiBLeafBits20To13AreReserved) {
  for (unsigned b : {13u, 16u, 20u}) {
    SCOPED_TRACE(b);
    mem = SparseMemory<Gpa>();
    use(PagingMode::Long4);
    map(0x200000, 2, 0x400000 | kUserRw | kPS | bit(b));
    EXPECT_EQ(error(0x200000, kRead), kRsvd);
  }
}

TEST_F(Reserved, TwoMiBLeafPatBitIsNotReserved) {
  use(PagingMode::Long4);
  map(0x200000, 2, 0x400000 | kUserRw | kPS | gpte::PatLarge::mask);
  auto r = walk(0x2abcde, kRead);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->gpa, Gpa(0x4abcde));
  EXPECT_EQ(r->page_size, 2 * MiB);
}

TEST_F(Reserved, PtePatBitSevenIsNotPs) {
  use(PagingMode::Long4);
  map(0x1000, 1, 0x5000 | kUserRw | kPS);
  EXPECT_EQ(gpa(0x1000, kRead), 0x5000u);
}

TEST_F(Reserved, ReservedBitIsCheckedBeforePermissions) {
  use(PagingMode::Long4);
  cpu.maxphyaddr = 40;
  map(0x1000, 1, 0x5000 | kP | bit(45));  // supervisor, read-only, and reserved
  EXPECT_EQ(error(0x1000, kUserWrite), kRsvd | pferr::kWrite | pferr::kUser);
}

TEST_F(Reserved, UpperLevelReservedBitWinsOverLowerNotPresent) {
  use(PagingMode::Long4);
  map(0x1000, 2, 0);
  set(0x1000, 3, entry(0x1000, 3) | bit(51));
  cpu.maxphyaddr = 48;
  auto r = walk(0x1000, kRead);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().error_code, kRsvd);
  EXPECT_EQ(r.error().level, 3u);
}

TEST_F(Reserved, FormatReportsTheSameReservedBitsAsTheWalk) {
  use(PagingMode::Long4);
  cpu.maxphyaddr = 40;
  const GuestPaging p = paging();
  bool called = false;
  p.with_format([&](const auto& format, Gpa root) {
    using F = std::decay_t<decltype(format)>;
    ASSERT_TRUE((std::is_same_v<F, Format4>));
    if constexpr (std::is_same_v<F, Format4>) {
      called = true;
      EXPECT_EQ(root, Gpa(0x1000));
      EXPECT_TRUE(format.reserved(bit(40) | kP, 1));
      EXPECT_TRUE(format.reserved(kPS | kP, 4));
      EXPECT_FALSE(format.reserved(kPS | kP, 3));
      EXPECT_TRUE(format.reserved(kPS | kP | bit(13), 2));
      EXPECT_FALSE(format.reserved(kPS | kP | bit(12), 2));
    }
  });
  EXPECT_TRUE(called);
}

}  // namespace
}  // namespace vmmu::x86::test
