// Shadow NPT (issue 13, AMD): L2 accesses through shadow tables built from L1's nested page
// tables -- hits, #NPF reflected to L1 with EXITINFO1 (error code + bit 32 / 33) and EXITINFO2,
// A/D bits in L1's tables, write tracking of L1's table frames, TLB_CONTROL flushes, nCR3
// switches, and shadow NPT pages keyed apart from shadow EPT pages and L1's own.

#include <gtest/gtest.h>

#include "nested/support/l1_npt.hpp"
#include "vmmu/nested/ept_kind.hpp"
#include "vmmu/nested/l2_walk.hpp"
#include "vmmu/shadow/role.hpp"

namespace vmmu::nested::npt_test {
namespace {

namespace pf = x86::pferr;

constexpr std::uint64_t kFinalUser = npf::kFinal | pf::kUser;

TEST(ShadowNpt, FaultThenHitMapsL2ToTheHostPageOfL1sFrame) {
  L1Npt l1;
  l1.map4k(0x5000, 0x100000);
  ASSERT_TRUE(l1.mmu.load_ncr3(l1.vcpu, root_at(kPml4)));
  for (int round = 0; round < 2; ++round) {
    const L2NptAccess a = l1.access(0x5123, AccessKind::Write);
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

// One entry on the path to L2 0x5000 changed at each level; the access's #NPF.
struct Case {
  const char* name;
  std::uint64_t clear, set;  // bits of the entry
  AccessKind op;
  std::uint64_t exit_info1;
  bool nxe = true;
  bool at_leaf = false;  // a right denied over the path: the walk faults at its leaf (level 1)
};

TEST(ShadowNpt, NpfAtEachLevelHasTheErrorCodeOfItsCause) {
  const std::uint64_t reserved = std::uint64_t{1} << kMaxPhyAddr;  // bits 51:M are reserved
  const Case cases[] = {
      {"not present", gpte::P::mask, 0, AccessKind::Write, pf::kWrite | kFinalUser},
      {"write to read-only", gpte::RW::mask, 0, AccessKind::Write, pf::kPresent | pf::kWrite | kFinalUser, true, true},
      {"U=0 (nested walks are user accesses)", gpte::US::mask, 0, AccessKind::Read, pf::kPresent | kFinalUser, true,
       true},
      {"NX fetch", 0, gpte::XD::mask, AccessKind::Fetch, pf::kPresent | pf::kFetch | kFinalUser, true, true},
      {"reserved bit", 0, reserved, AccessKind::Read, pf::kPresent | pf::kReserved | kFinalUser},
      {"NX without EFER.NXE is reserved", 0, gpte::XD::mask, AccessKind::Fetch,
       pf::kPresent | pf::kReserved | kFinalUser, false},
  };
  for (const Case& c : cases) {
    for (unsigned level = 4; level >= 1; --level) {
      SCOPED_TRACE(std::string(c.name) + " at level " + std::to_string(level));
      L1Npt l1;
      l1.map4k(0x5000, 0x100000);
      l1.poke(path_entry(level), (l1.peek(path_entry(level)) & ~c.clear) | c.set);
      ASSERT_TRUE(l1.mmu.load_ncr3(l1.vcpu, root_at(kPml4, c.nxe)));
      const L2NptAccess a = l1.access(0x5008, c.op);
      ASSERT_FALSE(a);
      EXPECT_EQ(a.error().kind, ExitKind::ToL1);
      EXPECT_EQ(a.error().fault.kind, NptFaultKind::Npf);
      EXPECT_EQ(a.error().fault.exit_info1, c.exit_info1);
      EXPECT_EQ(a.error().fault.exit_info2, Gpa(0x5008));
      EXPECT_EQ(a.error().fault.level, c.at_leaf ? 1u : level);
      EXPECT_EQ(l1.mmu.stats().reflected, 1u);
      EXPECT_EQ(l1.mmu.check_invariants(), std::nullopt);
    }
  }
}

TEST(ShadowNpt, ARightDeniedAfterAHitStillFaults) {
  // A read builds a leaf without W (L1's leaf is read-only): the write then walks and faults.
  L1Npt l1;
  l1.map4k(0x5000, 0x100000, gpte::P::mask | gpte::US::mask | gpte::XD::mask);
  ASSERT_TRUE(l1.mmu.load_ncr3(l1.vcpu, root_at(kPml4)));
  ASSERT_TRUE(l1.access(0x5000, AccessKind::Read));
  for (AccessKind op : {AccessKind::Write, AccessKind::Fetch}) {
    const L2NptAccess a = l1.access(0x5010, op);
    ASSERT_FALSE(a);
    EXPECT_EQ(a.error().fault.exit_info1,
              pf::kPresent | (op == AccessKind::Write ? pf::kWrite : pf::kFetch) | kFinalUser);
  }
}

TEST(ShadowNpt, InvalidNcr3FailsTheEntryAndEveryAccess) {
  L1Npt l1;
  const auto loaded = l1.mmu.load_ncr3(l1.vcpu, root_at(kPml4 | (std::uint64_t{1} << kMaxPhyAddr)));
  ASSERT_FALSE(loaded);
  EXPECT_EQ(loaded.error(), NptRootError::AddressBits);
  const L2NptAccess a = l1.access(0x5000, AccessKind::Read);
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().fault.kind, NptFaultKind::InvalidNcr3);
}

TEST(ShadowNpt, AccessedAndDirtyBitsAreSetInL1sTables) {
  L1Npt l1;
  l1.map4k(0x5000, 0x100000);
  ASSERT_TRUE(l1.mmu.load_ncr3(l1.vcpu, root_at(kPml4)));
  ASSERT_TRUE(l1.access(0x5000, AccessKind::Read));
  for (unsigned level = 4; level >= 1; --level) EXPECT_TRUE(gpte::A::get(l1.peek(path_entry(level)))) << level;
  EXPECT_FALSE(gpte::D::get(l1.peek(path_entry(1))));
  // The leaf is clean: the first write must reach L1's tables to set D, then writes hit.
  ASSERT_TRUE(l1.access(0x5000, AccessKind::Write));
  EXPECT_TRUE(gpte::D::get(l1.peek(path_entry(1))));
  EXPECT_EQ(l1.mmu.stats().faults, 2u);
  ASSERT_TRUE(l1.access(0x5008, AccessKind::Write));
  EXPECT_EQ(l1.mmu.stats().faults, 2u);
  EXPECT_EQ(l1.mmu.check_invariants(), std::nullopt);
}

TEST(ShadowNpt, HugeL1LeafIsShadowedPageByPageWithItsSize) {
  L1Npt l1;
  l1.poke(kPd + 8, 0x400000 | kUrw | gpte::PS::mask);  // L2 [2 MiB, 4 MiB) -> L1 [4 MiB, 6 MiB)
  ASSERT_TRUE(l1.mmu.load_ncr3(l1.vcpu, root_at(kPml4)));
  for (std::uint64_t off : {0x0ull, 0x1234ull, 0x1ff000ull}) {
    const L2NptAccess a = l1.access(0x200000 + off, AccessKind::Write);
    ASSERT_TRUE(a) << off;
    EXPECT_EQ(a->l1_gpa, Gpa(0x400000 + off));
    EXPECT_EQ(a->page_size, std::uint64_t{2} << 20);
  }
  EXPECT_EQ(l1.mmu.check_invariants(), std::nullopt);
}

TEST(ShadowNpt, L1TableFramesAreWriteTrackedAndNeverWritableForL2) {
  L1Npt l1;
  l1.map4k(0x5000, kPt);  // L2 sees L1's page table
  ASSERT_TRUE(l1.mmu.load_ncr3(l1.vcpu, root_at(kPml4)));
  const L2NptAccess a = l1.access(0x5000, AccessKind::Write);
  ASSERT_TRUE(a);
  EXPECT_TRUE(a->emulate);  // L0 must emulate the store (write_l1)
  for (std::uint64_t t : {kPml4, kPdpt, kPd, kPt}) EXPECT_TRUE(l1.mmu.write_tracked(gfn_of(Gpa(t)))) << t;
  EXPECT_EQ(l1.mmu.check_invariants(), std::nullopt);
}

TEST(ShadowNpt, L1EditingAnEntryIsSeenAtOnceAndAfterEachFlush) {
  L1Npt l1;
  l1.map4k(0x5000, 0x100000);
  ASSERT_TRUE(l1.mmu.load_ncr3(l1.vcpu, root_at(kPml4)));
  ASSERT_TRUE(l1.access(0x5000, AccessKind::Read));
  // L1 moves L2's page: its store to the write-tracked PT is trapped and emulated.
  l1.mmu.write_l1(Gpa(path_entry(1)), 0x180000 | kUrw);
  EXPECT_EQ(l1.peek(path_entry(1)), 0x180000 | kUrw);
  L2NptAccess a = l1.access(0x5000, AccessKind::Read);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->l1_gpa, Gpa(0x180000));
  // VMRUN with TLB_CONTROL = flush this ASID: the root is rebuilt, the mapping still L1's.
  const std::uint64_t built = l1.mmu.stats().roots_built;
  l1.mmu.flush_asid(l1.vcpu);
  l1.mmu.write_l1(Gpa(path_entry(1)), 0);  // and L1 unmaps the page
  a = l1.access(0x5000, AccessKind::Read);
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().fault.exit_info1, kFinalUser);
  EXPECT_EQ(l1.mmu.stats().roots_built, built + 1);
  // TLB_CONTROL = flush everything: every page goes, the next access rebuilds what it needs.
  l1.mmu.write_l1(Gpa(path_entry(1)), 0x100000 | kUrw);
  l1.mmu.flush_all();
  EXPECT_EQ(l1.mmu.stats().pages, 1u);  // the root the vCPU holds, unhashed
  a = l1.access(0x5000, AccessKind::Read);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->l1_gpa, Gpa(0x100000));
  EXPECT_EQ(l1.mmu.stats().invepts, 2u);
  EXPECT_EQ(l1.mmu.check_invariants(), std::nullopt);
}

