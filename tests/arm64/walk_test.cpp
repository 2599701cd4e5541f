// The stage-2 walker: one test per architecture rule (Arm ARM D8, pseudocode
// AArch64.S2Translate / AArch64.S2Walk), faults at every level where they can occur.

#include <gtest/gtest.h>

#include <vector>

#include "arm64/support/stage2_builder.hpp"
#include "vmmu/arm64/walk.hpp"
#include "vmmu/core/page_size.hpp"
#include "vmmu/pt/table_iterator.hpp"

namespace vmmu::arm64 {
namespace {

using namespace vmmu::arm64::test_support;

Stage2 make(std::uint64_t vtcr, std::uint64_t vttbr, unsigned pa_bits = 48) {
  auto s = Stage2::from({vtcr, vttbr}, {pa_bits});
  EXPECT_TRUE(s) << to_string(s.error());
  return *s;
}

Layout layout(unsigned ipa, Granule g) { return *choose_layout(ipa, g); }

Fault fault(FaultKind k, int level) { return Fault{k, level}; }

// ---- the example of formats/arm64-s2-walk.md ------------------------------------------------

// VTCR_EL2 0x80023558: T0SZ = 0x18 (40-bit IPA), SL0 = 0b01 (4K: start level 1),
// IRGN0 = ORGN0 = 01, SH0 = 11, TG0 = 00 (4K), PS = 0b010 (40 bits), HA = HD = 0.
// A 40-bit IPA at level 1 resolves IPA[39:30]: 1024 entries, two concatenated 4K tables.
constexpr std::uint64_t kExampleVtcr = 0x80023558;

TEST(FormatExample, VtcrDecodesToTwoConcatenatedLevel1Tables) {
  const Stage2 s2 = make(kExampleVtcr, 0x40000000);
  ASSERT_FALSE(s2.setup_fault());
  EXPECT_EQ(s2.granule(), Granule::K4);
  EXPECT_EQ(s2.ipa_bits(), 40u);
  EXPECT_EQ(s2.layout().start_level, 1);
  EXPECT_EQ(s2.layout().concatenated(), 2u);
  EXPECT_EQ(s2.oa_bits(), 40u);
  EXPECT_FALSE(s2.hardware_access_flag());
}

TEST(FormatExample, CaseAsGivenFaultsAtLevel2) {
  // IPA 0x1234000: level-1 index IPA[39:30] = 0 -> 0x40001003, a table at 0x40001000.
  // Level-2 index IPA[29:21] = 0x9 -> 0x40001048, not in the case's memory: reads 0, invalid.
  SparseMemory<Hpa> mem;
  mem.write<std::uint64_t>(Hpa(0x40000000), 0x40001003);
  mem.write<std::uint64_t>(Hpa(0x40000008), 0);
  const Stage2 s2 = make(kExampleVtcr, 0x40000000);
  EXPECT_EQ(walk(s2, mem, Ipa(0x1234000), AccessKind::Read).error(), fault(FaultKind::Translation, 2));
}

TEST(FormatExample, CompletedTablesGiveTheDocumentedResults) {
  // Result 1: a 2M block at level 2 entry 9 with output 0x80200000 gives
  // 0x80200000 + IPA[20:0] (0x34000) = 0x80234000. Result 3: IPA 0xa000000 is level-2 entry
  // 0x50 -> a level-3 table whose entry 0 is a page with S2AP = 00: a permission fault at
  // level 3. (Result 2, a level-1 translation fault for 0x9000000, cannot come from the same
  // tables: 0x9000000 shares level-1 entry 0, a valid table, with 0x1234000.)
  SparseMemory<Hpa> mem;
  mem.write<std::uint64_t>(Hpa(0x40000000), 0x40001003);
  mem.write<std::uint64_t>(Hpa(0x40001000 + 8 * 0x9), block(0x80200000));
  mem.write<std::uint64_t>(Hpa(0x40001000 + 8 * 0x50), table(0x40002000));
  mem.write<std::uint64_t>(Hpa(0x40002000), page(0x90000000, kAf));
  const Stage2 s2 = make(kExampleVtcr, 0x40000000);
  auto ok = walk(s2, mem, Ipa(0x1234000), AccessKind::Read);
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->pa, Hpa(0x80234000));
  EXPECT_EQ(size_name(ok->block_size), "2M");
  EXPECT_EQ(walk(s2, mem, Ipa(0xa000000), AccessKind::Read).error(), fault(FaultKind::Permission, 3));
}

// ---- successful walks --------------------------------------------------------------------

TEST(Walk, FourLevelFourKPageAndBlocks) {
  const Layout l = layout(48, Granule::K4);
  Builder b(l);
  b.set(0x0000'1234'5678'9000, 3, page(0x7777'7000));
  b.set(0x0000'8000'4000'0000, 1, block(0x1'4000'0000));  // 1G
  b.set(0x0000'8000'0020'0000, 2, block(0x2000'0000));    // 2M
  const Stage2 s2 = make(vtcr_for(l), b.root());
  auto p = walk(s2, b.memory(), Ipa(0x0000'1234'5678'9abc), AccessKind::Write);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->pa, Hpa(0x7777'7abc));
  EXPECT_EQ(p->block_size, 4 * KiB);
  EXPECT_EQ(p->level, 3);
  auto g = walk(s2, b.memory(), Ipa(0x0000'8000'4123'4567), AccessKind::Read);
  ASSERT_TRUE(g);
  EXPECT_EQ(g->pa, Hpa(0x1'4123'4567));
  EXPECT_EQ(g->block_size, GiB);
  auto m = walk(s2, b.memory(), Ipa(0x0000'8000'003f'ffff), AccessKind::Read);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->pa, Hpa(0x201f'ffff));  // block base + IPA[20:0]
  EXPECT_EQ(m->block_size, 2 * MiB);
}

TEST(Walk, SixteenAndSixtyFourKPagesAndBlocks) {
  for (Granule gr : {Granule::K16, Granule::K64}) {
    SCOPED_TRACE(to_string(gr));
    const Layout l = layout(44, gr);
    const std::uint64_t gsz = granule_bytes(gr), bsz = 1ULL << level_shift(gr, 2);
    Builder b(l);
    b.set(3 * bsz + 5 * gsz, 3, page(0x9000'0000));
    b.set(7 * bsz, 2, block(0x4 * bsz));
    const Stage2 s2 = make(vtcr_for(l), b.root());
    auto p = walk(s2, b.memory(), Ipa(3 * bsz + 5 * gsz + 0x123), AccessKind::Read);
    ASSERT_TRUE(p);
    EXPECT_EQ(p->pa, Hpa(0x9000'0123));
    EXPECT_EQ(p->block_size, gsz);
    auto k = walk(s2, b.memory(), Ipa(7 * bsz + 0x1234), AccessKind::Read);
    ASSERT_TRUE(k);
    EXPECT_EQ(k->pa, Hpa(4 * bsz + 0x1234));
    EXPECT_EQ(k->block_size, bsz);
  }
}

TEST(Walk, ConcatenatedEntryTablesIndexTheLastTableForTheTopIpa) {
  // 4K, 43-bit IPA at level 1: 16 concatenated tables; the top GiB is entry 8191, in table 15.
  const Layout l = layout(43, Granule::K4);
  ASSERT_EQ(l.concatenated(), 16u);
  Builder b(l);
  const std::uint64_t top = (1ULL << 43) - 1;
  b.set(top, 1, block(0x3'c000'0000));
  EXPECT_EQ(b.slot(top, 1), Hpa(b.root() + 15 * 4096 + 511 * 8));
  const Stage2 s2 = make(vtcr_for(l), b.root());
  auto t = walk(s2, b.memory(), Ipa(top), AccessKind::Read);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->pa, Hpa(0x3'ffff'ffff));
}

TEST(Walk, SingleLevelWalkStartsAtLevel3) {
  const Layout l = layout(25, Granule::K64);
  ASSERT_EQ(l.start_level, 3);
  Builder b(l);
  b.set(0x1ff0000, 3, page(0x5550000));
  const Stage2 s2 = make(vtcr_for(l), b.root());
  auto t = walk(s2, b.memory(), Ipa(0x1ff1234), AccessKind::Read);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->pa, Hpa(0x5551234));
}

TEST(Walk, VttbrVmidCnpAndBitsBelowTheTableSizeAreIgnored) {
  const Layout l = layout(40, Granule::K4);  // 8K entry table
  Builder b(l);
  b.set(0x1000, 3, page(0x8000));
  const std::uint64_t noisy = b.root() | 0x1ff8 | 1 | (0x42ULL << 48);
  const Stage2 s2 = make(vtcr_for(l), noisy);
  EXPECT_EQ(s2.root(), Hpa(b.root()));
  EXPECT_TRUE(walk(s2, b.memory(), Ipa(0x1000), AccessKind::Read));
}

TEST(Walk, FormatWorksWithTheTableIterator) {
  const Layout l = layout(40, Granule::K4);
  Builder b(l);
  b.set(0x40'0000'0000 - 0x1000, 3, page(0x1000));  // last page, in the second concatenated table
  b.set(0x4000'0000, 1, block(0x4000'0000));
  const Stage2 s2 = make(vtcr_for(l), b.root());
  std::vector<std::pair<std::uint64_t, unsigned>> leaves;
  for (pt::TableIterator it(s2.format(), b.memory(), s2.root(), 0, 1ULL << 40); it.valid(); it.next()) {
    if (it.is_leaf()) leaves.emplace_back(it.address(), it.level());
  }
  const std::vector<std::pair<std::uint64_t, unsigned>> want{{0x4000'0000, 3}, {0x40'0000'0000 - 0x1000, 1}};
  EXPECT_EQ(leaves, want);
}

TEST(Walk, FormatDecodesDescriptorTypesAsTheArchitectureDefines) {
  for (Granule g : kAllGranules) {
    for (unsigned ipa : {25u, 32u, 40u, 48u}) {
      const Layout l = layout(ipa, g);
      const Stage2Format f(l);
      for (unsigned level = 1; level <= l.levels; ++level) {
        for (std::uint64_t low = 0; low < 4; ++low) {
          const std::uint64_t d = 0x0000'1234'5678'0000 | low;
          EXPECT_EQ(f.type(d, level), desc::decode_type(d, g, arm_level(level)))
              << to_string(g) << " IPA " << ipa << " level " << level << " low bits " << low;
        }
        EXPECT_EQ(f.leaf_address(0xffff'ffff'ffff'ffff, level).raw(),
                  desc::leaf_address_mask(g, arm_level(level)));
      }
    }
  }
}

// ---- translation faults -------------------------------------------------------------------

TEST(TranslationFault, InvalidDescriptorAtEveryLevel) {
  const Layout l = layout(48, Granule::K4);
  for (int level = 0; level <= 3; ++level) {
    SCOPED_TRACE(level);
    Builder b(l);
    b.set(0x1234'5678'9000, level, 0xfffffffffffffffe);  // bit 0 clear: invalid whatever the rest
    const Stage2 s2 = make(vtcr_for(l), b.root());
    EXPECT_EQ(walk(s2, b.memory(), Ipa(0x1234'5678'9000), AccessKind::Read).error(),
              fault(FaultKind::Translation, level));
  }
}

TEST(TranslationFault, BlockEncodingAtLevel3IsReserved) {
  for (Granule g : kAllGranules) {
    const Layout l = layout(40, g);
    Builder b(l);
    b.set(0x10000, 3, block(0x10000));
    const Stage2 s2 = make(vtcr_for(l), b.root());
    EXPECT_EQ(walk(s2, b.memory(), Ipa(0x10000), AccessKind::Read).error(), fault(FaultKind::Translation, 3));
  }
}

TEST(TranslationFault, FourKBlockAtLevel0NeedsLpa2) {
  const Layout l = layout(48, Granule::K4);
  Builder b(l);
  b.set(0, 0, block(0));
  const Stage2 s2 = make(vtcr_for(l), b.root());
  EXPECT_EQ(walk(s2, b.memory(), Ipa(0x1000), AccessKind::Read).error(), fault(FaultKind::Translation, 0));
}

TEST(TranslationFault, SixteenAndSixtyFourKBlockAtLevel1NeedsLpa) {
  for (Granule g : {Granule::K16, Granule::K64}) {
    const Layout l = layout(48, g);
    ASSERT_EQ(l.start_level, 1);
    Builder b(l);
    b.set(0, 1, block(0));
    const Stage2 s2 = make(vtcr_for(l), b.root());
    EXPECT_EQ(walk(s2, b.memory(), Ipa(0x1000), AccessKind::Read).error(), fault(FaultKind::Translation, 1));
  }
}

TEST(TranslationFault, IpaAboveTheIpaSizeFaultsAtLevel0) {
  const Layout l = layout(40, Granule::K4);
  Builder b(l);
  b.set(0, 1, block(0));
  const Stage2 s2 = make(vtcr_for(l), b.root());
  EXPECT_TRUE(walk(s2, b.memory(), Ipa(0x1000), AccessKind::Read));
  EXPECT_EQ(walk(s2, b.memory(), Ipa(1ULL << 40), AccessKind::Read).error(), fault(FaultKind::Translation, 0));
}

TEST(TranslationFault, InconsistentStartLevelFaultsEveryWalkAtLevel0) {
  Layout l = layout(40, Granule::K4);
  l.sl0 = 0;  // start level 2 cannot resolve 40 bits (at most 34)
  Builder b(layout(40, Granule::K4));
  b.set(0, 1, block(0));
  const Stage2 s2 = make(vtcr_for(l), b.root());
  EXPECT_EQ(s2.setup_fault(), LayoutError::StartLevelInconsistent);
  EXPECT_EQ(walk(s2, b.memory(), Ipa(0x1000), AccessKind::Read).error(), fault(FaultKind::Translation, 0));
}

TEST(TranslationFault, T0szOutOfRangeFaultsEveryWalkAtLevel0) {
  const Stage2 s2 = make((1ULL << 31) | 40 | (2ULL << 14) | (0ULL << 6), 0x40000000);
  EXPECT_EQ(s2.setup_fault(), LayoutError::T0szOutOfRange);
  SparseMemory<Hpa> mem;
  EXPECT_EQ(walk(s2, mem, Ipa(0), AccessKind::Read).error(), fault(FaultKind::Translation, 0));
}

TEST(TranslationFault, ReservedSl0FaultsEveryWalkAtLevel0) {
  // 4K, SL0 = 0b10 (level 0) on a CPU with a 40-bit PA range.
  Layout l = layout(44, Granule::K4);
  const Stage2 s2 = make(vtcr_for(l, 2), 0x40000000, 40);
  EXPECT_EQ(s2.setup_fault(), LayoutError::StartLevelReserved);
  SparseMemory<Hpa> mem;
  EXPECT_EQ(walk(s2, mem, Ipa(0), AccessKind::Read).error(), fault(FaultKind::Translation, 0));
}

// ---- address-size faults ------------------------------------------------------------------

TEST(AddressSizeFault, EntryTableAboveTheOutputSizeFaultsAtLevel0) {
  const Layout l = layout(39, Granule::K4);  // start level 1
  Builder b(l, 1ULL << 40);
  b.set(0, 1, block(0));
  const Stage2 s2 = make(vtcr_for(l, 2 /* 40 bits */), b.root());
  EXPECT_EQ(walk(s2, b.memory(), Ipa(0), AccessKind::Read).error(), fault(FaultKind::AddressSize, 0));
}

TEST(AddressSizeFault, TableAddressAboveTheOutputSizeFaultsAtTheTablesLevel) {
  const Layout l = layout(48, Granule::K4);
  for (int level = 0; level <= 2; ++level) {
    SCOPED_TRACE(level);
    Builder b(l);
    b.set(0x5000, level, table(1ULL << 44));
    const Stage2 s2 = make(vtcr_for(l, 4 /* 44 bits */), b.root());
    EXPECT_EQ(walk(s2, b.memory(), Ipa(0x5000), AccessKind::Read).error(), fault(FaultKind::AddressSize, level));
  }
}

TEST(AddressSizeFault, OutputAddressAboveTheOutputSizeFaultsAtTheLeafsLevel) {
  const Layout l = layout(48, Granule::K4);
  for (int level = 1; level <= 3; ++level) {
    SCOPED_TRACE(level);
    Builder b(l);
    b.set(0, level, level == 3 ? page(1ULL << 36) : block(1ULL << 36));
    const Stage2 s2 = make(vtcr_for(l, 1 /* 36 bits */), b.root());
    EXPECT_EQ(walk(s2, b.memory(), Ipa(0), AccessKind::Read).error(), fault(FaultKind::AddressSize, level));
  }
}

TEST(AddressSizeFault, PsIsCappedAtTheCpuPaRange) {
  const Layout l = layout(40, Granule::K4);
  Builder b(l);
  b.set(0, 3, page(1ULL << 40));
  const Stage2 s2 = make(vtcr_for(l, 5 /* 48 bits */), b.root(), 40);
  EXPECT_EQ(s2.oa_bits(), 40u);
  EXPECT_EQ(walk(s2, b.memory(), Ipa(0), AccessKind::Read).error(), fault(FaultKind::AddressSize, 3));
}

// ---- access-flag faults and hardware AF ---------------------------------------------------

TEST(AccessFlagFault, AfClearWithoutHaFaultsAtTheLeafsLevel) {
  const Layout l = layout(48, Granule::K4);
  for (int level = 1; level <= 3; ++level) {
    SCOPED_TRACE(level);
    Builder b(l);
    b.set(0, level, level == 3 ? page(0x1000, kRw) : block(0, kRw));
    const Stage2 s2 = make(vtcr_for(l), b.root());
    EXPECT_EQ(walk(s2, b.memory(), Ipa(0), AccessKind::Read).error(), fault(FaultKind::AccessFlag, level));
  }
}

TEST(AccessFlagFault, AccessFlagFaultIsCheckedBeforePermissions) {
  const Layout l = layout(40, Granule::K4);
  Builder b(l);
  b.set(0, 3, page(0x1000, 0));  // no AF, no permission
  const Stage2 s2 = make(vtcr_for(l), b.root());
  EXPECT_EQ(walk(s2, b.memory(), Ipa(0), AccessKind::Write).error(), fault(FaultKind::AccessFlag, 3));
}

TEST(HardwareAccessFlag, HaSetsAfInsteadOfFaulting) {
  const Layout l = layout(40, Granule::K4);
  Builder b(l);
  b.set(0, 3, page(0x1000, kRw));
  const Stage2 s2 = make(vtcr_for(l, 5, /*ha=*/true), b.root());
  ASSERT_TRUE(walk(s2, b.memory(), Ipa(0), AccessKind::Read));
  EXPECT_EQ(b.get(0, 3), page(0x1000, kRw | kAf));
}

TEST(HardwareAccessFlag, NoUpdateWhenTheAccessFaults) {
  const Layout l = layout(40, Granule::K4);
  Builder b(l);
  b.set(0, 3, page(0x1000, kRead));
  const Stage2 s2 = make(vtcr_for(l, 5, true), b.root());
  EXPECT_EQ(walk(s2, b.memory(), Ipa(0), AccessKind::Write).error(), fault(FaultKind::Permission, 3));
  EXPECT_EQ(b.get(0, 3), page(0x1000, kRead));
}

TEST(HardwareAccessFlag, UpdateCanBeSuppressed) {
  const Layout l = layout(40, Granule::K4);
  Builder b(l);
  b.set(0, 3, page(0x1000, kRw));
  const Stage2 s2 = make(vtcr_for(l, 5, true), b.root());
  ASSERT_TRUE(walk(s2, b.memory(), Ipa(0), AccessKind::Read, WalkOptions{.update_descriptors = false}));
  EXPECT_EQ(b.get(0, 3), page(0x1000, kRw));
}

// ---- permission faults and hardware dirty state -------------------------------------------

TEST(PermissionFault, S2apAndXnAtTheLeafsLevel) {
  const Layout l = layout(48, Granule::K4);
  struct Case {
    std::uint64_t attrs;
    AccessKind access;
    bool allowed;
  };
  const Case cases[] = {
      {kAf, AccessKind::Read, false},          {kAf | kRead, AccessKind::Read, true},
      {kAf | kRead, AccessKind::Write, false}, {kAf | kWrite, AccessKind::Write, true},
      {kAf | kWrite, AccessKind::Read, false}, {kAf | kRw | kXn, AccessKind::Fetch, false},
      {kAf, AccessKind::Fetch, true},  // execute-only: stage-2 fetches check only XN
  };
  for (int level = 1; level <= 3; ++level) {
    for (const Case& c : cases) {
      SCOPED_TRACE(::testing::Message() << "level " << level << " attrs " << std::hex << c.attrs << " "
                                      << to_string(c.access));
      Builder b(l);
      b.set(0, level, level == 3 ? page(0x1000, c.attrs) : block(0, c.attrs));
      const Stage2 s2 = make(vtcr_for(l), b.root());
      auto r = walk(s2, b.memory(), Ipa(0x10), c.access);
      if (c.allowed) {
        EXPECT_TRUE(r);
      } else {
        EXPECT_EQ(r.error(), fault(FaultKind::Permission, level));
      }
    }
  }
}

TEST(HardwareDirty, DbmMakesAWriteSetS2apWrite) {
  const Layout l = layout(40, Granule::K4);
  Builder b(l);
  b.set(0, 3, page(0x1000, kAf | kRead | kDbm));
  const Stage2 s2 = make(vtcr_for(l, 5, true, true), b.root());
  ASSERT_TRUE(walk(s2, b.memory(), Ipa(0), AccessKind::Read));
  EXPECT_EQ(b.get(0, 3), page(0x1000, kAf | kRead | kDbm));  // reads leave it clean
  auto w = walk(s2, b.memory(), Ipa(0), AccessKind::Write);
  ASSERT_TRUE(w);
  EXPECT_TRUE(w->writable);
  EXPECT_EQ(b.get(0, 3), page(0x1000, kAf | kRw | kDbm));
}

TEST(HardwareDirty, HdWithoutHaHasNoEffect) {
  const Layout l = layout(40, Granule::K4);
  Builder b(l);
  b.set(0, 3, page(0x1000, kAf | kRead | kDbm));
  const Stage2 s2 = make(vtcr_for(l, 5, false, true), b.root());
  EXPECT_EQ(walk(s2, b.memory(), Ipa(0), AccessKind::Write).error(), fault(FaultKind::Permission, 3));
}

TEST(HardwareDirty, WithoutDbmAWriteToAReadOnlyLeafFaults) {
  const Layout l = layout(40, Granule::K4);
  Builder b(l);
  b.set(0, 2, block(0, kAf | kRead));
  const Stage2 s2 = make(vtcr_for(l, 5, true, true), b.root());
  EXPECT_EQ(walk(s2, b.memory(), Ipa(0), AccessKind::Write).error(), fault(FaultKind::Permission, 2));
}

// ---- 52-bit output addresses: FEAT_LPA2 (4K, 16K with DS = 1) and FEAT_LPA (64K) ----------

// Descriptor address bits as the Arm ARM lays them out (D8.3), written out by hand here.
std::uint64_t lpa2(std::uint64_t pa) { return (pa & ((1ULL << 50) - 1)) | (((pa >> 50) & 3) << 8); }
std::uint64_t lpa(std::uint64_t pa) { return (pa & ((1ULL << 48) - 1)) | (((pa >> 48) & 0xf) << 12); }

TEST(FiftyTwoBit, Lpa2FourKPageAndLevel0BlockAboveTwoTo48) {
  const Layout l = *choose_layout(52, Granule::K4, true);
  Builder b(l);
  const std::uint64_t ipa = 0x000f'1234'5678'9000;
  b.set(ipa, 3, page(lpa2(0x000e'2222'3333'4000)));
  b.set(0x0008'0000'0000'0000, 0, block(lpa2(0x000c'8000'0000'0000)));  // 512G at level 0
  const Stage2 s2 = make(vtcr_for(l, 6), b.root(), 52);
  EXPECT_EQ(s2.oa_bits(), 52u);
  auto p = walk(s2, b.memory(), Ipa(ipa + 0xabc), AccessKind::Write);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->pa, Hpa(0x000e'2222'3333'4abc));
  auto g = walk(s2, b.memory(), Ipa(0x0008'0012'3456'789a), AccessKind::Read);
  ASSERT_TRUE(g);
  EXPECT_EQ(g->pa, Hpa(0x000c'8012'3456'789a));
  EXPECT_EQ(size_name(g->block_size), "512G");
  EXPECT_EQ(g->level, 0);
}

TEST(FiftyTwoBit, Lpa2SixteenKStartsAtLevel0AndMaps64GBlocks) {
  const Layout l = *choose_layout(52, Granule::K16, true);
  ASSERT_EQ(l.start_level, 0);
  Builder b(l);
  b.set(0x000f'0000'0000'0000, 1, block(lpa2(0x0004'0000'0000'0000)));  // 64G at level 1
  const Stage2 s2 = make(vtcr_for(l, 6), b.root(), 52);
  auto t = walk(s2, b.memory(), Ipa(0x000f'0000'1234'5678), AccessKind::Read);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->pa, Hpa(0x0004'0000'1234'5678));
  EXPECT_EQ(size_name(t->block_size), "64G");
}

TEST(FiftyTwoBit, LpaSixtyFourKTakesOa51To48FromBits15To12) {
  const Layout l = *choose_layout(52, Granule::K64, true);
  Builder b(l);
  b.set(0x000c'0000'0000'0000, 1, block(lpa(0x000a'0000'0000'0000)));  // 4T at level 1
  b.set(0x0000'0000'0001'0000, 3, page(lpa(0x0009'8765'4321'0000)));
  const Stage2 s2 = make(vtcr_for(l, 6), b.root(), 52);
  auto t = walk(s2, b.memory(), Ipa(0x000c'0123'4567'89ab), AccessKind::Read);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->pa, Hpa(0x000a'0123'4567'89ab));
  EXPECT_EQ(size_name(t->block_size), "4T");
  auto p = walk(s2, b.memory(), Ipa(0x1'0042), AccessKind::Read);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->pa, Hpa(0x0009'8765'4321'0042));
  // With PS = 48 the same page's output is out of range (the bits still count: PA range 52).
  const Stage2 narrow = make(vtcr_for(l, 5), b.root(), 52);
  EXPECT_EQ(walk(narrow, b.memory(), Ipa(0x1'0042), AccessKind::Read).error(), fault(FaultKind::AddressSize, 3));
}

TEST(FiftyTwoBit, WithoutDsBits9To8AreShareabilityNotAddress) {
  const Layout l = layout(48, Granule::K4);
  Builder b(l);
  b.set(0x1000, 3, page(0x8000 | (3ULL << 8)));  // SH = inner
  const Stage2 s2 = make(vtcr_for(l), b.root(), 52);
  auto t = walk(s2, b.memory(), Ipa(0x1000), AccessKind::Read);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->pa, Hpa(0x8000));
}

TEST(FiftyTwoBit, FourKLevelMinusOneWalksFiveLevels) {
  const Layout l = *decode_layout(Granule::K4, 64 - 52, 0, 52, true, true);
  Builder b(l);
  const std::uint64_t ipa = 0x000a'5555'6666'7000;
  b.set(ipa, 3, page(0x1234'5000));
  const Stage2 s2 = make(vtcr_for(l, 6), b.root(), 52);
  ASSERT_FALSE(s2.setup_fault());
  EXPECT_EQ(s2.format().geometry().levels(), 5u);
  auto t = walk(s2, b.memory(), Ipa(ipa + 0x10), AccessKind::Read);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->pa, Hpa(0x1234'5010));
  // An empty level -1 entry, and one pointing above the output size.
  EXPECT_EQ(walk(s2, b.memory(), Ipa(0x0001'0000'0000'0000), AccessKind::Read).error(),
            fault(FaultKind::Translation, -1));
  b.set(0x0002'0000'0000'0000, -1, table(lpa2(1ULL << 50)));
  const Stage2 s2_48 = make(vtcr_for(l, 5), b.root(), 52);
  EXPECT_EQ(walk(s2_48, b.memory(), Ipa(0x0002'0000'0000'0000), AccessKind::Read).error(),
            fault(FaultKind::AddressSize, -1));
}

TEST(FiftyTwoBit, VttbrBits5To2AreBaddr51To48) {
  const Layout l = *choose_layout(50, Granule::K4, true);
  const std::uint64_t root = 0x0003'0000'4000'0000;
  Builder b(l, root);
  b.set(0x2000, 3, page(0x9000));
  const std::uint64_t vttbr = (root & ((1ULL << 48) - 1)) | (3ULL << 2);
  const Stage2 s2 = make(vtcr_for(l, 6), vttbr, 52);
  EXPECT_EQ(s2.root(), Hpa(root));
  EXPECT_TRUE(walk(s2, b.memory(), Ipa(0x2000), AccessKind::Read));
}

TEST(FiftyTwoBit, DsAndSl2AreRes0WhereTheyDoNotApply) {
  const std::uint64_t base = vtcr_for(layout(40, Granule::K4));
  EXPECT_EQ(Stage2::from({base | (1ULL << 32), 0}, {48}).error(), ConfigError::DsNeedsLpa2);
  EXPECT_EQ(Stage2::from({base | (1ULL << 33), 0}, {52}).error(), ConfigError::Sl2Res0);
  const std::uint64_t k16 = vtcr_for(layout(40, Granule::K16)) | (1ULL << 32);
  EXPECT_EQ(Stage2::from({k16 | (1ULL << 33), 0}, {52}).error(), ConfigError::Sl2Res0);
  // DS with 64K has no effect: 52-bit 64K descriptors come from the PA range alone.
  const std::uint64_t k64 = vtcr_for(layout(40, Granule::K64));
  auto with_ds = Stage2::from({k64 | (1ULL << 32), 0}, {52});
  ASSERT_TRUE(with_ds);
  EXPECT_TRUE(with_ds->lpa());
  EXPECT_FALSE(Stage2::from({k64, 0}, {48})->lpa());
}

TEST(FaultStatusCode, LevelMinusOneHasCodesOfItsOwn) {
  EXPECT_EQ(fault_status_code({FaultKind::Translation, -1}), 0x2bu);
  EXPECT_EQ(fault_status_code({FaultKind::AddressSize, -1}), 0x29u);
  EXPECT_EQ(fault_status_code({FaultKind::ExternalAbort, -1}), 0x13u);
}

// ---- configuration vmmu refuses, and fault syndromes ----------------------------------------

TEST(Config, ReservedGranuleAndUnknownPaRangesAreRefused) {
  const std::uint64_t base = vtcr_for(layout(40, Granule::K4));
  EXPECT_EQ(Stage2::from({base | (3ULL << 14), 0}, {48}).error(), ConfigError::ReservedGranule);
  EXPECT_EQ(Stage2::from({base, 0}, {39}).error(), ConfigError::PaBitsUnsupported);
  EXPECT_EQ(Stage2::from({base, 0}, {56}).error(), ConfigError::PaBitsUnsupported);
  EXPECT_TRUE(Stage2::from({base, 0}, {52}));
}

TEST(FaultStatusCode, TypeAndLevelAsEsrDfsc) {
  EXPECT_EQ(fault_status_code({FaultKind::AddressSize, 0}), 0x00u);
  EXPECT_EQ(fault_status_code({FaultKind::Translation, 2}), 0x06u);
  EXPECT_EQ(fault_status_code({FaultKind::AccessFlag, 3}), 0x0bu);
  EXPECT_EQ(fault_status_code({FaultKind::Permission, 1}), 0x0du);
  EXPECT_EQ(fault_status_code({FaultKind::ExternalAbort, 3}), 0x17u);
}

}  // namespace
}  // namespace vmmu::arm64
