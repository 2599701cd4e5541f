// The stage-2 descriptor encoding the owned-table layer builds (Stage2MmuFormat), and the
// break-before-make rules it reports (Arm ARM D8.16.1).

#include <gtest/gtest.h>

#include "vmmu/arm64/stage2_mmu_format.hpp"
#include "vmmu/core/rcu.hpp"
#include "vmmu/pt/owned_tables.hpp"

namespace vmmu::arm64 {
namespace {

Stage2MmuFormat format_for(Granule g) { return Stage2MmuFormat(*choose_layout(40, g)); }

TEST(Stage2MmuFormat, LeafAttributesRoundTripForEveryCombination) {
  for (Granule g : kAllGranules) {
    const Stage2MmuFormat f = format_for(g);
    for (unsigned bits = 0; bits < 32; ++bits) {
      pt::LeafAttrs a{(bits & 1) != 0, (bits & 2) != 0, (bits & 4) != 0, (bits & 8) != 0, (bits & 16) != 0};
      const std::uint64_t e = f.make_leaf(Hpa(0x12340000), 1, a);
      pt::LeafAttrs back = f.leaf_attrs(e, 1);
      if (a.device) a.exec = false;  // device memory is never executable
      EXPECT_EQ(back, a) << "attrs " << bits;
      EXPECT_TRUE(f.present(e, 1));
      EXPECT_TRUE(f.leaf(e, 1));
      EXPECT_EQ(f.leaf_address(e, 1), Hpa(0x12340000));
    }
  }
}

TEST(Stage2MmuFormat, PageIsType0b11AndBlockIs0b01) {
  const Stage2MmuFormat f = format_for(Granule::K4);
  EXPECT_EQ(f.make_leaf(Hpa(0x200000), 1, {}) & 3, 3u);
  EXPECT_EQ(f.make_leaf(Hpa(0x200000), 2, {}) & 3, 1u);
  EXPECT_EQ(f.make_table(Hpa(0x5000), 2) & 3, 3u);
  EXPECT_FALSE(f.leaf(f.make_table(Hpa(0x5000), 2), 2));
}

TEST(Stage2MmuFormat, NormalMemoryIsWriteBackInnerShareable) {
  const std::uint64_t e = format_for(Granule::K4).make_leaf(Hpa(0x1000), 1, {});
  EXPECT_EQ(desc::MemAttr::get(e), 0xfu);
  EXPECT_EQ(desc::Shareability::get(e), 3u);
}

TEST(Stage2MmuFormat, BlocksOnlyWhereTheGranuleAllowsThem) {
  EXPECT_TRUE(format_for(Granule::K4).block_allowed(engine_level(1)));
  EXPECT_TRUE(format_for(Granule::K4).block_allowed(engine_level(2)));
  EXPECT_FALSE(format_for(Granule::K16).block_allowed(engine_level(1)));
  EXPECT_TRUE(format_for(Granule::K64).block_allowed(engine_level(2)));
}

TEST(Stage2MmuFormat, FrozenMarkerIsAnInvalidDescriptor) {
  const Stage2MmuFormat f = format_for(Granule::K4);
  EXPECT_FALSE(f.present(f.frozen_entry(), 1));
  EXPECT_FALSE(f.present(f.frozen_entry(), 2));
  EXPECT_NE(f.frozen_entry(), 0u);
}

TEST(Stage2MmuFormat, BreakBeforeMakeForAddressSizeOrMemoryTypeChangesOnly) {
  const Stage2MmuFormat f = format_for(Granule::K4);
  const pt::LeafAttrs rw{true, true, false, true, false}, ro{true, false, false, true, false};
  const std::uint64_t block = f.make_leaf(Hpa(0x4000'0000), 2, rw);
  EXPECT_TRUE(f.needs_break_before_make(block, f.make_leaf(Hpa(0x4020'0000), 2, rw), 2)) << "output address";
  EXPECT_TRUE(f.needs_break_before_make(block, f.make_table(Hpa(0x9000), 2), 2)) << "block -> table";
  EXPECT_TRUE(f.needs_break_before_make(f.make_table(Hpa(0x9000), 2), block, 2)) << "table -> block";
  pt::LeafAttrs dev = rw;
  dev.device = true;
  EXPECT_TRUE(f.needs_break_before_make(block, f.make_leaf(Hpa(0x4000'0000), 2, dev), 2)) << "memory type";
  EXPECT_FALSE(f.needs_break_before_make(block, f.make_leaf(Hpa(0x4000'0000), 2, ro), 2)) << "permissions";
  EXPECT_FALSE(f.needs_break_before_make(block, 0, 2)) << "invalidation is the break itself";
}

TEST(Stage2MmuFormat, ChangingABlockOutputIssuesOneTlbiIpaBetweenBreakAndMake) {
  const Stage2MmuFormat f = format_for(Granule::K4);
  pt::OwnedTableMemory memory(f.geometry());
  pt::TlbLog<Ipa> tlb;
  {
    auto t = std::move(pt::OwnedTables<Stage2MmuFormat>::create(f, memory, tlb).value());
    const Range<Ipa> r{Ipa(0x4000'0000), Ipa(0x4020'0000)};
    const pt::LeafAttrs rw{true, true, false, true, false};
    std::move(t.map(r, Hpa(0x1'0000'0000), rw).value()).apply(tlb);
    std::vector<std::string> seen;
    tlb.set_observer([&](const pt::TlbEvent<Ipa>& e) {
      seen.push_back(e.op == pt::TlbOp::Address ? "ipa" : "other");
      EXPECT_FALSE(t.lookup(r.begin)) << "invalid while invalidating";
      EXPECT_EQ(e.range, r);
      EXPECT_EQ(e.level, 2u);
    });
    std::move(t.map(r, Hpa(0x1'0020'0000), rw).value()).apply(tlb);
    tlb.set_observer(nullptr);
    EXPECT_EQ(seen, std::vector<std::string>{"ipa"});
    EXPECT_EQ(t.lookup(r.begin)->output, Hpa(0x1'0020'0000));
    EXPECT_EQ(tlb.breaks(), 1u);
  }
  rcu::barrier();
}

}  // namespace
}  // namespace vmmu::arm64
