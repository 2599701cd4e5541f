// The root-facing API: the root pointer the modelled hardware is given (EPTP / nCR3), and a
// vCPU switching root roles.
#include <gtest/gtest.h>

#include "tdp/support/tdp_fixture.hpp"

namespace vmmu::tdp {
namespace {

using test::HostMemory;
using test::TdpVm;

TEST(RootPointer, EptpCarriesWriteBackWalkLengthAndAccessedDirty) {
  const Hpa root(0x1234000);
  // SDM vol. 3C, 25.6.11: bits 2:0 memory type (6 = WB), 5:3 walk length - 1, 6 A/D enable.
  EXPECT_EQ(TdpFormat({.kind = TdpKind::Ept, .levels = 4, .ad_bits = true}).root_pointer(root), 0x1234000u | 6 | 3 << 3 | 1 << 6);
  EXPECT_EQ(TdpFormat({.kind = TdpKind::Ept, .levels = 5, .ad_bits = false}).root_pointer(root), 0x1234000u | 6 | 4 << 3);
}

TEST(RootPointer, NestedCr3IsTheRootAddressAlone) {
  EXPECT_EQ(TdpFormat({.kind = TdpKind::Npt, .levels = 4}).root_pointer(Hpa(0x1234000)), 0x1234000u);
}

TEST(SetRootRole, AnotherRoleLoadsAnotherRootAndTheSameRoleKeepsIt) {
  TdpVm vm;
  HostMemory mem(std::uint64_t{1} << 21);
  vm.add_slot(1, Gfn(0), mem);
  VcpuMmu& v = vm.vcpu();
  ASSERT_TRUE(vm.write64(v, Gpa(0x1000), 7));
  EXPECT_EQ(v.root_loads(), 1u);
  v.set_root_role(v.root_role());
  ASSERT_TRUE(vm.read64(v, Gpa(0x1000)));
  EXPECT_EQ(v.root_loads(), 1u) << "the same role keeps the root";
  v.set_root_role({.levels = 5, .smm = true});
  EXPECT_TRUE(v.root_role().smm);
  EXPECT_EQ(v.root_role().levels, 4u) << "the MMU's level count is not the vCPU's to change";
  auto r = vm.read64(v, Gpa(0x1000));
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, 7u) << "the new root maps the same memory";
  EXPECT_EQ(v.root_loads(), 2u);
  EXPECT_EQ(vm.mmu->stats().roots_created, 2u);
}

}  // namespace
}  // namespace vmmu::tdp
