// The shadow MMU over a VM's memslots (contract items 1-4, 6): access with data through a
// ShadowVcpu, guest-physical accesses, read-only slots, memslot changes and invalidations,
// vCPU events and statistics.

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "shadow/support/shadow_vm.hpp"

namespace vmmu::shadow::test {
namespace {

TEST(ShadowMemslots, CreateRefusesAHostLevelCountOtherThanFourOrFive) {
  Memslots slots;
  auto bad = ShadowMmu::create({.host_levels = 3}, slots);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error(), ShadowConfigError::HostLevels);
  EXPECT_NE(to_string(bad.error()).find("host_levels"), std::string_view::npos);
  EXPECT_TRUE(ShadowMmu::create({.host_levels = 5}, slots).has_value());
}

TEST(ShadowMemslots, AccessHandsUseTheHostByteOfTheGuestsPage) {
  ShadowVm vm;
  ShadowVcpu v(*vm.mmu);
  const auto p = long4(0x1000);
  const Outcome w = vm.write64(v, p, 3 * kPageSize + 0x18, 0xabcdef);
  ASSERT_TRUE(w.guest.has_value());
  EXPECT_FALSE(w.exit);
  EXPECT_EQ(w.guest->gpa, Gpa(kData + 3 * kPageSize + 0x18));
  EXPECT_EQ(vm.get(kData + 3 * kPageSize + 0x18), 0xabcdefu);
  std::uint64_t got = 0;
  ASSERT_TRUE(vm.read64(v, p, 3 * kPageSize + 0x18, &got).guest.has_value());
  EXPECT_EQ(got, 0xabcdefu);
  // The guest's own fault comes back, and `use` is not called.
  bool used = false;
  const Outcome f = vm.mmu->access(v, p, Gva(std::uint64_t{1} << 30), Access::read(), [&](std::byte*) { used = true; });
  ASSERT_FALSE(f.guest.has_value());
  EXPECT_EQ(f.guest.error().kind, x86::WalkFaultKind::PageFault);
  EXPECT_FALSE(used);
  EXPECT_EQ(v.root(), *vm.mmu->load_root(p));
  const ShadowStats s = vm.mmu->stats();
  EXPECT_GE(s.faults, 2u);
  EXPECT_EQ(s.reflected, 1u);
  EXPECT_GE(s.hardware_hits, 1u);
  EXPECT_EQ(s.roots_built, 1u);
  EXPECT_EQ(s.shadow_pages, 4u);
  EXPECT_EQ(s.shadow_pages_peak, 4u);
  expect_invariants(*vm.mmu);
}

TEST(ShadowMemslots, AWriteToAReadOnlySlotExitsAndReadsMapReadOnly) {
  ShadowVm vm;
  vmmu::test::HostMemory rom(kPageSize);
  std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(rom.data())).store(77);
  ASSERT_TRUE(vm.slots.add({SlotId{2}, Gfn(0x10000), 1, rom.data(), MemslotFlags::read_only()}));
  vm.put(0x4000 + 5 * 8, 0x10000000 | kLeafBits);  // gva 5 pages -> the ROM
  vm.put(0x4000 + 6 * 8, 0x20000000 | kLeafBits);  // gva 6 pages -> no memory
  ShadowVcpu v(*vm.mmu);
  const auto p = long4(0x1000);
  std::uint64_t got = 0;
  ASSERT_TRUE(vm.read64(v, p, 5 * kPageSize, &got).guest.has_value());
  EXPECT_EQ(got, 77u);
  const Outcome w = vm.write64(v, p, 5 * kPageSize, 1);
  EXPECT_EQ(w.exit, ShadowExit::Mmio);
  EXPECT_EQ(got, 77u);
  EXPECT_EQ(std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(rom.data())).load(), 77u);
  // Unbacked memory: Mmio too; and through access_gpa.
  EXPECT_EQ(vm.read64(v, p, 6 * kPageSize, &got).exit, ShadowExit::Mmio);
  EXPECT_FALSE(vm.mmu->access_gpa(Gpa(0x10000000), Access::write(), [](std::byte*) {}));
  EXPECT_FALSE(vm.mmu->access_gpa(Gpa(0x20000000), Access::read(), [](std::byte*) {}));
  expect_invariants(*vm.mmu);
}

