// Walk references of the translation-hardware model against the closed forms of
// walk_refs.hpp, for every mix of guest / nested levels and page sizes.

#include <gtest/gtest.h>

#include <cstdint>

#include "vmmu/tlb/translation_hardware.hpp"
#include "vmmu/tlb/walk_refs.hpp"

namespace vmmu::tlb {
namespace {

// A path whose guest tables sit at distinct gpas (never sharing a nested TLB entry).
GuestPath path_for(std::uint64_t gva, unsigned leaf_level, std::uint64_t salt) {
  GuestPath p;
  p.gva = Gva(gva);
  p.leaf_level = leaf_level;
  for (unsigned l = 0; l < 5; ++l) p.table[l] = Gpa((salt * 16 + l + 1) << 30);
  p.gpa = Gpa((salt * 16 + 9) << 30);
  return p;
}

struct Mix {
  unsigned guest_levels, guest_leaf, nested_levels, nested_leaf;
};

std::string mix_name(const Mix& m) {
  return "guest " + std::to_string(m.guest_levels) + "-level leaf L" + std::to_string(m.guest_leaf) + ", nested " +
         std::to_string(m.nested_levels) + "-level leaf L" + std::to_string(m.nested_leaf);
}

TEST(WalkRefs, EveryMixMatchesTheClosedFormWithoutCaches) {
  for (unsigned gl : {4u, 5u}) {
    for (unsigned gleaf : {1u, 2u, 3u}) {
      for (unsigned nl : {0u, 4u, 5u}) {
        for (unsigned nleaf : {1u, 2u, 3u}) {
          const Mix m{gl, gleaf, nl, nleaf};
          auto hw = TranslationHardware::create({.tlb = {64, 0}, .guest_levels = gl, .nested_levels = nl,
                                                 .psc_entries = 0, .nested_tlb_entries = 0});
          ASSERT_TRUE(hw);
          const unsigned g = walk_entries(gl, gleaf);
          const unsigned n = nl == 0 ? 0 : walk_entries(nl, nleaf);
          constexpr std::uint64_t kWalks = 10;
          for (std::uint64_t i = 0; i < kWalks; ++i) {
            const GuestPath p = path_for(i << 40, gleaf, i);
            ASSERT_FALSE(hw->lookup(p.gva, false));
            EXPECT_EQ(hw->walk(p, [&](Gpa) { return nleaf; }), nl == 0 ? Outcome::GuestWalk : Outcome::NestedWalk);
          }
          const HardwareStats& s = hw->stats();
          EXPECT_EQ(s.walk_refs(), kWalks * two_dimensional_refs(g, n)) << mix_name(m);
          EXPECT_EQ(s.guest_refs, kWalks * g) << mix_name(m);
          EXPECT_EQ(s.refs_saved, 0u) << mix_name(m);
        }
      }
    }
  }
}

TEST(WalkRefs, TheTabulatedFigures) {
  struct Case {
    Mix mix;
    unsigned refs;
  };
  for (const Case& c : {Case{{4, 1, 4, 1}, 24}, Case{{4, 2, 4, 1}, 19}, Case{{4, 1, 4, 2}, 19},
                        Case{{4, 2, 4, 2}, 15}, Case{{4, 3, 4, 1}, 14}, Case{{5, 1, 5, 1}, 35}}) {
    auto hw = TranslationHardware::create({.tlb = {64, 0}, .guest_levels = c.mix.guest_levels,
                                           .nested_levels = c.mix.nested_levels, .psc_entries = 0,
                                           .nested_tlb_entries = 0});
    ASSERT_TRUE(hw);
    (void)hw->lookup(Gva(0), false);
    hw->walk(path_for(0, c.mix.guest_leaf, 0), [&](Gpa) { return c.mix.nested_leaf; });
    EXPECT_EQ(hw->stats().walk_refs(), c.refs) << mix_name(c.mix);
  }
}

TEST(WalkRefs, CachesSaveWhatTheyHoldAndTheSumStaysTheClosedForm) {
  auto hw = TranslationHardware::create({.tlb = {1, 0}, .guest_levels = 4, .nested_levels = 4, .psc_entries = 8,
                                         .nested_tlb_entries = 64});
  ASSERT_TRUE(hw);
  auto nested4k = [](Gpa) { return 1u; };
  // Two neighbouring 4 KiB pages under one page table: the second walk finds the PDE cached
  // (reads only the PTE) and every gpa on its path in the nested TLB but its own data page.
  GuestPath a = path_for(0x1000, 1, 0);
  GuestPath b = a;
  b.gva = Gva(0x2000);
  b.gpa = a.gpa + 0x1000;
  (void)hw->lookup(a.gva, false);
  EXPECT_EQ(hw->walk(a, nested4k), Outcome::NestedWalk);
  EXPECT_EQ(hw->stats().walk_refs(), 24u);
  (void)hw->lookup(b.gva, false);
  EXPECT_EQ(hw->walk(b, nested4k), Outcome::NestedWalk);  // its data page's gpa is new
  EXPECT_EQ(hw->stats().guest_refs, 4u + 1u);
  EXPECT_EQ(hw->stats().walk_refs(), 24u + 1u + 4u);  // PTE read (table gpa cached) + data's nested walk
  EXPECT_EQ(hw->stats().walk_refs() + hw->stats().refs_saved, 2u * 24u);
  // The first page again (evicted from the one-entry TLB): a guest walk, nothing nested.
  EXPECT_FALSE(hw->lookup(a.gva, false));
  EXPECT_EQ(hw->walk(a, nested4k), Outcome::GuestWalk);
  EXPECT_EQ(hw->stats().walk_refs() + hw->stats().refs_saved, 3u * 24u);
}

TEST(WalkRefs, TlbEntryTakesTheSmallerOfTheGuestAndNestedPages) {
  HardwareConfig c;
  c.tlb = {8, 0};
  auto hw = TranslationHardware::create(c);
  ASSERT_TRUE(hw);
  GuestPath p = path_for(0x200000, 2, 0);  // a guest 2 MiB page ...
  (void)hw->lookup(p.gva, false);
  hw->walk(p, [](Gpa) { return 1u; });     // ... the nested tables map with 4 KiB pages
  EXPECT_TRUE(hw->lookup(Gva(0x200000), false));
  EXPECT_FALSE(hw->lookup(Gva(0x201000), false));
}

TEST(WalkRefs, BadConfigurationsAreNamed) {
  HardwareConfig guest3, nested2, tlb7;
  guest3.guest_levels = 3;
  nested2.nested_levels = 2;
  tlb7.tlb = {64, 7};
  EXPECT_EQ(TranslationHardware::create(guest3).error(), HardwareError::BadLevels);
  EXPECT_EQ(TranslationHardware::create(nested2).error(), HardwareError::BadLevels);
  EXPECT_EQ(TranslationHardware::create(tlb7).error(), HardwareError::BadTlb);
}

}  // namespace
}  // namespace vmmu::tlb
