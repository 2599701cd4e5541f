// The arm64 stage-2 MMU: fault handling from memslots (KVM user_mem_abort rules), explicit
// range operations, break-before-make with its TLB invalidations, and the invariant check
// against the architectural walker.

#include <gtest/gtest.h>

#include "arm64/stage2_mmu_test_support.hpp"
#include "vmmu/arm64/stage2_mmu.hpp"
#include "vmmu/arm64/walk.hpp"

namespace vmmu::arm64 {
namespace {

using testing::HostBuffer;
constexpr std::uint64_t kMiB = 1024 * 1024;
using testing::k2M;
using testing::kRam;

class Stage2MmuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto layout = choose_layout(40, Granule::K4);
    ASSERT_TRUE(layout);
    auto m = Stage2Mmu::create(*layout, slots);
    ASSERT_TRUE(m);
    mmu = std::move(*m);
  }
  void add_slot(std::uint32_t id, Ipa base, std::uint64_t bytes, std::byte* host, MemslotFlags flags = {}) {
    ASSERT_TRUE(slots.add({SlotId{id}, Gfn(base.raw() >> kPageShift), bytes >> kPageShift, host, flags}));
  }
  FaultOutcome fault(Ipa ipa, Access a) {
    auto r = mmu->handle_fault(ipa, a);
    EXPECT_TRUE(r) << (r ? "" : pt::to_string(r.error()));
    return r ? *r : FaultOutcome{};
  }
  void expect_invariants() {
    auto bad = mmu->check_invariants();
    EXPECT_FALSE(bad) << *bad;
  }

  Memslots slots;
  std::unique_ptr<Stage2Mmu> mmu;
};

TEST_F(Stage2MmuTest, FaultMapsLargestBlockTheSlotAlignmentAllows) {
  HostBuffer ram(8 * kMiB, k2M);
  add_slot(1, kRam, 8 * kMiB, ram.data());
  const FaultOutcome out = fault(kRam + 0x212345, Access::read());
  EXPECT_EQ(out.action, FaultAction::Mapped);
  EXPECT_EQ(out.size, k2M);
  auto m = mmu->lookup(kRam + 0x212345);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->output, ram.hpa() + 0x212345);
  EXPECT_EQ(m->covers, (Range<Ipa>{kRam + k2M, kRam + 2 * k2M}));
  expect_invariants();
}

TEST_F(Stage2MmuTest, FaultMapsOneGibBlockWhenSlotAndHostAreGibAligned) {
  HostBuffer ram(1024 * kMiB, 1024 * kMiB);
  add_slot(1, kRam, 1024 * kMiB, ram.data());
  EXPECT_EQ(fault(kRam + 0x1234, Access::write()).size, 1024 * kMiB);
  EXPECT_EQ(mmu->table_memory().tables_in_use(), 1u) << "the block sits in the concatenated root";
  expect_invariants();
}

TEST_F(Stage2MmuTest, FaultMapsPageWhenHostIsNotCongruentWithIpa) {
  HostBuffer ram(8 * kMiB, k2M, 0x1000);
  add_slot(1, kRam, 8 * kMiB, ram.data());
  EXPECT_EQ(fault(kRam + 0x212345, Access::read()).size, 0x1000u);
  expect_invariants();
}

TEST_F(Stage2MmuTest, BlockMustLieInsideTheSlot) {
  HostBuffer ram(kMiB, k2M);
  add_slot(1, kRam, kMiB, ram.data());
  EXPECT_EQ(fault(kRam + 0x5000, Access::read()).size, 0x1000u);
  expect_invariants();
}

TEST_F(Stage2MmuTest, FaultOutsideAnySlotIsMmio) {
  EXPECT_EQ(fault(kRam, Access::read()).action, FaultAction::Mmio);
  EXPECT_FALSE(mmu->lookup(kRam));
}

TEST_F(Stage2MmuTest, WriteToReadOnlySlotIsMmioAndReadMapsReadOnly) {
  HostBuffer rom(k2M, k2M);
  add_slot(1, kRam, k2M, rom.data(), MemslotFlags::read_only());
  EXPECT_EQ(fault(kRam, Access::write()).action, FaultAction::Mmio);
  EXPECT_EQ(fault(kRam, Access::read()).action, FaultAction::Mapped);
  EXPECT_FALSE(mmu->lookup(kRam)->attrs.write);
  EXPECT_EQ(fault(kRam, Access::write()).action, FaultAction::Mmio) << "still emulated once mapped";
  expect_invariants();
}

