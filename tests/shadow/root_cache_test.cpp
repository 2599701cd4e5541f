// Roots across CR3 switches (issue 12, item 7): the vCPU's cache of previous roots, PCIDs and
// their flushes, INVPCID, and role flips that find their root in the cache.

#include <gtest/gtest.h>

#include <algorithm>

#include "shadow/support/shadow_vm.hpp"

namespace vmmu::shadow::test {
namespace {

constexpr std::uint64_t kPcide = std::uint64_t{1} << 17;  // CR4.PCIDE

// Process `i`'s paging: its own PML4 at 0x10000 + i pages (entry 0 -> the shared PDPT),
// CR3's low 12 bits its PCID when `pcide`.
x86::GuestPaging process(ShadowVm& vm, unsigned i, bool pcide = true, bool wp = true) {
  const std::uint64_t pml4 = 0x10000 + std::uint64_t{i} * kPageSize;
  vm.put(pml4, 0x2000 | kTableBits);
  x86::Registers r = long4(pml4, wp).registers();
  if (pcide) {
    r.cr4 |= kPcide;
    r.cr3 |= i + 1;
  }
  return x86::GuestPaging::from(r, {});
}

std::uint16_t pcid_of(unsigned i) { return static_cast<std::uint16_t>(i + 1); }

bool cached(const ShadowVcpu& v, const ShadowPage* root) {
  const auto& c = v.cached_roots();
  return std::any_of(c.begin(), c.end(), [&](const ShadowVcpu::CachedRoot& e) { return e.root == root; });
}

// A VM, one vCPU, and processes 0 and 1 (`a`, `b`).
class ShadowRootCache : public ::testing::Test {
 protected:
  // Loads process `i`'s root (`a` or `b`) under its PCID.
  [[nodiscard]] bool load(unsigned i, bool flush) {
    return vm.mmu->load_cr3(v, i == 0 ? a : b, flush, pcid_of(i)).has_value();
  }