TEST(ShadowNpt, Ncr3SwitchAndBackRebuildsNothing) {
  // A second L2: its own PML4, sharing L1's lower tables.
  L1Npt l1;
  constexpr std::uint64_t kOther = 0x30000;
  l1.map4k(0x5000, 0x100000);
  l1.poke(kOther, kPdpt | kUrw);
  // One VMRUN of each L2 and an access from each.
  const auto both = [&] {
    for (const std::uint64_t ncr3 : {kPml4, kOther}) {
      ASSERT_TRUE(l1.mmu.load_ncr3(l1.vcpu, root_at(ncr3)));
      ASSERT_TRUE(l1.access(0x5000, AccessKind::Read));
    }
  };
  both();
  const NestedStats before = l1.mmu.stats();
  EXPECT_EQ(before.roots_built, 2u);
  for (int i = 0; i < 3; ++i) both();
  const NestedStats after = l1.mmu.stats();
  EXPECT_EQ(after.roots_built, 2u);
  EXPECT_EQ(after.faults, before.faults);  // every access after the switch a hit
  EXPECT_EQ(after.root_switches, 6u);
  EXPECT_EQ(after.pages, before.pages);
}

// L2's own 4-level page tables at L2 0x10000.. (PML4, PDPT, PD, PT), mapping gva 0x7000 to L2
// gpa 0x5000; L1's nested PT maps those L2 frames (and 0x5000) to L1 frames.
struct TwoLevels : L1Npt {
  static constexpr std::uint64_t kL2Pml4 = 0x10000;
  TwoLevels() {
    for (std::uint64_t i = 0; i < 4; ++i) map4k(kL2Pml4 + i * 0x1000, 0x200000 + i * 0x1000);
    map4k(0x5000, 0x100000);
    // L2's tables, written in L1's frames behind them.
    poke(0x200000, (kL2Pml4 + 0x1000) | kUrw);
    poke(0x201000, (kL2Pml4 + 0x2000) | kUrw);
    poke(0x202000, (kL2Pml4 + 0x3000) | kUrw);
    poke(0x203000 + 7 * 8, 0x5000 | kUrw);
  }
  [[nodiscard]] x86::GuestPaging l2() const {
    x86::Registers r;
    r.cr0 = x86::cr0::PE::mask | x86::cr0::PG::mask;
    r.cr3 = kL2Pml4;
    r.cr4 = x86::cr4::PAE::mask;
    r.efer = x86::efer::LME::mask | x86::efer::LMA::mask;
    return x86::GuestPaging::from(r, kCpu);
  }
};

