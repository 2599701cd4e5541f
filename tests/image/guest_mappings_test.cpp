// Listing every mapping of a guest from its memory image, in every paging mode, from raw
// images and ELF cores alike (each test runs on both).

#include <gtest/gtest.h>

#include <vector>

#include "image/support/image_builder.hpp"
#include "image/support/page_sizes.hpp"
#include "image/support/x86_tables.hpp"
#include "vmmu/image/guest_mappings.hpp"
#include "vmmu/image/memory_image.hpp"

namespace vmmu::image {
namespace {

using testing::GuestPages;
using testing::TempDir;
using testing::X86Tables;
using x86::PagingMode;
namespace b = testing::bits;


struct Listing {
  std::vector<GuestMapping> maps;
  MappingCounts counts;
};

class Mappings : public ::testing::TestWithParam<ImageKind> {
 protected:
  Listing list(const x86::Registers& regs, x86::CpuModel cpu = {}) {
    const std::string path = dir.file(GetParam() == ImageKind::Raw ? "raw" : "core");
    if (GetParam() == ImageKind::Raw) {
      std::uint64_t end = 0;
      for (const auto& [gfn, _] : pages.pages()) end = std::max(end, (gfn + 1) << kPageShift);
      testing::write_raw_image(path, pages, end);
    } else {
      // One segment per written page, in descending gpa order: lookups must sort them.
      std::vector<testing::ElfRange> ranges;
      for (const auto& [gfn, _] : pages.pages()) ranges.insert(ranges.begin(), {Gpa(gfn << kPageShift), kPageSize});
      testing::write_elf_core(path, pages, ranges);
    }
    auto image = MemoryImage::open(path);
    EXPECT_TRUE(image) << to_string(image.error());
    Listing out;
    out.counts = for_each_mapping(x86::GuestPaging::from(regs, cpu), *image,
                                  [&](const GuestMapping& m) { out.maps.push_back(m); });
    EXPECT_EQ(out.counts.mappings, out.maps.size());
    return out;
  }

