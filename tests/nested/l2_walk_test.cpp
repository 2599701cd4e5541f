// Two-dimensional L2 walks (issue 13 item 4): L2's own 4-level tables walked with every table
// access going through the shadow EPT. An L2 page fault goes to L2 with its error code; an
// EPT violation goes to L1 with bit 8 of the exit qualification telling a table access (clear)
// from the final access (set), SDM 27.2.1 table 27-7; A/D bits are set in L2's tables and,
// with EPTP bit 6, in L1's EPT (where reading a guest table counts as a write, 29.3.5).

#include <gtest/gtest.h>

#include "nested/support/l1_ept.hpp"
#include "vmmu/nested/l2_walk.hpp"
#include "vmmu/x86/guest_entry.hpp"
#include "vmmu/x86/registers.hpp"

namespace vmmu::nested::test {
namespace {

namespace eq = ept::exit_qual;
namespace gpte = x86::gpte;

// L2's tables at L2 gpas 0x1000..0x4000 (PML4, PDPT, PD, PT), its data page at L2 0x5000;
// L1's EPT maps L2 page n to L1 frame 0x100000 + n * 0x1000.
constexpr std::uint64_t kL2Pml4 = 0x1000, kL2Pdpt = 0x2000, kL2Pd = 0x3000, kL2Pt = 0x4000, kL2Data = 0x5000;
constexpr std::uint64_t kGva = 0x7000;  // PML4[0] PDPT[0] PD[0] PT[7]
constexpr std::uint64_t kL2Table = gpte::P::mask | gpte::RW::mask | gpte::US::mask;
constexpr std::uint64_t l1_of(std::uint64_t l2) { return 0x100000 + l2; }

struct L2 : L1 {
  x86::GuestPaging paging = x86::GuestPaging::from(x86::Registers{
      .cr0 = x86::cr0::PE::mask | x86::cr0::PG::mask | x86::cr0::WP::mask,
      .cr3 = kL2Pml4,
      .cr4 = x86::cr4::PAE::mask,
      .efer = x86::efer::LME::mask | x86::efer::LMA::mask,
  });

  explicit L2(bool ept_ad = false) {
    for (std::uint64_t page = kL2Pml4; page <= kL2Data; page += 0x1000) map4k(page, l1_of(page), kRwx);
    // L2's tables, written into the L1 frames behind their L2 gpas.
    poke(l1_of(kL2Pml4), kL2Pdpt | kL2Table);
    poke(l1_of(kL2Pdpt), kL2Pd | kL2Table);
    poke(l1_of(kL2Pd), kL2Pt | kL2Table);
    poke(l1_of(kL2Pt) + 7 * 8, kL2Data | kL2Table);
    EXPECT_TRUE(mmu.load_eptp(vcpu, eptp_for(kPml4, ept_ad)));
  }
  // L2's entries already accessed (and its leaf dirty): a walk writes nothing to L2's tables.
  void preset_accessed_dirty() {
    for (const std::uint64_t e : {l1_of(kL2Pml4), l1_of(kL2Pdpt), l1_of(kL2Pd)}) poke(e, peek(e) | gpte::A::mask);
    poke(l1_of(kL2Pt) + 7 * 8, peek(l1_of(kL2Pt) + 7 * 8) | gpte::A::mask | gpte::D::mask);
  }
  // L1's EPT leaf for L2 page `l2`.
  static std::uint64_t ept_leaf(std::uint64_t l2) { return kPt + (l2 >> 12) * 8; }
  L2GvaAccess at(std::uint64_t gva, Access a) { return access_l2_gva(mmu, vcpu, paging, Gva(gva), a); }
};

TEST(L2Walk, TranslatesThroughL2sTablesAndTheShadowEpt) {
  L2 l2;
  const L2GvaAccess a = l2.at(kGva + 0x123, Access::write());
  ASSERT_TRUE(a);
  EXPECT_EQ(a->l2_gpa, Gpa(kL2Data + 0x123));
  EXPECT_EQ(a->access.l1_gpa, Gpa(l1_of(kL2Data) + 0x123));
  EXPECT_EQ(a->access.host, l2.host_of(l1_of(kL2Data) + 0x123));
  // Four table reads and the data page: five L2 pages faulted into the shadow EPT.
  EXPECT_EQ(l2.mmu.stats().faults, 5u);
  EXPECT_EQ(l2.mmu.check_invariants(), std::nullopt);
}

TEST(L2Walk, L2PageFaultGoesToL2WithItsErrorCode) {
  L2 l2;
  // A user write to a supervisor, read-only page: present, write, user.
  l2.poke(l1_of(kL2Pt) + 7 * 8, kL2Data | gpte::P::mask);
  const L2GvaAccess a = l2.at(kGva + 0x10, Access::write(true));
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().end, L2GvaEnd::L2Fault);
  EXPECT_EQ(a.error().l2_fault.kind, x86::WalkFaultKind::PageFault);
  EXPECT_EQ(a.error().l2_fault.error_code, x86::pferr::kPresent | x86::pferr::kWrite | x86::pferr::kUser);
  EXPECT_EQ(a.error().cr2, Gva(kGva + 0x10));
  // Not present: error code 0 for a supervisor read, nothing reflected to L1.
  const L2GvaAccess b = l2.at(0x8000, Access::read());
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().l2_fault.error_code, 0u);
  EXPECT_EQ(l2.mmu.stats().reflected, 0u);
}