TEST_F(Stage2MmuTest, IpaBeyondTheIpaSizeIsOutOfRange) {
  EXPECT_EQ(fault(Ipa(std::uint64_t{1} << 40), Access::read()).action, FaultAction::OutOfRange);
}

TEST_F(Stage2MmuTest, SecondFaultOnMappedPageIsSpurious) {
  HostBuffer ram(k2M, k2M);
  add_slot(1, kRam, k2M, ram.data());
  EXPECT_EQ(fault(kRam, Access::write()).action, FaultAction::Mapped);
  EXPECT_EQ(fault(kRam + 0x1000, Access::read()).action, FaultAction::Spurious);
  EXPECT_EQ(mmu->counters().spurious, 1u);
}

TEST_F(Stage2MmuTest, AccessFlagFaultOnlySetsAfWithoutRemapping) {
  HostBuffer ram(k2M, k2M);
  add_slot(1, kRam, k2M, ram.data());
  fault(kRam, Access::read());
  EXPECT_TRUE(mmu->test_age({kRam, kRam + k2M}));
  EXPECT_EQ(mmu->age({kRam, kRam + k2M}).value(), 1u);
  EXPECT_FALSE(mmu->test_age({kRam, kRam + k2M}));
  const auto breaks = mmu->tlb().breaks();
  EXPECT_EQ(fault(kRam + 0x3000, Access::read()).action, FaultAction::Relaxed);
  EXPECT_TRUE(mmu->lookup(kRam)->attrs.accessed);
  EXPECT_EQ(mmu->lookup(kRam)->level, 2u) << "the block stays";
  EXPECT_EQ(mmu->tlb().breaks(), breaks);
}

TEST_F(Stage2MmuTest, InstructionFaultGrantsExecuteOnTheLeaf) {
  HostBuffer ram(k2M, k2M);
  add_slot(1, kRam, k2M, ram.data());
  fault(kRam, Access::read());
  EXPECT_FALSE(mmu->lookup(kRam)->attrs.exec);
  EXPECT_EQ(fault(kRam, Access::fetch()).action, FaultAction::Relaxed);
  EXPECT_TRUE(mmu->lookup(kRam)->attrs.exec);
}

TEST_F(Stage2MmuTest, DirtyLoggingSplitsProtectsAndLogsFirstWrite) {
  HostBuffer ram(4 * kMiB, k2M);
  add_slot(1, kRam, 4 * kMiB, ram.data());
  ASSERT_TRUE(mmu->map({kRam, kRam + 4 * kMiB}));
  EXPECT_EQ(mmu->lookup(kRam)->level, 2u);
  ASSERT_TRUE(slots.set_flags(SlotId{1}, MemslotFlags::log_dirty()));  // observer: split + protect
  auto m = mmu->lookup(kRam + 0x5000);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->level, 1u);
  EXPECT_FALSE(m->attrs.write);
  const FaultOutcome w = fault(kRam + 0x5000, Access::write());
  EXPECT_EQ(w.action, FaultAction::Relaxed);
  EXPECT_TRUE(w.dirtied);
  EXPECT_TRUE(mmu->lookup(kRam + 0x5000)->attrs.write);
  EXPECT_FALSE(mmu->lookup(kRam + 0x6000)->attrs.write) << "only the written page is relaxed";
  auto bits = slots.dirty_log_peek(SlotId{1});
  ASSERT_TRUE(bits);
  EXPECT_EQ((*bits)[0], std::uint64_t{1} << 5);
  expect_invariants();
}

TEST_F(Stage2MmuTest, DirtyLoggedSlotMapsPagesAndReadsReadOnly) {
  HostBuffer ram(k2M, k2M);
  add_slot(1, kRam, k2M, ram.data(), MemslotFlags::log_dirty());
  const FaultOutcome r = fault(kRam + 0x7000, Access::read());
  EXPECT_EQ(r.size, 0x1000u);
  EXPECT_FALSE(mmu->lookup(kRam + 0x7000)->attrs.write);
  const FaultOutcome w = fault(kRam + 0x9000, Access::write());
  EXPECT_EQ(w.action, FaultAction::Mapped);
  EXPECT_TRUE(w.dirtied);
  auto bits = slots.dirty_log_peek(SlotId{1});
  EXPECT_EQ((*bits)[0], std::uint64_t{1} << 9);
}