  TempDir dir;
  GuestPages pages;
};

std::string name(const ::testing::TestParamInfo<ImageKind>& info) {
  return info.param == ImageKind::Raw ? "Raw" : "ElfCore";
}

TEST_P(Mappings, FourLevelListsEveryLeafInAscendingCanonicalOrder) {
  X86Tables t(pages, PagingMode::Long4, Gpa(0x1000), Gpa(0x100000));
  t.map(0xffffffff81000000, 0x1000000, M2, b::RW | b::A | b::D | b::G);
  t.map(0x400000, 0x7000, K4, b::US | b::A);
  t.map(0x401000, 0x9000, K4, b::US | b::RW | b::XD);
  t.map(0x40000000, 0x80000000, G1, b::US | b::RW | b::PCD | b::PWT);
  const Listing l = list(testing::registers_for(PagingMode::Long4, Gpa(0x1000)));
  ASSERT_EQ(l.maps.size(), 4u);
  EXPECT_EQ(l.counts.reserved_paths, 0u);

  EXPECT_EQ(l.maps[0].gva, Gva(0x400000));
  EXPECT_EQ(l.maps[0].gpa, Gpa(0x7000));
  EXPECT_EQ(l.maps[0].page_size, K4);
  EXPECT_TRUE(l.maps[0].user);
  EXPECT_FALSE(l.maps[0].write);
  EXPECT_FALSE(l.maps[0].nx);
  EXPECT_TRUE(l.maps[0].accessed);

  EXPECT_EQ(l.maps[1].gva, Gva(0x401000));
  EXPECT_TRUE(l.maps[1].write);
  EXPECT_TRUE(l.maps[1].nx);
  EXPECT_FALSE(l.maps[1].accessed);

  EXPECT_EQ(l.maps[2].gva, Gva(0x40000000));  // a 1 GiB page
  EXPECT_EQ(l.maps[2].gpa, Gpa(0x80000000));
  EXPECT_EQ(l.maps[2].page_size, G1);
  EXPECT_EQ(l.maps[2].level, 3u);
  EXPECT_TRUE(l.maps[2].pcd);
  EXPECT_TRUE(l.maps[2].pwt);

  EXPECT_EQ(l.maps[3].gva, Gva(0xffffffff81000000));  // upper half after the lower, sign-extended
  EXPECT_EQ(l.maps[3].gpa, Gpa(0x1000000));
  EXPECT_EQ(l.maps[3].page_size, M2);
  EXPECT_FALSE(l.maps[3].user);
  EXPECT_TRUE(l.maps[3].global);
  EXPECT_TRUE(l.maps[3].dirty);
}

TEST_P(Mappings, EffectiveUserAndWriteAreAndOverThePath) {
  X86Tables t(pages, PagingMode::Long4, Gpa(0x1000), Gpa(0x100000));
  // The PDPT entry for this gva grants neither U nor W: the leaf's own U/W do not matter.
  t.table(0x7f0000000000, 2, b::P);
  t.map(0x7f0000000000, 0x5000, K4, b::US | b::RW);
  const Listing l = list(testing::registers_for(PagingMode::Long4, Gpa(0x1000)));
  ASSERT_EQ(l.maps.size(), 1u);
  EXPECT_FALSE(l.maps[0].user);
  EXPECT_FALSE(l.maps[0].write);
}

TEST_P(Mappings, ExecuteDisableAnywhereOnThePathMakesNx) {
  X86Tables t(pages, PagingMode::Long4, Gpa(0x1000), Gpa(0x100000));
  t.table(0x200000, 1, b::P | b::RW | b::US | b::XD);  // XD in the PML4E, PDPTE and PDE
  t.map(0x200000, 0x5000, K4, b::US);
  const Listing l = list(testing::registers_for(PagingMode::Long4, Gpa(0x1000)));
  ASSERT_EQ(l.maps.size(), 1u);
  EXPECT_TRUE(l.maps[0].nx);
}

TEST_P(Mappings, FiveLevelSignExtendsFromBit56) {
  X86Tables t(pages, PagingMode::Long5, Gpa(0x1000), Gpa(0x100000));
  t.map(0x0100000000000000, 0x3000, K4, b::RW);   // bit 56 set: the upper half
  t.map(0x00ff000000000000, 0x4000, K4, b::RW);   // beyond 48 bits, still the lower half
  const Listing l = list(testing::registers_for(PagingMode::Long5, Gpa(0x1000)));
  ASSERT_EQ(l.maps.size(), 2u);
  EXPECT_EQ(l.maps[0].gva, Gva(0x00ff000000000000));
  EXPECT_EQ(l.maps[1].gva, Gva(0xff00000000000000));
  EXPECT_EQ(l.maps[1].gpa, Gpa(0x3000));
}

TEST_P(Mappings, PaeRootIs32ByteAlignedNotPageAligned) {
  // CR3 = 0x1fe0: the four PDPTEs sit in the last 32 bytes of the page (Intel SDM 4.4.1).
  X86Tables t(pages, PagingMode::Pae, Gpa(0x1fe0), Gpa(0x100000));
  t.map(0xc0000000, 0x200000, M2, b::RW | b::G);
  t.map(0x08048000, 0x6000, K4, b::US);
  const Listing l = list(testing::registers_for(PagingMode::Pae, Gpa(0x1fe0)));
  ASSERT_EQ(l.maps.size(), 2u);
  EXPECT_EQ(l.maps[0].gva, Gva(0x08048000));
  EXPECT_EQ(l.maps[0].gpa, Gpa(0x6000));
  EXPECT_TRUE(l.maps[0].user);  // PDPTEs carry no U/S: only the PDE and PTE count
  EXPECT_EQ(l.maps[1].gva, Gva(0xc0000000));
  EXPECT_EQ(l.maps[1].page_size, M2);
  EXPECT_TRUE(l.maps[1].write);
}

TEST_P(Mappings, PaePdpteWithReservedBitIsCountedNotListed) {
  X86Tables t(pages, PagingMode::Pae, Gpa(0x1000), Gpa(0x100000));
  t.map(0x00000000, 0x6000, K4, b::RW);
  t.map(0x40000000, 0x7000, K4, b::RW);
  t.set(Gpa(0x1000), 1, t.get(Gpa(0x1000), 1) | b::RW);  // R/W is reserved in a PAE PDPTE
  const Listing l = list(testing::registers_for(PagingMode::Pae, Gpa(0x1000)));
  ASSERT_EQ(l.maps.size(), 1u);
  EXPECT_EQ(l.maps[0].gva, Gva(0));
  EXPECT_EQ(l.counts.reserved_paths, 1u);
}

TEST_P(Mappings, ThirtyTwoBitPse36LargePageReachesAbove4GiB) {
  X86Tables t(pages, PagingMode::Bits32, Gpa(0x1000), Gpa(0x100000));
  t.map(0x00400000, 0x2400000000, M4, b::RW);  // PA bits 39:32 = 0x24 through PSE-36
  t.map(0x80001000, 0x3000, K4, b::US | b::RW | b::D);
  const Listing l = list(testing::registers_for(PagingMode::Bits32, Gpa(0x1000)), {.maxphyaddr = 40});
  ASSERT_EQ(l.maps.size(), 2u);
  EXPECT_EQ(l.maps[0].gva, Gva(0x400000));
  EXPECT_EQ(l.maps[0].gpa, Gpa(0x2400000000));
  EXPECT_EQ(l.maps[0].page_size, M4);
  EXPECT_FALSE(l.maps[0].nx);
  EXPECT_EQ(l.maps[1].gva, Gva(0x80001000));
  EXPECT_TRUE(l.maps[1].user && l.maps[1].write && l.maps[1].dirty);
}

TEST_P(Mappings, ThirtyTwoBitWithoutPseTreatsPsAsTablePointer) {
  // CR4.PSE = 0: PDE bit 7 is ignored (Intel SDM table 4-5), the PDE points to a page table.
  X86Tables t(pages, PagingMode::Bits32, Gpa(0x1000), Gpa(0x100000));
  t.set(Gpa(0x1000), 1, 0x5000 | b::P | b::RW | b::PS);
  t.set(Gpa(0x5000), 2, 0x9000 | b::P);
  const Listing l = list(testing::registers_for(PagingMode::Bits32, Gpa(0x1000), true, /*pse=*/false));
  ASSERT_EQ(l.maps.size(), 1u);
  EXPECT_EQ(l.maps[0].gva, Gva(0x402000));
  EXPECT_EQ(l.maps[0].gpa, Gpa(0x9000));
  EXPECT_EQ(l.maps[0].page_size, K4);
}

TEST_P(Mappings, ReservedBitsEndPathsAndAreCounted) {
  X86Tables t(pages, PagingMode::Long4, Gpa(0x1000), Gpa(0x100000));
  t.map(0x1000, 0x5000, K4, b::RW);                                   // kept
  t.map(0x2000, 0x6000 | (std::uint64_t{1} << 45), K4, b::RW);        // PA bit 45 >= MAXPHYADDR 40
  t.map(0x3000, 0x7000, K4, b::XD);                                   // XD with EFER.NXE = 0
  t.set(Gpa(0x1000), 5, 0x200000 | b::P | b::PS);                     // PS in a PML4E
  t.map(0x80000000, 0x400000, M2, 0x100000 /* bit 20: reserved in a 2M PDE */);
  x86::Registers regs = testing::registers_for(PagingMode::Long4, Gpa(0x1000), /*nxe=*/false);
  const Listing l = list(regs, {.maxphyaddr = 40});
  ASSERT_EQ(l.maps.size(), 1u);
  EXPECT_EQ(l.maps[0].gva, Gva(0x1000));
  EXPECT_EQ(l.counts.reserved_paths, 4u);
}

TEST_P(Mappings, SharedTablesListEveryPathLikeLinuxEspfix) {
  // Linux's espfix area: many PDPT entries share one PD, whose entries all share one PT that
  // maps one frame from 8 of its entries: 16 x 512 x 8 = 65,536 leaves, all to that frame.
  X86Tables t(pages, PagingMode::Long4, Gpa(0x1000), Gpa(0x100000));
  const Gpa pdpt = t.table(0xffffff0000000000, 3);
  const Gpa pd = t.allocate(), pt = t.allocate();
  for (unsigned i = 0; i < 8; ++i) t.set(pt, i * 64, 0x77000 | b::P | b::A | b::D | b::G | b::XD);
  for (unsigned i = 0; i < 512; ++i) t.set(pd, i, pt.raw() | b::P | b::RW | b::A);
  for (unsigned i = 0; i < 16; ++i) t.set(pdpt, i, pd.raw() | b::P | b::RW | b::A);
  const Listing l = list(testing::registers_for(PagingMode::Long4, Gpa(0x1000)));
  ASSERT_EQ(l.maps.size(), 65536u);
  for (std::size_t i = 0; i < l.maps.size(); ++i) {
    ASSERT_EQ(l.maps[i].gpa, Gpa(0x77000));
    ASSERT_EQ(l.maps[i].gva, Gva(0xffffff0000000000 + (i / 8) * M2 + (i % 8) * 64 * K4)) << i;
  }
}

TEST_P(Mappings, SelfReferencingTableTerminates) {
  // PML4[511] points to the PML4 itself (a recursive slot): below it every table is read
  // again one level lower, and the tables themselves show up as 4K pages.
  X86Tables t(pages, PagingMode::Long4, Gpa(0x1000), Gpa(0x2000));
  t.map(0, 0x9000, K4, b::RW);  // creates PDPT 0x2000, PD 0x3000, PT 0x4000
  t.set(Gpa(0x1000), 511, 0x1000 | b::P | b::RW);
  const Listing l = list(testing::registers_for(PagingMode::Long4, Gpa(0x1000)));
  const std::vector<std::pair<std::uint64_t, std::uint64_t>> want{
      {0x0, 0x9000},                   // the ordinary mapping
      {0xffffff8000000000, 0x4000},    // PML4 as PDPT -> PDPT as PD -> PD as PT -> PT as page
      {0xffffffffc0000000, 0x3000},    // ... one more trip through the slot: the PD
      {0xffffffffffe00000, 0x2000},    // the PDPT
      {0xfffffffffffff000, 0x1000}};   // the PML4 itself
  std::vector<std::pair<std::uint64_t, std::uint64_t>> got;
  for (const auto& m : l.maps) got.emplace_back(m.gva.raw(), m.gpa.raw());
  EXPECT_EQ(got, want);
}

TEST_P(Mappings, PagingOffListsNothing) {
  const Listing l = list(testing::registers_for(PagingMode::Off, Gpa(0)));
  EXPECT_TRUE(l.maps.empty());
}

INSTANTIATE_TEST_SUITE_P(BothImageKinds, Mappings, ::testing::Values(ImageKind::Raw, ImageKind::ElfCore), name);

TEST(CanonicalGva, SignExtendsOnlyInLongMode) {
  EXPECT_EQ(canonical_gva(0x800000000000, 48), Gva(0xffff800000000000));
  EXPECT_EQ(canonical_gva(0x7fffffffffff, 48), Gva(0x7fffffffffff));
  EXPECT_EQ(canonical_gva(0x100000000000000, 57), Gva(0xff00000000000000));
  EXPECT_EQ(canonical_gva(0x80000000, 32), Gva(0x80000000));
}

}  // namespace
}  // namespace vmmu::image