TEST(L2Walk, EptViolationOnAnL2TableReadHasBit8Clear) {
  L2 l2;
  l2.poke(L2::ept_leaf(kL2Pd), 0);  // L1 has not mapped L2's page directory
  const L2GvaAccess a = l2.at(kGva, Access::read());
  ASSERT_FALSE(a);
  ASSERT_EQ(a.error().end, L2GvaEnd::Exit);
  EXPECT_EQ(a.error().exit.kind, ExitKind::ToL1);
  EXPECT_EQ(a.error().l2_gpa, Gpa(kL2Pd));  // the PDE's L2 gpa, not the data's
  EXPECT_EQ(a.error().gla, Gva(kGva));
  EXPECT_TRUE(a.error().table_access);
  // A data read of a not-present page; the linear address valid, not its translation.
  EXPECT_EQ(a.error().exit.fault.exit_qualification, eq::DataRead::mask | eq::LinearValid::mask);
}

TEST(L2Walk, EptViolationOnTheFinalAccessHasBits7And8Set) {
  L2 l2;
  l2.poke(L2::ept_leaf(kL2Data), l1_of(kL2Data) | ept::R::mask | kWb);  // read-only for L2
  const L2GvaAccess a = l2.at(kGva + 8, Access::write());
  ASSERT_FALSE(a);
  ASSERT_EQ(a.error().end, L2GvaEnd::Exit);
  EXPECT_EQ(a.error().l2_gpa, Gpa(kL2Data + 8));
  EXPECT_FALSE(a.error().table_access);
  EXPECT_EQ(a.error().exit.fault.exit_qualification,
            eq::DataWrite::mask | eq::Readable::mask | eq::LinearValid::mask | eq::LinearTranslation::mask);
}

TEST(L2Walk, WithEptAccessedDirtyATableReadIsAWriteToEpt) {
  L2 l2(true);
  l2.preset_accessed_dirty();  // no A/D write: the read itself must need EPT's W
  l2.poke(L2::ept_leaf(kL2Pdpt), l1_of(kL2Pdpt) | ept::R::mask | kWb);  // L2's PDPT read-only in EPT
  const L2GvaAccess a = l2.at(kGva, Access::read());
  ASSERT_FALSE(a);
  ASSERT_EQ(a.error().end, L2GvaEnd::Exit);
  EXPECT_EQ(a.error().l2_gpa, Gpa(kL2Pdpt));
  EXPECT_EQ(a.error().exit.fault.exit_qualification,
            eq::DataRead::mask | eq::DataWrite::mask | eq::Readable::mask | eq::LinearValid::mask);
}

TEST(L2Walk, AccessedAndDirtyAreSetInL2sTablesAndInL1sEpt) {
  L2 l2(true);
  ASSERT_TRUE(l2.at(kGva, Access::write()));
  // L2's tables: A on the path, D in the leaf.
  for (const std::uint64_t e : {l2.peek(l1_of(kL2Pml4)), l2.peek(l1_of(kL2Pdpt)), l2.peek(l1_of(kL2Pd))}) {
    EXPECT_TRUE(gpte::A::get(e));
    EXPECT_FALSE(gpte::D::get(e));
  }
  const std::uint64_t pte = l2.peek(l1_of(kL2Pt) + 7 * 8);
  EXPECT_TRUE(gpte::A::get(pte) && gpte::D::get(pte));
  // L1's EPT: every page L2's walk touched is accessed and dirty (its tables: reads of guest
  // tables are EPT writes), and so is the data page written.
  for (std::uint64_t page = kL2Pml4; page <= kL2Data; page += 0x1000) {
    const std::uint64_t e = l2.peek(L2::ept_leaf(page));
    EXPECT_TRUE(ept::A::get(e) && ept::D::get(e)) << std::hex << page;
  }
  EXPECT_EQ(l2.mmu.check_invariants(), std::nullopt);
}

TEST(L2Walk, WithEptAccessedDirtyReadingL2sTablesDirtiesThemInL1sEpt) {
  L2 l2(true);
  l2.preset_accessed_dirty();  // the walk writes nothing to L2's tables
  ASSERT_TRUE(l2.at(kGva, Access::read()));
  for (std::uint64_t page = kL2Pml4; page <= kL2Pt; page += 0x1000) {
    EXPECT_TRUE(ept::D::get(l2.peek(L2::ept_leaf(page)))) << std::hex << page;
  }
  EXPECT_FALSE(ept::D::get(l2.peek(L2::ept_leaf(kL2Data))));  // the data page was only read
  EXPECT_TRUE(ept::A::get(l2.peek(L2::ept_leaf(kL2Data))));
}

TEST(L2Walk, WithoutEptAccessedDirtyL1sEptIsLeftAlone) {
  L2 l2;
  ASSERT_TRUE(l2.at(kGva, Access::write()));
  EXPECT_TRUE(gpte::D::get(l2.peek(l1_of(kL2Pt) + 7 * 8)));
  for (std::uint64_t page = kL2Pml4; page <= kL2Data; page += 0x1000) {
    EXPECT_EQ(l2.peek(L2::ept_leaf(page)) & (ept::A::mask | ept::D::mask), 0u) << std::hex << page;
  }
}

}  // namespace
}  // namespace vmmu::nested::test