TEST_F(Stage2MmuTest, SplitBreaksEachBlockWithOneTlbiIpaBetweenInvalidAndNewEntry) {
  HostBuffer ram(4 * kMiB, k2M);
  add_slot(1, kRam, 4 * kMiB, ram.data());
  ASSERT_TRUE(mmu->map({kRam, kRam + 4 * kMiB}));
  int events = 0;
  mmu->tlb().set_observer([&](const pt::TlbEvent<Ipa>& e) {
    if (e.op != pt::TlbOp::Address) return;
    ++events;
    EXPECT_EQ(e.level, 2u);
    EXPECT_FALSE(mmu->lookup(e.range.begin)) << "the entry is invalid while the TLBI is issued";
  });
  const auto before = mmu->tlb().by_address();
  ASSERT_TRUE(mmu->split({kRam, kRam + 4 * kMiB}));
  mmu->tlb().set_observer(nullptr);
  EXPECT_EQ(events, 2);
  EXPECT_EQ(mmu->tlb().by_address() - before, 2u);
  EXPECT_EQ(mmu->lookup(kRam + k2M + 0x3000)->output, ram.hpa() + k2M + 0x3000);
  EXPECT_EQ(mmu->table_memory().tables_in_use(engine_level(3)), 2u);
  expect_invariants();
}

TEST_F(Stage2MmuTest, CollapseRestoresTheBlockAndFreesThePageTable) {
  HostBuffer ram(k2M, k2M);
  add_slot(1, kRam, k2M, ram.data());
  ASSERT_TRUE(mmu->map({kRam, kRam + k2M}, /*pages_only=*/true));
  ASSERT_EQ(mmu->lookup(kRam)->level, 1u);
  const auto breaks = mmu->tlb().breaks();
  EXPECT_EQ(mmu->collapse({kRam, kRam + k2M}).value(), 1u);
  EXPECT_EQ(mmu->tlb().breaks() - breaks, 1u);
  EXPECT_EQ(mmu->lookup(kRam)->level, 2u);
  EXPECT_EQ(mmu->table_memory().tables_in_use(engine_level(3)), 0u);
  expect_invariants();
}

TEST_F(Stage2MmuTest, WriteProtectIssuesOneRangeInvalidationAndNoBreak) {
  HostBuffer ram(8 * kMiB, k2M);
  add_slot(1, kRam, 8 * kMiB, ram.data());
  ASSERT_TRUE(mmu->map({kRam, kRam + 8 * kMiB}));
  const auto ranges = mmu->tlb().by_range(), breaks = mmu->tlb().breaks();
  ASSERT_TRUE(mmu->write_protect({kRam, kRam + 8 * kMiB}));
  EXPECT_EQ(mmu->tlb().by_range() - ranges, 1u);
  EXPECT_EQ(mmu->tlb().breaks(), breaks);
  EXPECT_FALSE(mmu->lookup(kRam + 7 * kMiB)->attrs.write);
}

TEST_F(Stage2MmuTest, UnmapFreesTablesBackToTheRoot) {
  HostBuffer ram(8 * kMiB, k2M, 0x1000);
  add_slot(1, kRam, 8 * kMiB, ram.data());
  ASSERT_TRUE(mmu->map({kRam, kRam + 8 * kMiB}));
  EXPECT_GT(mmu->table_memory().tables_in_use(), 1u);
  ASSERT_TRUE(mmu->unmap({kRam, kRam + 8 * kMiB}));
  EXPECT_EQ(mmu->table_memory().tables_in_use(), 1u);
  EXPECT_FALSE(mmu->lookup(kRam));
}

TEST_F(Stage2MmuTest, RemovingASlotUnmapsIt) {
  HostBuffer ram(k2M, k2M);
  add_slot(1, kRam, k2M, ram.data());
  fault(kRam, Access::read());
  ASSERT_TRUE(slots.remove(SlotId{1}));
  EXPECT_FALSE(mmu->lookup(kRam));
}

TEST_F(Stage2MmuTest, UnmapRemovesAStraddlingBlockWhole) {
  HostBuffer ram(k2M, k2M);
  add_slot(1, kRam, k2M, ram.data());
  fault(kRam, Access::read());
  const std::uint64_t tables = mmu->table_memory().tables_in_use();
  ASSERT_TRUE(mmu->unmap({kRam + 0x1000, kRam + 0x2000}));
  EXPECT_FALSE(mmu->lookup(kRam)) << "the block was split, not removed";
  EXPECT_LE(mmu->table_memory().tables_in_use(), tables);
  expect_invariants();
}

