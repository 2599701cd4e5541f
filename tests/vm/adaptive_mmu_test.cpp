// The adaptive MMU (agile paging) decides per process: what moves a process to two-dimensional
// paging is the writes to its own tables, not to another process's.

#include <gtest/gtest.h>

#include <array>
#include <cstddef>

#include "vm/support/guest_vm.hpp"

namespace vmmu::vm::test {
namespace {

constexpr Gva kQuietPages(0x1000);
constexpr Gva kBusyPages(0x4000'0000);

GuestVmOptions adaptive(mmu::AdaptivePolicy policy) {
  GuestVmOptions o;
  o.memory = 64 * MiB;
  o.config.mmu = mmu::MmuKind::Adaptive;
  o.config.adaptive = policy;
  return o;
}

// Two processes on two vCPUs, each building its own tables through its vCPU (as its guest
// kernel would): the busy one maps a new page in a new last-level table before each access
// (a write to its shadowed level-2 table: emulated), the quiet one reads the same page. Each
// of the quiet one's windows sees a busy write per access: counted VM-wide, it would move too.
TEST(AdaptiveMmu, OnlyTheProcessWritingItsTablesMovesToTdp) {
  GuestVm g(adaptive({.window = 16, .threshold = 4}));
  Vcpu& busy = g.vm().add_vcpu();
  Vcpu& quiet = g.vm().add_vcpu();
  auto a = GuestPageTableBuilder::create(busy, {Gpa(32 * MiB), Gpa(33 * MiB)});
  auto b = GuestPageTableBuilder::create(quiet, {Gpa(33 * MiB), Gpa(34 * MiB)});
  ASSERT_TRUE(a && b);
  busy.set_registers(long_mode_registers(a->root()));
  quiet.set_registers(long_mode_registers(b->root()));
  ASSERT_TRUE(b->map(kQuietPages, Gpa(0x10'0000), kPageSize, kPageSize));
  std::array<std::byte, 8> word{};
  for (std::uint64_t i = 0; i < 48; ++i) {
    const Gva page = kBusyPages + i * 2 * MiB;
    ASSERT_TRUE(a->map(page, Gpa(0x20'0000 + i * kPageSize), kPageSize, kPageSize));
    ASSERT_TRUE(busy.write(page, word));
    ASSERT_TRUE(quiet.read(kQuietPages, word));
  }
  EXPECT_NE(busy.tdp_mmu(), nullptr);
  EXPECT_EQ(quiet.tdp_mmu(), nullptr);
  EXPECT_EQ(g.vm().stats().switched, 1u);
  EXPECT_GE(g.vm().stats().emulated, 16u);  // the busy process's writes did reach the shadow MMU
}

}  // namespace
}  // namespace vmmu::vm::test
