// Memslots under concurrent readers: overlays are swapped in and out atomically (no reader
// ever finds a page unmapped or sees foreign bytes), and remove / move / overlay_remove
// return only when no reader can still use the memory they unmapped.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <cstdio>
#include <random>
#include <thread>
#include <vector>

#include "memory/support/host_pages.hpp"
#include "vmmu/memory/guest_memory.hpp"

namespace vmmu {
namespace {

using namespace std::chrono_literals;
using test::HostPages;

constexpr std::uint64_t kBaseTag = 0xa, kOverlayTag = 0xb, kPoison = 0xdead;
constexpr std::uint64_t kSlotPages = 16, kOverlayFirst = 5, kOverlayPages = 2;
constexpr auto kTimeLimit = 2s;  // per test, TSan included

void poison(HostPages& pages) { pages.fill(kPoison); }

// Readers sweep every page of the slot while a writer adds and removes an overlay thousands
// of times. After each removal the writer poisons the overlay memory, so a reader that could
// still reach it after overlay_remove() returned would see the poison.
TEST(MemslotsStress, OverlaySwapNeverUnmapsAPageOrShowsForeignBytes) {
  HostPages base(kSlotPages), overlay(kOverlayPages);
  base.fill(kBaseTag);
  poison(overlay);
  Memslots slots;
  ASSERT_TRUE(slots.add({SlotId{1}, Gfn(0x100), kSlotPages, base.data(), {}}));

  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> overlay_reads{0}, base_reads{0}, bad{0};
  std::vector<std::thread> readers;
  for (unsigned t = 0; t < 2; ++t) {
    readers.emplace_back([&, t] {
      GuestMemory mem(slots);
      std::mt19937_64 rng(t);
      while (!stop.load(std::memory_order_relaxed)) {
        auto r = mem.reader();
        // A region found at the start of the section stays usable to its end: read through
        // it after the sweep (a premature grace period would show the poison here).
        const Gfn held(0x100 + kOverlayFirst);
        const MemslotRegion* region = r.region(held);
        for (std::uint64_t p = 0; p < kSlotPages; ++p) {
          const Gpa gpa = gpa_of(Gfn(0x100 + p)) + 8 * (rng() % 512);
          const std::optional<std::uint64_t> v = r.read<std::uint64_t>(gpa);
          const bool in_overlay = p >= kOverlayFirst && p < kOverlayFirst + kOverlayPages;
          if (v == HostPages::tag_of(kBaseTag, p)) {
            base_reads.fetch_add(1, std::memory_order_relaxed);
          } else if (in_overlay && v == HostPages::tag_of(kOverlayTag, p - kOverlayFirst)) {
            overlay_reads.fetch_add(1, std::memory_order_relaxed);
          } else if (bad.fetch_add(1) == 0) {
            ADD_FAILURE() << "page " << p << " read " << (v ? std::to_string(*v) : "unmapped");
          }
        }
        // Stay inside a little (~2 us) so that updates overlap the section.
        const auto until = std::chrono::steady_clock::now() + 2us;
        do {
          std::uint64_t held_word = 0;
          if (region != nullptr) {
            held_word = std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(region->host_of(held)))
                            .load(std::memory_order_relaxed);
          }
          if (held_word != HostPages::tag_of(kBaseTag, kOverlayFirst) &&
              held_word != HostPages::tag_of(kOverlayTag, 0) && bad.fetch_add(1) == 0) {
            ADD_FAILURE() << "held region read " << held_word;
          }
        } while (std::chrono::steady_clock::now() < until);
      }
    });
  }

