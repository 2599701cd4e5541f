// The KVM side alone: the VM harness and the probe give the answers a hand-built table
// predicts, so that a later disagreement with vmmu's walker is about the walker.

#include <gtest/gtest.h>

#include <iostream>

#include "kvm/support/kvm_probe.hpp"
#include "kvm/support/kvm_required.hpp"
#include "kvm/support/kvm_vm.hpp"
#include "kvm/support/ram_table_memory.hpp"
#include "kvm/support/x86_entry.hpp"

namespace vmmu::test::kvm {
namespace {

using namespace x86e;

constexpr std::uint64_t kTable = Present::mask | Writable::mask;

x86::Registers long_mode(Gpa root) {
  x86::Registers r;
  r.cr0 = cr0::Pg::mask | cr0::Pe::mask | cr0::Et::mask;
  r.cr3 = root.raw();
  r.cr4 = cr4::Pae::mask;
  r.efer = efer::Lme::mask | efer::Lma::mask;
  return r;
}

// A VM with 1 MiB at gpa 0 and 1 MiB at 16 MiB; a 4-KiB identity map of the first 2 MiB and
// one 4-KiB page at gva 0x7f_c000_0000 mapped to gpa 0x100_0000 + 0x5000, tables in both
// slots.
class KvmHarness : public ::testing::Test {
 protected:
  void SetUp() override {
    auto created = KvmVm::create({GuestRamSlot{{Gpa(0), Gpa(0x100000)}}, GuestRamSlot{{Gpa(0x1000000), Gpa(0x1100000)}}});
    if (!created) VMMU_KVM_SETUP_FAILED(created.error(), "the KVM_TRANSLATE harness");
    vm.emplace(std::move(*created));
    ram.emplace(vm->ram());
    const Gpa pml4(0x1000), pdpt(0x2000), pd(0x3000), pt(0x4000), pd_hi(0x1001000), pt_hi(0x1002000);
    ram->write<std::uint64_t>(pml4, pdpt.raw() | kTable);
    ram->write<std::uint64_t>(pdpt, pd.raw() | kTable);
    ram->write<std::uint64_t>(pd, pt.raw() | kTable);
    for (std::uint64_t i = 0; i < 512; ++i) ram->write<std::uint64_t>(pt + i * 8, (i << 12) | kTable);
    ram->write<std::uint64_t>(pdpt + 511 * 8, pd_hi.raw() | kTable);
    ram->write<std::uint64_t>(pd_hi, pt_hi.raw() | kTable);
    ram->write<std::uint64_t>(pt_hi, 0x1005000 | kTable);
    ASSERT_TRUE(vm->set_paging(long_mode(pml4))) << "4-level long mode refused";
  }
  std::optional<KvmVm> vm;
  std::optional<RamTableMemory> ram;
};

TEST_F(KvmHarness, IdentityMapTranslatesEveryPage) {
  for (std::uint64_t page = 0; page < 512; ++page) {
    const std::uint64_t gva = (page << 12) | (page * 8 % 4096);
    auto t = vm->translate(Gva(gva));
    ASSERT_TRUE(t) << t.error().message();
    ASSERT_TRUE(t->valid) << "gva " << std::hex << gva;
    EXPECT_EQ(t->gpa, Gpa(gva));
  }
}

TEST_F(KvmHarness, TablesInASecondMemslotAreWalked) {
  auto t = vm->translate(Gva(0x7fc0000abcULL));
  ASSERT_TRUE(t) << t.error().message();
  ASSERT_TRUE(t->valid);
  EXPECT_EQ(t->gpa, Gpa(0x1005abc));
}

TEST_F(KvmHarness, NotPresentEntryGivesInvalidTranslation) {
  auto t = vm->translate(Gva(0x200000));  // PD[1] is empty
  ASSERT_TRUE(t) << t.error().message();
  EXPECT_FALSE(t->valid);
}

TEST_F(KvmHarness, SuccessfulTranslationSetsAccessedOnThePathOnly) {
  auto t = vm->translate(Gva(0x3000));
  ASSERT_TRUE(t && t->valid);
  EXPECT_TRUE(Accessed::get(*ram->read<std::uint64_t>(Gpa(0x1000))));
  EXPECT_TRUE(Accessed::get(*ram->read<std::uint64_t>(Gpa(0x4000 + 3 * 8))));
  EXPECT_FALSE(Accessed::get(*ram->read<std::uint64_t>(Gpa(0x4000 + 4 * 8))));
  // A read never sets Dirty (SDM vol. 3A, 4.8).
  EXPECT_FALSE(Dirty::get(*ram->read<std::uint64_t>(Gpa(0x4000 + 3 * 8))));
}

TEST_F(KvmHarness, RegistersReadBackAsLoaded) {
  auto regs = vm->paging();
  ASSERT_TRUE(regs) << regs.error().message();
  EXPECT_EQ(regs->cr3, 0x1000u);
  EXPECT_TRUE(efer::Lma::get(regs->efer));
  EXPECT_TRUE(cr4::Pae::get(regs->cr4));
}

TEST(KvmProbe, FindsOneMaxphyaddrByBothMethods) {
  auto facts = probe_paging();
  if (!facts) VMMU_KVM_SETUP_FAILED(facts.error(), "the probe");
  std::cout << "[ KVM      ] " << facts->describe() << "\n";
  EXPECT_TRUE(facts->long_mode);
  EXPECT_EQ(facts->maxphyaddr_cr3, facts->maxphyaddr_walk);
  EXPECT_GE(facts->maxphyaddr_walk, 32u);
  EXPECT_TRUE(facts->sets_accessed);
}

// Only a machine without KVM skips; a broken step fails, and VMMU_REQUIRE_KVM=1 fails even there.
TEST(KvmRequired, OnlyAMissingOrClosedDeviceSkipsAndOnlyWhenNotRequired) {
  for (KvmError e : {KvmError::DeviceMissing, KvmError::DeviceUnusable}) {
    EXPECT_EQ(on_setup_failure({e, 0}, false), Unavailable::Skip) << to_string(e);
    EXPECT_EQ(on_setup_failure({e, 0}, true), Unavailable::Fail) << to_string(e);
  }
  for (KvmError e : {KvmError::ApiVersion, KvmError::CreateVm, KvmError::GuestRam, KvmError::SetMemoryRegion,
                     KvmError::CreateVcpu, KvmError::GetRegisters, KvmError::SetRegisters, KvmError::Translate})
    EXPECT_EQ(on_setup_failure({e, 0}, false), Unavailable::Fail) << to_string(e);
}

}  // namespace
}  // namespace vmmu::test::kvm