TEST(ShadowNpt, NpfOnAGuestTableAccessHasBit33AndOnTheFinalAccessBit32) {
  TwoLevels l1;
  ASSERT_TRUE(l1.mmu.load_ncr3(l1.vcpu, root_at(kPml4)));
  const auto ok = access_l2_gva(l1.mmu, l1.vcpu, l1.l2(), Gva(0x7008), Access::read());
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->access.l1_gpa, Gpa(0x100008));
  // L1 unmaps L2's PD: the walk's read of it is a user write for the nested walk.
  l1.mmu.write_l1(Gpa(kPt + ((TwoLevels::kL2Pml4 + 0x2000) >> 12) * 8), 0);
  auto a = access_l2_gva(l1.mmu, l1.vcpu, l1.l2(), Gva(0x7008), Access::read());
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().end, L2GvaEnd::Exit);
  EXPECT_TRUE(a.error().table_access);
  EXPECT_EQ(a.error().l2_gpa, Gpa(TwoLevels::kL2Pml4 + 0x2000));
  EXPECT_EQ(a.error().exit.fault.exit_info1, npf::kTables | pf::kWrite | pf::kUser);
  // The final access: L1 maps the PD again and makes the data page read-only.
  l1.mmu.write_l1(Gpa(kPt + ((TwoLevels::kL2Pml4 + 0x2000) >> 12) * 8), 0x202000 | kUrw);
  l1.mmu.write_l1(Gpa(path_entry(1)), 0x100000 | gpte::P::mask | gpte::US::mask);
  a = access_l2_gva(l1.mmu, l1.vcpu, l1.l2(), Gva(0x7008), Access::write());
  ASSERT_FALSE(a);
  EXPECT_FALSE(a.error().table_access);
  EXPECT_EQ(a.error().l2_gpa, Gpa(0x5008));
  EXPECT_EQ(a.error().exit.fault.exit_info1, npf::kFinal | pf::kPresent | pf::kWrite | pf::kUser);
  EXPECT_EQ(a.error().exit.fault.exit_info2, Gpa(0x5008));
}