  ShadowVm vm;
  ShadowVcpu v{*vm.mmu};
  const x86::GuestPaging a = process(vm, 0);
  const x86::GuestPaging b = process(vm, 1);
};

TEST_F(ShadowRootCache, SwitchingAmongCachedCr3sBuildsNoRootAndLooksNothingUp) {
  constexpr unsigned kProcesses = ShadowVcpu::kPrevRoots + 1;  // the current root and a full cache
  for (unsigned i = 0; i < kProcesses; ++i) ASSERT_TRUE(vm.mmu->load_cr3(v, process(vm, i), false, pcid_of(i)));
  const ShadowStats before = vm.mmu->stats();
  EXPECT_EQ(before.roots_built, kProcesses);
  for (unsigned round = 0; round < 10; ++round) {
    for (unsigned i = 0; i < kProcesses; ++i) {
      ASSERT_TRUE(vm.mmu->load_cr3(v, process(vm, i), false, pcid_of(i)));
      EXPECT_EQ(v.root()->gfn(), Gfn(0x10 + i));
    }
  }
  const ShadowStats after = vm.mmu->stats();
  EXPECT_EQ(after.roots_built, kProcesses);
  EXPECT_EQ(after.root_cache_hits - before.root_cache_hits, 10u * kProcesses);
  EXPECT_EQ(after.tlb_flushes, before.tlb_flushes);
  EXPECT_EQ(after.root_syncs, before.root_syncs);
  // Every cached root is pinned: a zap leaves it invalid, not freed.
  for (const ShadowVcpu::CachedRoot& c : v.cached_roots()) EXPECT_EQ(c.root->root_count(), 1u);
  expect_invariants(*vm.mmu);
}

TEST_F(ShadowRootCache, APcidNoFlushSwitchKeepsTranslationsAndSyncsNothing) {
  std::uint64_t got = 0;
  ASSERT_TRUE(load(0, true));
  ASSERT_TRUE(vm.read64(v, a, 5 * kPageSize, &got).guest.has_value());
  ASSERT_TRUE(load(1, true));
  const ShadowStats before = vm.mmu->stats();
  ASSERT_TRUE(load(0, false));  // CR3 bit 63 set
  ASSERT_TRUE(vm.read64(v, a, 5 * kPageSize, &got).guest.has_value());
  const ShadowStats after = vm.mmu->stats();
  EXPECT_EQ(after.root_syncs, before.root_syncs);
  EXPECT_EQ(after.tlb_flushes, before.tlb_flushes);
  EXPECT_EQ(after.faults, before.faults);  // the leaf built under `a` answered
  EXPECT_EQ(after.hardware_hits, before.hardware_hits + 1);
  EXPECT_EQ(after.root_cache_hits, before.root_cache_hits + 1);
  expect_invariants(*vm.mmu);
}

TEST_F(ShadowRootCache, AFlushSwitchSyncsTheRootItLoads) {
  ASSERT_TRUE(load(0, false));
  ASSERT_TRUE(load(1, false));
  const ShadowStats before = vm.mmu->stats();
  ASSERT_TRUE(load(0, true));  // bit 63 clear: PCID 1's entries go
  const ShadowStats after = vm.mmu->stats();
  EXPECT_EQ(after.root_syncs, before.root_syncs + 1);
  EXPECT_EQ(after.tlb_flushes, before.tlb_flushes + 1);
  EXPECT_EQ(after.root_cache_hits, before.root_cache_hits + 1);
  // Without PCIDs every CR3 write flushes (the vCPU passes flush = true, PCID 0).
  const x86::GuestPaging c = process(vm, 2, false);
  ASSERT_TRUE(vm.mmu->load_cr3(v, c, true, 0));
  EXPECT_EQ(vm.mmu->stats().root_syncs, after.root_syncs + 1);
  expect_invariants(*vm.mmu);
}

TEST_F(ShadowRootCache, AFlushOfACachedRootsPcidSyncsItWhenLoadedWithoutFlush) {
  ASSERT_TRUE(load(0, false));
  ASSERT_TRUE(load(1, false));
  // INVPCID single context for another PCID: only that PCID's cached root is concerned.
  vm.mmu->invpcid(v, x86::InvpcidType::SingleContext, pcid_of(7), Gva(0));
  EXPECT_FALSE(v.cached_roots()[0].stale);
  const std::uint64_t syncs = vm.mmu->stats().root_syncs;
  vm.mmu->invpcid(v, x86::InvpcidType::SingleContext, pcid_of(0), Gva(0));
  EXPECT_TRUE(v.cached_roots()[0].stale);
  EXPECT_EQ(vm.mmu->stats().root_syncs, syncs);  // not current: synced when loaded
  ASSERT_TRUE(load(0, false));
  EXPECT_EQ(vm.mmu->stats().root_syncs, syncs + 1);
  // INVPCID all contexts: the current root synced now, the cached one (b) when loaded.
  vm.mmu->invpcid(v, x86::InvpcidType::AllContexts, 0, Gva(0));
  EXPECT_EQ(vm.mmu->stats().root_syncs, syncs + 2);
  EXPECT_TRUE(v.cached_roots()[0].stale);
  expect_invariants(*vm.mmu);
}

TEST_F(ShadowRootCache, InvpcidOfOneAddressDropsThatPcidsLeafInACachedRoot) {
  std::uint64_t got = 0;
  ASSERT_TRUE(load(0, false));
  ASSERT_TRUE(vm.read64(v, a, 0, &got).guest.has_value());
  const Gfn data(kData >> kPageShift);
  ASSERT_EQ(vm.mmu->pages().rmap(data).size(), 1u);
  ASSERT_TRUE(load(1, false));
  vm.mmu->invpcid(v, x86::InvpcidType::Address, pcid_of(1), Gva(0));  // b's: a's leaf stays
  EXPECT_EQ(vm.mmu->pages().rmap(data).size(), 1u);
  vm.mmu->invpcid(v, x86::InvpcidType::Address, pcid_of(0), Gva(0));
  EXPECT_TRUE(vm.mmu->pages().rmap(data).empty());
  expect_invariants(*vm.mmu);
}

TEST_F(ShadowRootCache, AWpFlipAndBackCostsNoZapAndNoRebuild) {
  std::uint64_t got = 0;
  const x86::GuestPaging wp = process(vm, 0, true, true);
  const x86::GuestPaging nowp = process(vm, 0, true, false);
  ASSERT_TRUE(vm.mmu->load_cr3(v, wp, true, pcid_of(0)));
  ASSERT_TRUE(vm.read64(v, wp, 0, &got).guest.has_value());
  const ShadowPage* wp_root = v.root();
  // CR0.WP flips: a role change, no flush (the register-effect table's shadow column).
  ASSERT_TRUE(vm.mmu->load_cr3(v, nowp, false, pcid_of(0)));
  ASSERT_TRUE(vm.read64(v, nowp, 0, &got).guest.has_value());
  EXPECT_NE(v.root(), wp_root);
  EXPECT_TRUE(cached(v, wp_root));
  const ShadowStats before = vm.mmu->stats();
  ASSERT_TRUE(vm.mmu->load_cr3(v, wp, false, pcid_of(0)));
  ASSERT_TRUE(vm.read64(v, wp, 0, &got).guest.has_value());
  const ShadowStats after = vm.mmu->stats();
  EXPECT_EQ(v.root(), wp_root);
  EXPECT_EQ(after.roots_built, before.roots_built);
  EXPECT_EQ(after.root_cache_hits, before.root_cache_hits + 1);
  EXPECT_EQ(after.zapped_pages, 0u);
  EXPECT_EQ(after.shadow_pages, before.shadow_pages);
  EXPECT_EQ(after.faults, before.faults);  // the first root's leaf is still there
  EXPECT_EQ(after.root_syncs, before.root_syncs);
  expect_invariants(*vm.mmu);
}

TEST_F(ShadowRootCache, TheOldestCachedRootIsEvictedAndReleased) {
  ASSERT_TRUE(vm.mmu->load_cr3(v, process(vm, 0), false, pcid_of(0)));
  const ShadowPage* first = v.root();
  for (unsigned i = 1; i <= ShadowVcpu::kPrevRoots; ++i) {
    ASSERT_TRUE(vm.mmu->load_cr3(v, process(vm, i), false, pcid_of(i)));
  }
  EXPECT_TRUE(cached(v, first));
  EXPECT_EQ(first->root_count(), 1u);
  ASSERT_TRUE(vm.mmu->load_cr3(v, process(vm, ShadowVcpu::kPrevRoots + 1), false, pcid_of(ShadowVcpu::kPrevRoots + 1)));
  EXPECT_FALSE(cached(v, first));
  EXPECT_EQ(first->root_count(), 0u);  // released: no longer pinned
  EXPECT_EQ(v.cached_roots()[ShadowVcpu::kPrevRoots - 1].root->gfn(), Gfn(0x11));  // the next oldest
  // Loading it again is a lookup in the MMU, not a cache hit.
  const ShadowStats before = vm.mmu->stats();
  ASSERT_TRUE(vm.mmu->load_cr3(v, process(vm, 0), false, pcid_of(0)));
  EXPECT_EQ(v.root(), first);
  EXPECT_EQ(vm.mmu->stats().root_cache_hits, before.root_cache_hits);
  EXPECT_EQ(vm.mmu->stats().roots_reused, before.roots_reused + 1);
  expect_invariants(*vm.mmu);
}

TEST_F(ShadowRootCache, AZappedCachedRootIsNotReused) {
  ASSERT_TRUE(load(0, false));
  ASSERT_TRUE(vm.mmu->load_cr3(v, process(vm, 1), false, pcid_of(1)));
  vm.mmu->unmap_all();
  ASSERT_NE(v.cached_roots()[0].root, nullptr);
  EXPECT_TRUE(v.cached_roots()[0].root->role().invalid());  // pinned: invalid, not freed
  const ShadowStats before = vm.mmu->stats();
  ASSERT_TRUE(load(0, false));
  EXPECT_FALSE(v.root()->role().invalid());
  EXPECT_EQ(vm.mmu->stats().roots_built, before.roots_built + 1);
  EXPECT_EQ(vm.mmu->stats().root_cache_hits, before.root_cache_hits);
  std::uint64_t got = 0;
  vm.put(kData, 42);
  ASSERT_TRUE(vm.read64(v, a, 0, &got).guest.has_value());
  EXPECT_EQ(got, 42u);
  expect_invariants(*vm.mmu);
}

TEST_F(ShadowRootCache, UnloadReleasesTheCachedRootsToo) {
  ASSERT_TRUE(vm.mmu->load_cr3(v, process(vm, 0), false, pcid_of(0)));
  const ShadowPage* first = v.root();
  ASSERT_TRUE(vm.mmu->load_cr3(v, process(vm, 1), false, pcid_of(1)));
  vm.mmu->unload(v);
  EXPECT_EQ(first->root_count(), 0u);
  EXPECT_EQ(v.cached_roots()[0].root, nullptr);
}

}  // namespace
}  // namespace vmmu::shadow::test
