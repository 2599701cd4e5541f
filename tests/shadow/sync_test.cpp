// Emulated writes to guest tables applied entry by entry, unsync and sync (issue 12 items 5
// and 6): table-driven cases, then a guest rewriting its own tables at random, checked against
// the x86 walker of the same memory after every flush (and after every write when nothing may
// go unsync).

#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "shadow/support/shadow_vm.hpp"
#include "shadow/support/sparse_ram.hpp"
#include "vmmu/shadow/shadow_mmu.hpp"
#include "vmmu/x86/walk.hpp"

namespace vmmu::shadow::test {
namespace {

namespace gpte = x86::gpte;
namespace cr0 = x86::cr0;
namespace cr4 = x86::cr4;
namespace efer = x86::efer;

constexpr std::uint64_t kTable = gpte::P::mask | gpte::RW::mask | gpte::US::mask;
constexpr std::uint64_t kLeaf = kTable | gpte::A::mask | gpte::D::mask;
constexpr std::uint64_t kTables = 0x200000;  // gva of the window onto the guest's own tables

// A 4-level guest: PML4 0x1000 -> PDPT 0x2000 -> PD 0x3000; PD[0] -> PT 0x4000 mapping gva
// i * 4K -> kData + i * 4K (i < 64); PD[1] -> PT 0x5000, the window: gva kTables + k * 4K ->
// the table at (k + 1) * 4K (PML4, PDPT, PD, PT, PT 0x5000 itself, PT 0x6000). PD[2] starts
// empty; PT 0x6000 too.
struct Guest {
  SparseMemory<Gpa> mem;
  SparseRam ram{mem};