  const auto deadline = std::chrono::steady_clock::now() + kTimeLimit;
  int swaps = 0;
  for (; swaps < 5000 && std::chrono::steady_clock::now() < deadline; ++swaps) {
    overlay.fill(kOverlayTag);
    auto id = slots.overlay_add(Gfn(0x100 + kOverlayFirst), kOverlayPages, overlay.data());
    ASSERT_TRUE(id.has_value());
    // Let readers start sections that find the overlay (spinning: yield would lose the CPU).
    for (const auto until = std::chrono::steady_clock::now() + 5us; std::chrono::steady_clock::now() < until;) {
    }
    ASSERT_TRUE(slots.overlay_remove(*id));
    poison(overlay);
  }
  stop.store(true);
  for (auto& r : readers) r.join();
  std::printf("  %d overlay swaps, %llu base reads, %llu overlay reads\n", swaps,
              static_cast<unsigned long long>(base_reads.load()), static_cast<unsigned long long>(overlay_reads.load()));
  EXPECT_EQ(bad.load(), 0u);
  EXPECT_GT(swaps, 50);  // thousands normally; a loaded 2-core machine may manage fewer
  EXPECT_GT(overlay_reads.load(), 0u) << "readers never saw the overlay: the test tested nothing";
}

// A reader inside a section holds remove() / move() until it leaves.
TEST(MemslotsStress, RemoveAndMoveWaitForReadersInsideASection) {
  HostPages host(4);
  host.fill(kBaseTag);
  Memslots slots;
  ASSERT_TRUE(slots.add({SlotId{1}, Gfn(0x100), 4, host.data(), {}}));
  for (int update = 0; update < 2; ++update) {
    std::atomic<bool> inside{false}, release{false}, reader_done{false}, writer_done{false};
    std::thread reader([&] {
      GuestMemory mem(slots);
      auto r = mem.reader();
      const Gfn where(0x100);
      // What the reader found before the update must stay usable until it leaves: the old
      // snapshot's region (ASan: not freed) and the host memory behind it (not yet poisoned).
      // New lookups inside the same section may already see the new layout.
      const MemslotRegion* region = r.region(where);
      inside.store(true);
      if (region == nullptr) {
        ADD_FAILURE() << "slot not found";
        reader_done.store(true);
        return;
      }
      while (!release.load()) std::this_thread::sleep_for(1ms);
      EXPECT_FALSE(writer_done.load());
      std::uint64_t word = 0;
      std::memcpy(&word, region->host_of(where) + 8, 8);
      EXPECT_EQ(word, HostPages::tag_of(kBaseTag, 0));
      reader_done.store(true);
    });
    while (!inside.load()) std::this_thread::sleep_for(1ms);
    std::thread writer([&] {
      if (update == 0) {
        EXPECT_TRUE(slots.move(SlotId{1}, Gfn(0x200)));
      } else {
        EXPECT_TRUE(slots.remove(SlotId{1}));
      }
      EXPECT_TRUE(reader_done.load()) << "update returned while a reader was inside";
      writer_done.store(true);
      poison(host);
    });
    std::this_thread::sleep_for(30ms);
    EXPECT_FALSE(writer_done.load());
    release.store(true);
    reader.join();
    writer.join();
    host.fill(kBaseTag);
    if (update == 0) {
      ASSERT_TRUE(slots.move(SlotId{1}, Gfn(0x100)));
    }
  }
}

// Readers read continuously while a writer removes, re-adds and moves the slot, poisoning
// its memory whenever it is unmapped: readers see the data or nothing, never the poison.
TEST(MemslotsStress, UnmappedMemoryIsNeverReadAfterTheUpdateReturns) {
  HostPages host(8);
  host.fill(kBaseTag);
  Memslots slots;
  ASSERT_TRUE(slots.add({SlotId{1}, Gfn(0x100), 8, host.data(), {}}));
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> hits{0}, bad{0};
  std::vector<std::thread> readers;
  for (unsigned t = 0; t < 2; ++t) {
    readers.emplace_back([&, t] {
      GuestMemory mem(slots);
      std::mt19937_64 rng(100 + t);
      while (!stop.load(std::memory_order_relaxed)) {
        auto r = mem.reader();
        for (int i = 0; i < 16; ++i) {
          const std::uint64_t page = rng() % 8;
          const Gfn gfn(((rng() & 1) != 0 ? 0x100 : 0x300) + page);
          const auto v = r.read<std::uint64_t>(gpa_of(gfn) + 8 * (rng() % 512));
          if (!v) continue;
          if (*v == HostPages::tag_of(kBaseTag, page)) {
            hits.fetch_add(1, std::memory_order_relaxed);
          } else if (bad.fetch_add(1) == 0) {
            ADD_FAILURE() << "read " << *v << " at " << gfn.raw();
          }
        }
      }
    });
  }
  const auto deadline = std::chrono::steady_clock::now() + kTimeLimit;
  int rounds = 0;
  for (; rounds < 2000 && std::chrono::steady_clock::now() < deadline; ++rounds) {
    ASSERT_TRUE(slots.move(SlotId{1}, Gfn(0x300)));
    ASSERT_TRUE(slots.move(SlotId{1}, Gfn(0x100)));
    ASSERT_TRUE(slots.remove(SlotId{1}));
    poison(host);
    host.fill(kBaseTag);
    ASSERT_TRUE(slots.add({SlotId{1}, Gfn(0x100), 8, host.data(), {}}));
  }
  stop.store(true);
  for (auto& r : readers) r.join();
  std::printf("  %d rounds, %llu hits\n", rounds, static_cast<unsigned long long>(hits.load()));
  EXPECT_EQ(bad.load(), 0u);
  EXPECT_GT(hits.load(), 0u);
}

}  // namespace
}  // namespace vmmu
