// The vCPU's TLB as the guest sees it: stale translations survive until the architecture
// says they go (CR3 writes drop non-global ones, PGE / PG / PCIDE changes drop everything,
// NOFLUSH keeps them, INVLPG drops one page), and permission-only register changes
// (CR0.WP, CR4.SMEP clear, CR4.SMAP, PKRU) need no flush because hits are checked against
// the current role.
//
// Each test maps a gva, fills the TLB, then remaps the guest PTE behind the vCPU's back
// (no INVLPG): a translation that still gives the old gpa came from the TLB.

#include <gtest/gtest.h>

#include <array>

#include "vm/support/guest_vm.hpp"
#include "vmmu/x86/walk.hpp"

namespace vmmu::vm::test {
namespace {

namespace cr0 = x86::cr0;
namespace cr4 = x86::cr4;
namespace pferr = x86::pferr;

constexpr Gpa kOld(0x10'0000), kNew(0x20'0000);

class VcpuTlb : public ::testing::Test {
 protected:
  // Maps `gva` to kOld + off with `flags`, translates it once (filling the TLB) with `access`,
  // then points the PTE at kNew + off with the same flags.
  void map_and_remap(Gva gva, std::uint64_t off, GuestPageFlags flags = {}, Access access = Access::read()) {
    g.map(gva, kOld + off, kPageSize, kPageSize, flags);
    auto t = v.translate(gva, access);
    ASSERT_TRUE(t);
    ASSERT_EQ(t->gpa, kOld + off);
    g.set_entry(gva, 1, GuestPageTableBuilder::leaf_entry(kNew + off, 1, flags));
  }
  // The gpa `gva` translates to now (or Gpa(~0) on an exit).
  Gpa now(Gva gva, Access access = Access::read()) {
    auto t = v.translate(gva, access);
    return t ? t->gpa : Gpa(~0ULL);
  }
  std::uint32_t fault(Gva gva, Access access) {
    auto t = v.translate(gva, access);
    if (t || t.error().kind != GuestExitKind::PageFault) return ~0u;
    return t.error().error_code;
  }

