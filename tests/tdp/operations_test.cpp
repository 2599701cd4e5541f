// Structural operations one at a time: one TLB flush per operation whatever it touches,
// splits keep data and permissions, merge in place and zap-and-refault recovery, aging,
// huge-page bans, table accounting.
#include <gtest/gtest.h>

#include "tdp/support/tdp_fixture.hpp"

namespace vmmu::tdp {
namespace {

using test::HostMemory;
using test::TdpVm;

using test::k2M;

struct Populated {
  explicit Populated(std::uint64_t backing = kPageSize, TdpConfig c = {}) : vm(c), mem(8 * k2M) {
    vm.add_slot(1, Gfn(0), mem, backing);
    v = &vm.vcpu();
    for (std::uint64_t p = 0; p < mem.pages(); ++p) {
      if (!vm.write64(*v, gpa_of(Gfn(p)), p)) std::abort();
    }
  }
  TdpVm vm;
  HostMemory mem;
  VcpuMmu* v;
};

TEST(Operations, OneFlushPerOperation) {
  Populated p;
  auto& tlb = p.vm.mmu->tlb();
  const std::uint64_t before = tlb.total();
  EXPECT_EQ(p.vm.mmu->write_protect({Gfn(0), Gfn(p.mem.pages())}), p.mem.pages());
  EXPECT_EQ(tlb.total(), before + 1);
  ASSERT_TRUE(p.vm.mmu->unmap({Gfn(10), Gfn(3000)}));
  EXPECT_EQ(tlb.total(), before + 2);
  p.vm.mmu->invalidate_begin({Gfn(0), Gfn(100)});
  p.vm.mmu->invalidate_end({Gfn(0), Gfn(100)});
  EXPECT_EQ(tlb.total(), before + 3);
  EXPECT_EQ(p.vm.mmu->stats().tlb_flushes, tlb.total());
  // Nothing to change: no flush at all.
  EXPECT_EQ(p.vm.mmu->write_protect({Gfn(10), Gfn(100)}), 0u);
  EXPECT_EQ(tlb.total(), before + 3);
}

TEST(Operations, AgingClearsAccessedWithoutFlushing) {
  Populated p;
  const std::uint64_t flushes = p.vm.mmu->tlb().total();
  EXPECT_TRUE(p.vm.mmu->test_age({Gfn(0), Gfn(512)}));
  EXPECT_EQ(p.vm.mmu->age({Gfn(0), Gfn(512)}), 512u);
  EXPECT_FALSE(p.vm.mmu->test_age({Gfn(0), Gfn(512)}));
  EXPECT_EQ(p.vm.mmu->age({Gfn(0), Gfn(512)}), 0u);
  ASSERT_TRUE(p.vm.read64(*p.v, Gpa(0x3000)));  // the hardware sets A again
  EXPECT_EQ(p.vm.mmu->age({Gfn(0), Gfn(512)}), 1u);
  EXPECT_EQ(p.vm.mmu->tlb().total(), flushes);
}

TEST(Operations, AgingWithoutAccessedBitsZaps) {
  TdpConfig c;
  c.format.ad_bits = false;
  Populated p(kPageSize, c);
  EXPECT_EQ(p.vm.mmu->age({Gfn(0), Gfn(512)}), 512u);
  EXPECT_FALSE(p.vm.mmu->lookup(Gpa(0x3000)).has_value());
  EXPECT_FALSE(p.vm.mmu->check_invariants().has_value());
}

TEST(Operations, SplitKeepsDataAndPermissionsMergeRestoresHugeLeaves) {
  Populated p(k2M);
  EXPECT_EQ(p.vm.mmu->stats().leaves[2], 8u);
  ASSERT_TRUE(p.vm.slots.set_flags(SlotId{1}, MemslotFlags::read_only()));
  auto n = p.vm.mmu->split({Gfn(0), Gfn(p.mem.pages())});
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 8u);
  const TdpStats s = p.vm.mmu->stats();
  EXPECT_EQ(s.leaves[1], p.mem.pages());
  EXPECT_EQ(s.leaves[2], 0u);
  EXPECT_FALSE(p.vm.mmu->lookup(Gpa(0x5000))->attrs.write);
  const std::uint64_t faults = p.v->stats().faults;
  for (std::uint64_t q = 0; q < p.mem.pages(); ++q) ASSERT_EQ(*p.vm.read64(*p.v, gpa_of(Gfn(q))), q);
  EXPECT_EQ(p.v->stats().faults, faults) << "splitting needs no fault";
  EXPECT_EQ(p.vm.mmu->collapse({Gfn(0), Gfn(p.mem.pages())}), 8u);
  EXPECT_EQ(p.vm.mmu->stats().leaves[2], 8u);
  EXPECT_EQ(p.vm.mmu->stats().tables_in_use, 3u) << "page tables freed";
  EXPECT_FALSE(p.vm.mmu->check_invariants().has_value());
}

TEST(Operations, MergeNeedsEveryPageAndTheSlotsPermission) {
  Populated p(k2M);
  ASSERT_TRUE(p.vm.mmu->split({Gfn(0), Gfn(p.mem.pages())}));
  ASSERT_TRUE(p.vm.mmu->unmap({Gfn(7), Gfn(8)}));  // one page missing in the first table
  EXPECT_EQ(p.vm.mmu->collapse({Gfn(0), Gfn(p.mem.pages())}), 7u);
  ASSERT_TRUE(p.vm.read64(*p.v, gpa_of(Gfn(7))));
  EXPECT_EQ(p.vm.mmu->collapse({Gfn(0), Gfn(p.mem.pages())}), 1u);
  // A slot declared with 4K backing is never merged.
  Populated small;
  EXPECT_EQ(small.vm.mmu->collapse({Gfn(0), Gfn(small.mem.pages())}), 0u);
}

TEST(Operations, RecoveryPoliciesAfterDirtyLogging) {
  for (RecoveryPolicy r : {RecoveryPolicy::MergeInPlace, RecoveryPolicy::ZapAndRefault}) {
    TdpConfig c;
    c.policies.recovery = r;
    Populated p(k2M, c);
    ASSERT_TRUE(p.vm.slots.set_flags(SlotId{1}, MemslotFlags::log_dirty()));
    for (std::uint64_t q = 0; q < p.mem.pages(); ++q) ASSERT_TRUE(p.vm.write64(*p.v, gpa_of(Gfn(q)), q + 1));
    ASSERT_TRUE(p.vm.slots.set_flags(SlotId{1}, MemslotFlags::none()));
    const TdpStats s = p.vm.mmu->stats();
    if (r == RecoveryPolicy::MergeInPlace) {
      EXPECT_EQ(s.merges_in_place, 8u);
      EXPECT_EQ(s.leaves[2], 8u);
    } else {
      EXPECT_EQ(s.recovered_by_zap, 8u);
      EXPECT_EQ(s.leaves[1] + s.leaves[2], 0u);
      ASSERT_TRUE(p.vm.read64(*p.v, Gpa(0)));
      EXPECT_EQ(p.vm.mmu->lookup(Gpa(0))->level, 2u) << "the refault maps huge again";
    }
    for (std::uint64_t q = 0; q < p.mem.pages(); ++q) ASSERT_EQ(*p.vm.read64(*p.v, gpa_of(Gfn(q))), q + 1);
    EXPECT_FALSE(p.vm.mmu->check_invariants().has_value());
  }
}

TEST(Operations, DisallowedHugePagesSplitAndStaySmallUntilAllowed) {
  Populated p(k2M);
  p.vm.mmu->disallow_huge({Gfn(600), Gfn(601)});  // inside the second 2M frame
  EXPECT_EQ(p.vm.mmu->lookup(gpa_of(Gfn(600)))->level, 1u);
  EXPECT_EQ(p.vm.mmu->lookup(gpa_of(Gfn(1200)))->level, 2u) << "other frames stay huge";
  ASSERT_TRUE(p.vm.mmu->unmap({Gfn(512), Gfn(1024)}));
  ASSERT_TRUE(p.vm.read64(*p.v, gpa_of(Gfn(700))));
  EXPECT_EQ(p.vm.mmu->lookup(gpa_of(Gfn(700)))->level, 1u);
  EXPECT_EQ(p.vm.mmu->collapse({Gfn(0), Gfn(p.mem.pages())}), 0u);
  p.vm.mmu->allow_huge({Gfn(600), Gfn(601)});
  ASSERT_TRUE(p.vm.mmu->unmap({Gfn(512), Gfn(1024)}));
  ASSERT_TRUE(p.vm.read64(*p.v, gpa_of(Gfn(700))));
  EXPECT_EQ(p.vm.mmu->lookup(gpa_of(Gfn(700)))->level, 2u);
  EXPECT_FALSE(p.vm.mmu->check_invariants().has_value());
}

TEST(Operations, OverlayConversionSplitsThenMergesBack) {
  // A private/shared conversion: one 4K page of a 2M range gets other memory.
  Populated p(k2M);
  HostMemory shared(kPageSize);
  std::memset(shared.data(), 0xab, 8);
  // Split first, as the simulator's conversion does: unmapping one page of a huge leaf drops
  // the whole leaf.
  ASSERT_TRUE(p.vm.mmu->split({Gfn(512), Gfn(1024)}));
  auto o = p.vm.slots.overlay_add(Gfn(513), 1, shared.data());
  ASSERT_TRUE(o);
  EXPECT_TRUE(p.vm.mmu->lookup(gpa_of(Gfn(514)))) << "the rest of the 2M range stays mapped";
  EXPECT_EQ(*p.vm.read64(*p.v, gpa_of(Gfn(513))), 0xababababababababull);
  EXPECT_EQ(*p.vm.read64(*p.v, gpa_of(Gfn(514))), 514u) << "the rest of the 2M range keeps its data";
  EXPECT_EQ(p.vm.mmu->lookup(gpa_of(Gfn(514)))->level, 1u);
  ASSERT_TRUE(p.vm.slots.overlay_remove(*o));
  EXPECT_EQ(*p.vm.read64(*p.v, gpa_of(Gfn(513))), 513u);
  EXPECT_EQ(p.vm.mmu->collapse({Gfn(512), Gfn(1024)}), 1u);
  EXPECT_EQ(p.vm.mmu->lookup(gpa_of(Gfn(514)))->level, 2u);
  EXPECT_FALSE(p.vm.mmu->check_invariants().has_value());
}

TEST(Operations, TableBudgetExhaustionIsAnErrorNotACrash) {
  TdpConfig c;
  c.table_budget = 4;  // root + 3 tables: one 2M region of 4K pages
  TdpVm vm(c);
  HostMemory mem(2 * k2M);
  vm.add_slot(1, Gfn(0), mem);
  auto& v = vm.vcpu();
  ASSERT_TRUE(vm.write64(v, Gpa(0), 1));
  auto f = vm.mmu->handle_fault(v, Gpa(k2M), Access::write());
  ASSERT_FALSE(f.has_value());
  EXPECT_EQ(f.error(), pt::TableError::OutOfMemory);
  EXPECT_EQ(*vm.read64(v, Gpa(0)), 1u) << "what was mapped stays";
  EXPECT_FALSE(vm.mmu->check_invariants().has_value());
}


// Budget for a 2M leaf and no more: the root, a level-3 and a level-2 table.
TdpConfig no_table_to_spare() {
  TdpConfig c;
  c.table_budget = 3;
  return c;
}

TEST(Operations, DisallowingHugeWithoutTableMemoryUnmapsTheHugeLeafWhole) {
  TdpVm vm(no_table_to_spare());
  HostMemory mem(k2M);
  vm.add_slot(1, Gfn(0), mem, k2M);
  auto& v = vm.vcpu();
  ASSERT_TRUE(vm.write64(v, gpa_of(Gfn(5)), 5));
  ASSERT_EQ(vm.mmu->lookup(gpa_of(Gfn(5)))->level, 2u);
  vm.mmu->disallow_huge({Gfn(5), Gfn(6)});  // the split needs a page table: none left
  const auto leaf = vm.mmu->lookup(gpa_of(Gfn(5)));
  EXPECT_FALSE(leaf && leaf->level > 1) << "a huge leaf stayed over a disallowed gfn";
  EXPECT_FALSE(vm.mmu->check_invariants().has_value());
}

TEST(Operations, OverlayWithoutTableMemoryStillUnmapsTheOldLeaf) {
  TdpVm vm(no_table_to_spare());
  HostMemory mem(k2M), other(kPageSize);
  vm.add_slot(1, Gfn(0), mem, k2M);
  auto& v = vm.vcpu();
  ASSERT_TRUE(vm.write64(v, gpa_of(Gfn(5)), 5));
  ASSERT_EQ(vm.mmu->lookup(gpa_of(Gfn(5)))->level, 2u);
  // Zapping one page of the 2M leaf would need a page table to keep the rest: the leaf goes whole.
  ASSERT_TRUE(vm.slots.overlay_add(Gfn(5), 1, other.data()));
  EXPECT_FALSE(vm.mmu->lookup(gpa_of(Gfn(5)))) << "the old memory is still mapped under the overlay";
  EXPECT_FALSE(vm.mmu->check_invariants().has_value());
}

}  // namespace
}  // namespace vmmu::tdp