class Stage2MmuNoSpareTableTest : public Stage2MmuTest {
 protected:
  void SetUp() override {
    auto layout = choose_layout(40, Granule::K4);
    ASSERT_TRUE(layout);
    // The (concatenated) root and one level-2 table: a 2M block, and no table to split it.
    auto m = Stage2Mmu::create(*layout, slots, {.table_budget = 2});
    ASSERT_TRUE(m);
    mmu = std::move(*m);
  }
};

TEST_F(Stage2MmuNoSpareTableTest, LoggingDirtyWithoutTableMemoryLeavesNoWritableBlock) {
  HostBuffer ram(k2M, k2M);
  add_slot(1, kRam, k2M, ram.data());
  ASSERT_EQ(fault(kRam, Access::write()).size, k2M);
  ASSERT_TRUE(slots.set_flags(SlotId{1}, MemslotFlags::log_dirty()));  // observer: the split runs out
  const auto m = mmu->lookup(kRam);
  EXPECT_FALSE(m && m->attrs.write) << "a block stayed writable while its slot logs dirty pages";
  expect_invariants();
}

TEST_F(Stage2MmuNoSpareTableTest, OverlayWithoutTableMemoryStillUnmapsTheOldBlock) {
  HostBuffer ram(k2M, k2M), other(0x1000, 0x1000);
  add_slot(1, kRam, k2M, ram.data());
  ASSERT_EQ(fault(kRam, Access::read()).size, k2M);
  ASSERT_TRUE(slots.overlay_add(Gfn((kRam.raw() >> kPageShift) + 5), 1, other.data()));
  EXPECT_FALSE(mmu->lookup(kRam + 0x5000)) << "the old memory is still mapped under the overlay";
  expect_invariants();
}

TEST_F(Stage2MmuTest, MakingASlotReadOnlyRemovesWrite) {
  HostBuffer ram(k2M, k2M);
  add_slot(1, kRam, k2M, ram.data());
  fault(kRam, Access::write());
  ASSERT_TRUE(slots.set_flags(SlotId{1}, MemslotFlags::read_only()));
  EXPECT_FALSE(mmu->lookup(kRam)->attrs.write);
  expect_invariants();
}

TEST_F(Stage2MmuTest, RegistersDescribeTheTablesToTheArchitecturalWalker) {
  HostBuffer ram(8 * kMiB, k2M);
  add_slot(1, kRam, 8 * kMiB, ram.data());
  fault(kRam + 0x3000, Access::write());
  auto s2 = Stage2::from(mmu->registers(), CpuModel{48});
  ASSERT_TRUE(s2);
  ASSERT_FALSE(s2->setup_fault());
  pt::OwnedTableMemory& memory = const_cast<pt::OwnedTableMemory&>(mmu->table_memory());
  auto t = walk(*s2, memory, kRam + 0x3456, AccessKind::Write, {.update_descriptors = false});
  ASSERT_TRUE(t);
  EXPECT_EQ(t->pa, ram.hpa() + 0x3456);
  EXPECT_EQ(t->level, 2);
}

TEST_F(Stage2MmuTest, InvariantCheckCatchesALeafOutsideAnySlot) {
  HostBuffer ram(k2M, k2M);
  add_slot(1, kRam, k2M, ram.data());
  fault(kRam, Access::read());
  // Forge a 2 MiB leaf next to the mapped one, pointing at memory no slot describes.
  Stage2MmuFormat f(mmu->layout());
  pt::OwnedTableMemory& memory = const_cast<pt::OwnedTableMemory&>(mmu->table_memory());
  const std::uint64_t forged = f.make_leaf(Hpa(0x1000'0000), 2, {});
  auto w = pt::walk(f, memory, mmu->root(), (kRam + 0x1000).raw(), [](auto&) { return pt::Visit::Continue; });
  ASSERT_EQ(w.end, pt::WalkEnd::Leaf);
  memory.store<std::uint64_t>(w.entry_address + 8, forged);  // the entry for kRam + 2 MiB
  EXPECT_TRUE(mmu->check_invariants());
  memory.store<std::uint64_t>(w.entry_address + 8, 0);
  expect_invariants();
}

class Stage2MmuGranuleTest : public ::testing::TestWithParam<Granule> {};

TEST_P(Stage2MmuGranuleTest, FaultsMapBlocksAndPagesAtEveryGranule) {
  const Granule g = GetParam();
  auto layout = choose_layout(40, g);
  ASSERT_TRUE(layout);
  Memslots slots;
  auto mmu = std::move(Stage2Mmu::create(*layout, slots).value());
  const std::uint64_t block = std::uint64_t{1} << level_shift(g, 2);
  const std::uint64_t page = granule_bytes(g);
  HostBuffer ram(2 * block, block);
  ASSERT_TRUE(slots.add({SlotId{1}, Gfn(kRam.raw() >> kPageShift), (2 * block) >> kPageShift, ram.data(), {}}));
  auto r = mmu->handle_fault(kRam + block + 0x10, Access::read());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->size, block);
  ASSERT_TRUE(mmu->enable_dirty_logging({kRam, kRam + 2 * block}));
  EXPECT_EQ(mmu->lookup(kRam + block)->covers.size(), page);
  EXPECT_FALSE(mmu->lookup(kRam + block)->attrs.write);
  EXPECT_EQ(mmu->collapse({kRam, kRam + 2 * block}).value(), 1u) << "the split pages are still uniform";
  EXPECT_EQ(mmu->lookup(kRam + block)->covers.size(), block);
  auto bad = mmu->check_invariants();
  EXPECT_FALSE(bad) << *bad;
}

INSTANTIATE_TEST_SUITE_P(Granules, Stage2MmuGranuleTest, ::testing::ValuesIn(kAllGranules),
                         [](const ::testing::TestParamInfo<Granule>& p) {
                           return p.param == Granule::K4 ? "K4" : p.param == Granule::K16 ? "K16" : "K64";
                         });

}  // namespace
}  // namespace vmmu::arm64