  explicit Guest(SparseMemory<Gpa>* twin = nullptr) {
    for (SparseMemory<Gpa>* m : {&mem, twin}) {
      if (m == nullptr) continue;
      put(*m, 0x1000, 0x2000 | kTable);
      put(*m, 0x2000, 0x3000 | kTable);
      put(*m, 0x3000, 0x4000 | kTable);
      put(*m, 0x3008, 0x5000 | kTable | gpte::A::mask);  // A set: the window's walk changes nothing
      for (std::uint64_t i = 0; i < 64; ++i) put(*m, 0x4000 + i * 8, (kData + i * 0x1000) | kLeaf);
      for (std::uint64_t k = 0; k < 6; ++k) put(*m, 0x5000 + k * 8, ((k + 1) * 0x1000) | kLeaf);
    }
  }
  static void put(SparseMemory<Gpa>& m, std::uint64_t gpa, std::uint64_t v) { (void)m.write<std::uint64_t>(Gpa(gpa), v); }
  std::uint64_t get(std::uint64_t gpa) { return *mem.read<std::uint64_t>(Gpa(gpa)); }
  static x86::GuestPaging paging(std::uint64_t cr3 = 0x1000) {
    x86::Registers r{.cr0 = cr0::PE::mask | cr0::PG::mask | cr0::WP::mask,
                     .cr3 = cr3,
                     .cr4 = cr4::PAE::mask,
                     .efer = efer::LME::mask | efer::LMA::mask | efer::NXE::mask};
    return x86::GuestPaging::from(r, {});
  }
};

// `bytes` bytes of `value` at gva, as the guest's store through the shadow MMU.
Outcome store(ShadowMmu& mmu, ShadowVcpu& v, const x86::GuestPaging& p, std::uint64_t gva, std::uint64_t value,
              std::uint32_t bytes = 8) {
  return mmu.access(
      v, p, Gva(gva), Access::write(), [&](std::byte* host) { std::memcpy(host, &value, bytes); }, bytes);
}
// The gpa gva reaches (a read through the shadow MMU), or ~0 on a fault.
std::uint64_t reach(ShadowMmu& mmu, ShadowVcpu& v, const x86::GuestPaging& p, std::uint64_t gva) {
  const Outcome o = mmu.access(v, p, Gva(gva), Access::read(), [](std::byte*) {});
  return o.guest ? o.guest->gpa.raw() : ~std::uint64_t{0};
}
// The gva of PT 0x4000's entry i through the window.
constexpr std::uint64_t pte(unsigned i) { return kTables + 3 * 0x1000 + i * 8; }

// A test on the guest above: its MMU (unsync on or off), a vCPU, its paging state.
template <bool kUnsync>
class OnGuest : public ::testing::Test {
 protected:
  Guest g;
  ShadowMmu mmu{g.ram, ShadowConfig{.unsync = kUnsync}};
  ShadowVcpu v{mmu};
  const x86::GuestPaging p = Guest::paging();
};
class ShadowWriteEmulation : public OnGuest<false> {};
class ShadowUnsync : public OnGuest<true> {};

// ---- emulated writes (nothing goes unsync) --------------------------------------------------

TEST_F(ShadowWriteEmulation, AnAlignedWriteUpdatesTheShadowLeafInPlace) {
  ASSERT_EQ(reach(mmu, v, p, 0x5000), kData + 0x5000);
  const std::uint64_t faults = mmu.stats().faults;
  ASSERT_TRUE(store(mmu, v, p, pte(5), (kData + 0x9000) | kLeaf).guest);
  const std::uint64_t after_write = mmu.stats().faults;  // the emulated write's own fault
  EXPECT_EQ(after_write, faults + 1);
  EXPECT_EQ(mmu.stats().emulated, 1u);
  // No fault: the shadow leaf already follows the new entry (dropping it would refault).
  EXPECT_EQ(reach(mmu, v, p, 0x5000), kData + 0x9000);
  EXPECT_EQ(mmu.stats().faults, after_write);
  EXPECT_EQ(mmu.stats().write_misaligned + mmu.stats().write_flooded, 0u);
  expect_invariants(mmu);
  // Not present: the leaf goes, the access faults as the guest's walk does.
  ASSERT_TRUE(store(mmu, v, p, pte(5), 0).guest);
  EXPECT_EQ(reach(mmu, v, p, 0x5000), ~std::uint64_t{0});
  expect_invariants(mmu);
}

TEST(ShadowMisalignedWrite, ZapsTheShadowPageButAPaeHalfDoesNot) {
  struct Case {
    const char* name;
    std::uint64_t offset;  // from PTE 5
    std::uint32_t bytes;
    bool zaps;
  };
  for (const Case c : {Case{"2 bytes", 0, 2, true}, Case{"8 bytes across two entries", 4, 8, true},
                       Case{"16 bytes", 0, 16, true}, Case{"low 4-byte half", 0, 4, false},
                       Case{"high 4-byte half", 4, 4, false}, Case{"one entry", 0, 8, false}}) {
    SCOPED_TRACE(c.name);
    Guest g;
    ShadowMmu mmu(g.ram, {.unsync = false});
    ShadowVcpu v(mmu);
    const auto p = Guest::paging();
    ASSERT_EQ(reach(mmu, v, p, 0x5000), kData + 0x5000);
    ASSERT_EQ(reach(mmu, v, p, pte(5)), 0x4000u + 5 * 8);  // the window's shadow page too
    const std::uint64_t pages = mmu.stats().shadow_pages;
    const std::uint64_t value = (kData + 0x9000) | kLeaf;
    const Outcome w = mmu.access(
        v, p, Gva(pte(5) + c.offset), Access::write(),
        [&](std::byte* host) {
          for (std::uint32_t b = 0; b < c.bytes; ++b) host[b] = static_cast<std::byte>(value >> (8 * ((c.offset + b) % 8)));
        },
        c.bytes);
    ASSERT_TRUE(w.guest);
    EXPECT_EQ(mmu.stats().write_misaligned, c.zaps ? 1u : 0u);
    EXPECT_EQ(mmu.stats().shadow_pages, c.zaps ? pages - 1 : pages);
    EXPECT_EQ(reach(mmu, v, p, 0x5000), g.get(0x4000 + 5 * 8) & 0x000f'ffff'ffff'f000ULL);
    expect_invariants(mmu);
  }
}

TEST_F(ShadowWriteEmulation, ThreeWritesWithoutUseUnshadowTheTable) {
  ASSERT_EQ(reach(mmu, v, p, 0x1000), kData + 0x1000);
  ASSERT_EQ(reach(mmu, v, p, pte(0)), 0x4000u);
  const std::uint64_t pages = mmu.stats().shadow_pages;
  ASSERT_TRUE(store(mmu, v, p, pte(10), 0).guest);
  ASSERT_TRUE(store(mmu, v, p, pte(11), 0).guest);
  EXPECT_EQ(mmu.stats().write_flooded, 0u);
  // A fault through the PT's shadow page between resets the count.
  ASSERT_EQ(reach(mmu, v, p, 0x9000), kData + 0x9000);  // (0x1000's group of 8 was prefetched)
  ASSERT_TRUE(store(mmu, v, p, pte(12), 0).guest);
  ASSERT_TRUE(store(mmu, v, p, pte(13), 0).guest);
  EXPECT_EQ(mmu.stats().write_flooded, 0u);
  ASSERT_TRUE(store(mmu, v, p, pte(14), 0).guest);
  EXPECT_EQ(mmu.stats().write_flooded, 1u);
  EXPECT_EQ(mmu.stats().shadow_pages, pages - 1);
  expect_invariants(mmu);
  EXPECT_EQ(reach(mmu, v, p, 0x1000), kData + 0x1000);  // faulted back from the guest's tables
}

TEST_F(ShadowWriteEmulation, ANonLeafWriteKeepsTheSameChildAndDropsAChangedOne) {
  ASSERT_EQ(reach(mmu, v, p, 0x1000), kData + 0x1000);
  ASSERT_EQ(reach(mmu, v, p, kTables + 2 * 0x1000), 0x3000u);
  const std::uint64_t pages = mmu.stats().shadow_pages;
  // PD[0] rewritten with its own value: the link to the PT's shadow page stays.
  ASSERT_TRUE(store(mmu, v, p, kTables + 2 * 0x1000, 0x4000 | kTable).guest);
  EXPECT_EQ(mmu.stats().shadow_pages, pages);
  const std::uint64_t faults = mmu.stats().faults;
  EXPECT_EQ(reach(mmu, v, p, 0x1000), kData + 0x1000);
  EXPECT_EQ(mmu.stats().faults, faults);
  // Read-only now: a narrower child role, so the link goes (the PT's page with it).
  ASSERT_TRUE(store(mmu, v, p, kTables + 2 * 0x1000, 0x4000 | gpte::P::mask | gpte::US::mask).guest);
  EXPECT_EQ(mmu.stats().shadow_pages, pages - 1);
  const Outcome w = mmu.access(v, p, Gva(0x1000), Access::write(), [](std::byte*) {});
  ASSERT_FALSE(w.guest);
  EXPECT_EQ(w.guest.error().error_code, x86::pferr::kPresent | x86::pferr::kWrite);
  expect_invariants(mmu);
}

// A 32-bit guest: PD 0x1000 (1024 4-byte PDEs); PDE 0 -> PT 0x2000 whose PTE i maps gva i * 4K
// -> kData + i * 4K (i < 1024: both halves, two shadow pages); PDE 1 a 4 MiB page at 4 MiB
// (two 2 MiB shadow halves); PDE 2 -> PT 0x3000, the window: gva 8 MiB + k * 4K -> (k+1) * 4K.
struct Guest32 {
  SparseMemory<Gpa> mem;
  SparseRam ram{mem};
  Guest32() {
    auto put = [&](std::uint64_t gpa, std::uint32_t v) { (void)mem.write<std::uint32_t>(Gpa(gpa), v); };
    constexpr auto kT = static_cast<std::uint32_t>(kTable);
    constexpr auto kL = static_cast<std::uint32_t>(kLeaf);
    put(0x1000, 0x2000 | kT);
    put(0x1004, 0x400000 | kL | static_cast<std::uint32_t>(gpte::PS::mask));
    put(0x1008, 0x3000 | kT);
    for (std::uint32_t i = 0; i < 1024; ++i) put(0x2000 + i * 4, (static_cast<std::uint32_t>(kData) + i * 0x1000) | kL);
    for (std::uint32_t k = 0; k < 3; ++k) put(0x3000 + k * 4, ((k + 1) * 0x1000) | kL);
  }
  static x86::GuestPaging paging() {
    x86::Registers r{.cr0 = cr0::PE::mask | cr0::PG::mask | cr0::WP::mask, .cr3 = 0x1000, .cr4 = cr4::PSE::mask, .efer = 0};
    return x86::GuestPaging::from(r, {});
  }
};

TEST(ShadowWriteEmulation32, AFourByteGuestEntryUpdatesItsQuadrantsShadowEntries) {
  Guest32 g;
  ShadowMmu mmu(g.ram, {.unsync = false});
  ShadowVcpu v(mmu);
  const auto p = Guest32::paging();
  constexpr std::uint64_t kWindow = 0x800000;
  // Both halves of the PT shadowed (two pages), and both 2 MiB halves of the 4 MiB page.
  ASSERT_EQ(reach(mmu, v, p, 0x1000), kData + 0x1000);
  ASSERT_EQ(reach(mmu, v, p, 600 * 0x1000), kData + 600 * 0x1000);
  ASSERT_EQ(reach(mmu, v, p, 0x400000), 0x400000u);
  ASSERT_EQ(reach(mmu, v, p, 0x600000), 0x600000u);
  const std::uint64_t faults = mmu.stats().faults;
  auto store32 = [&](std::uint64_t gva, std::uint32_t value) {
    return mmu.access(v, p, Gva(gva), Access::write(), [&](std::byte* h) { std::memcpy(h, &value, 4); }, 4);
  };
  // PTE 600 (the second half's entry 88): its page follows, no refault.
  ASSERT_TRUE(store32(kWindow + 0x1000 + 600 * 4, static_cast<std::uint32_t>((kData + 0x7000) | kLeaf)).guest);
  EXPECT_EQ(reach(mmu, v, p, 600 * 0x1000), kData + 0x7000);
  EXPECT_EQ(reach(mmu, v, p, 0x1000), kData + 0x1000);
  EXPECT_EQ(mmu.stats().faults, faults + 1);  // the emulated write's fault only
  EXPECT_EQ(mmu.stats().write_misaligned, 0u);
  expect_invariants(mmu);
  // PDE 1 cleared: both of its 2 MiB shadow halves go.
  ASSERT_TRUE(store32(kWindow + 4, 0).guest);
  EXPECT_EQ(reach(mmu, v, p, 0x400000), ~std::uint64_t{0});
  EXPECT_EQ(reach(mmu, v, p, 0x600000), ~std::uint64_t{0});
  expect_invariants(mmu);
}

// ---- unsync and sync --------------------------------------------------------------------------

TEST_F(ShadowUnsync, AWriteFaultUnsyncsTheLeafPageUntilTheGuestFlushes) {
  ASSERT_TRUE(mmu.load_cr3(v, p));
  ASSERT_EQ(reach(mmu, v, p, 0x5000), kData + 0x5000);
  ASSERT_TRUE(store(mmu, v, p, pte(5), (kData + 0x9000) | kLeaf).guest);
  EXPECT_EQ(mmu.stats().unsyncs, 1u);
  EXPECT_EQ(mmu.stats().emulated, 0u);
  const std::uint64_t faults = mmu.stats().faults;
  ASSERT_TRUE(store(mmu, v, p, pte(6), (kData + 0xa000) | kLeaf).guest);
  EXPECT_EQ(mmu.stats().faults, faults);  // the frame is writable: the guest writes directly
  // Not flushed: the old translation may stay (and does).
  EXPECT_EQ(reach(mmu, v, p, 0x5000), kData + 0x5000);
  expect_invariants(mmu);
  mmu.flush_tlb(v);
  EXPECT_EQ(mmu.stats().syncs, 1u);
  EXPECT_EQ(reach(mmu, v, p, 0x5000), kData + 0x9000);
  EXPECT_EQ(reach(mmu, v, p, 0x6000), kData + 0xa000);
  expect_invariants(mmu);  // write-tracked again: no writable leaf over the PT
  // The switch turns it off: every write emulated.
  Guest g2;
  ShadowMmu off(g2.ram, {.unsync = false});
  ShadowVcpu v2(off);
  ASSERT_EQ(reach(off, v2, p, 0x5000), kData + 0x5000);
  ASSERT_TRUE(store(off, v2, p, pte(5), (kData + 0x9000) | kLeaf).guest);
  EXPECT_EQ(off.stats().unsyncs, 0u);
  EXPECT_EQ(off.stats().emulated, 1u);
  EXPECT_EQ(reach(off, v2, p, 0x5000), kData + 0x9000);
}

TEST_F(ShadowUnsync, ANonLeafTableNeverGoesUnsync) {
  ASSERT_EQ(reach(mmu, v, p, 0x5000), kData + 0x5000);
  ASSERT_TRUE(store(mmu, v, p, kTables + 2 * 0x1000 + 16, 0x4000 | kTable).guest);  // PD[2]
  EXPECT_EQ(mmu.stats().unsyncs, 0u);
  EXPECT_EQ(mmu.stats().emulated, 1u);
  // Applied at once: PD[2] leads to the same PT.
  EXPECT_EQ(reach(mmu, v, p, 0x400000 + 0x5000), kData + 0x5000);
  expect_invariants(mmu);
}

TEST_F(ShadowUnsync, InvlpgSyncsTheOneEntry) {
  ASSERT_EQ(reach(mmu, v, p, 0x5000), kData + 0x5000);
  ASSERT_EQ(reach(mmu, v, p, 0x6000), kData + 0x6000);
  ASSERT_TRUE(store(mmu, v, p, pte(5), (kData + 0x9000) | kLeaf).guest);
  ASSERT_TRUE(store(mmu, v, p, pte(6), (kData + 0xa000) | kLeaf).guest);
  mmu.invlpg(v, Gva(0x5000));
  EXPECT_EQ(reach(mmu, v, p, 0x5000), kData + 0x9000);
  EXPECT_EQ(reach(mmu, v, p, 0x6000), kData + 0x6000);  // not flushed yet
  EXPECT_EQ(mmu.stats().syncs, 0u);                    // the page stays unsync
  expect_invariants(mmu);
}

TEST_F(ShadowUnsync, ACr3LoadWithoutFlushKeepsTheUnsyncPagesAndOneWithFlushSyncsThem) {
  // (The vCPU decides what a CR3 write flushes: with CR4.PCIDE, bit 63 set means no flush.)
  ASSERT_TRUE(mmu.load_cr3(v, p));
  ASSERT_EQ(reach(mmu, v, p, 0x5000), kData + 0x5000);
  ASSERT_TRUE(store(mmu, v, p, pte(5), (kData + 0x9000) | kLeaf).guest);
  ASSERT_TRUE(mmu.load_cr3(v, p, /*flush=*/false));  // CR3 bit 63 set with CR4.PCIDE
  EXPECT_EQ(mmu.stats().syncs, 0u);
  EXPECT_EQ(reach(mmu, v, p, 0x5000), kData + 0x5000);
  ASSERT_TRUE(mmu.load_cr3(v, p, /*flush=*/true));
  EXPECT_EQ(mmu.stats().syncs, 1u);
  EXPECT_EQ(reach(mmu, v, p, 0x5000), kData + 0x9000);
  expect_invariants(mmu);
}

TEST_F(ShadowUnsync, ASyncWalksOnlyThePathsWithUnsyncPages) {
  ASSERT_TRUE(mmu.load_cr3(v, p));
  ASSERT_EQ(reach(mmu, v, p, 0x5000), kData + 0x5000);
  // PD[2] -> the same PT: its shadow page has two parents; both lead to it once unsync.
  ASSERT_TRUE(store(mmu, v, p, kTables + 2 * 0x1000 + 16, 0x4000 | kTable).guest);
  ASSERT_EQ(reach(mmu, v, p, 0x400000 + 0x5000), kData + 0x5000);
  ASSERT_TRUE(store(mmu, v, p, pte(5), (kData + 0x9000) | kLeaf).guest);
  EXPECT_EQ(mmu.stats().unsyncs, 1u);
  expect_invariants(mmu);  // includes: every parent entry of the unsync page has its bit
  mmu.flush_tlb(v);
  EXPECT_EQ(mmu.stats().syncs, 1u);
  EXPECT_EQ(reach(mmu, v, p, 0x5000), kData + 0x9000);
  EXPECT_EQ(reach(mmu, v, p, 0x400000 + 0x5000), kData + 0x9000);
  // Nothing unsync is left: the root's bitmap is empty, a flush syncs nothing.
  mmu.flush_tlb(v);
  EXPECT_EQ(mmu.stats().syncs, 1u);
  EXPECT_FALSE(v.root()->has_unsync_children());
}

// A sync keeps a leaf of the same frame without looking its frame up again: it must still take
// W away when the guest's entry no longer allows it, and may keep it where nothing changed.
TEST_F(ShadowUnsync, ASyncedLeafOfTheSameFrameFollowsTheGuestsDAndRw) {
  ASSERT_TRUE(mmu.load_cr3(v, p));
  for (const std::uint64_t gva : {0x5000u, 0x6000u, 0x7000u}) ASSERT_TRUE(store(mmu, v, p, gva, 1).guest);
  ASSERT_TRUE(store(mmu, v, p, pte(5), (kData + 0x5000) | (kLeaf & ~gpte::D::mask)).guest);  // unsyncs PT 0x4000
  ASSERT_TRUE(store(mmu, v, p, pte(6), (kData + 0x6000) | (kLeaf & ~gpte::RW::mask)).guest);
  EXPECT_EQ(mmu.stats().unsyncs, 1u);
  mmu.flush_tlb(v);
  EXPECT_EQ(mmu.stats().syncs, 1u);
  expect_invariants(mmu);
  const std::uint64_t faults = mmu.stats().faults;
  ASSERT_TRUE(store(mmu, v, p, 0x7000, 2).guest);
  EXPECT_EQ(mmu.stats().faults, faults) << "unchanged: the leaf keeps W";
  // D clear: the write faults, so that the guest's walk sets D.
  ASSERT_TRUE(store(mmu, v, p, 0x5000, 2).guest);
  EXPECT_EQ(mmu.stats().faults, faults + 1);
  EXPECT_TRUE(gpte::D::get(g.get(0x4000 + 5 * 8))) << "the guest's D bit set by its write";
  // RW clear: the guest's own #PF (CR0.WP=1).
  const Outcome o = store(mmu, v, p, 0x6000, 2);
  ASSERT_FALSE(o.guest);
  EXPECT_NE(o.guest.error().error_code & 2u, 0u) << "a write fault";
  expect_invariants(mmu);
}

TEST(ShadowHugeOverTables, AGuestHugePageHoldingItsOwnTablesIsMappedSmall) {
  // Over a memslot backed by 2 MiB pages, so huge shadow leaves are possible: PD[1] a 2 MiB
  // page over gpa [0, 2 MiB), which holds every table of the guest; PD[2] one over [2, 4) MiB.
  ShadowVm vm({}, std::uint64_t{4} << 20, std::uint64_t{1} << 21);
  vm.put(0x3000 + 8, 0 | kLeaf | gpte::PS::mask);
  vm.put(0x3000 + 16, 0x200000 | kLeaf | gpte::PS::mask);
  ShadowVcpu v(*vm.mmu);
  const auto p = long4(0x1000);
  std::uint64_t got = 0;
  ASSERT_TRUE(vm.read64(v, p, 0x5000, &got).guest);  // shadows the guest's tables
  ASSERT_TRUE(vm.read64(v, p, 0x400000, &got).guest);
  EXPECT_EQ(vm.mmu->stats().huge_leaves, 1u);  // no tables in it: one 2 MiB leaf
  ASSERT_TRUE(vm.read64(v, p, 0x200000 + 0x4000, &got).guest);
  EXPECT_EQ(vm.mmu->stats().huge_leaves, 1u);  // mapped at 4 KiB
  EXPECT_EQ(v.root()->role().level(), 4u);
  // Written through the huge page, the PT is a tracked frame like any other.
  ASSERT_TRUE(vm.write64(v, p, 0x200000 + 0x4000 + 5 * 8, (kData + 0x9000) | kLeaf).guest);
  vm.put(kData + 0x9000, 99);
  vm.mmu->flush_tlb(v);
  ASSERT_TRUE(vm.read64(v, p, 0x5000, &got).guest);
  EXPECT_EQ(got, 99u);
  expect_invariants(*vm.mmu);  // includes: no huge leaf over a write-tracked frame
}

// ---- randomized: a guest rewriting its own tables ----------------------------------------------

// Random guest-table writes to PT 0x4000 entries 0..31 and PD entries 2..3 (aligned, 4-byte
// halves, misaligned), with random flushes (flush_tlb, CR3 load with or without flush,
// INVLPG). After each flush -- after every write when nothing may go unsync -- every access
// through the shadow MMU equals the walker's on a twin memory given the same writes.
void self_rewrite(std::uint64_t seed, bool unsync, unsigned steps) {
  std::mt19937_64 rng(seed);
  auto pick = [&](std::uint64_t n) { return rng() % n; };
  SparseMemory<Gpa> direct;
  Guest g(&direct);
  ShadowMmu mmu(g.ram, {.unsync = unsync});
  ShadowVcpu v(mmu);
  const auto p = Guest::paging();
  ASSERT_TRUE(mmu.load_cr3(v, p));
  std::vector<std::uint64_t> gvas;
  for (std::uint64_t i = 0; i < 32; ++i) {
    for (std::uint64_t base : {std::uint64_t{0}, std::uint64_t{0x400000}}) gvas.push_back(base + i * 0x1000);
  }
  gvas.push_back(0x600000 + 0x4000);
  unsigned checked = 0, faults = 0;
  auto check = [&](std::uint64_t gva, const std::string& where) {
    for (unsigned kind = 0; kind < 3; ++kind) {
      for (bool user : {false, true}) {
        const Access a{static_cast<AccessKind>(kind), user, false};
        const auto want = x86::walk(p, direct, Gva(gva), a);
        const Outcome got = mmu.access(v, p, Gva(gva), a, [](std::byte*) {});
        const std::string at = where + " gva " + std::to_string(gva) + " kind " + std::to_string(kind);
        ASSERT_FALSE(got.exit) << at;
        ASSERT_EQ(got.guest.has_value(), want.has_value()) << at;
        ++checked;
        if (want) {
          ASSERT_EQ(got.guest->gpa, want->gpa) << at;
        } else {
          ++faults;
          ASSERT_EQ(got.guest.error().error_code, want.error().error_code) << at;
        }
      }
    }
  };
  auto check_all = [&](const std::string& where) {
    for (const std::uint64_t gva : gvas) {
      check(gva, where);
      if (::testing::Test::HasFatalFailure()) return;
    }
    const std::optional<std::string> bad = mmu.check_invariants();
    ASSERT_FALSE(bad) << where << ": " << *bad;
    for (std::uint64_t at = 0x1000; at < 0x7000; at += 8) {
      ASSERT_EQ(*direct.read<std::uint64_t>(Gpa(at)), g.get(at)) << where << " table word at " << at;
    }
  };
  for (unsigned step = 0; step < steps; ++step) {
    const std::string where = "seed " + std::to_string(seed) + " step " + std::to_string(step);
    const std::uint64_t r = pick(100);
    if (r < 60) {
      // A table write: a PTE (a data page, a table frame, or not present; random bits) or PD[2..3].
      std::uint64_t gpa = 0, value = 0;
      if (pick(5) != 0) {
        gpa = 0x4000 + pick(32) * 8;
        static constexpr std::array<std::uint64_t, 4> kFrames{kData, kData + 0x1000, 0x4000, 0x3000};
        value = kFrames[pick(4)] + (pick(2) != 0 ? pick(8) * 0x1000 * (kFrames[0] == kData) : 0);
        value |= gpte::P::mask * (pick(10) != 0) | gpte::RW::mask * pick(2) | gpte::US::mask * pick(2) |
                 gpte::A::mask * (pick(5) != 0) | gpte::D::mask * pick(2) | gpte::XD::mask * (pick(8) == 0);
      } else {
        gpa = 0x3000 + (2 + pick(2)) * 8;
        static constexpr std::array<std::uint64_t, 4> kPd{0, 0x4000 | kTable, 0x6000 | kTable,
                                                          0 | kLeaf | gpte::PS::mask};
        value = kPd[pick(4)] & ~(gpte::RW::mask * (pick(4) == 0));
      }
      std::uint64_t offset = 0;
      std::uint32_t bytes = 8;
      if (pick(8) == 0) {
        bytes = 4;  // a 4-byte half
        offset = 4 * pick(2);
      } else if (pick(10) == 0) {
        bytes = 2;  // misaligned
        offset = 2 * pick(4);
      }
      const std::uint64_t gva = kTables + (gpa - 0x1000) + offset;  // the window: table k at k * 4K
      const Outcome w = mmu.access(
          v, p, Gva(gva), Access::write(),
          [&](std::byte* host) { std::memcpy(host, reinterpret_cast<const std::byte*>(&value) + offset, bytes); },
          bytes);
      ASSERT_TRUE(w.guest) << where;
      std::uint64_t word = *direct.read<std::uint64_t>(Gpa(gpa));
      std::memcpy(reinterpret_cast<std::byte*>(&word) + offset, reinterpret_cast<const std::byte*>(&value) + offset, bytes);
      (void)direct.write<std::uint64_t>(Gpa(gpa), word);
      if (!unsync) check_all(where + " (write)");
    } else if (r < 75) {
      if (pick(2) != 0) {
        mmu.flush_tlb(v);
      } else {
        ASSERT_TRUE(mmu.load_cr3(v, p, true));
      }
      check_all(where + " (flush)");
    } else if (r < 90) {
      const std::uint64_t gva = gvas[pick(gvas.size())];
      mmu.invlpg(v, Gva(gva));
      check(gva, where + " (invlpg)");
    } else {
      ASSERT_TRUE(mmu.load_cr3(v, p, false));  // no flush: nothing to check
    }
    if (::testing::Test::HasFatalFailure()) return;
  }
  mmu.flush_tlb(v);
  check_all("end");
  // Both outcomes common, and (with unsync) the feature exercised.
  EXPECT_GT(checked, 1000u);
  EXPECT_GT(faults, checked / 10);
  EXPECT_LT(faults, checked * 9 / 10);
  if (unsync) {
    EXPECT_GT(mmu.stats().unsyncs, 5u);
    EXPECT_GT(mmu.stats().syncs, 5u);
  } else {
    EXPECT_GT(mmu.stats().emulated, 20u);
  }
}

TEST(ShadowSelfRewrite, MatchesTheWalkerAfterEveryFlush) {
  for (std::uint64_t seed = 1; seed <= 6; ++seed) {
    self_rewrite(seed, true, 400);
    if (HasFatalFailure()) return;
  }
}

TEST(ShadowSelfRewrite, MatchesTheWalkerAfterEveryWriteWithUnsyncOff) {
  for (std::uint64_t seed = 11; seed <= 14; ++seed) {
    self_rewrite(seed, false, 200);
    if (HasFatalFailure()) return;
  }
}

}  // namespace
}  // namespace vmmu::shadow::test
