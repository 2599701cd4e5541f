// The shadow fault path on hand-built guests: passthrough roots, shared and distinct shadow
// pages, dirty and write tracking, CR0.WP=0, and the guest's own faults reflected.

#include <gtest/gtest.h>

#include "shadow/support/sparse_ram.hpp"
#include "vmmu/shadow/shadow_mmu.hpp"
#include "vmmu/x86/walk.hpp"

namespace vmmu::shadow::test {
namespace {

namespace gpte = x86::gpte;
namespace cr0 = x86::cr0;
namespace cr4 = x86::cr4;
namespace efer = x86::efer;

constexpr std::uint64_t kUserTable = gpte::P::mask | gpte::RW::mask | gpte::US::mask;

// A 4-level guest: PML4 at 0x1000 -> PDPT 0x2000 -> PD 0x3000 -> PT 0x4000, and a second
// PML4 at 0x5000 sharing the PDPT. Leaves in the PT: index 0 -> 0x10000 (user, writable),
// index 1 -> 0x11000 (user, read-only), index 2 -> the PT itself (supervisor, writable).
// PML4 entry 511 -> the same PDPT, for upper-half gvas.
class Guest4 : public ::testing::Test {
 protected:
  void SetUp() override {
    mem.write<std::uint64_t>(Gpa(0x1000), 0x2000 | kUserTable);
    mem.write<std::uint64_t>(Gpa(0x1000 + 511 * 8), 0x2000 | kUserTable);
    mem.write<std::uint64_t>(Gpa(0x5000), 0x2000 | kUserTable);
    mem.write<std::uint64_t>(Gpa(0x2000), 0x3000 | kUserTable);
    mem.write<std::uint64_t>(Gpa(0x3000), 0x4000 | kUserTable);
    mem.write<std::uint64_t>(Gpa(0x4000), 0x10000 | kUserTable);
    mem.write<std::uint64_t>(Gpa(0x4008), 0x11000 | gpte::P::mask | gpte::US::mask);
    mem.write<std::uint64_t>(Gpa(0x4010), 0x4000 | gpte::P::mask | gpte::RW::mask);
  }
  x86::GuestPaging paging(std::uint64_t cr3, bool wp = true, std::uint64_t cr4_extra = 0) {
    x86::Registers r{.cr0 = cr0::PE::mask | cr0::PG::mask | (wp ? cr0::WP::mask : 0),
                     .cr3 = cr3,
                     .cr4 = cr4::PAE::mask | cr4_extra,
                     .efer = efer::LME::mask | efer::LMA::mask | efer::NXE::mask};
    return x86::GuestPaging::from(r, {});
  }
  std::uint64_t entry(std::uint64_t gpa) { return *mem.read<std::uint64_t>(Gpa(gpa)); }
  void expect_invariants(const ShadowMmu& mmu) {
    const std::optional<std::string> bad = mmu.check_invariants();
    EXPECT_FALSE(bad) << *bad;
  }