namespace vmmu::arm64 {
namespace {

// 52-bit IPA spaces: the MMU programs DS (4K, 16K) or relies on FEAT_LPA (64K), maps and
// unmaps above bit 48, and the architectural walker (a 52-bit CPU) agrees with every leaf.
TEST(Stage2Mmu52, MapsAndUnmapsAboveTwoTo48ForEveryGranule) {
  for (Granule g : kAllGranules) {
    SCOPED_TRACE(to_string(g));
    Memslots slots;
    auto layout = choose_layout(52, g, /*lpa=*/true);
    ASSERT_TRUE(layout);
    auto m = Stage2Mmu::create(*layout, slots);
    ASSERT_TRUE(m);
    Stage2Mmu& mmu = **m;
    const Registers regs = mmu.registers();
    EXPECT_EQ(vtcr::T0sz::get(regs.vtcr_el2), 12u);
    EXPECT_EQ(vtcr::Ds::get(regs.vtcr_el2), g != Granule::K64);
    auto s2 = Stage2::from(regs, {52});
    ASSERT_TRUE(s2);
    ASSERT_FALSE(s2->setup_fault());
    EXPECT_EQ(s2->root(), mmu.root());

    const Ipa high(0x000f'0000'0000'0000);  // bit 51 and up: the top 4 IPA bits in use
    testing::HostBuffer ram(4 * kMiB, k2M);
    ASSERT_TRUE(slots.add({SlotId{1}, Gfn(high.raw() >> kPageShift), (4 * kMiB) >> kPageShift, ram.data(), {}}));
    auto r = mmu.handle_fault(high + 0x3456, Access::write());
    ASSERT_TRUE(r) << pt::to_string(r.error());
    EXPECT_EQ(r->action, FaultAction::Mapped);
    auto leaf = mmu.lookup(high + 0x3456);
    ASSERT_TRUE(leaf);
    EXPECT_EQ(leaf->output, ram.hpa() + 0x3456);
    auto bad = mmu.check_invariants();
    EXPECT_FALSE(bad) << *bad;
    auto t = walk(*s2, const_cast<pt::OwnedTableMemory&>(mmu.table_memory()), high + 0x3456, AccessKind::Write,
                  {.update_descriptors = false});
    ASSERT_TRUE(t) << to_string(t.error().kind) << "@" << t.error().level;
    EXPECT_EQ(t->pa, ram.hpa() + 0x3456);

    ASSERT_TRUE(mmu.unmap({high, high + 4 * kMiB}));
    EXPECT_FALSE(mmu.lookup(high + 0x3456));
    EXPECT_EQ(walk(*s2, const_cast<pt::OwnedTableMemory&>(mmu.table_memory()), high + 0x3456, AccessKind::Read,
                   {.update_descriptors = false})
                  .error()
                  .kind,
              FaultKind::Translation);
    EXPECT_EQ(mmu.handle_fault(Ipa(1ULL << 52), Access::read())->action, FaultAction::OutOfRange);
  }
}

}  // namespace
}  // namespace vmmu::arm64
