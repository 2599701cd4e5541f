// Vm: creation errors, vCPUs, and guest-physical access through the TDP tables.

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "vm/support/guest_vm.hpp"

namespace vmmu::vm::test {
namespace {

TEST(Vm, CreateRejectsLevelsOtherThanFourOrFive) {
  for (unsigned levels : {0u, 2u, 3u, 6u}) {
    VmConfig c;
    c.tdp.format.levels = levels;
    auto vm = Vm::create(c);
    ASSERT_FALSE(vm) << levels;
    EXPECT_EQ(vm.error(), VmError::BadLevels);
    EXPECT_FALSE(to_string(vm.error()).empty());
  }
  for (unsigned levels : {4u, 5u}) {
    VmConfig c;
    c.tdp.format.levels = levels;
    auto vm = Vm::create(c);
    ASSERT_TRUE(vm) << levels;
    EXPECT_EQ((*vm)->tdp_mmu()->format().geometry().levels(), levels);
  }
}

TEST(Vm, CreateFailsWhenNotEvenOneRootFits) {
  VmConfig c;
  c.tdp.table_budget = 0;
  auto vm = Vm::create(c);
  ASSERT_FALSE(vm);
  EXPECT_EQ(vm.error(), VmError::OutOfMemory);
  c.tdp.table_budget = 1;
  auto one = Vm::create(c);
  ASSERT_TRUE(one);
  EXPECT_EQ((*one)->stats().roots_created, 1u);
}

TEST(Vm, CreateRefusesAdaptiveWithADirtyRing) {
  VmConfig c;
  c.mmu = mmu::MmuKind::Adaptive;
  c.tdp.dirty_ring_size = 64;
  auto vm = Vm::create(c);
  ASSERT_FALSE(vm);
  EXPECT_EQ(vm.error(), VmError::AdaptiveWithDirtyRing);
  const std::string_view why = to_string(vm.error());
  EXPECT_NE(why.find("adaptive"), std::string_view::npos) << why;
  EXPECT_NE(why.find("dirty ring"), std::string_view::npos) << why;
  // Either alone is fine: a ring under TDP, adaptive with bitmaps.
  c.tdp.dirty_ring_size = 0;
  EXPECT_TRUE(Vm::create(c));
  c.mmu = mmu::MmuKind::Tdp;
  c.tdp.dirty_ring_size = 64;
  EXPECT_TRUE(Vm::create(c));
}

TEST(Vm, VcpusAreNumberedInCreationOrderAndStayPut) {
  GuestVm g;
  Vcpu& a = g.vm().add_vcpu();
  Vcpu& b = g.vm().add_vcpu();
  EXPECT_EQ(g.vm().vcpu_count(), 2u);
  EXPECT_EQ(a.index(), 0u);
  EXPECT_EQ(b.index(), 1u);
  for (int i = 0; i < 100; ++i) g.vm().add_vcpu();
  EXPECT_EQ(&g.vm().vcpu(1), &b);
  EXPECT_EQ(&b.vm(), &g.vm());
  // A fresh vCPU starts with paging off, as after INIT.
  EXPECT_EQ(a.paging().mode(), x86::PagingMode::Off);
}

TEST(Vm, GuestPhysicalReadWriteCrossesPagesAndReachesHostMemory) {
  GuestVm g;
  const std::vector<std::byte> data = pattern(3 * kPageSize, 9);
  ASSERT_TRUE(g.vm().write(Gpa(0x12'3f00), data));
  EXPECT_EQ(std::memcmp(g.host(Gpa(0x12'3f00)), data.data(), data.size()), 0);
  std::vector<std::byte> back(data.size());
  ASSERT_TRUE(g.vm().read(Gpa(0x12'3f00), back));
  EXPECT_EQ(back, data);
  EXPECT_GE(g.tdp().stats().leaves[0] + g.tdp().stats().leaves[1], 1u);  // it went through the tables
}

TEST(Vm, AccessOutsideMemslotsIsMmioAndReadOnlySlotsRefuseWrites) {
  GuestVmOptions o;
  o.memory = 8 * MiB;
  o.table_pool = 1 * MiB;
  GuestVm g(o);
  HostMemory rom(kPageSize * 4, kPageSize);
  std::memset(rom.data(), 0xab, kPageSize * 4);
  ASSERT_TRUE(g.vm().memslots().add(MemslotSpec{SlotId{2}, gfn_of(Gpa(16 * MiB)), 4, rom.data(),
                                                MemslotFlags::read_only()}));
  std::vector<std::byte> buf(16);
  Status<mmu::Exit> s = g.vm().read(Gpa(8 * MiB - 8), buf);  // runs off the first slot
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error(), mmu::Exit::Mmio);
  ASSERT_TRUE(g.vm().read(Gpa(16 * MiB), buf));
  EXPECT_EQ(buf[0], std::byte{0xab});
  s = g.vm().write(Gpa(16 * MiB), buf);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error(), mmu::Exit::Mmio);
  EXPECT_EQ(std::to_integer<int>(rom.data()[0]), 0xab);
}

TEST(Vm, DeviceWritesAreLoggedInTheSlotBitmap) {
  GuestVm g;
  ASSERT_TRUE(g.vm().memslots().set_flags(GuestVm::kSlot, MemslotFlags::log_dirty()));
  std::vector<std::byte> buf(8);
  ASSERT_TRUE(g.vm().write(Gpa(0x5000), buf));
  ASSERT_TRUE(g.vm().read(Gpa(0x9000), buf));
  auto log = g.tdp().get_dirty_log(GuestVm::kSlot);
  ASSERT_TRUE(log);
  EXPECT_EQ((*log)[0], 1ULL << 5);
}

}  // namespace
}  // namespace vmmu::vm::test
