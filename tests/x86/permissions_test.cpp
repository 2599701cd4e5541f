// Access rights and page-fault error codes (Intel SDM vol. 3A 4.6 and 4.7).

#include <gtest/gtest.h>

#include "x86/support/guest_fixture.hpp"

namespace vmmu::x86::test {
namespace {

constexpr std::uint32_t kP_ = pferr::kPresent;
constexpr std::uint32_t kW_ = pferr::kWrite;
constexpr std::uint32_t kU_ = pferr::kUser;
constexpr std::uint32_t kF_ = pferr::kFetch;
constexpr std::uint32_t kPK_ = pferr::kProtectionKey;
constexpr std::uint64_t kPermissionGva = 0x1000;

class Permissions : public GuestTest {
 protected:
  void SetUp() override { use(PagingMode::Long4); }
  void leaf(std::uint64_t flags) { map(kPermissionGva, 1, 0x5000 | flags); }
};

// ---- U/S ----

TEST_F(Permissions, UserAccessToSupervisorPageFaults) {
  leaf(kP | kRW);
  EXPECT_EQ(error(kPermissionGva, kUserRead), kP_ | kU_);
}

TEST_F(Permissions, UserSAndsOverEveryLevel) {
  leaf(kUserRw);
  set(kPermissionGva, 3, entry(kPermissionGva, 3) & ~kUS);
  EXPECT_EQ(error(kPermissionGva, kUserRead), kP_ | kU_);
  EXPECT_TRUE(walk(kPermissionGva, kRead).has_value());
}

TEST_F(Permissions, SupervisorReadOfUserPageIsAllowedWithoutSmap) {
  leaf(kUserRw);
  EXPECT_TRUE(walk(kPermissionGva, kRead).has_value());
}

// ---- R/W and CR0.WP ----

TEST_F(Permissions, UserWriteToReadOnlyPageFaults) {
  leaf(kP | kUS);
  EXPECT_EQ(error(kPermissionGva, kUserWrite), kP_ | kW_ | kU_);
}

TEST_F(Permissions, ReadWriteAndsOverEveryLevel) {
  leaf(kUserRw);
  set(kPermissionGva, 4, entry(kPermissionGva, 4) & ~kRW);
  EXPECT_EQ(error(kPermissionGva, kUserWrite), kP_ | kW_ | kU_);
}

TEST_F(Permissions, SupervisorWriteToReadOnlyPageFaultsWithWp) {
  leaf(kP);
  EXPECT_EQ(error(kPermissionGva, kWrite), kP_ | kW_);
}

TEST_F(Permissions, SupervisorWriteToReadOnlyPageSucceedsWithoutWp) {
  regs.cr0 &= ~cr0::WP::mask;
  leaf(kP);
  EXPECT_TRUE(walk(kPermissionGva, kWrite).has_value());
}

TEST_F(Permissions, UserWriteToReadOnlyPageFaultsEvenWithoutWp) {
  regs.cr0 &= ~cr0::WP::mask;
  leaf(kP | kUS);
  EXPECT_EQ(error(kPermissionGva, kUserWrite), kP_ | kW_ | kU_);
}

// ---- NX ----

TEST_F(Permissions, FetchFromXdPageFaultsWithNxe) {
  leaf(kUserRw | kXD);
  EXPECT_EQ(error(kPermissionGva, kUserFetch), kP_ | kU_ | kF_);
  EXPECT_EQ(error(kPermissionGva, kFetch), kP_ | kF_);
}

TEST_F(Permissions, XdInAnUpperLevelForbidsFetch) {
  leaf(kUserRw);
  set(kPermissionGva, 2, entry(kPermissionGva, 2) | kXD);
  EXPECT_EQ(error(kPermissionGva, kFetch), kP_ | kF_);
  EXPECT_TRUE(walk(kPermissionGva, kRead).has_value());
}

TEST_F(Permissions, NotPresentFetchReportsFetchWhenNxe) {
  EXPECT_EQ(error(kPermissionGva, kFetch), kF_);
}

TEST_F(Permissions, FetchFlagIsNotReportedWithoutNxeOrSmep) {
  regs.efer &= ~efer::NXE::mask;
  EXPECT_EQ(error(kPermissionGva, kFetch), 0u);
  leaf(kP);
  regs.cr4 |= cr4::SMEP::mask;
  EXPECT_EQ(error(0x2000, kFetch), kF_);
}

TEST_F(Permissions, NxeHasNoEffectInBits32Paging) {
  use(PagingMode::Bits32);
  regs.efer = efer::NXE::mask;
  EXPECT_EQ(error(kPermissionGva, kFetch), 0u);  // I/D needs PAE-or-long with NXE, or SMEP (SDM 4.7)
}

// ---- SMEP ----

TEST_F(Permissions, SmepForbidsSupervisorFetchFromUserPage) {
  regs.cr4 |= cr4::SMEP::mask;
  leaf(kUserRw);
  EXPECT_EQ(error(kPermissionGva, kFetch), kP_ | kF_);
  EXPECT_TRUE(walk(kPermissionGva, kUserFetch).has_value());
}

TEST_F(Permissions, SmepAppliesWithoutWpToo) {
  regs.cr4 |= cr4::SMEP::mask;
  regs.cr0 &= ~cr0::WP::mask;
  leaf(kUserRw);
  EXPECT_EQ(error(kPermissionGva, kFetch), kP_ | kF_);
}

TEST_F(Permissions, SmepAllowsSupervisorFetchFromSupervisorPage) {
  regs.cr4 |= cr4::SMEP::mask;
  leaf(kP);
  EXPECT_TRUE(walk(kPermissionGva, kFetch).has_value());
}

// ---- SMAP ----

TEST_F(Permissions, SmapForbidsSupervisorDataAccessToUserPage) {
  regs.cr4 |= cr4::SMAP::mask;
  leaf(kUserRw);
  EXPECT_EQ(error(kPermissionGva, kRead), kP_);
  EXPECT_EQ(error(kPermissionGva, kWrite), kP_ | kW_);
}

TEST_F(Permissions, SmapAllowsExplicitSupervisorAccessWithAc) {
  regs.cr4 |= cr4::SMAP::mask;
  regs.rflags |= rflags::AC::mask;
  leaf(kUserRw);
  EXPECT_TRUE(walk(kPermissionGva, kRead).has_value());
  EXPECT_TRUE(walk(kPermissionGva, kWrite).has_value());
}

TEST_F(Permissions, SmapImplicitSupervisorAccessFaultsEvenWithAc) {
  regs.cr4 |= cr4::SMAP::mask;
  regs.rflags |= rflags::AC::mask;
  leaf(kUserRw);
  EXPECT_EQ(error(kPermissionGva, kImplicitRead), kP_);
}

TEST_F(Permissions, ImplicitSupervisorAccessAtCpl3ReportsSupervisor) {
  leaf(kP | kRW);  // a supervisor page: allowed to an implicit supervisor access at CPL 3
  const Access implicit_at_cpl3{AccessKind::Read, true, true};
  EXPECT_TRUE(walk(kPermissionGva, implicit_at_cpl3).has_value());
  regs.cr4 |= cr4::SMAP::mask;
  set(kPermissionGva, 1, 0x5000 | kUserRw);
  EXPECT_EQ(error(kPermissionGva, implicit_at_cpl3), kP_);  // U/S clear: not a user-mode access
}

TEST_F(Permissions, SmapDoesNotApplyToUserAccesses) {
  regs.cr4 |= cr4::SMAP::mask;
  leaf(kUserRw);
  EXPECT_TRUE(walk(kPermissionGva, kUserWrite).has_value());
}

TEST_F(Permissions, SmapDoesNotApplyToFetches) {
  regs.cr4 |= cr4::SMAP::mask;
  leaf(kUserRw);
  EXPECT_TRUE(walk(kPermissionGva, kFetch).has_value());
}

TEST_F(Permissions, SmapFaultsSupervisorWriteToUserPageEvenWithoutWp) {
  regs.cr4 |= cr4::SMAP::mask;
  regs.cr0 &= ~cr0::WP::mask;
  leaf(kP | kUS);
  EXPECT_EQ(error(kPermissionGva, kWrite), kP_ | kW_);
}

// ---- protection keys ----

class ProtectionKeys : public Permissions {
 protected:
  void SetUp() override {
    Permissions::SetUp();
    regs.cr4 |= cr4::PKE::mask;
  }
  static std::uint64_t key(unsigned k) { return std::uint64_t{k} << 59; }
  static std::uint32_t ad(unsigned k) { return 1u << (2 * k); }
  static std::uint32_t wd(unsigned k) { return 2u << (2 * k); }
};

TEST_F(ProtectionKeys, AccessDisableForbidsUserDataAccess) {
  regs.pkru = ad(5);
  leaf(kUserRw | key(5));
  EXPECT_EQ(error(kPermissionGva, kUserRead), kP_ | kU_ | kPK_);
  EXPECT_EQ(error(kPermissionGva, kUserWrite), kP_ | kW_ | kU_ | kPK_);
}

TEST_F(ProtectionKeys, AccessDisableForbidsSupervisorDataAccessToUserPage) {
  regs.pkru = ad(5);
  leaf(kUserRw | key(5));
  EXPECT_EQ(error(kPermissionGva, kRead), kP_ | kPK_);
}

TEST_F(ProtectionKeys, WriteDisableForbidsUserWrite) {
  regs.pkru = wd(3);
  leaf(kUserRw | key(3));
  EXPECT_TRUE(walk(kPermissionGva, kUserRead).has_value());
  EXPECT_EQ(error(kPermissionGva, kUserWrite), kP_ | kW_ | kU_ | kPK_);
}

TEST_F(ProtectionKeys, WriteDisableForbidsSupervisorWriteOnlyWithWp) {
  regs.pkru = wd(3);
  leaf(kUserRw | key(3));
  EXPECT_EQ(error(kPermissionGva, kWrite), kP_ | kW_ | kPK_);
  regs.cr0 &= ~cr0::WP::mask;
  EXPECT_TRUE(walk(kPermissionGva, kWrite).has_value());
}

TEST_F(ProtectionKeys, FetchesIgnoreProtectionKeys) {
  regs.pkru = ad(1) | wd(1);
  leaf(kUserRw | key(1));
  EXPECT_TRUE(walk(kPermissionGva, kUserFetch).has_value());
}

TEST_F(ProtectionKeys, SupervisorPagesIgnoreProtectionKeys) {
  regs.pkru = ad(2);  // PKS (CR4.PKS) is not modelled: supervisor pages have no key
  leaf(kP | kRW | key(2));
  EXPECT_TRUE(walk(kPermissionGva, kRead).has_value());
}

TEST_F(ProtectionKeys, OtherKeysDoNotApply) {
  regs.pkru = ~ad(7) & ~wd(7);
  leaf(kUserRw | key(7));
  EXPECT_TRUE(walk(kPermissionGva, kUserWrite).has_value());
}

TEST_F(ProtectionKeys, KeysNeedCr4Pke) {
  regs.cr4 &= ~cr4::PKE::mask;
  regs.pkru = ad(5);
  leaf(kUserRw | key(5));
  EXPECT_TRUE(walk(kPermissionGva, kUserRead).has_value());
}

TEST_F(ProtectionKeys, KeysDoNotExistInPaePaging) {
  use(PagingMode::Pae);
  regs.cr4 |= cr4::PKE::mask;
  regs.pkru = ad(0);
  leaf(kUserRw);
  EXPECT_TRUE(walk(kPermissionGva, kUserRead).has_value());
}

TEST_F(ProtectionKeys, PkFlagIsReportedAlongsideAnotherPermissionFault) {
  regs.pkru = wd(4);
  leaf(kP | kUS | key(4));  // read-only for the user and write-disabled by key 4
  EXPECT_EQ(error(kPermissionGva, kUserWrite), kP_ | kW_ | kU_ | kPK_);
}

// ---- every mode checks the same rules ----

TEST_F(Permissions, Bits32UserWriteToSupervisorPageFaults) {
  use(PagingMode::Bits32);
  leaf(kP | kRW);
  EXPECT_EQ(error(kPermissionGva, kUserWrite), kP_ | kW_ | kU_);
}

TEST_F(Permissions, PaePdpteCarriesNoPermissionBits) {
  use(PagingMode::Pae);
  leaf(kUserRw);  // the PDPTE is only P | address, yet user writes are allowed
  EXPECT_TRUE(walk(kPermissionGva, kUserWrite).has_value());
  EXPECT_EQ(entry(kPermissionGva, 3) & (kRW | kUS), 0u);
}

TEST_F(Permissions, Long5UserSAndsOverThePml5e) {
  use(PagingMode::Long5);
  leaf(kUserRw);
  set(kPermissionGva, 5, entry(kPermissionGva, 5) & ~kUS);
  EXPECT_EQ(error(kPermissionGva, kUserRead), kP_ | kU_);
}

}  // namespace
}  // namespace vmmu::x86::test
