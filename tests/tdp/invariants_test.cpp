// The TDP MMU's invariant check reports what it exists to catch: each test forges one bad
// entry into tables the check has just passed, expects a report naming the fault, restores
// the entry and expects the check to pass again (so the report came from the forgery).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tdp/support/tdp_fixture.hpp"
#include "vmmu/pt/walk.hpp"

namespace vmmu::tdp {
namespace {

using test::HostMemory;
using test::TdpVm;
using ::testing::HasSubstr;

constexpr std::uint64_t k2M = std::uint64_t{1} << 21;

// The entry of the leaf mapping `gpa` in the first valid root, or null.
TdpFormat::Entry* leaf_entry(TdpMmu& mmu, Gpa gpa, unsigned* level = nullptr) {
  std::vector<Root*> roots = mmu.roots().valid_roots();
  if (roots.empty()) return nullptr;
  auto& memory = const_cast<pt::HostTableMemory&>(mmu.table_memory());
  const auto w = pt::walk(mmu.format(), memory, roots.front()->tables.root(), gpa.raw(),
                          [](pt::Step<TdpFormat>&) { return pt::Visit::Continue; });
  for (Root* r : roots) mmu.roots().put(r);
  if (w.end != pt::WalkEnd::Leaf) return nullptr;
  if (level != nullptr) *level = w.level;
  return pt::HostTableMemory::pointer<TdpFormat::Entry>(w.entry_address);
}

// Stores `forged` over `*e`, returns the check's report, and puts the old entry back.
std::string report_with(TdpMmu& mmu, TdpFormat::Entry* e, TdpFormat::Entry forged) {
  const TdpFormat::Entry old = *e;
  *e = forged;
  const std::optional<std::string> bad = mmu.check_invariants();
  *e = old;
  return bad.value_or("");
}

void expect_clean(TdpMmu& mmu) {
  const std::optional<std::string> bad = mmu.check_invariants();
  EXPECT_FALSE(bad.has_value()) << *bad;
}

TEST(TdpInvariants, ReportALeafMappingOtherMemoryThanItsSlot) {
  TdpVm vm;
  HostMemory mem(k2M);
  vm.add_slot(1, Gfn(0x100), mem);
  auto& v = vm.vcpu();
  ASSERT_TRUE(vm.read64(v, Gpa(0x100000)));
  expect_clean(*vm.mmu);
  TdpFormat::Entry* e = leaf_entry(*vm.mmu, Gpa(0x100000));
  ASSERT_NE(e, nullptr);
  const TdpFormat& f = vm.mmu->format();
  const TdpFormat::Entry forged = f.make_leaf(f.leaf_address(*e, 1) + kPageSize, 1, f.leaf_attrs(*e, 1));
  EXPECT_THAT(report_with(*vm.mmu, e, forged), HasSubstr("its memslot says"));
  expect_clean(*vm.mmu);
}

TEST(TdpInvariants, ReportAWritableLeafInAReadOnlySlot) {
  TdpVm vm;
  HostMemory mem(k2M);
  vm.add_slot(1, Gfn(0), mem, kPageSize, MemslotFlags::read_only());
  auto& v = vm.vcpu();
  ASSERT_TRUE(vm.read64(v, Gpa(0x3000)));
  expect_clean(*vm.mmu);
  TdpFormat::Entry* e = leaf_entry(*vm.mmu, Gpa(0x3000));
  ASSERT_NE(e, nullptr);
  EXPECT_THAT(report_with(*vm.mmu, e, *e | vm.mmu->format().write_bit()), HasSubstr("read-only slot"));
  expect_clean(*vm.mmu);
}

TEST(TdpInvariants, ReportAWritableUnloggedPageWhileLoggingByWriteProtection) {
  TdpVm vm;
  HostMemory mem(k2M);
  vm.add_slot(1, Gfn(0), mem, kPageSize, MemslotFlags::log_dirty());
  auto& v = vm.vcpu();
  ASSERT_TRUE(vm.read64(v, Gpa(0x5000)));  // logging: a read maps read-only
  ASSERT_TRUE(vm.write64(v, Gpa(0x6000), 1));  // a write logs the page, then maps it writable
  expect_clean(*vm.mmu);
  TdpFormat::Entry* e = leaf_entry(*vm.mmu, Gpa(0x5000));
  ASSERT_NE(e, nullptr);
  EXPECT_THAT(report_with(*vm.mmu, e, *e | vm.mmu->format().write_bit()), HasSubstr("not logged"));
  expect_clean(*vm.mmu);
}

TEST(TdpInvariants, ReportAWritableHugeLeafWhileLoggingByDirtyBits) {
  TdpConfig c;
  c.policies.dirty_tracking = DirtyTracking::DirtyBits;
  c.policies.split = SplitPolicy::Lazy;  // huge leaves stay, write-protected, while logging
  TdpVm vm(c);
  ASSERT_TRUE(vm.mmu->format().ad_bits());
  HostMemory mem(2 * k2M);
  vm.add_slot(1, Gfn(0), mem, k2M);
  auto& v = vm.vcpu();
  ASSERT_TRUE(vm.read64(v, Gpa(0)));
  ASSERT_TRUE(vm.read64(v, Gpa(k2M)));
  ASSERT_TRUE(vm.slots.set_flags(SlotId{1}, MemslotFlags::log_dirty()));
  ASSERT_TRUE(vm.write64(v, Gpa(k2M + 0x7000), 1));  // splits that leaf: a writable 4K page, D set
  unsigned level = 0;
  TdpFormat::Entry* e = leaf_entry(*vm.mmu, Gpa(0), &level);
  ASSERT_NE(e, nullptr);
  ASSERT_EQ(level, 2u);
  ASSERT_FALSE(vm.mmu->format().leaf_attrs(*e, 2).write);
  expect_clean(*vm.mmu);  // writable 4K leaves are fine: the hardware sets D before a write lands
  EXPECT_THAT(report_with(*vm.mmu, e, *e | vm.mmu->format().write_bit()), HasSubstr("huge leaf"));
  expect_clean(*vm.mmu);
}

TEST(TdpInvariants, ReportAFrozenEntryLeftBehind) {
  TdpVm vm;
  HostMemory mem(k2M);
  vm.add_slot(1, Gfn(0), mem);
  auto& v = vm.vcpu();
  ASSERT_TRUE(vm.read64(v, Gpa(0x9000)));
  expect_clean(*vm.mmu);
  TdpFormat::Entry* e = leaf_entry(*vm.mmu, Gpa(0x9000));
  ASSERT_NE(e, nullptr);
  EXPECT_THAT(report_with(*vm.mmu, e, vm.mmu->format().frozen_entry()), HasSubstr("frozen"));
  expect_clean(*vm.mmu);
}

}  // namespace
}  // namespace vmmu::tdp
