// Shadow EPT (issue 13): L2 accesses through shadow tables built from L1's EPT -- hits, EPT
// exits reflected to L1 with the exit qualification the EPT walker (which agrees with real
// VMX) gives, A/D bits in L1's tables, write tracking of L1's EPT pages, INVEPT, EPTP switches.

#include <gtest/gtest.h>

#include "nested/support/l1_ept.hpp"

namespace vmmu::nested::test {
namespace {

namespace eq = ept::exit_qual;

constexpr std::uint64_t kLinear = eq::LinearValid::mask | eq::LinearTranslation::mask;

TEST(ShadowEpt, FaultThenHitMapsL2ToTheHostPageOfL1sFrame) {
  L1 l1;
  l1.map4k(0x5000, 0x100000, kRwx);
  ASSERT_TRUE(l1.mmu.load_eptp(l1.vcpu, eptp_for(kPml4, false)));
  for (int round = 0; round < 2; ++round) {
    const L2Access a = l1.access(0x5123, AccessKind::Write);
    ASSERT_TRUE(a) << round;
    EXPECT_EQ(a->l1_gpa, Gpa(0x100123));
    EXPECT_EQ(a->host, l1.host_of(0x100123));
    EXPECT_EQ(a->page_size, 0x1000u);
    EXPECT_FALSE(a->emulate);
  }
  const NestedStats s = l1.mmu.stats();
  EXPECT_EQ(s.faults, 1u);
  EXPECT_EQ(s.hits, 1u);
  EXPECT_EQ(s.pages, 4u);  // one shadow page per L1 table
  EXPECT_EQ(l1.mmu.check_invariants(), std::nullopt);
}

// Entry addresses of the path to L2 0x5000 by level.
constexpr std::uint64_t path_entry(unsigned level) {
  return level == 4 ? kPml4 : level == 3 ? kPdpt : level == 2 ? kPd : kPt + 5 * 8;
}

TEST(ShadowEpt, NotPresentAtEachLevelIsAViolationWithItsExitQualification) {
  for (unsigned level = 4; level >= 1; --level) {
    SCOPED_TRACE(level);
    L1 l1;
    l1.map4k(0x5000, 0x100000, kRwx);
    l1.poke(path_entry(level), 0);
    ASSERT_TRUE(l1.mmu.load_eptp(l1.vcpu, eptp_for(kPml4, false)));
    const L2Access a = l1.access(0x5008, AccessKind::Write);
    ASSERT_FALSE(a);
    EXPECT_EQ(a.error().kind, ExitKind::ToL1);
    EXPECT_EQ(a.error().fault.kind, x86::EptFaultKind::Violation);
    EXPECT_EQ(a.error().fault.level, level);
    // A write, nothing readable/writable/executable on a path with a not-present entry.
    EXPECT_EQ(a.error().fault.exit_qualification, eq::DataWrite::mask | kLinear);
  }
}

TEST(ShadowEpt, RightDeniedAtEachLevelIsAViolationWithTheRightsOfThePath) {
  for (unsigned level = 4; level >= 1; --level) {
    SCOPED_TRACE(level);
    L1 l1;
    l1.map4k(0x5000, 0x100000, kRwx);
    l1.poke(path_entry(level), (l1.peek(path_entry(level)) & ~kRwx) | ept::R::mask | ept::W::mask);
    ASSERT_TRUE(l1.mmu.load_eptp(l1.vcpu, eptp_for(kPml4, false)));
    // A read succeeds and builds the shadow leaf; a fetch from the same page does not.
    ASSERT_TRUE(l1.access(0x5000, AccessKind::Read));
    const L2Access a = l1.access(0x5010, AccessKind::Fetch);
    ASSERT_FALSE(a);
    EXPECT_EQ(a.error().fault.kind, x86::EptFaultKind::Violation);
    EXPECT_EQ(a.error().fault.exit_qualification,
              eq::Fetch::mask | eq::Readable::mask | eq::Writable::mask | kLinear);
    EXPECT_EQ(l1.mmu.stats().reflected, 1u);
  }
}

TEST(ShadowEpt, MisconfigurationIsReflected) {
  L1 l1;
  l1.map4k(0x5000, 0x100000, ept::W::mask);  // write without read
  ASSERT_TRUE(l1.mmu.load_eptp(l1.vcpu, eptp_for(kPml4, false)));
  const L2Access a = l1.access(0x5000, AccessKind::Read);
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().kind, ExitKind::ToL1);
  EXPECT_EQ(a.error().fault.kind, x86::EptFaultKind::Misconfig);
  EXPECT_EQ(a.error().fault.level, 1u);
}

TEST(ShadowEpt, InvalidEptpFailsTheEntryAndEveryAccess) {
  L1 l1;
  const auto loaded = l1.mmu.load_eptp(l1.vcpu, kPml4 | 1u | (3u << 3));  // memory type 1
  ASSERT_FALSE(loaded);
  EXPECT_EQ(loaded.error(), x86::EptpError::MemoryType);
  const L2Access a = l1.access(0x5000, AccessKind::Read);
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().fault.kind, x86::EptFaultKind::InvalidEptp);
}