TEST(NptRole, ShadowNptPagesNeverMixWithShadowEptPagesOrL1sOwn) {
  const auto npt = NptContext::from(root_at(kPml4), kCpu);
  const auto ept = x86::EptContext::from(kPml4 | x86::ept::kMemTypeWb | (3u << 3), {.maxphyaddr = kMaxPhyAddr});
  ASSERT_TRUE(npt && ept);
  const shadow::Role n = NptKind::root_role(*npt, kCpu);
  const shadow::Role e = EptKind::root_role(*ept, {.maxphyaddr = kMaxPhyAddr});
  // L1's own shadow root for the same frame, were L1 itself shadow-paged in long mode.
  const shadow::Role own = shadow::root_role(npt->paging(), 4);
  EXPECT_TRUE(n.npt());
  EXPECT_TRUE(n.guest_mode());
  EXPECT_FALSE(n.ept());
  EXPECT_NE(n, e);
  EXPECT_NE(n, own);
  EXPECT_NE(n, shadow::Role(own).set_guest_mode(true));  // an L2 under shadow paging
  EXPECT_NE(shadow::Role(n).set_npt(false), n);
  EXPECT_EQ(shadow::to_string(n), "level=4 access=7 nx guest_mode npt");
}

}  // namespace
}  // namespace vmmu::nested::npt_test
