// The fault path: mapping levels, MMIO markers, read-only slots, spurious faults, retries
// around invalidations, and data reaching the slot's memory.
#include <gtest/gtest.h>

#include "tdp/support/tdp_fixture.hpp"

namespace vmmu::tdp {
namespace {

using test::HostMemory;
using test::TdpVm;

using test::k2M;
constexpr std::uint64_t k1G = std::uint64_t{1} << 30;

struct LevelCase {
  const char* name;
  std::uint64_t backing;
  std::uint64_t slot_base_gfn;
  std::uint64_t gpa;
  unsigned want_level;
};

class FaultLevel : public ::testing::TestWithParam<LevelCase> {};

TEST_P(FaultLevel, LargestLevelTheSlotAllows) {
  const LevelCase& c = GetParam();
  for (TdpKind kind : {TdpKind::Ept, TdpKind::Npt}) {
    TdpConfig cfg;
    cfg.format.kind = kind;
    TdpVm vm(cfg);
    HostMemory mem(2 * k1G, k1G);
    vm.add_slot(1, Gfn(c.slot_base_gfn), mem, c.backing);
    auto& v = vm.vcpu();
    auto f = vm.mmu->handle_fault(v, Gpa(c.gpa), Access::read());
    ASSERT_TRUE(f.has_value());
    EXPECT_EQ(f->action, FaultAction::Mapped) << c.name;
    EXPECT_EQ(f->level, c.want_level) << c.name << " " << to_string(kind);
    auto leaf = vm.mmu->lookup(Gpa(c.gpa));
    ASSERT_TRUE(leaf.has_value());
    const std::uint64_t offset = c.gpa - (c.slot_base_gfn << kPageShift);
    EXPECT_EQ(leaf->host.raw(), reinterpret_cast<std::uintptr_t>(mem.data()) + offset) << c.name;
    EXPECT_FALSE(vm.mmu->check_invariants().has_value());
  }
}

INSTANTIATE_TEST_SUITE_P(
    Table, FaultLevel,
    ::testing::Values(LevelCase{"4K backing maps 4K", kPageSize, 0, 0x12345000, 1},
                      LevelCase{"2M backing maps 2M", k2M, 0, 0x12345000, 2},
                      LevelCase{"1G backing maps 1G", k1G, 0, 0x12345000, 3},
                      // Slot at gfn 0x100 (1 MiB): 2M frames are not congruent with the host's.
                      LevelCase{"guest/host not congruent -> 4K", k2M, 0x100, 0x400000, 1},
                      // Slot at 2 MiB with 1G backing: only 2M frames are congruent.
                      LevelCase{"2M-congruent only -> 2M", k1G, 0x200, 0x400000, 2},
                      LevelCase{"1G-aligned slot at 1 GiB -> 1G", k1G, 0x40000, 0x40000000, 3},
                      // 1G frame [1 GiB, 2 GiB) is cut by the slot's start at 1 GiB + 2 MiB.
                      LevelCase{"1G frame cut by the slot -> 2M", k1G, 0x40200, 0x40400000, 2}),
    [](const ::testing::TestParamInfo<LevelCase>& param) { return "case" + std::to_string(param.index); });

TEST(Fault, DataReachesTheSlotMemory) {
  TdpVm vm;
  HostMemory mem(4 * kPageSize);
  vm.add_slot(1, Gfn(0x10), mem);
  auto& v = vm.vcpu();
  ASSERT_TRUE(vm.write64(v, Gpa(0x11008), 0x1122334455667788));
  std::uint64_t raw = 0;
  std::memcpy(&raw, mem.data() + kPageSize + 8, 8);
  EXPECT_EQ(raw, 0x1122334455667788u);
  auto r = vm.read64(v, Gpa(0x11008));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(*r, 0x1122334455667788u);
}

TEST(Fault, NoSlotIsMmioAndTheMarkerAnswersTheNextOne) {
  TdpVm vm;
  HostMemory mem(16 * kPageSize);
  vm.add_slot(1, Gfn(0), mem);
  auto& v = vm.vcpu();
  auto f1 = vm.mmu->handle_fault(v, Gpa(0x100000), Access::read());
  ASSERT_TRUE(f1);
  EXPECT_EQ(f1->action, FaultAction::Mmio);
  EXPECT_EQ(v.stats().mmio_fast, 0u);
  auto f2 = vm.mmu->handle_fault(v, Gpa(0x100000), Access::write());
  ASSERT_TRUE(f2);
  EXPECT_EQ(f2->action, FaultAction::Mmio);
  EXPECT_EQ(v.stats().mmio_fast, 1u);
  // A memslot added there makes the marker stale: the next fault maps memory.
  HostMemory more(16 * kPageSize);
  vm.add_slot(2, Gfn(0x100), more);
  auto f3 = vm.mmu->handle_fault(v, Gpa(0x100000), Access::read());
  ASSERT_TRUE(f3);
  EXPECT_EQ(f3->action, FaultAction::Mapped);
  EXPECT_FALSE(vm.mmu->check_invariants().has_value());
}

TEST(Fault, WriteToReadOnlySlotIsMmioReadMapsReadOnly) {
  TdpVm vm;
  HostMemory mem(16 * kPageSize);
  vm.add_slot(1, Gfn(0), mem, kPageSize, MemslotFlags::read_only());
  auto& v = vm.vcpu();
  auto w = vm.mmu->handle_fault(v, Gpa(0x2000), Access::write());
  ASSERT_TRUE(w);
  EXPECT_EQ(w->action, FaultAction::Mmio);
  auto r = vm.mmu->handle_fault(v, Gpa(0x2000), Access::read());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->action, FaultAction::Mapped);
  auto leaf = vm.mmu->lookup(Gpa(0x2000));
  ASSERT_TRUE(leaf);
  EXPECT_FALSE(leaf->attrs.write);
  EXPECT_FALSE(vm.mmu->check_invariants().has_value());
}

TEST(Fault, SecondFaultIsSpurious) {
  TdpVm vm;
  HostMemory mem(16 * kPageSize);
  vm.add_slot(1, Gfn(0), mem);
  auto& v = vm.vcpu();
  ASSERT_EQ(vm.mmu->handle_fault(v, Gpa(0x3000), Access::write())->action, FaultAction::Mapped);
  ASSERT_EQ(vm.mmu->handle_fault(v, Gpa(0x3000), Access::write())->action, FaultAction::Spurious);
  EXPECT_EQ(v.stats().spurious, 1u);
  EXPECT_EQ(v.stats().mapped[1], 1u);
}

TEST(Fault, RetriesWhileAnInvalidationCoversTheGfn) {
  TdpVm vm;
  HostMemory mem(16 * kPageSize);
  vm.add_slot(1, Gfn(0), mem);
  auto& v = vm.vcpu();
  vm.mmu->invalidate_begin({Gfn(2), Gfn(4)});
  EXPECT_EQ(vm.mmu->handle_fault(v, Gpa(0x3000), Access::read())->action, FaultAction::Retry);
  EXPECT_EQ(vm.mmu->handle_fault(v, Gpa(0x5000), Access::read())->action, FaultAction::Mapped);
  vm.mmu->invalidate_end({Gfn(2), Gfn(4)});
  EXPECT_EQ(vm.mmu->handle_fault(v, Gpa(0x3000), Access::read())->action, FaultAction::Mapped);
  EXPECT_EQ(v.stats().retried, 1u);
}

TEST(Fault, OutOfRangeBeyondTheTables) {
  TdpVm vm;
  auto& v = vm.vcpu();
  EXPECT_EQ(vm.mmu->handle_fault(v, Gpa(std::uint64_t{1} << 48), Access::read())->action, FaultAction::OutOfRange);
}

TEST(Fault, SlotRemovalZapsOnlyThatSlot) {
  TdpVm vm;
  HostMemory a(16 * kPageSize), b(16 * kPageSize);
  vm.add_slot(1, Gfn(0), a);
  vm.add_slot(2, Gfn(0x100), b);
  auto& v = vm.vcpu();
  ASSERT_TRUE(vm.write64(v, Gpa(0x1000), 1));
  ASSERT_TRUE(vm.write64(v, Gpa(0x101000), 2));
  ASSERT_TRUE(vm.slots.remove(SlotId{1}));
  EXPECT_FALSE(vm.mmu->lookup(Gpa(0x1000)).has_value());
  EXPECT_TRUE(vm.mmu->lookup(Gpa(0x101000)).has_value());
  EXPECT_FALSE(vm.mmu->check_invariants().has_value());
}

TEST(Fault, ZapAllMovesVcpusToANewRootWithoutTouchingTables) {
  TdpVm vm;
  HostMemory mem(16 * kPageSize);
  vm.add_slot(1, Gfn(0), mem);
  auto& v = vm.vcpu();
  ASSERT_TRUE(vm.write64(v, Gpa(0x1000), 7));
  EXPECT_EQ(vm.mmu->stats().roots_created, 1u);
  vm.mmu->unmap_all();
  EXPECT_FALSE(vm.mmu->check_invariants().has_value());
  auto r = vm.read64(v, Gpa(0x1000));
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, 7u);
  const TdpStats s = vm.mmu->stats();
  EXPECT_EQ(s.roots_created, 2u);
  EXPECT_EQ(s.roots_freed, 1u);  // the vCPU dropped the invalid root, its last reference
  EXPECT_EQ(s.roots_invalidated, 1u);
  EXPECT_FALSE(vm.mmu->check_invariants().has_value());
}

