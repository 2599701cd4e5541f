// The stage-2 MMU's dirty-log invariant: while a slot logs dirty pages, a writable leaf is a
// page its log already names. Each test forges one entry into tables the check has just
// passed, expects the report, restores the entry and expects the check to pass again.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "arm64/stage2_mmu_test_support.hpp"
#include "vmmu/arm64/stage2_mmu.hpp"
#include "vmmu/arm64/stage2_mmu_format.hpp"
#include "vmmu/pt/walk.hpp"

namespace vmmu::arm64 {
namespace {

using testing::HostBuffer;
using ::testing::HasSubstr;
using testing::k2M;
using testing::kRam;

class Stage2DirtyLogInvariant : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(slots.add({SlotId{1}, Gfn(kRam.raw() >> kPageShift), k2M >> kPageShift, ram.data(),
                           MemslotFlags::log_dirty()}));
  }
  // The entry at `level` on the path to `ipa`.
  Stage2MmuFormat::Entry* entry(Ipa ipa, unsigned level) {
    auto& memory = const_cast<pt::OwnedTableMemory&>(mmu->table_memory());
    const auto w = pt::walk(format, memory, mmu->root(), ipa.raw(),
                            [&](pt::Step<Stage2MmuFormat>& s) { return s.level == level ? pt::Visit::Stop : pt::Visit::Continue; });
    return w.end == pt::WalkEnd::Stopped ? pt::OwnedTableMemory::pointer<Stage2MmuFormat::Entry>(w.entry_address) : nullptr;
  }
  std::string report_with(Stage2MmuFormat::Entry* e, Stage2MmuFormat::Entry forged) {
    const Stage2MmuFormat::Entry old = *e;
    *e = forged;
    const std::optional<std::string> bad = mmu->check_invariants();
    *e = old;
    return bad.value_or("");
  }
  void expect_clean() {
    const std::optional<std::string> bad = mmu->check_invariants();
    EXPECT_FALSE(bad.has_value()) << *bad;
  }

  Memslots slots;
  std::unique_ptr<Stage2Mmu> mmu = std::move(Stage2Mmu::create(choose_layout(40, Granule::K4).value(), slots).value());
  HostBuffer ram{k2M, k2M};
  Stage2MmuFormat format{mmu->layout()};
};

TEST_F(Stage2DirtyLogInvariant, ReportsAWritablePageTheLogDoesNotName) {
  ASSERT_TRUE(mmu->handle_fault(kRam + 0x5000, Access::read()));  // logging: mapped read-only
  ASSERT_TRUE(mmu->handle_fault(kRam + 0x6000, Access::write()));  // logged, then writable
  expect_clean();
  Stage2MmuFormat::Entry* e = entry(kRam + 0x5000, 1);
  ASSERT_NE(e, nullptr);
  const Stage2MmuFormat::Entry forged = format.make_leaf(ram.hpa() + 0x5000, 1, {.read = true, .write = true});
  EXPECT_THAT(report_with(e, forged), HasSubstr("not logged"));
  expect_clean();
}

TEST_F(Stage2DirtyLogInvariant, ReportsAWritableBlock) {
  ASSERT_TRUE(mmu->handle_fault(kRam + 0x6000, Access::write()));  // the block's first page is logged
  expect_clean();
  Stage2MmuFormat::Entry* e = entry(kRam, 2);
  ASSERT_NE(e, nullptr);
  const Stage2MmuFormat::Entry forged = format.make_leaf(ram.hpa(), 2, {.read = true, .write = true});
  EXPECT_THAT(report_with(e, forged), HasSubstr("block"));
  expect_clean();
}

}  // namespace
}  // namespace vmmu::arm64
