// The PKE role gap (issue 12): under CR0.WP=0 a supervisor write to a read-only user page gets
// a writable supervisor-only leaf. Such a leaf skips PKRU, which applies to a supervisor
// access to a user page -- so once CR4.PKE is on, those pages must not be reused
// (role.pke_andnot_wp), and with PKE on the write is emulated instead.

#include <gtest/gtest.h>

#include "shadow/support/guest_path4.hpp"
#include "shadow/support/sparse_ram.hpp"
#include "vmmu/shadow/shadow_mmu.hpp"
#include "vmmu/x86/walk.hpp"

namespace vmmu::shadow::test {
namespace {

namespace gpte = x86::gpte;
namespace cr0 = x86::cr0;
namespace cr4 = x86::cr4;

constexpr std::uint64_t kGva = 0x1000;

class PkeRole : public ::testing::Test {
 protected:
  // PML4 0x1000 -> PDPT 0x2000 -> PD 0x3000 -> PT 0x4000; PT entry 1 -> 0x10000: a user,
  // read-only page with protection key 1.
  void SetUp() override {
    write_path4(mem);
    mem.write<std::uint64_t>(Gpa(0x4008), gpte::ProtKey::set(0x10000 | gpte::P::mask | gpte::US::mask, 1));
  }
  // CR0.WP = 0; with `pke`, PKRU denies every access with key 1 (its AD bit) if `deny`.
  static x86::GuestPaging paging(bool pke, bool deny = true) {
    return x86::GuestPaging::from({.cr0 = cr0::PE::mask | cr0::PG::mask,
                                   .cr3 = 0x1000,
                                   .cr4 = cr4::PAE::mask | (pke ? cr4::PKE::mask : 0),
                                   .efer = x86::efer::LME::mask | x86::efer::LMA::mask | x86::efer::NXE::mask,
                                   .pkru = pke && deny ? 1u << 2 : 0u},
                                  {});
  }

  SparseMemory<Gpa> mem;
  SparseRam ram{mem};
};

TEST_F(PkeRole, ALeafMadeSupervisorWithoutPkeIsNotUsedOncePkeIsOn) {
  ShadowMmu mmu(ram, {.host_levels = 4});
  // PKE off: the supervisor write succeeds (WP=0) and maps the page supervisor-writable.
  ASSERT_TRUE(mmu.access(paging(false), Gva(kGva), Access::write()).guest.has_value());
  // PKE on: a supervisor read of the user page is denied by PKRU, as the walker says.
  const x86::GuestPaging on = paging(true);
  const auto expected = x86::walk(on, mem, Gva(kGva), Access::read(), {.update_accessed_dirty = false});
  ASSERT_FALSE(expected.has_value());
  ASSERT_NE(expected.error().error_code & x86::pferr::kProtectionKey, 0u);
  const Outcome got = mmu.access(on, Gva(kGva), Access::read());
  ASSERT_FALSE(got.guest.has_value()) << "the supervisor-only leaf skipped PKRU";
  EXPECT_EQ(got.guest.error(), expected.error());
  const std::optional<std::string> bad = mmu.check_invariants();
  EXPECT_FALSE(bad) << *bad;
}

TEST_F(PkeRole, WithPkeOnTheWriteIsEmulatedAndTheLeafKeepsItsUserBit) {
  ShadowMmu mmu(ram, {.host_levels = 4});
  const x86::GuestPaging on = paging(true, false);
  ASSERT_TRUE(mmu.access(on, Gva(kGva), Access::write()).guest.has_value());
  EXPECT_EQ(mmu.stats().emulated, 1u);
  // A user read still works without a fault: the leaf was not made supervisor-only.
  const std::uint64_t faults = mmu.stats().faults;
  ASSERT_TRUE(mmu.access(on, Gva(kGva), Access::read(true)).guest.has_value());
  EXPECT_EQ(mmu.stats().faults, faults);
}

}  // namespace
}  // namespace vmmu::shadow::test
