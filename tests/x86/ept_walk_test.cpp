// The nested EPT walker, one test per rule of ../shared/formats/x86-ept-walk.md
// (Intel SDM vol. 3C 29.3.2 translation, 29.3.3 violations and misconfigurations).

#include <gtest/gtest.h>

#include <memory>

#include "x86/support/table_builder.hpp"
#include "vmmu/core/page_size.hpp"
#include "vmmu/memory/sparse_memory.hpp"
#include "vmmu/x86/walk.hpp"
#include "x86/support/bits.hpp"

namespace vmmu::x86::test {
namespace {

constexpr std::uint64_t kR = ept::R::mask, kW = ept::W::mask, kX = ept::X::mask, kRWX = 7;
constexpr std::uint64_t kWB = ept::kMemTypeWb << 3;  // leaf memory type WB
constexpr std::uint64_t kLeaf = kRWX | kWB;
constexpr std::uint64_t kRoot = 0x1000000;
constexpr std::uint64_t kEptp4 = kRoot | 0x1e;          // WB, 4-level
constexpr std::uint64_t kEptp4Ad = kRoot | 0x5e;        // ... with A/D
constexpr std::uint64_t kEptp5 = kRoot | 0x26;          // WB, 5-level
constexpr std::uint64_t kQualBase = 0x180;              // bits 7 and 8
constexpr std::uint64_t kGpa = 0x40201123;

class Ept : public ::testing::Test {
 protected:
  void SetUp() override { layout(4); }
  void layout(unsigned levels) {
    mem = SparseMemory<Hpa>();
    tables = std::make_unique<TableBuilder<Hpa>>(mem, levels == 5 ? EptFormat<Hpa, 5>::kGeometry : EptFormat<Hpa, 4>::kGeometry,
                                                 Hpa(kRoot), kRWX, 0x2000000);
  }
  Result<EptTranslation<Hpa>, EptFault> walk(std::uint64_t gpa, AccessKind kind, std::uint64_t eptp = kEptp4) {
    auto ctx = EptContext::from(eptp, caps);
    EXPECT_TRUE(ctx.has_value());
    return walk_ept<Hpa>(*ctx, mem, Gpa(gpa), kind);
  }
  std::optional<EptFault> fault(std::uint64_t gpa, AccessKind kind, std::uint64_t eptp = kEptp4) {
    auto r = walk(gpa, kind, eptp);
    if (r.has_value()) return std::nullopt;
    return r.error();
  }
  bool misconfig(std::uint64_t gpa, AccessKind kind = AccessKind::Read, std::uint64_t eptp = kEptp4) {
    auto f = fault(gpa, kind, eptp);
    return f && f->kind == EptFaultKind::Misconfig;
  }
  std::uint64_t qual(std::uint64_t gpa, AccessKind kind, std::uint64_t eptp = kEptp4) {
    auto f = fault(gpa, kind, eptp);
    EXPECT_TRUE(f && f->kind == EptFaultKind::Violation);
    return f ? f->exit_qualification : ~0ULL;
  }
  void map(std::uint64_t gpa, unsigned level, std::uint64_t e) { tables->map(gpa, level, e); }
  void set(std::uint64_t gpa, unsigned level, std::uint64_t e) { tables->write(tables->slot(gpa, level), e); }
  std::uint64_t entry(std::uint64_t gpa, unsigned level) { return tables->entry(gpa, level); }