TEST(ShadowEpt, AccessedAndDirtyBitsAreSetAsTheArchitectureSays) {
  L1 l1;
  l1.map4k(0x5000, 0x100000, kRwx);
  ASSERT_TRUE(l1.mmu.load_eptp(l1.vcpu, eptp_for(kPml4, true)));
  ASSERT_TRUE(l1.access(0x5000, AccessKind::Read));
  for (unsigned level = 4; level >= 1; --level) {
    EXPECT_TRUE(ept::A::get(l1.peek(path_entry(level)))) << level;
  }
  EXPECT_FALSE(ept::D::get(l1.peek(path_entry(1))));
  // The leaf is clean: the first write must reach L1's tables to set D, then writes hit.
  ASSERT_TRUE(l1.access(0x5000, AccessKind::Write));
  EXPECT_TRUE(ept::D::get(l1.peek(path_entry(1))));
  EXPECT_FALSE(ept::D::get(l1.peek(path_entry(2))));  // D only in the leaf
  EXPECT_EQ(l1.mmu.stats().faults, 2u);
  ASSERT_TRUE(l1.access(0x5008, AccessKind::Write));
  EXPECT_EQ(l1.mmu.stats().faults, 2u);
  EXPECT_EQ(l1.mmu.check_invariants(), std::nullopt);
}

TEST(ShadowEpt, TwoHugeL1LeavesOverTheSameFramesKeepTheirOwnDirtyBits) {
  // PD[0] and PD[1] both map L1 0x400000 as 2 MiB pages; only PD[0] is dirty.
  L1 l1;
  l1.poke(kPd, 0x400000 | kRwx | kWb | ept::PS::mask | ept::A::mask | ept::D::mask);
  l1.poke(kPd + 8, 0x400000 | kRwx | kWb | ept::PS::mask | ept::A::mask);
  ASSERT_TRUE(l1.mmu.load_eptp(l1.vcpu, eptp_for(kPml4, true)));
  ASSERT_TRUE(l1.access(0x3000, AccessKind::Write));
  ASSERT_TRUE(l1.access(0x203000, AccessKind::Read));
  ASSERT_TRUE(l1.access(0x203000, AccessKind::Write));  // through PD[1]: must set its D
  EXPECT_TRUE(ept::D::get(l1.peek(kPd + 8)));
  EXPECT_EQ(l1.mmu.check_invariants(), std::nullopt);
}