  SparseMemory<Gpa> mem;
  SparseRam ram{mem};
};

TEST_F(Guest4, FourLevelGuestUnderAFiveLevelHostUsesAPassthroughRoot) {
  ShadowMmu mmu(ram, {.host_levels = 5});
  const auto p = paging(0x1000);
  const Outcome low = mmu.access(p, Gva(0x123), Access::read());
  ASSERT_TRUE(low.guest.has_value());
  EXPECT_EQ(low.guest->gpa, Gpa(0x10123));
  Result<ShadowPage*, ShadowExit> root = mmu.load_root(p);
  ASSERT_TRUE(root.has_value());
  EXPECT_TRUE((*root)->role().passthrough());
  EXPECT_EQ((*root)->role().level(), 5u);
  // The upper half: PML4 entry 511, through level-5 entry 511.
  const Gva high(0xffff'ff80'0000'0123ULL);
  ASSERT_TRUE(mmu.access(p, high, Access::read()).guest.has_value());
  EXPECT_EQ(mmu.access(p, high, Access::read()).guest->gpa, Gpa(0x10123));
  // Not canonical for the guest (bits 63:48 clear, bit 47 set) but canonical for the host:
  // the guest gets #GP, even though the low 48 bits match a mapped gva.
  const Outcome bad = mmu.access(p, Gva(0x0000'ff80'0000'0123ULL), Access::read());
  ASSERT_FALSE(bad.guest.has_value());
  EXPECT_EQ(bad.guest.error().kind, x86::WalkFaultKind::GeneralProtection);
  const Outcome bad2 = mmu.access(p, Gva(0xffff'0000'0000'0123ULL), Access::read());
  ASSERT_FALSE(bad2.guest.has_value());
  EXPECT_EQ(bad2.guest.error().kind, x86::WalkFaultKind::GeneralProtection);
  expect_invariants(mmu);
}

TEST_F(Guest4, TwoCr3sSharingATableShareItsShadowPage) {
  ShadowMmu mmu(ram, {.host_levels = 4});
  ASSERT_TRUE(mmu.access(paging(0x1000), Gva(0x0), Access::read()).guest.has_value());
  const std::uint64_t after_first = mmu.stats().shadow_pages;  // PML4, PDPT, PD, PT
  EXPECT_EQ(after_first, 4u);
  ASSERT_TRUE(mmu.access(paging(0x5000), Gva(0x0), Access::read()).guest.has_value());
  EXPECT_EQ(mmu.stats().shadow_pages, after_first + 1);  // only the second PML4 is new
  expect_invariants(mmu);
}

TEST_F(Guest4, ACr0WpFlipGivesDistinctShadowPagesAndKeepsTheOldOnes) {
  ShadowMmu mmu(ram, {.host_levels = 4});
  ASSERT_TRUE(mmu.access(paging(0x1000, true), Gva(0x0), Access::read()).guest.has_value());
  ASSERT_TRUE(mmu.access(paging(0x1000, false), Gva(0x0), Access::read()).guest.has_value());
  EXPECT_EQ(mmu.stats().shadow_pages, 8u);
  // Flipping back finds the first set, still built: no fault.
  const std::uint64_t faults = mmu.stats().faults;
  ASSERT_TRUE(mmu.access(paging(0x1000, true), Gva(0x0), Access::read()).guest.has_value());
  EXPECT_EQ(mmu.stats().faults, faults);
  expect_invariants(mmu);
}

TEST_F(Guest4, TheLeafStaysReadOnlyUntilTheGuestsDirtyBitIsSet) {
  ShadowMmu mmu(ram, {.host_levels = 4});
  const auto p = paging(0x1000);
  ASSERT_TRUE(mmu.access(p, Gva(0x0), Access::read()).guest.has_value());
  EXPECT_TRUE(gpte::A::get(entry(0x4000)));
  EXPECT_FALSE(gpte::D::get(entry(0x4000)));
  const std::uint64_t faults = mmu.stats().faults;
  ASSERT_TRUE(mmu.access(p, Gva(0x0), Access::write()).guest.has_value());
  EXPECT_EQ(mmu.stats().faults, faults + 1);  // the write faulted to set D
  EXPECT_TRUE(gpte::D::get(entry(0x4000)));
  ASSERT_TRUE(mmu.access(p, Gva(0x0), Access::write()).guest.has_value());
  EXPECT_EQ(mmu.stats().faults, faults + 1);  // now writable in the shadow
  expect_invariants(mmu);
}

TEST_F(Guest4, AWriteToAShadowedGuestTableIsEmulated) {
  ShadowMmu mmu(ram, {.host_levels = 4, .unsync = false});  // (unsync: sync_test.cpp)
  const auto p = paging(0x1000);
  // gva 0x2000 maps the PT (0x4000), which the shadow MMU shadows once gva 0 is touched.
  ASSERT_TRUE(mmu.access(p, Gva(0x2000), Access::write()).guest.has_value());
  ASSERT_TRUE(mmu.access(p, Gva(0x0), Access::read()).guest.has_value());
  const std::uint64_t emulated = mmu.stats().emulated;
  const Outcome w = mmu.access(p, Gva(0x2008), Access::write());
  ASSERT_TRUE(w.guest.has_value());
  EXPECT_EQ(w.guest->gpa, Gpa(0x4008));
  EXPECT_EQ(mmu.stats().emulated, emulated + 1);
  expect_invariants(mmu);  // includes: no writable leaf maps the PT's frame
}

TEST_F(Guest4, Cr0WpClearLetsTheKernelWriteAReadOnlyUserPageButNotTheUser) {
  ShadowMmu mmu(ram, {.host_levels = 4});
  const auto p = paging(0x1000, /*wp=*/false, cr4::SMEP::mask);
  ASSERT_TRUE(mmu.access(p, Gva(0x1000), Access::write(false)).guest.has_value());
  expect_invariants(mmu);
  // The user still may not write it (W | U | P), and may read it.
  const Outcome user_write = mmu.access(p, Gva(0x1000), Access::write(true));
  ASSERT_FALSE(user_write.guest.has_value());
  EXPECT_EQ(user_write.guest.error().error_code, x86::pferr::kPresent | x86::pferr::kWrite | x86::pferr::kUser);
  ASSERT_TRUE(mmu.access(p, Gva(0x1000), Access::read(true)).guest.has_value());
  // SMEP: the kernel may not execute the user page, though the leaf was made supervisor.
  ASSERT_TRUE(mmu.access(p, Gva(0x1000), Access::write(false)).guest.has_value());
  const Outcome fetch = mmu.access(p, Gva(0x1000), Access::fetch(false));
  ASSERT_FALSE(fetch.guest.has_value());
  EXPECT_EQ(fetch.guest.error().error_code, x86::pferr::kPresent | x86::pferr::kFetch);
  expect_invariants(mmu);
}

TEST_F(Guest4, TheGuestsOwnFaultIsReflectedWithItsErrorCode) {
  ShadowMmu mmu(ram, {.host_levels = 4});
  const Outcome o = mmu.access(paging(0x1000), Gva(0x3000), Access::read(true));  // PT entry 3: empty
  ASSERT_FALSE(o.guest.has_value());
  EXPECT_EQ(o.guest.error().error_code, x86::pferr::kUser);
  EXPECT_EQ(mmu.stats().reflected, 1u);
}

}  // namespace
}  // namespace vmmu::shadow::test

namespace vmmu::shadow::test {
namespace {

// A 32-bit non-PAE guest under a 4-level host: PD at 0x1000; PDE 0 -> PT at 0x2000 whose
// entries 0 and 512 (one in each 2 MiB half) map 0x10000 and 0x11000; PDE 1 -> a 4 MiB page
// at 0x800000.
TEST(Guest32, IsShadowedByQuadrantsAndTwoHalvesOfEachLargePage) {
  SparseMemory<Gpa> mem;
  SparseRam ram(mem);
  const std::uint32_t table = gpte::P::mask | gpte::RW::mask | gpte::US::mask;
  mem.write<std::uint32_t>(Gpa(0x1000), 0x2000 | table);
  mem.write<std::uint32_t>(Gpa(0x1004), 0x800000 | table | gpte::PS::mask);
  mem.write<std::uint32_t>(Gpa(0x2000), 0x10000 | table);
  mem.write<std::uint32_t>(Gpa(0x2000 + 512 * 4), 0x11000 | table);
  const auto paging = x86::GuestPaging::from(
      x86::Registers{.cr0 = cr0::PE::mask | cr0::PG::mask | cr0::WP::mask, .cr3 = 0x1000, .cr4 = cr4::PSE::mask}, {});
  ShadowMmu mmu(ram, {.host_levels = 4});
  const struct {
    std::uint64_t gva, gpa, size;
  } cases[] = {{0x123, 0x10123, 0x1000},
               {0x200123, 0x11123, 0x1000},
               {0x401234, 0x801234, 0x400000},
               {0x7ff234, 0xbff234, 0x400000}};
  for (const auto& c : cases) {
    const Outcome o = mmu.access(paging, Gva(c.gva), Access::read());
    ASSERT_TRUE(o.guest.has_value()) << c.gva;
    EXPECT_EQ(o.guest->gpa, Gpa(c.gpa));
    EXPECT_EQ(o.guest->page_size, c.size);
  }
  // Passthrough levels 4 and 3, the root's first quarter, the PT's two halves, the 4 MiB
  // page's two 2 MiB halves.
  EXPECT_EQ(mmu.stats().shadow_pages, 7u);
  unsigned halves = 0, direct = 0;
  mmu.pages().for_each([&](const ShadowPage& p) {
    if (p.role().level() == 1 && !p.role().direct()) halves |= 1u << p.role().quadrant();
    if (p.role().direct()) ++direct;
  });
  EXPECT_EQ(halves, 3u);
  EXPECT_EQ(direct, 2u);
  // A hit on every one of them now: no new fault.
  const std::uint64_t faults = mmu.stats().faults;
  for (const auto& c : cases) ASSERT_TRUE(mmu.access(paging, Gva(c.gva), Access::read()).guest.has_value());
  EXPECT_EQ(mmu.stats().faults, faults);
  const std::optional<std::string> bad = mmu.check_invariants();
  EXPECT_FALSE(bad) << *bad;
}

}  // namespace
}  // namespace vmmu::shadow::test