  EptCapabilities caps{.maxphyaddr = 40};
  SparseMemory<Hpa> mem;
  std::unique_ptr<TableBuilder<Hpa>> tables;
};

// ---- EPTP ----

TEST_F(Ept, EptpWithMemoryTypeOtherThanUcOrWbIsInvalid) {
  for (std::uint64_t type : {1u, 2u, 3u, 4u, 5u, 7u}) {
    auto r = EptContext::from(kRoot | 0x18 | type, caps);
    ASSERT_FALSE(r.has_value()) << type;
    EXPECT_EQ(r.error(), EptpError::MemoryType);
  }
  EXPECT_TRUE(EptContext::from(kRoot | 0x18, caps).has_value());
}

TEST_F(Ept, EptpWithUnsupportedWalkLengthIsInvalid) {
  for (std::uint64_t length : {0u, 1u, 2u, 4u, 5u, 6u, 7u}) {
    auto r = EptContext::from(kRoot | 6 | (length << 3), caps);
    ASSERT_FALSE(r.has_value()) << length;
    EXPECT_EQ(r.error(), EptpError::WalkLength);
  }
}

TEST_F(Ept, EptpFiveLevelWalkNeedsTheCapability) {
  EXPECT_FALSE(EptContext::from(kEptp5, caps).has_value());
  caps.five_level = true;
  auto r = EptContext::from(kEptp5, caps);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->levels(), 5u);
}

TEST_F(Ept, EptpBits11To7AreReserved) {
  for (unsigned b = 7; b <= 11; ++b) {
    auto r = EptContext::from(kEptp4 | bit(b), caps);
    ASSERT_FALSE(r.has_value()) << b;
    EXPECT_EQ(r.error(), EptpError::ReservedBits);
  }
}

TEST_F(Ept, EptpBitsAtOrAboveMaxphyaddrAreInvalid) {
  auto r = EptContext::from(kEptp4 | bit(40), caps);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), EptpError::AddressBits);
  EXPECT_FALSE(EptContext::from(kEptp4 | bit(63), caps).has_value());
  EXPECT_TRUE(EptContext::from(kEptp4 | bit(39), caps).has_value());
}

TEST_F(Ept, EptpAccessedDirtyNeedsTheCapability) {
  caps.accessed_dirty = false;
  auto r = EptContext::from(kEptp4Ad, caps);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), EptpError::AccessedDirtyUnsupported);
}

// ---- translation ----

TEST_F(Ept, FourLevelWalkTranslatesFourKPage) {
  map(kGpa, 1, 0x123456000 | kLeaf);
  auto r = walk(kGpa, AccessKind::Read);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->address, Hpa(0x123456123));
  EXPECT_EQ(r->page_size, 4096u);
  EXPECT_TRUE(r->readable && r->writable && r->executable);
}

TEST_F(Ept, FiveLevelWalkTranslates) {
  caps.five_level = true;
  layout(5);
  map(0x0100'0000'0000'1234, 1, 0x5000 | kLeaf);
  auto r = walk(0x0100'0000'0000'1234, AccessKind::Write, kEptp5);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->address, Hpa(0x5234));
}

TEST_F(Ept, TwoMiBLeafTranslates) {
  map(0x40200000, 2, 0x80000000 | kLeaf | ept::PS::mask);
  auto r = walk(0x402abcde, AccessKind::Write);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->address, Hpa(0x800abcde));
  EXPECT_EQ(r->page_size, 2 * MiB);
}

TEST_F(Ept, OneGiBLeafTranslates) {
  map(0x40000000, 3, 0x80000000 | kLeaf | ept::PS::mask);
  auto r = walk(0x4abcdef0, AccessKind::Fetch);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->address, Hpa(0x8abcdef0));
  EXPECT_EQ(r->page_size, GiB);
}

// ---- not present: violation ----

TEST_F(Ept, NotPresentEntryIsAViolationWithZeroRights) {
  map(kGpa, 2, 0);
  EXPECT_EQ(qual(kGpa, AccessKind::Read), kQualBase | 1u);
  EXPECT_EQ(qual(kGpa, AccessKind::Write), kQualBase | 2u);
  EXPECT_EQ(qual(kGpa, AccessKind::Fetch), kQualBase | 4u);
}

TEST_F(Ept, NothingBelowANotPresentEntryIsSeen) {
  map(kGpa, 1, 0x5000 | kW);  // a misconfigured leaf, unreachable
  const std::uint64_t pdpte = entry(kGpa, 3);
  set(kGpa, 3, pdpte & ~kRWX);
  auto f = fault(kGpa, AccessKind::Read);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->kind, EptFaultKind::Violation);
  EXPECT_EQ(f->level, 3u);
}

// ---- misconfigurations ----

TEST_F(Ept, WriteWithoutReadIsAMisconfigurationAtEveryLevel) {
  for (unsigned level = 1; level <= 4; ++level) {
    for (std::uint64_t rwx : {2u, 6u}) {
      SetUp();
      map(kGpa, 1, 0x5000 | kLeaf);
      set(kGpa, level, (entry(kGpa, level) & ~kRWX) | rwx);
      EXPECT_TRUE(misconfig(kGpa)) << "level " << level << " rwx " << rwx;
    }
  }
}

TEST_F(Ept, ExecuteOnlyEntryIsAMisconfigurationWithoutTheCapability) {
  caps.execute_only = false;
  map(kGpa, 1, 0x5000 | kX | kWB);
  EXPECT_TRUE(misconfig(kGpa, AccessKind::Fetch));
}