TEST(ShadowMemslots, RemovingAMovingAndOverlayingSlotsUnmapsWhatTheyMapped) {
  ShadowVm vm;
  vmmu::test::HostMemory extra(2 * kPageSize);
  ASSERT_TRUE(vm.slots.add({SlotId{2}, Gfn(0x10000), 2, extra.data(), MemslotFlags::none()}));
  vm.put(0x4000 + 5 * 8, 0x10000000 | kLeafBits);
  ShadowVcpu v(*vm.mmu);
  const auto p = long4(0x1000);
  ASSERT_TRUE(vm.write64(v, p, 5 * kPageSize, 5).guest.has_value());
  ASSERT_TRUE(vm.write64(v, p, 0, 9).guest.has_value());
  // Overlay: the page now reads the overlay's memory (the old leaf is gone).
  vmmu::test::HostMemory over(kPageSize);
  std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(over.data())).store(42);
  auto ov = vm.slots.overlay_add(Gfn(0x10000), 1, over.data());
  ASSERT_TRUE(ov.has_value());
  std::uint64_t got = 0;
  ASSERT_TRUE(vm.read64(v, p, 5 * kPageSize, &got).guest.has_value());
  EXPECT_EQ(got, 42u);
  ASSERT_TRUE(vm.slots.overlay_remove(*ov));
  ASSERT_TRUE(vm.read64(v, p, 5 * kPageSize, &got).guest.has_value());
  EXPECT_EQ(got, 5u);
  // Move: the guest's gpa is unbacked now.
  ASSERT_TRUE(vm.slots.move(SlotId{2}, Gfn(0x20000)));
  EXPECT_EQ(vm.read64(v, p, 5 * kPageSize, &got).exit, ShadowExit::Mmio);
  EXPECT_TRUE(vm.mmu->pages().rmap(Gfn(0x10000)).empty());
  // Page 0 (slot 1) kept its leaf throughout: only the changed ranges were unmapped.
  EXPECT_EQ(vm.mmu->pages().rmap(Gfn(kData >> kPageShift)).size(), 1u);
  // Remove: the same.
  vm.put(0x4000 + 5 * 8, 0x20000000 | kLeafBits);
  vm.mmu->unmap({Gfn(0x4), Gfn(0x5)});  // the guest changed its PT behind our back: resync
  ASSERT_TRUE(vm.read64(v, p, 5 * kPageSize, &got).guest.has_value());
  EXPECT_EQ(got, 5u);
  ASSERT_TRUE(vm.slots.remove(SlotId{2}));
  EXPECT_EQ(vm.read64(v, p, 5 * kPageSize, &got).exit, ShadowExit::Mmio);
  EXPECT_TRUE(vm.mmu->pages().rmap(Gfn(0x20000)).empty());
  expect_invariants(*vm.mmu);
}

TEST(ShadowMemslots, RemovingTheMemoryOfAGuestTableZapsItsShadowPages) {
  ShadowVm vm;
  ShadowVcpu v(*vm.mmu);
  const auto p = long4(0x1000);
  ASSERT_TRUE(vm.write64(v, p, 0, 1).guest.has_value());
  ASSERT_EQ(vm.mmu->stats().shadow_pages, 4u);
  // The host takes back the PT's page (MMU notifier): its shadow page goes, the rest stays.
  vm.mmu->invalidate_begin({Gfn(4), Gfn(5)});
  vm.mmu->invalidate_end({Gfn(4), Gfn(5)});
  EXPECT_EQ(vm.mmu->stats().shadow_pages, 3u);
  EXPECT_EQ(vm.mmu->stats().zapped_pages, 1u);
  EXPECT_FALSE(vm.mmu->pages().tracked(Gfn(4)));
  expect_invariants(*vm.mmu);
  std::uint64_t got = 0;
  ASSERT_TRUE(vm.read64(v, p, 0, &got).guest.has_value());
  EXPECT_EQ(got, 1u);
  EXPECT_EQ(vm.mmu->stats().shadow_pages, 4u);
}

