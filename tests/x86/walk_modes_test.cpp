// Paging-mode selection and the translation shape of every mode (Intel SDM vol. 3A 4.1-4.5).

#include <gtest/gtest.h>

#include "x86/support/guest_fixture.hpp"

namespace vmmu::x86::test {
namespace {

TEST(PagingMode, FollowsPgPaeLmeAndLa57) {
  Registers r;
  EXPECT_EQ(paging_mode(r), PagingMode::Off);
  r.cr0 = cr0::PG::mask;
  EXPECT_EQ(paging_mode(r), PagingMode::Bits32);
  r.cr4 = cr4::PAE::mask;
  EXPECT_EQ(paging_mode(r), PagingMode::Pae);
  r.efer = efer::LME::mask;
  EXPECT_EQ(paging_mode(r), PagingMode::Long4);
  r.cr4 |= cr4::LA57::mask;
  EXPECT_EQ(paging_mode(r), PagingMode::Long5);
  r.cr0 = 0;
  EXPECT_EQ(paging_mode(r), PagingMode::Off);
}

TEST(PagingMode, La57WithoutLongModeIsPae) {
  Registers r;
  r.cr0 = cr0::PG::mask;
  r.cr4 = cr4::PAE::mask | cr4::LA57::mask;
  EXPECT_EQ(paging_mode(r), PagingMode::Pae);
}

using Modes = GuestTest;

TEST_F(Modes, PagingOffMapsGvaToTheSameGpa) {
  use(PagingMode::Off);
  auto r = walk(0x12345678, kUserWrite);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->gpa, Gpa(0x12345678));
  EXPECT_EQ(r->level, 0u);
}

TEST_F(Modes, PagingOffWrapsAt4GiB) {
  use(PagingMode::Off);
  EXPECT_EQ(gpa(0x1'0000'1234, kRead), 0x1234u);
}

TEST_F(Modes, PagingOffNeverWritesMemory) {
  use(PagingMode::Off);
  ASSERT_TRUE(walk(0x1000, kWrite).has_value());
  EXPECT_EQ(mem.page_count(), 0u);
}

TEST_F(Modes, Bits32TranslatesThroughTwoLevelsOfFourByteEntries) {
  use(PagingMode::Bits32);
  map(0x00403123, 1, 0x7000 | kUserRw);
  auto r = walk(0x00403123, kUserRead);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->gpa, Gpa(0x7123));
  EXPECT_EQ(r->page_size, 4096u);
  // The PDE is a 4-byte entry at CR3 + 4 * (gva >> 22).
  EXPECT_NE(*mem.read<std::uint32_t>(Gpa(0x1000 + 4 * 1)), 0u);
}

TEST_F(Modes, Bits32TruncatesGvaTo32Bits) {
  use(PagingMode::Bits32);
  map(0x00403123, 1, 0x7000 | kUserRw);
  EXPECT_EQ(gpa(0xffff'ffff'0040'3123, kRead), 0x7123u);
}

TEST_F(Modes, PaeTranslatesThroughPdpteAtCr3Bits31To5) {
  use(PagingMode::Pae);
  map(0xc0201234, 1, 0x9000 | kUserRw);
  auto r = walk(0xc0201234, kUserRead);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->gpa, Gpa(0x9234));
  // PDPTE 3 lives at CR3[31:5] + 3 * 8, not at the page base.
  EXPECT_NE(*mem.read<std::uint64_t>(Gpa(0x1fe0 + 3 * 8)), 0u);
}

TEST_F(Modes, PaeRereadsPdptesFromMemoryOnEveryWalk) {
  use(PagingMode::Pae);
  map(0x40000000, 1, 0x9000 | kUserRw);
  ASSERT_TRUE(walk(0x40000000, kRead).has_value());
  set(0x40000000, 3, 0);  // no PDPTE register caches the old value
  EXPECT_EQ(error(0x40000000, kRead), 0u);
}

TEST_F(Modes, Long4TranslatesThroughFourLevels) {
  use(PagingMode::Long4);
  map(0x7fff'1234'5678, 1, 0xabc000 | kUserRw);
  auto r = walk(0x7fff'1234'5678, kUserRead);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->gpa, Gpa(0xabc678));
  EXPECT_EQ(r->level, 1u);
}

TEST_F(Modes, Long5TranslatesThroughFiveLevels) {
  use(PagingMode::Long5);
  map(0x00ff'ffff'1234'5678, 1, 0xabc000 | kUserRw);
  auto r = walk(0x00ff'ffff'1234'5678, kUserRead);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->gpa, Gpa(0xabc678));
}

TEST_F(Modes, Long4NonCanonicalAddressIsGeneralProtection) {
  use(PagingMode::Long4);
  map(0x1000, 1, 0x5000 | kUserRw);
  auto r = walk(0x0000'8000'0000'0000, kRead);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().kind, WalkFaultKind::GeneralProtection);
  EXPECT_FALSE(walk(0xffff'0000'0000'0000, kRead).has_value());
}

TEST_F(Modes, Long4UpperHalfCanonicalAddressWalks) {
  use(PagingMode::Long4);
  map(0xffff'ffff'8100'0000, 1, 0x5000 | kP | kRW);
  EXPECT_EQ(gpa(0xffff'ffff'8100'0010, kRead), 0x5010u);
}

TEST_F(Modes, Long5AcceptsAddressesCanonicalIn57Bits) {
  use(PagingMode::Long5);
  map(0x0080'0000'0000'0000 - 0x1000, 1, 0x5000 | kUserRw);
  EXPECT_TRUE(walk(0x0080'0000'0000'0000 - 0x1000, kRead).has_value());
  auto r = walk(0x0100'0000'0000'0000, kRead);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().kind, WalkFaultKind::GeneralProtection);
}

TEST_F(Modes, NotPresentEntryFaultsWithPresentClearAtItsLevel) {
  use(PagingMode::Long4);
  map(0x1000, 1, 0x5000 | kUserRw);
  auto r = walk(0x2000, kUserWrite);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().error_code, pferr::kWrite | pferr::kUser);
  EXPECT_EQ(r.error().level, 1u);
  auto top = walk(0x7f00'0000'0000, kRead);
  ASSERT_FALSE(top.has_value());
  EXPECT_EQ(top.error().level, 4u);
}

TEST_F(Modes, TranslationReportsPathPermissionsAndKey) {
  use(PagingMode::Long4);
  regs.cr4 |= cr4::PKE::mask;
  map(0x1000, 1, 0x5000 | kUserRw | kXD | (std::uint64_t{9} << 59));
  auto r = walk(0x1000, kRead);
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(r->user);
  EXPECT_TRUE(r->writable);
  EXPECT_TRUE(r->nx);
  EXPECT_EQ(r->protection_key, 9u);
}

// A memory that backs nothing: every read fails.
struct NoMemory {
  template <class T>
  std::optional<T> read(Gpa) const { return std::nullopt; }
  template <class T>
  bool compare_exchange(Gpa, T&, T) { return false; }
};

TEST(Unbacked, TableInUnbackedMemoryIsTableUnreadable) {
  NoMemory none;
  auto r = walk(GuestPaging::from(registers_for(PagingMode::Long4, 0x1000)), none, Gva(0x1000), Access::read());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().kind, WalkFaultKind::TableUnreadable);
  EXPECT_EQ(r.error().level, 4u);
}

}  // namespace
}  // namespace vmmu::x86::test