TEST_F(Ept, ExecuteOnlyLeafAllowsFetchesOnlyWithTheCapability) {
  map(kGpa, 1, 0x5000 | kX | kWB);
  EXPECT_TRUE(walk(kGpa, AccessKind::Fetch).has_value());
  EXPECT_EQ(qual(kGpa, AccessKind::Read), kQualBase | 1u | (4u << 3));
}

TEST_F(Ept, BitsAtOrAboveMaxphyaddrAreAMisconfigurationAtEveryLevel) {
  for (unsigned level = 1; level <= 4; ++level) {
    SetUp();
    map(kGpa, 1, 0x5000 | kLeaf);
    set(kGpa, level, entry(kGpa, level) | bit(45));
    EXPECT_TRUE(misconfig(kGpa)) << level;
  }
}

TEST_F(Ept, TopLevelEntryBits7To3AreReserved) {
  for (unsigned b = 3; b <= 7; ++b) {
    SetUp();
    map(kGpa, 1, 0x5000 | kLeaf);
    set(kGpa, 4, entry(kGpa, 4) | bit(b));
    EXPECT_TRUE(misconfig(kGpa)) << b;
  }
}

TEST_F(Ept, FiveLevelTopEntryBits7To3AreReservedAndPml4eBits6To3) {
  caps.five_level = true;
  layout(5);
  map(kGpa, 1, 0x5000 | kLeaf);
  set(kGpa, 5, entry(kGpa, 5) | bit(7));
  EXPECT_TRUE(misconfig(kGpa, AccessKind::Read, kEptp5));
  set(kGpa, 5, entry(kGpa, 5) & ~bit(7));
  set(kGpa, 4, entry(kGpa, 4) | bit(4));
  EXPECT_TRUE(misconfig(kGpa, AccessKind::Read, kEptp5));
  set(kGpa, 4, entry(kGpa, 4) & ~bit(4));
  set(kGpa, 4, entry(kGpa, 4) | ept::PS::mask);  // PML4E below a PML5E cannot be a leaf
  EXPECT_TRUE(misconfig(kGpa, AccessKind::Read, kEptp5));
}

TEST_F(Ept, NonLeafEntryBits6To3AreReserved) {
  for (unsigned level : {2u, 3u}) {
    for (unsigned b = 3; b <= 6; ++b) {
      SetUp();
      map(kGpa, 1, 0x5000 | kLeaf);
      set(kGpa, level, entry(kGpa, level) | bit(b));
      EXPECT_TRUE(misconfig(kGpa)) << "level " << level << " bit " << b;
    }
  }
}

TEST_F(Ept, TwoMiBLeafBits20To12AreReserved) {
  for (unsigned b : {12u, 16u, 20u}) {
    SetUp();
    map(0x40200000, 2, 0x80000000 | kLeaf | ept::PS::mask | bit(b));
    EXPECT_TRUE(misconfig(0x40200000)) << b;
  }
}

TEST_F(Ept, OneGiBLeafBits29To12AreReserved) {
  for (unsigned b : {12u, 20u, 21u, 29u}) {
    SetUp();
    map(0x40000000, 3, 0x80000000 | kLeaf | ept::PS::mask | bit(b));
    EXPECT_TRUE(misconfig(0x40000000)) << b;
  }
}

TEST_F(Ept, LeafMemoryTypes2And3And7AreAMisconfiguration) {
  for (std::uint64_t type = 0; type < 8; ++type) {
    SetUp();
    map(kGpa, 1, 0x5000 | kRWX | (type << 3));
    const bool bad = type == 2 || type == 3 || type == 7;
    EXPECT_EQ(misconfig(kGpa), bad) << type;
  }
}

TEST_F(Ept, LargeLeafMemoryTypeIsChecked) {
  map(0x40200000, 2, 0x80000000 | kRWX | (3u << 3) | ept::PS::mask);
  EXPECT_TRUE(misconfig(0x40200000));
}

TEST_F(Ept, PsInTopLevelEntryIsAMisconfiguration) {
  map(kGpa, 4, 0x80000000 | kLeaf | ept::PS::mask);
  EXPECT_TRUE(misconfig(kGpa));
}

TEST_F(Ept, OneGiBLeafWithoutTheCapabilityIsAMisconfiguration) {
  caps.pages_1g = false;
  map(0x40000000, 3, 0x80000000 | kLeaf | ept::PS::mask);
  EXPECT_TRUE(misconfig(0x40000000));
}

