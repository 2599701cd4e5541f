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

using test::k2M;

// The entry of the leaf mapping `gpa` in the first valid root, or null.
TdpFormat::Entry* leaf_entry(TdpMmu& mmu, Gpa gpa, unsigned* level = nullptr) {
  std::vector<Root*> roots = mmu.roots().valid_roots();
  if (roots.empty()) return nullptr;
  auto& memory = const_cast<pt::OwnedTableMemory&>(mmu.table_memory());
  const auto w = pt::walk(mmu.format(), memory, roots.front()->tables.root(), gpa.raw(),
                          [](pt::Step<TdpFormat>&) { return pt::Visit::Continue; });
  for (Root* r : roots) mmu.roots().put(r);
  if (w.end != pt::WalkEnd::Leaf) return nullptr;
  if (level != nullptr) *level = w.level;
  return pt::OwnedTableMemory::pointer<TdpFormat::Entry>(w.entry_address);
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

// A 2 MiB slot at `base` (4 KiB backing) with the page at `gpa` read through the tables.
struct OnePage {
  OnePage(Gfn base, Gpa gpa, MemslotFlags flags = MemslotFlags::none()) : mem(k2M) {
    vm.add_slot(1, base, mem, kPageSize, flags);
    mapped = vm.read64(vm.vcpu(), gpa).has_value();
    entry = leaf_entry(*vm.mmu, gpa);
  }
  TdpVm vm;
  HostMemory mem;
  bool mapped = false;
  TdpFormat::Entry* entry = nullptr;
};

TEST(TdpInvariants, ReportALeafMappingOtherMemoryThanItsSlot) {
  OnePage p(Gfn(0x100), Gpa(0x100000));
  ASSERT_TRUE(p.mapped && p.entry != nullptr);
  expect_clean(*p.vm.mmu);
  const TdpFormat& f = p.vm.mmu->format();
  const TdpFormat::Entry* e = p.entry;
  const TdpFormat::Entry forged = f.make_leaf(f.leaf_address(*e, 1) + kPageSize, 1, f.leaf_attrs(*e, 1));
  EXPECT_THAT(report_with(*p.vm.mmu, p.entry, forged), HasSubstr("its memslot says"));
  expect_clean(*p.vm.mmu);
}

TEST(TdpInvariants, ReportAWritableLeafInAReadOnlySlot) {
  OnePage p(Gfn(0), Gpa(0x3000), MemslotFlags::read_only());
  ASSERT_TRUE(p.mapped && p.entry != nullptr);
  expect_clean(*p.vm.mmu);
  EXPECT_THAT(report_with(*p.vm.mmu, p.entry, *p.entry | p.vm.mmu->format().write_bit()), HasSubstr("read-only slot"));
  expect_clean(*p.vm.mmu);
}

TEST(TdpInvariants, ReportAWritableUnloggedPageWhileLoggingByWriteProtection) {
  OnePage p(Gfn(0), Gpa(0x5000), MemslotFlags::log_dirty());  // logging: a read maps read-only
  ASSERT_TRUE(p.mapped && p.entry != nullptr);
  ASSERT_TRUE(p.vm.write64(*p.vm.vcpus.front(), Gpa(0x6000), 1));  // logs the page, then maps it writable
  expect_clean(*p.vm.mmu);
  EXPECT_THAT(report_with(*p.vm.mmu, p.entry, *p.entry | p.vm.mmu->format().write_bit()), HasSubstr("not logged"));
  expect_clean(*p.vm.mmu);
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
  OnePage p(Gfn(0), Gpa(0x9000));
  ASSERT_TRUE(p.mapped && p.entry != nullptr);
  expect_clean(*p.vm.mmu);
  EXPECT_THAT(report_with(*p.vm.mmu, p.entry, p.vm.mmu->format().frozen_entry()), HasSubstr("frozen"));
  expect_clean(*p.vm.mmu);
}

}  // namespace
}  // namespace vmmu::tdp