TEST(Fault, RootsAreSharedAndKeptWithoutVcpus) {
  TdpVm vm;
  HostMemory mem(16 * kPageSize);
  vm.add_slot(1, Gfn(0), mem);
  {
    tdp::VcpuMmu a(*vm.mmu), b(*vm.mmu);
    ASSERT_TRUE(vm.write64(a, Gpa(0x1000), 1));
    ASSERT_TRUE(vm.write64(b, Gpa(0x1000), 2));
    EXPECT_EQ(b.stats().mapped[1], 0u) << "b runs on a's root: its fault was spurious";
  }
  // Both vCPUs gone: the root (and its mappings) stays (KVM 6.4+).
  EXPECT_TRUE(vm.mmu->lookup(Gpa(0x1000)).has_value());
  EXPECT_EQ(vm.mmu->stats().roots_freed, 0u);
  EXPECT_FALSE(vm.mmu->check_invariants().has_value());
}

TEST(Fault, RebuildPolicyFreesARootWithItsLastVcpu) {
  TdpVm vm([](Policies& p) { p.roots = RootPolicy::Rebuild; });
  HostMemory mem(16 * kPageSize);
  vm.add_slot(1, Gfn(0), mem);
  auto& v = vm.vcpu();
  ASSERT_TRUE(vm.write64(v, Gpa(0x1000), 1));
  v.unload_root();
  EXPECT_EQ(vm.mmu->stats().roots_freed, 1u);
  ASSERT_TRUE(vm.write64(v, Gpa(0x1000), 1));
  EXPECT_EQ(v.stats().mapped[1], 2u) << "the new root had to fault the page in again";
}

}  // namespace
}  // namespace vmmu::tdp