TEST_F(Ept, TwoMiBLeafWithoutTheCapabilityIsAMisconfiguration) {
  caps.pages_2m = false;
  map(0x40200000, 2, 0x80000000 | kLeaf | ept::PS::mask);
  EXPECT_TRUE(misconfig(0x40200000));
}

TEST_F(Ept, PteBit7IsIgnored) {
  map(kGpa, 1, 0x5000 | kLeaf | ept::PS::mask);
  EXPECT_TRUE(walk(kGpa, AccessKind::Read).has_value());
}

TEST_F(Ept, MisconfigurationIsFoundTopDownBeforeAViolationBelow) {
  map(kGpa, 1, 0);                           // not present at level 1 ...
  set(kGpa, 3, entry(kGpa, 3) | bit(4));     // ... but level 3 is misconfigured first
  auto f = fault(kGpa, AccessKind::Read);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->kind, EptFaultKind::Misconfig);
  EXPECT_EQ(f->level, 3u);
}

TEST_F(Ept, MisconfigurationWinsOverMissingPermissionAbove) {
  map(kGpa, 1, 0x5000 | (7u << 3) | kRWX);
  set(kGpa, 4, (entry(kGpa, 4) & ~kRWX) | kR);  // no write permission at the top
  EXPECT_TRUE(misconfig(kGpa, AccessKind::Write));
}

// ---- permissions and exit qualification ----

TEST_F(Ept, PermissionsAreAndedOverTheWalk) {
  map(kGpa, 1, 0x5000 | kLeaf);
  set(kGpa, 3, (entry(kGpa, 3) & ~kRWX) | kR | kX);
  EXPECT_TRUE(walk(kGpa, AccessKind::Read).has_value());
  EXPECT_TRUE(walk(kGpa, AccessKind::Fetch).has_value());
  EXPECT_EQ(qual(kGpa, AccessKind::Write), kQualBase | 2u | (5u << 3));
}

TEST_F(Ept, ExitQualificationReportsTheAndOfEveryCombination) {
  for (std::uint64_t upper : {1u, 3u, 5u, 7u}) {
    for (std::uint64_t leaf : {1u, 3u, 4u, 5u, 7u}) {
      SetUp();
      map(kGpa, 1, 0x5000 | kWB | leaf);
      set(kGpa, 2, (entry(kGpa, 2) & ~kRWX) | upper);
      const std::uint64_t rights = upper & leaf;
      for (auto [kind, need] : {std::pair{AccessKind::Read, 1u}, std::pair{AccessKind::Write, 2u},
                                std::pair{AccessKind::Fetch, 4u}}) {
        auto r = walk(kGpa, kind);
        if ((rights & need) != 0) {
          EXPECT_TRUE(r.has_value());
        } else {
          ASSERT_FALSE(r.has_value());
          EXPECT_EQ(r.error().exit_qualification, kQualBase | need | (rights << 3))
              << "upper " << upper << " leaf " << leaf << " need " << need;
        }
      }
    }
  }
}

TEST_F(Ept, ViolationReportsTheFaultingLevel) {
  map(kGpa, 1, 0x5000 | kR | kWB);
  auto f = fault(kGpa, AccessKind::Write);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->level, 1u);
}

// ---- accessed / dirty ----

TEST_F(Ept, AccessedDirtyDisabledWithoutEptpBit6) {
  map(kGpa, 1, 0x5000 | kLeaf);
  ASSERT_TRUE(walk(kGpa, AccessKind::Write).has_value());
  for (unsigned level = 1; level <= 4; ++level) EXPECT_EQ(entry(kGpa, level) & (ept::A::mask | ept::D::mask), 0u);
}

TEST_F(Ept, AccessedSetInEveryEntryWithEptpBit6) {
  map(kGpa, 1, 0x5000 | kLeaf);
  ASSERT_TRUE(walk(kGpa, AccessKind::Read, kEptp4Ad).has_value());
  for (unsigned level = 1; level <= 4; ++level) EXPECT_EQ(entry(kGpa, level) & (ept::A::mask | ept::D::mask), ept::A::mask);
}

TEST_F(Ept, DirtySetInTheLeafOnWriteWithEptpBit6) {
  map(0x40200000, 2, 0x80000000 | kLeaf | ept::PS::mask);
  ASSERT_TRUE(walk(0x40200000, AccessKind::Write, kEptp4Ad).has_value());
  EXPECT_EQ(entry(0x40200000, 2) & (ept::A::mask | ept::D::mask), ept::A::mask | ept::D::mask);
  EXPECT_EQ(entry(0x40200000, 3) & ept::D::mask, 0u);
}