TEST(ShadowMemslots, FaultsOnAFrameUnderInvalidationWaitForItsEnd) {
  ShadowVm vm;
  ShadowVcpu v(*vm.mmu);
  const auto p = long4(0x1000);
  ASSERT_TRUE(vm.write64(v, p, 0, 1).guest.has_value());
  const Range<Gfn> frame{Gfn(kData >> kPageShift), Gfn((kData >> kPageShift) + 1)};
  vm.mmu->invalidate_begin(frame);
  EXPECT_TRUE(vm.mmu->pages().rmap(frame.begin).empty());
  std::atomic<bool> done{false};
  std::thread t([&] {
    std::uint64_t got = 0;
    EXPECT_TRUE(vm.read64(v, p, 0, &got).guest.has_value());
    done = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(done.load());
  // Other frames go on.
  ShadowVcpu v2(*vm.mmu);
  std::uint64_t got = 0;
  EXPECT_TRUE(vm.read64(v2, p, kPageSize, &got).guest.has_value());
  vm.mmu->invalidate_end(frame);
  t.join();
  EXPECT_TRUE(done.load());
}

TEST(ShadowMemslots, UnmapAllKeepsARootInUseUntilReleased) {
  ShadowVm vm;
  ShadowVcpu v(*vm.mmu);
  const auto p = long4(0x1000);
  ASSERT_TRUE(vm.write64(v, p, 0, 1).guest.has_value());
  const ShadowPage* old_root = v.root();
  vm.mmu->unmap_all();
  // The vCPU's root stays (invalid, empty); the rest is gone.
  EXPECT_EQ(vm.mmu->stats().shadow_pages, 1u);
  EXPECT_EQ(vm.mmu->stats().zapped_pages, 4u);
  EXPECT_TRUE(old_root->role().invalid());
  expect_invariants(*vm.mmu);
  std::uint64_t got = 0;
  ASSERT_TRUE(vm.read64(v, p, 0, &got).guest.has_value());
  EXPECT_EQ(got, 1u);
  // A fresh root; the old one was freed when the vCPU let it go.
  EXPECT_NE(v.root(), nullptr);
  EXPECT_FALSE(v.root()->role().invalid());
  EXPECT_EQ(vm.mmu->stats().shadow_pages, 4u);
  EXPECT_EQ(vm.mmu->stats().roots_built, 2u);
  expect_invariants(*vm.mmu);
}

TEST(ShadowMemslots, ARoleChangeLoadsAnotherRootAndFlippingBackReusesTheFirst) {
  ShadowVm vm;
  ShadowVcpu v(*vm.mmu);
  ASSERT_TRUE(vm.mmu->load_cr3(v, long4(0x1000, true)));
  const ShadowPage* wp_root = v.root();
  ASSERT_TRUE(vm.write64(v, long4(0x1000, true), 0, 1).guest.has_value());
  // CR0.WP off: a distinct root, the old one not zapped.
  ASSERT_TRUE(vm.write64(v, long4(0x1000, false), 0, 2).guest.has_value());
  EXPECT_NE(v.root(), wp_root);
  EXPECT_FALSE(v.root()->role().cr0_wp());
  ASSERT_TRUE(vm.mmu->load_cr3(v, long4(0x1000, true), false));
  EXPECT_EQ(v.root(), wp_root);
  const ShadowStats s = vm.mmu->stats();
  EXPECT_EQ(s.roots_built, 2u);
  EXPECT_EQ(s.roots_reused, 1u);
  EXPECT_EQ(s.zapped_pages, 0u);
  EXPECT_EQ(s.tlb_flushes, 1u);  // the first load_cr3 flushed, the last did not
  expect_invariants(*vm.mmu);
}

TEST(ShadowMemslots, AGuestWriteToItsOwnPageTableIsSeenByTheNextAccess) {
  ShadowVm vm({.unsync = false});  // every write emulated (unsync: sync_test.cpp)
  ShadowVcpu v(*vm.mmu);
  const auto p = long4(0x1000);
  vm.put(kData + 7 * kPageSize, 70);
  std::uint64_t got = 0;
  ASSERT_TRUE(vm.read64(v, p, 0, &got).guest.has_value());
  // The guest maps its PT at gva 8 pages and rewrites PTE 0 through it: gva 0 -> page 7.
  vm.put(0x4000 + 8 * 8, 0x4000 | kLeafBits);
  vm.mmu->unmap({Gfn(4), Gfn(5)});  // (the PTE above was written behind the MMU's back)
  const Outcome w = vm.write64(v, p, 8 * kPageSize, (kData + 7 * kPageSize) | kLeafBits);
  ASSERT_TRUE(w.guest.has_value());
  EXPECT_EQ(vm.mmu->stats().emulated, 1u);
  ASSERT_TRUE(vm.read64(v, p, 0, &got).guest.has_value());
  EXPECT_EQ(got, 70u);
  // A device writes it back (guest-physical): the same consequence.
  ASSERT_TRUE(vm.mmu->access_gpa(Gpa(0x4000), Access::write(), [](std::byte* b) {
    std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(b)).store(kData | kLeafBits);
  }));
  vm.put(kData, 11);
  ASSERT_TRUE(vm.read64(v, p, 0, &got).guest.has_value());
  EXPECT_EQ(got, 11u);
  expect_invariants(*vm.mmu);
}

TEST(ShadowMemslots, InvlpgDropsTheLeafSoTheGuestsNewMappingIsUsed) {
  ShadowVm vm;
  ShadowVcpu v(*vm.mmu);
  const auto p = long4(0x1000);
  std::uint64_t got = 0;
  ASSERT_TRUE(vm.read64(v, p, 0, &got).guest.has_value());
  EXPECT_EQ(vm.mmu->pages().rmap(Gfn(kData >> kPageShift)).size(), 1u);
  vm.mmu->invlpg(v, Gva(0));
  EXPECT_TRUE(vm.mmu->pages().rmap(Gfn(kData >> kPageShift)).empty());
  expect_invariants(*vm.mmu);
}

}  // namespace
}  // namespace vmmu::shadow::test
