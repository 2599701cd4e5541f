// Stage-2 layouts: the start-level rules of VTCR_EL2 (Arm ARM D19 VTCR_EL2.SL0, pseudocode
// AArch64.S2InvalidSL / AArch64.S2InconsistentSL) and choose_layout() against KVM's table.

#include <gtest/gtest.h>

#include <vector>

#include "vmmu/arm64/layout.hpp"
#include "vmmu/core/page_size.hpp"

namespace vmmu::arm64 {
namespace {

struct Row {
  unsigned ipa;
  unsigned levels;
  std::uint64_t concatenated;
};

// KVM's choice (stage2_pgtable_levels) for IPA 32..48, as tabulated in the reference brief
// (arm64-stage2.md §1.3) from KVM's formula; rows below 32 bits are worked out by hand from
// AArch64.S2InconsistentSL: a 2-level walk needs at least S + G + 1 bits (16K: 26, 64K: 30),
// so smaller IPAs start at level 3 with one table.
const std::vector<Row> kFourK = {{25, 2, 1},  {26, 2, 1},  {27, 2, 1}, {28, 2, 1}, {29, 2, 1}, {30, 2, 1},
                                 {31, 2, 2},  {32, 2, 4},  {33, 2, 8}, {34, 2, 16}, {35, 3, 1}, {36, 3, 1},
                                 {37, 3, 1},  {38, 3, 1},  {39, 3, 1}, {40, 3, 2},  {41, 3, 4}, {42, 3, 8},
                                 {43, 3, 16}, {44, 4, 1},  {45, 4, 1}, {46, 4, 1},  {47, 4, 1}, {48, 4, 1}};
const std::vector<Row> kSixteenK = {{25, 1, 1}, {26, 2, 1}, {27, 2, 1}, {28, 2, 1}, {29, 2, 1}, {30, 2, 1},
                                    {31, 2, 1}, {32, 2, 1}, {33, 2, 1}, {34, 2, 1}, {35, 2, 1}, {36, 2, 1},
                                    {37, 2, 2}, {38, 2, 4}, {39, 2, 8}, {40, 2, 16}, {41, 3, 1}, {42, 3, 1},
                                    {43, 3, 1}, {44, 3, 1}, {45, 3, 1}, {46, 3, 1}, {47, 3, 1}, {48, 3, 2}};
const std::vector<Row> kSixtyFourK = {{25, 1, 1}, {26, 1, 1}, {27, 1, 1}, {28, 1, 1}, {29, 1, 1}, {30, 2, 1},
                                      {31, 2, 1}, {32, 2, 1}, {33, 2, 1}, {34, 2, 1}, {35, 2, 1}, {36, 2, 1},
                                      {37, 2, 1}, {38, 2, 1}, {39, 2, 1}, {40, 2, 1}, {41, 2, 1}, {42, 2, 1},
                                      {43, 2, 2}, {44, 2, 4}, {45, 2, 8}, {46, 2, 16}, {47, 3, 1}, {48, 3, 1}};

const std::vector<Row>& rows(Granule g) {
  return g == Granule::K4 ? kFourK : g == Granule::K16 ? kSixteenK : kSixtyFourK;
}

TEST(ChooseLayout, MatchesKvmForEveryGranuleAndIpaSize) {
  for (Granule g : kAllGranules) {
    for (const Row& row : rows(g)) {
      SCOPED_TRACE(::testing::Message() << to_string(g) << " IPA " << row.ipa);
      auto l = choose_layout(row.ipa, g);
      ASSERT_TRUE(l);
      EXPECT_EQ(l->levels, row.levels);
      EXPECT_EQ(l->start_level, static_cast<int>(4 - row.levels));
      EXPECT_EQ(l->concatenated(), row.concatenated);
    }
  }
}

TEST(ChooseLayout, EntryTableCoversTheIpaSpaceAndIsAlignedToItsSize) {
  for (Granule g : kAllGranules) {
    for (unsigned ipa = kMinIpaBits; ipa <= kMaxIpaBits; ++ipa) {
      SCOPED_TRACE(::testing::Message() << to_string(g) << " IPA " << ipa);
      auto l = choose_layout(ipa, g);
      ASSERT_TRUE(l);
      const pt::Geometry geo = l->geometry();
      EXPECT_EQ(geo.input_bits(), ipa);
      EXPECT_EQ(geo.levels(), l->levels);
      EXPECT_EQ(geo.shift(1), granule_shift(g));
      EXPECT_EQ(geo.table_bytes(geo.root_level()), l->entry_table_bytes());
      EXPECT_EQ(l->entry_table_alignment(), l->entry_table_bytes());
      // Up to 16 tables; when concatenated, whole granule-sized tables.
      EXPECT_LE(l->concatenated(), 16u);
      if (l->concatenated() > 1) {
        EXPECT_EQ(l->entry_table_bytes(), l->concatenated() * granule_bytes(g));
      }
      EXPECT_TRUE(start_level_fits(g, ipa, l->start_level));
    }
  }
}

TEST(ChooseLayout, Sl0RoundTripsThroughTheVtcrDecoder) {
  for (Granule g : kAllGranules) {
    for (unsigned ipa = kMinIpaBits; ipa <= kMaxIpaBits; ++ipa) {
      SCOPED_TRACE(::testing::Message() << to_string(g) << " IPA " << ipa);
      auto l = choose_layout(ipa, g);
      ASSERT_TRUE(l);
      // Legal on any CPU whose PA range covers the IPA size.
      for (unsigned pa : {32u, 36u, 40u, 42u, 44u, 48u}) {
        if (pa < ipa) continue;
        auto back = decode_layout(g, 64 - ipa, l->sl0, pa);
        ASSERT_TRUE(back) << "pa_bits " << pa << ": " << to_string(back.error());
        EXPECT_EQ(*back, *l);
      }
      EXPECT_EQ(encode_sl0(g, l->start_level), static_cast<int>(l->sl0));
    }
  }
}

// IPA 49..52 bits exist only with 52-bit descriptors; KVM's rows from the reference brief
// (arm64-stage2.md §1.3): 4K stays at level 0 with 2..16 tables (never level -1), 16K at
// level 1 until 52 bits start at level 0 (SL0 = 3, DS only), 64K at level 1 with one table.
TEST(ChooseLayout, FiftyTwoBitRowsMatchKvm) {
  const Row four_k[] = {{49, 4, 2}, {50, 4, 4}, {51, 4, 8}, {52, 4, 16}};
  const Row sixteen_k[] = {{49, 3, 4}, {50, 3, 8}, {51, 3, 16}, {52, 4, 1}};
  const Row sixty_four_k[] = {{49, 3, 1}, {50, 3, 1}, {51, 3, 1}, {52, 3, 1}};
  for (Granule g : kAllGranules) {
    const Row* rows52 = g == Granule::K4 ? four_k : g == Granule::K16 ? sixteen_k : sixty_four_k;
    for (int i = 0; i < 4; ++i) {
      const Row& row = rows52[i];
      SCOPED_TRACE(::testing::Message() << to_string(g) << " IPA " << row.ipa);
      EXPECT_EQ(choose_layout(row.ipa, g).error(), LayoutError::IpaSizeOutOfRange) << "needs 52-bit descriptors";
      auto l = choose_layout(row.ipa, g, /*lpa=*/true);
      ASSERT_TRUE(l);
      EXPECT_TRUE(l->lpa);
      EXPECT_FALSE(l->sl2);
      EXPECT_EQ(l->levels, row.levels);
      EXPECT_EQ(l->concatenated(), row.concatenated);
      EXPECT_EQ(l->geometry().input_bits(), row.ipa);
      auto back = decode_layout(g, 64 - row.ipa, l->sl0, 52, true);
      ASSERT_TRUE(back) << to_string(back.error());
      EXPECT_EQ(*back, *l);
    }
  }
  EXPECT_EQ(choose_layout(52, Granule::K16, true)->sl0, 3u);
}

TEST(ChooseLayout, FiftyTwoBitDescriptorsAllowBlocksOneLevelHigher) {
  EXPECT_EQ(choose_layout(52, Granule::K4, true)->leaf_sizes(),
            (std::vector<std::uint64_t>{4 * KiB, 2 * MiB, GiB, 512 * GiB}));
  EXPECT_EQ(choose_layout(52, Granule::K16, true)->leaf_sizes(),
            (std::vector<std::uint64_t>{16 * KiB, 32 * MiB, 64 * GiB}));
  EXPECT_EQ(choose_layout(52, Granule::K64, true)->leaf_sizes(),
            (std::vector<std::uint64_t>{64 * KiB, 512 * MiB, 4096 * GiB}));
  // The same IPA size with 48-bit descriptors has no giant block.
  EXPECT_EQ(choose_layout(48, Granule::K4)->leaf_sizes(), (std::vector<std::uint64_t>{4 * KiB, 2 * MiB, GiB}));
}

TEST(StartLevel, FourKLevelMinusOneIsSl2WithSl0ZeroAndNeedsDs) {
  EXPECT_EQ(*decode_start_level(Granule::K4, 0, 52, /*lpa=*/true, /*sl2=*/true), -1);
  for (unsigned sl0 : {1u, 2u, 3u}) {
    EXPECT_EQ(decode_start_level(Granule::K4, sl0, 52, true, true).error(), LayoutError::StartLevelReserved) << sl0;
  }
  EXPECT_EQ(decode_start_level(Granule::K4, 0, 52, false, true).error(), LayoutError::StartLevelReserved);
  EXPECT_EQ(encode_sl0(Granule::K4, -1, true), 0);
  EXPECT_EQ(encode_sl0(Granule::K4, -1, false), -1);
}

TEST(StartLevel, SixteenKLevelZeroWithDs) {
  EXPECT_EQ(*decode_start_level(Granule::K16, 3, 52, true), 0);
  EXPECT_EQ(encode_sl0(Granule::K16, 0, true), 3);
  EXPECT_EQ(encode_sl0(Granule::K16, 0, false), -1);
}

TEST(StartLevel, SixtyFourKSl0ThreeStaysReservedWithLpa) {
  EXPECT_EQ(decode_start_level(Granule::K64, 3, 52, true).error(), LayoutError::StartLevelReserved);
}

TEST(StartLevel, LevelMinusOneWalksFiveLevelsFromA64ByteAlignedRun) {
  // 49-bit IPA from level -1: IPA[48] alone, 2 entries = 16 bytes, aligned to 64 (BADDR[5:2]
  // hold PA[51:48]); 52 bits: IPA[51:48], 16 entries.
  auto small = decode_layout(Granule::K4, 64 - 49, 0, 52, true, true);
  ASSERT_TRUE(small) << to_string(small.error());
  EXPECT_EQ(small->start_level, -1);
  EXPECT_EQ(small->levels, 5u);
  EXPECT_TRUE(small->sl2);
  EXPECT_EQ(small->entry_table_bytes(), 16u);
  EXPECT_EQ(small->entry_table_alignment(), 64u);
  EXPECT_EQ(small->geometry().levels(), 5u);
  EXPECT_EQ(small->geometry().shift(5), 48u);
  auto big = decode_layout(Granule::K4, 64 - 52, 0, 52, true, true);
  ASSERT_TRUE(big);
  EXPECT_EQ(big->entry_table_bytes(), 128u);
  EXPECT_EQ(big->geometry().input_bits(), 52u);
  // Level -1 resolves at least one bit above bit 47: a 48-bit IPA cannot start there.
  EXPECT_EQ(decode_layout(Granule::K4, 64 - 48, 0, 52, true, true).error(), LayoutError::StartLevelInconsistent);
}

TEST(T0sz, TwelveIsTheMinimumWithFiftyTwoBitDescriptors) {
  EXPECT_TRUE(decode_layout(Granule::K64, 12, 2, 52, true));
  EXPECT_EQ(decode_layout(Granule::K64, 11, 2, 52, true).error(), LayoutError::T0szOutOfRange);
  EXPECT_EQ(decode_layout(Granule::K64, 12, 2, 52, false).error(), LayoutError::T0szOutOfRange);
  EXPECT_EQ(decode_layout(Granule::K4, 15, 2, 52, false).error(), LayoutError::T0szOutOfRange);
}

TEST(ChooseLayout, RejectsIpaSizesOutsideT0szRange) {
  EXPECT_EQ(choose_layout(24, Granule::K4).error(), LayoutError::IpaSizeOutOfRange);
  EXPECT_EQ(choose_layout(49, Granule::K64).error(), LayoutError::IpaSizeOutOfRange);
  EXPECT_EQ(choose_layout(53, Granule::K4, true).error(), LayoutError::IpaSizeOutOfRange);
  EXPECT_EQ(choose_layout(24, Granule::K16, true).error(), LayoutError::IpaSizeOutOfRange);
}

TEST(ChooseLayout, LeafSizesAreThePageAndTheLegalBlocks) {
  EXPECT_EQ(choose_layout(48, Granule::K4)->leaf_sizes(), (std::vector<std::uint64_t>{4 * KiB, 2 * MiB, GiB}));
  EXPECT_EQ(choose_layout(48, Granule::K16)->leaf_sizes(), (std::vector<std::uint64_t>{16 * KiB, 32 * MiB}));
  EXPECT_EQ(choose_layout(40, Granule::K64)->leaf_sizes(), (std::vector<std::uint64_t>{64 * KiB, 512 * MiB}));
  // A 1-level walk has no block level.
  EXPECT_EQ(choose_layout(25, Granule::K64)->leaf_sizes(), (std::vector<std::uint64_t>{64 * KiB}));
}

// ---- VTCR_EL2.SL0 decoding, one test per architecture rule ---------------------------------

TEST(StartLevel, FourKEncodesLevelAsTwoMinusSl0) {
  EXPECT_EQ(*decode_start_level(Granule::K4, 0, 48), 2);
  EXPECT_EQ(*decode_start_level(Granule::K4, 1, 48), 1);
  EXPECT_EQ(*decode_start_level(Granule::K4, 2, 48), 0);
}

TEST(StartLevel, SixteenAndSixtyFourKEncodeLevelAsThreeMinusSl0) {
  for (Granule g : {Granule::K16, Granule::K64}) {
    EXPECT_EQ(*decode_start_level(g, 0, 48), 3);
    EXPECT_EQ(*decode_start_level(g, 1, 48), 2);
    EXPECT_EQ(*decode_start_level(g, 2, 48), 1);
  }
}

TEST(StartLevel, FourKSl0ThreeIsReservedWithoutSmallTables) {
  EXPECT_EQ(decode_start_level(Granule::K4, 3, 48).error(), LayoutError::StartLevelReserved);
}

TEST(StartLevel, SixteenKLevelZeroNeedsLpa2) {
  EXPECT_EQ(decode_start_level(Granule::K16, 3, 48).error(), LayoutError::StartLevelReserved);
}

TEST(StartLevel, SixtyFourKSl0ThreeIsReserved) {
  EXPECT_EQ(decode_start_level(Granule::K64, 3, 48).error(), LayoutError::StartLevelReserved);
}

TEST(StartLevel, FourKLevelZeroNeedsPaRangeOf44Bits) {
  EXPECT_EQ(decode_start_level(Granule::K4, 2, 42).error(), LayoutError::StartLevelReserved);
  EXPECT_EQ(*decode_start_level(Granule::K4, 2, 44), 0);
}

TEST(StartLevel, SixteenKLevelOneNeedsPaRangeOf42Bits) {
  EXPECT_EQ(decode_start_level(Granule::K16, 2, 40).error(), LayoutError::StartLevelReserved);
  EXPECT_EQ(*decode_start_level(Granule::K16, 2, 42), 1);
}

TEST(StartLevel, SixtyFourKLevelOneNeedsPaRangeOf44Bits) {
  EXPECT_EQ(decode_start_level(Granule::K64, 2, 42).error(), LayoutError::StartLevelReserved);
  EXPECT_EQ(*decode_start_level(Granule::K64, 2, 44), 1);
}

TEST(StartLevel, MoreThanSixteenConcatenatedTablesIsInconsistent) {
  // 4K, start level 1 resolves IPA[n:30]: 43 bits = 8192 entries = 16 tables; 44 bits = 32.
  EXPECT_TRUE(decode_layout(Granule::K4, 64 - 43, 1, 48));
  EXPECT_EQ(decode_layout(Granule::K4, 64 - 44, 1, 48).error(), LayoutError::StartLevelInconsistent);
}

TEST(StartLevel, IpaTooSmallForTheStartLevelIsInconsistent) {
  // 4K, start level 0 needs at least one IPA bit above bit 38.
  EXPECT_TRUE(decode_layout(Granule::K4, 64 - 40, 2, 48));
  EXPECT_EQ(decode_layout(Granule::K4, 64 - 39, 2, 48).error(), LayoutError::StartLevelInconsistent);
  // 64K, start level 2 needs at least one bit above bit 28.
  EXPECT_EQ(decode_layout(Granule::K64, 64 - 29, 1, 48).error(), LayoutError::StartLevelInconsistent);
}

TEST(T0sz, OutsideSixteenToThirtyNineIsRejected) {
  EXPECT_EQ(decode_layout(Granule::K4, 15, 2, 48).error(), LayoutError::T0szOutOfRange);
  EXPECT_EQ(decode_layout(Granule::K16, 40, 0, 48).error(), LayoutError::T0szOutOfRange);
  EXPECT_TRUE(decode_layout(Granule::K16, 39, 0, 48));
}

TEST(Granule, Tg0EncodingsFollowVtcr) {
  EXPECT_EQ(granule_from_tg0(0), Granule::K4);
  EXPECT_EQ(granule_from_tg0(1), Granule::K64);
  EXPECT_EQ(granule_from_tg0(2), Granule::K16);
  EXPECT_FALSE(granule_from_tg0(3));
  for (Granule g : kAllGranules) EXPECT_EQ(granule_from_tg0(tg0_encoding(g)), g);
}

}  // namespace
}  // namespace vmmu::arm64