TEST(ShadowEpt, L1EptPagesAreNeverWritableThroughTheShadow) {
  L1 l1;
  // L2 0x7000 maps L1's own page table, writable and dirty; L2 0x6000 maps a data page that
  // L1 later turns into a page table.
  l1.map4k(0x7000, kPt, kRwx | ept::D::mask);
  l1.map4k(0x6000, 0x300000, kRwx | ept::D::mask);
  ASSERT_TRUE(l1.mmu.load_eptp(l1.vcpu, eptp_for(kPml4, false)));
  const L2Access w = l1.access(0x7000, AccessKind::Write);
  EXPECT_TRUE(l1.mmu.write_tracked(gfn_of(Gpa(kPt))));  // shadowed on the way
  ASSERT_TRUE(w);
  EXPECT_TRUE(w->emulate);  // L0 emulates the write: write_l1
  ASSERT_TRUE(l1.access(0x7000, AccessKind::Write));
  EXPECT_EQ(l1.mmu.stats().hits, 0u);  // the leaf stayed read-only

  ASSERT_TRUE(l1.access(0x6000, AccessKind::Write));
  ASSERT_TRUE(l1.access(0x6000, AccessKind::Write));
  EXPECT_EQ(l1.mmu.stats().hits, 1u);
  // L1 links 0x300000 as the page table of L2 0x200000..0x3fffff; once shadowed, it is tracked.
  l1.mmu.write_l1(Gpa(kPd + 8), 0x300000 | kTable);
  l1.mmu.write_l1(Gpa(0x300000), 0x100000 | kRwx | kWb);
  ASSERT_TRUE(l1.access(0x200000, AccessKind::Read));
  EXPECT_TRUE(l1.mmu.write_tracked(gfn_of(Gpa(0x300000))));
  const std::uint64_t hits = l1.mmu.stats().hits;
  const L2Access again = l1.access(0x6000, AccessKind::Write);
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->emulate);
  EXPECT_EQ(l1.mmu.stats().hits, hits);
  EXPECT_EQ(l1.mmu.check_invariants(), std::nullopt);
}

TEST(ShadowEpt, L1EditingAnEntryThenInveptSeesTheNewMapping) {
  L1 l1;
  l1.map4k(0x5000, 0x100000, kRwx);
  ASSERT_TRUE(l1.mmu.load_eptp(l1.vcpu, eptp_for(kPml4, false)));
  ASSERT_TRUE(l1.access(0x5000, AccessKind::Read));
  // The write traps (the frame is tracked) and drops the entry's shadow.
  l1.mmu.write_l1(Gpa(path_entry(1)), 0x105000 | ept::R::mask | kWb);
  l1.mmu.invept_single(eptp_for(kPml4, false));
  const L2Access a = l1.access(0x5000, AccessKind::Read);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->l1_gpa, Gpa(0x105000));
  EXPECT_EQ(a->host, l1.host_of(0x105000));
  const L2Access w = l1.access(0x5000, AccessKind::Write);
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().fault.exit_qualification, eq::DataWrite::mask | eq::Readable::mask | kLinear);
  // Removing the mapping: the next access exits to L1 even without INVEPT.
  l1.mmu.write_l1(Gpa(path_entry(2)), 0);
  ASSERT_FALSE(l1.access(0x5000, AccessKind::Read));
  EXPECT_EQ(l1.mmu.check_invariants(), std::nullopt);
}