  GuestVm g;
  Vcpu& v = g.add_vcpu();
};

TEST_F(VcpuTlb, StaleUntilFlushedCr3KeepsGlobalsPgeDropsThem) {
  ASSERT_TRUE(v.set_cr4(v.registers().cr4 | cr4::PGE::mask).has(Effect::TlbFlushAll));
  const Gva local(0x4000'0000), global(0x4000'1000);
  map_and_remap(local, 0);
  map_and_remap(global, kPageSize, {.global = true});
  EXPECT_EQ(now(local), kOld);
  EXPECT_EQ(now(global), kOld + kPageSize);
  EXPECT_EQ(v.tlb().global_entries(), 1u);

  EXPECT_EQ(v.set_cr3(v.registers().cr3), Effects(Effect::TlbFlush));  // same value: still a flush
  EXPECT_EQ(now(local), kNew);
  EXPECT_EQ(now(global), kOld + kPageSize);  // global survives MOV to CR3

  EXPECT_EQ(v.set_cr4(v.registers().cr4 & ~cr4::PGE::mask), Effects(Effect::TlbFlushAll));
  EXPECT_EQ(now(global), kNew + kPageSize);
}

TEST_F(VcpuTlb, ClearingPagingDropsEverything) {
  v.set_cr4(v.registers().cr4 | cr4::PGE::mask);
  const Gva gva(0x4000'0000);
  map_and_remap(gva, 0, {.global = true});
  const x86::Registers on = v.registers();
  EXPECT_TRUE(v.set_cr0(on.cr0 & ~cr0::PG::mask).has(Effect::TlbFlushAll));
  EXPECT_EQ(v.registers().efer & x86::efer::LMA::mask, 0u);  // long mode left with paging
  EXPECT_EQ(v.tlb().size(), 0u);
  EXPECT_FALSE(v.set_cr0(on.cr0).has(Effect::TlbFlushAll));
  EXPECT_NE(v.registers().efer & x86::efer::LMA::mask, 0u);
  EXPECT_EQ(v.paging().mode(), x86::PagingMode::Long4);
  EXPECT_EQ(now(gva), kNew);
}

TEST_F(VcpuTlb, PcidsKeepTheirEntriesAcrossNoFlushSwitches) {
  const std::uint64_t root = v.registers().cr3;
  EXPECT_TRUE(v.set_cr4(v.registers().cr4 | regbits::Cr4Pcide::mask).empty());
  const Gva a(0x4000'0000), b(0x4000'1000);
  map_and_remap(a, 0);  // cached under PCID 0
  EXPECT_TRUE(v.set_cr3(root | 1 | regbits::Cr3NoFlush::mask).empty());
  EXPECT_EQ(v.pcid(), 1u);
  EXPECT_EQ(v.registers().cr3, root | 1);  // bit 63 is not stored
  EXPECT_EQ(v.tlb().lookup(a.raw() >> kPageShift, 1), nullptr);  // PCID 0's entry is not PCID 1's
  map_and_remap(b, kPageSize);                                     // cached under PCID 1
  EXPECT_TRUE(v.set_cr3(root | regbits::Cr3NoFlush::mask).empty());
  EXPECT_EQ(now(a), kOld);  // back on PCID 0: its entry survived the switches
  EXPECT_EQ(v.set_cr3(root), Effects(Effect::TlbFlush));
  EXPECT_EQ(now(a), kNew);
  v.set_cr3(root | 1 | regbits::Cr3NoFlush::mask);
  EXPECT_EQ(now(b), kOld + kPageSize);  // PCID 0's flush left PCID 1 alone
  EXPECT_EQ(v.set_cr4(v.registers().cr4 & ~regbits::Cr4Pcide::mask), Effects(Effect::TlbFlushAll));
  EXPECT_EQ(v.tlb().size(), 0u);
}

TEST_F(VcpuTlb, InvlpgDropsOnePage) {
  const Gva a(0x4000'0000), b(0x4000'1000);
  map_and_remap(a, 0);
  map_and_remap(b, kPageSize);
  v.invlpg(a + 0x123);
  EXPECT_EQ(now(a), kNew);
  EXPECT_EQ(now(b), kOld + kPageSize);
}

TEST_F(VcpuTlb, Cr0WpAppliesWithoutAFlush) {
  const Gva gva(0x4000'0000);
  v.set_cr0(v.registers().cr0 & ~cr0::WP::mask);
  map_and_remap(gva, 0, {.writable = false}, Access::write());  // WP = 0: supervisor may write
  const std::size_t cached = v.tlb().size();
  const Effects e = v.set_cr0(v.registers().cr0 | cr0::WP::mask);
  EXPECT_EQ(e, Effects(Effect::RoleRefresh));
  EXPECT_EQ(v.tlb().size(), cached);
  EXPECT_EQ(now(gva), kOld);                                             // the entry is still used
  EXPECT_EQ(fault(gva, Access::write()), pferr::kPresent | pferr::kWrite);  // ... but not for writes
  v.set_cr0(v.registers().cr0 & ~cr0::WP::mask);
  EXPECT_EQ(now(gva, Access::write()), kNew);  // the fault dropped the entry
}

TEST_F(VcpuTlb, SmapAndSmepClearApplyWithoutAFlush) {
  const Gva gva(0x4000'0000);
  v.set_cr4(v.registers().cr4 | cr4::SMEP::mask);
  map_and_remap(gva, 0, {.user = true});  // supervisor read of a user page: allowed without SMAP
  EXPECT_EQ(fault(gva, Access::fetch()), pferr::kPresent | pferr::kFetch);  // SMEP refuses the hit
  map_and_remap(gva, 0, {.user = true});
  EXPECT_EQ(v.set_cr4(v.registers().cr4 & ~cr4::SMEP::mask), Effects(Effect::RoleRefresh));
  EXPECT_EQ(now(gva, Access::fetch()), kOld);  // cached entry, now allowed to fetch

  EXPECT_EQ(v.set_cr4(v.registers().cr4 | cr4::SMAP::mask), Effects(Effect::RoleRefresh));
  EXPECT_EQ(fault(gva, Access::read()), pferr::kPresent);  // SMAP: supervisor data access to a user page
  map_and_remap(gva, 0, {.user = true}, Access::read(true));
  EXPECT_EQ(v.set_rflags(v.registers().rflags | x86::rflags::AC::mask), Effects());
  EXPECT_EQ(now(gva), kOld);  // RFLAGS.AC lets explicit supervisor accesses through, from the TLB
}

TEST_F(VcpuTlb, PkruAppliesWithoutAFlush) {
  const Gva gva(0x4000'0000);
  v.set_cr4(v.registers().cr4 | cr4::PKE::mask);
  map_and_remap(gva, 0, {.user = true, .key = 3}, Access::read(true));
  EXPECT_EQ(v.set_pkru(0b11u << 6), Effects());  // key 3: access and write disabled
  EXPECT_EQ(v.tlb().size(), 1u);
  EXPECT_EQ(fault(gva, Access::read(true)), pferr::kPresent | pferr::kUser | pferr::kProtectionKey);
  map_and_remap(gva, 0, {.user = true, .key = 3}, Access::fetch(true));  // fetches ignore keys
  EXPECT_EQ(now(gva, Access::fetch(true)), kOld);
  EXPECT_EQ(v.set_pkru(0b10u << 6), Effects());  // write disabled only
  EXPECT_EQ(now(gva, Access::read(true)), kOld);
  EXPECT_EQ(fault(gva, Access::write(true)), pferr::kPresent | pferr::kWrite | pferr::kUser | pferr::kProtectionKey);
}

TEST_F(VcpuTlb, SettingSmepFlushesTheCurrentPcidGlobalsIncluded) {
  v.set_cr4(v.registers().cr4 | cr4::PGE::mask);
  const Gva gva(0x4000'0000);
  map_and_remap(gva, 0, {.global = true});
  EXPECT_EQ(v.set_cr4(v.registers().cr4 | cr4::SMEP::mask), Effect::RoleRefresh | Effect::TlbFlushCurrent);
  EXPECT_EQ(now(gva), kNew);
}

TEST_F(VcpuTlb, StatisticsCountWhatWasApplied) {
  const VcpuStats s0 = v.stats();
  v.set_cr4(v.registers().cr4 | cr4::SMAP::mask);  // role refresh
  v.set_cr3(v.registers().cr3);                    // flush
  v.set_pkru(4);                                   // nothing
  const VcpuStats s1 = v.stats();
  EXPECT_EQ(s1.register_writes - s0.register_writes, 3u);
  EXPECT_EQ(s1.role_refreshes - s0.role_refreshes, 1u);
  EXPECT_EQ(s1.tlb_flushes - s0.tlb_flushes, 1u);
  EXPECT_EQ(s1.root_unloads, 0u);
}

}  // namespace
}  // namespace vmmu::vm::test
