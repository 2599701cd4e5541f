// PCIDs and roots across CR3 switches through the vCPU (issue 12 item 7): under shadow, CR3
// writes with and without NOFLUSH reach the vCPU's cache of previous roots, INVPCID reaches
// cached roots and the software TLB, and a bad INVPCID is the guest's #GP.

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "vm/support/guest_vm.hpp"
#include "vmmu/shadow/shadow_mmu.hpp"

namespace vmmu::vm::test {
namespace {

constexpr std::uint64_t kNoFlush = regbits::Cr3NoFlush::mask;

struct Processes {
  explicit Processes(mmu::MmuKind kind) : g(options(kind)) {
    g.map(kData, Gpa(0x10'0000), 4 * kPageSize);
    Vcpu& first = g.add_vcpu();
    v = &first;
    // Process i runs on a copy of the builder's PML4 (the same lower tables), PCID i + 1.
    const Gpa root(v->registers().cr3);
    for (unsigned i = 0; i < kCount; ++i) {
      const Gpa copy(0x80'0000 + std::uint64_t{i} * kPageSize);
      std::memcpy(g.host(copy), g.host(root), kPageSize);
      roots.push_back(copy.raw());
    }
    v->set_cr4(v->registers().cr4 | regbits::Cr4Pcide::mask);
  }
  static GuestVmOptions options(mmu::MmuKind kind) {
    GuestVmOptions o;
    o.memory = 16 * MiB;
    o.config.mmu = kind;
    return o;
  }
  void run(unsigned i, bool no_flush) {
    v->set_cr3(roots[i] | (i + 1) | (no_flush ? kNoFlush : 0));
    std::vector<std::byte> buf(8);
    ASSERT_TRUE(v->read(kData + 8 * i, buf));
  }
  shadow::ShadowStats shadow() { return g.vm().mmu().shadow()->stats(); }

  static constexpr unsigned kCount = shadow::ShadowVcpu::kPrevRoots + 1;
  GuestVm g;
  Vcpu* v = nullptr;
  std::vector<std::uint64_t> roots;
};

TEST(VcpuPcid, ShadowProcessesSwitchingWithNoFlushReuseCachedRootsWithoutSync) {
  Processes p(mmu::MmuKind::Shadow);
  for (unsigned i = 0; i < Processes::kCount; ++i) p.run(i, false);
  const shadow::ShadowStats before = p.shadow();
  for (unsigned round = 0; round < 5; ++round) {
    for (unsigned i = 0; i < Processes::kCount; ++i) p.run(i, true);
  }
  const shadow::ShadowStats after = p.shadow();
  EXPECT_EQ(after.roots_built, before.roots_built);
  EXPECT_EQ(after.root_cache_hits - before.root_cache_hits, 5u * Processes::kCount);
  EXPECT_EQ(after.root_syncs, before.root_syncs);
  EXPECT_EQ(after.faults, before.faults);
  EXPECT_FALSE(p.g.vm().mmu().check_invariants());
}

TEST(VcpuPcid, ShadowCr3WritesWithoutNoFlushSyncEachRootTheyLoad) {
  Processes p(mmu::MmuKind::Shadow);
  for (unsigned i = 0; i < Processes::kCount; ++i) p.run(i, false);
  const shadow::ShadowStats before = p.shadow();
  for (unsigned i = 0; i < Processes::kCount; ++i) p.run(i, false);
  const shadow::ShadowStats after = p.shadow();
  EXPECT_EQ(after.roots_built, before.roots_built);
  EXPECT_EQ(after.root_syncs - before.root_syncs, Processes::kCount);
}

TEST(VcpuPcid, ShadowInvpcidSingleContextReachesACachedRoot) {
  Processes p(mmu::MmuKind::Shadow);
  p.run(0, false);
  p.run(1, false);
  const std::uint64_t syncs = p.shadow().root_syncs;
  ASSERT_TRUE(p.v->invpcid(x86::InvpcidType::SingleContext, 1, Gva(0)));  // process 0's PCID
  EXPECT_EQ(p.shadow().root_syncs, syncs);
  p.run(0, true);  // NOFLUSH, but its PCID was flushed while it was cached
  EXPECT_EQ(p.shadow().root_syncs, syncs + 1);
}

TEST(VcpuPcid, ABadInvpcidIsTheGuestsGeneralProtectionFault) {
  Processes p(mmu::MmuKind::Tdp);
  const Status<GuestExit> big = p.v->invpcid(x86::InvpcidType::SingleContext, 4096, Gva(0));
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().kind, GuestExitKind::GeneralProtection);
  p.v->set_cr4(p.v->registers().cr4 & ~regbits::Cr4Pcide::mask);
  const Status<GuestExit> off = p.v->invpcid(x86::InvpcidType::Address, 3, kData);
  ASSERT_FALSE(off);
  EXPECT_EQ(off.error().kind, GuestExitKind::GeneralProtection);
  EXPECT_TRUE(p.v->invpcid(x86::InvpcidType::Address, 0, kData));
  EXPECT_TRUE(p.v->invpcid(x86::InvpcidType::AllContexts, 3, Gva(0)));
}

TEST(VcpuPcid, InvpcidOfOneAddressDropsThatPcidsTlbEntryOnly) {
  Processes p(mmu::MmuKind::Tdp);
  p.run(0, false);  // fills PCID 1's entry for kData
  p.v->set_cr3(p.roots[1] | 2 | kNoFlush);
  ASSERT_TRUE(p.v->invpcid(x86::InvpcidType::Address, 2, kData));  // PCID 2's: none
  const std::uint64_t walks = p.v->stats().walks;
  p.run(0, true);
  EXPECT_EQ(p.v->stats().walks, walks);  // PCID 1's entry survived
  p.v->set_cr3(p.roots[1] | 2 | kNoFlush);
  ASSERT_TRUE(p.v->invpcid(x86::InvpcidType::Address, 1, kData));
  p.run(0, true);
  EXPECT_EQ(p.v->stats().walks, walks + 1);
}

}  // namespace
}  // namespace vmmu::vm::test