TEST_F(Ept, FaultingWalkSetsNoAccessedFlags) {
  map(kGpa, 1, 0x5000 | kR | kWB);
  ASSERT_FALSE(walk(kGpa, AccessKind::Write, kEptp4Ad).has_value());
  EXPECT_EQ(entry(kGpa, 4) & ept::A::mask, 0u);
}

// ---- the path a walk returns ----

TEST_F(Ept, PathHoldsEachEntryUsedWithTheLeafAsTheWalkLeftIt) {
  map(0x40200000, 2, 0x80000000 | kLeaf | ept::PS::mask);
  auto ctx = EptContext::from(kEptp4Ad, caps);
  ASSERT_TRUE(ctx);
  EptPath<Hpa> path;
  ASSERT_TRUE(walk_ept<Hpa>(*ctx, mem, Gpa(0x40200123), AccessKind::Write, {}, path));
  for (unsigned level = 4; level >= 2; --level) {
    SCOPED_TRACE(level);
    EXPECT_EQ(path[level].address, tables->slot(0x40200000, level));
    // Above the leaf as read (before the walk set A); the leaf with the A and D it set.
    const std::uint64_t ad = level == 2 ? ept::A::mask | ept::D::mask : 0;
    EXPECT_EQ(path[level].entry, (entry(0x40200000, level) & ~(ept::A::mask | ept::D::mask)) | ad);
  }
  EXPECT_EQ(path[1].entry, 0u);  // below the leaf: untouched
}

// ---- the example of x86-ept-walk.md ----

TEST_F(Ept, FormatPageExample) {
  caps = EptCapabilities{.maxphyaddr = 40};
  mem = SparseMemory<Hpa>();
  mem.write<std::uint64_t>(Hpa(0x1000000), 0x1001007);
  mem.write<std::uint64_t>(Hpa(0x1001008), 0x1002007);
  mem.write<std::uint64_t>(Hpa(0x1002008), 0x1003007);
  mem.write<std::uint64_t>(Hpa(0x1002010), 0x2468a000bf);
  mem.write<std::uint64_t>(Hpa(0x1003008), 0x123456037);
  auto ctx = EptContext::from(0x100005e, caps);
  ASSERT_TRUE(ctx.has_value());

  auto a = walk_ept<Hpa>(*ctx, mem, Gpa(0x40201123), AccessKind::Read);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->address, Hpa(0x123456123));
  EXPECT_EQ(a->page_size, 4096u);

  auto b = walk_ept<Hpa>(*ctx, mem, Gpa(0x7), AccessKind::Fetch);
  ASSERT_FALSE(b.has_value());
  EXPECT_EQ(b.error().kind, EptFaultKind::Violation);
  EXPECT_EQ(b.error().exit_qualification, 0x184u);

  auto c = walk_ept<Hpa>(*ctx, mem, Gpa(0x40400000), AccessKind::Read);
  ASSERT_FALSE(c.has_value());
  EXPECT_EQ(c.error().kind, EptFaultKind::Misconfig);

  EXPECT_EQ(*mem.read<std::uint64_t>(Hpa(0x1000000)), 0x1001107u);
  EXPECT_EQ(*mem.read<std::uint64_t>(Hpa(0x1001008)), 0x1002107u);
  EXPECT_EQ(*mem.read<std::uint64_t>(Hpa(0x1002008)), 0x1003107u);
  EXPECT_EQ(*mem.read<std::uint64_t>(Hpa(0x1003008)), 0x123456137u);
}

TEST_F(Ept, NestedEptTablesInGuestPhysicalMemory) {
  SparseMemory<Gpa> l1;  // L1's EPT for L2 lives in L1's guest-physical memory
  TableBuilder<Gpa> b(l1, EptFormat<Gpa, 4>::kGeometry, Gpa(kRoot), kRWX);
  b.map(kGpa, 1, 0x7000 | kLeaf);
  auto ctx = EptContext::from(kEptp4, caps);
  ASSERT_TRUE(ctx.has_value());
  auto r = walk_ept<Gpa>(*ctx, l1, Gpa(kGpa), AccessKind::Read);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->address, Gpa(0x7123));
}

}  // namespace
}  // namespace vmmu::x86::test
