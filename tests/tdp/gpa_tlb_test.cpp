// The modelled hardware TLB: hits need no walk, huge leaves are one entry, a write is cached
// only once D is set, and every MMU flush or root change drops what it holds.
#include <gtest/gtest.h>

#include "tdp/support/tdp_fixture.hpp"

namespace vmmu::tdp {
namespace {

using test::HostMemory;
using test::TdpVm;

TEST(GpaTlb, LookupFollowsLevelsRightsAndGenerations) {
  GpaTlb tlb;
  HostMemory huge(std::uint64_t{1} << 21);
  std::byte* page = huge.data();
  tlb.fill(Gpa(0x200000), 2, page, GpaTlb::kRead, 5);
  EXPECT_EQ(tlb.lookup(Gpa(0x3ff008), Access::read(), 5), page + 0x1ff008);
  EXPECT_EQ(tlb.lookup(Gpa(0x3ff008), Access::write(), 5), nullptr) << "read-only entry";
  EXPECT_EQ(tlb.lookup(Gpa(0x400000), Access::read(), 5), nullptr) << "next 2M frame";
  EXPECT_EQ(tlb.lookup(Gpa(0x200000), Access::read(), 6), nullptr) << "a flush happened";
  EXPECT_EQ(tlb.lookup(Gpa(0x200000), Access::read(), 6), nullptr) << "and emptied it";
}

TEST(GpaTlb, TheMmuFlushesEveryVcpuTlb) {
  TdpVm vm;
  HostMemory mem(std::uint64_t{1} << 21);
  vm.add_slot(1, Gfn(0), mem, std::uint64_t{1} << 21);
  auto& v = vm.vcpu();
  ASSERT_TRUE(vm.write64(v, Gpa(0x1000), 1));
  const std::uint64_t faults = v.stats().faults;
  for (std::uint64_t p = 0; p < 512; ++p) ASSERT_TRUE(vm.write64(v, gpa_of(Gfn(p)), p));
  EXPECT_EQ(v.stats().faults, faults) << "one huge leaf, one TLB entry";
  // Write protection flushes: the next write must fault (and the TLB must not hide it).
  EXPECT_EQ(vm.mmu->write_protect({Gfn(0), Gfn(512)}), 1u);
  ASSERT_TRUE(vm.write64(v, Gpa(0x2000), 7));
  EXPECT_EQ(v.stats().faults, faults + 1);
  // zap-all: the vCPU moves to a new root and refaults.
  vm.mmu->unmap_all();
  ASSERT_TRUE(vm.read64(v, Gpa(0x2000)));
  EXPECT_EQ(v.stats().faults, faults + 2);
}

TEST(GpaTlb, AFirstWriteThroughACleanLeafSetsD) {
  TdpVm vm;
  HostMemory mem(16 * kPageSize);
  vm.add_slot(1, Gfn(0), mem);
  auto& v = vm.vcpu();
  ASSERT_TRUE(vm.read64(v, Gpa(0x3000)));   // mapped writable, D clear: the TLB holds read only
  EXPECT_FALSE(vm.mmu->lookup(Gpa(0x3000))->attrs.dirty);
  ASSERT_TRUE(vm.write64(v, Gpa(0x3000), 1));
  EXPECT_TRUE(vm.mmu->lookup(Gpa(0x3000))->attrs.dirty);
}

}  // namespace
}  // namespace vmmu::tdp