TEST(ShadowEpt, InveptSingleDropsThatEptpsRootOnlyAndAllContextDropsEvery) {
  L1 l1;
  l1.map4k(0x5000, 0x100000, kRwx);
  constexpr std::uint64_t kOther = 0x20000;
  l1.poke(kOther, kPdpt | kTable);  // a second EPT sharing the lower tables
  ShadowEptVcpu other;
  ASSERT_TRUE(l1.mmu.load_eptp(l1.vcpu, eptp_for(kPml4, false)));
  ASSERT_TRUE(l1.mmu.load_eptp(other, eptp_for(kOther, false)));
  ASSERT_TRUE(l1.access(0x5000, AccessKind::Read));
  ASSERT_TRUE(l1.mmu.access(other, Gpa(0x5000), AccessKind::Read));
  EXPECT_EQ(l1.mmu.stats().roots_built, 2u);

  l1.mmu.invept_single(eptp_for(kOther, false));
  const std::uint64_t faults = l1.mmu.stats().faults;
  ASSERT_TRUE(l1.access(0x5000, AccessKind::Read));
  EXPECT_EQ(l1.mmu.stats().faults, faults);  // the other EPTP's root untouched
  ASSERT_TRUE(l1.mmu.access(other, Gpa(0x5000), AccessKind::Read));
  EXPECT_EQ(l1.mmu.stats().faults, faults + 1);
  EXPECT_EQ(l1.mmu.stats().roots_built, 3u);

  l1.mmu.invept_all();
  ASSERT_TRUE(l1.access(0x5000, AccessKind::Read));
  ASSERT_TRUE(l1.mmu.access(other, Gpa(0x5000), AccessKind::Read));
  EXPECT_EQ(l1.mmu.stats().faults, faults + 3);
  EXPECT_EQ(l1.mmu.check_invariants(), std::nullopt);
}

TEST(ShadowEpt, EptpSwitchAndBackRebuildsNothing) {
  L1 l1;
  l1.map4k(0x5000, 0x100000, kRwx);
  constexpr std::uint64_t kOther = 0x20000, kOtherPdpt = 0x21000;
  l1.poke(kOther, kOtherPdpt | kTable);
  l1.poke(kOtherPdpt, kPd | ept::R::mask);  // L1's second guest: read-only view
  const std::uint64_t a = eptp_for(kPml4, false), b = eptp_for(kOther, false);
  const auto root_a = l1.mmu.load_eptp(l1.vcpu, a);
  ASSERT_TRUE(root_a);
  ASSERT_TRUE(l1.access(0x5000, AccessKind::Write));
  ASSERT_TRUE(l1.mmu.load_eptp(l1.vcpu, b));
  ASSERT_FALSE(l1.access(0x5000, AccessKind::Write));  // the right EPT is in use
  ASSERT_TRUE(l1.access(0x5000, AccessKind::Read));
  const NestedStats before = l1.mmu.stats();
  const auto back = l1.mmu.load_eptp(l1.vcpu, a);
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, *root_a);
  ASSERT_TRUE(l1.access(0x5000, AccessKind::Write));
  const NestedStats after = l1.mmu.stats();
  EXPECT_EQ(after.root_switches, before.root_switches + 1);
  EXPECT_EQ(after.roots_built, before.roots_built);
  EXPECT_EQ(after.faults, before.faults);
  EXPECT_EQ(after.pages, before.pages);
  EXPECT_EQ(after.hits, before.hits + 1);
}

TEST(ShadowEpt, TheRootCacheKeepsTheMostRecentEptps) {
  L1 l1;
  l1.map4k(0x5000, 0x100000, kRwx);
  std::vector<std::uint64_t> eptps;
  for (std::uint64_t i = 0; i <= ShadowEptVcpu::kCachedRoots; ++i) {
    const std::uint64_t pml4 = 0x40000 + i * 0x1000;
    l1.poke(pml4, kPdpt | kTable);
    eptps.push_back(eptp_for(pml4, false));
    ASSERT_TRUE(l1.mmu.load_eptp(l1.vcpu, eptps.back()));
  }
  // The oldest left the cache; the others are switched to without a build.
  const std::uint64_t built = l1.mmu.stats().roots_built;
  for (std::size_t i = 1; i < eptps.size(); ++i) ASSERT_TRUE(l1.mmu.load_eptp(l1.vcpu, eptps[i]));
  EXPECT_EQ(l1.mmu.stats().roots_built, built);
  EXPECT_EQ(l1.mmu.stats().root_switches, ShadowEptVcpu::kCachedRoots);
}

}  // namespace
}  // namespace vmmu::nested::test
