// Concurrency of the owned-table layer: faulting threads map (shared) in overlapping ranges
// while one thread splits / collapses / write-protects / unmaps (exclusive) and lock-free
// readers walk inside RCU read-side sections. Readers must never find a hole in a range that
// stays mapped; ASan / TSan catch a freed table being touched.

#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <shared_mutex>
#include <thread>
#include <vector>

#include "pt/owned_toy_format.hpp"
#include "vmmu/core/rcu.hpp"
#include "vmmu/pt/owned_tables.hpp"

namespace vmmu::pt {
namespace {

using toy::HostToyFormat;
using toy::kBlock;
using toy::kRw;
using toy::Tables;

constexpr std::uint64_t kStable = 2 * 1024 * 1024;  // [0, kStable) stays mapped throughout
constexpr std::uint64_t kChurn = 4 * 1024 * 1024;   // [kStable, kChurn) is mapped and unmapped
const Hpa kBase(0x20'0000'0000);

TEST(HostTablesStress, ReadersNeverSeeHolesWhileFaultsRaceSplitsAndCollapses) {
  const unsigned seed = 7u;
  SCOPED_TRACE("seed " + std::to_string(seed));
  HostToyFormat f;
  OwnedTableMemory memory(f.g, ~std::uint64_t{0}, toy::kToyTableAlign);
  TlbLog<Gpa> tlb;
  std::shared_mutex lock;
  {
    Tables t = std::move(Tables::create(f, memory, tlb).value());
    std::move(t.map({Gpa(0), Gpa(kStable)}, kBase, kRw).value()).apply(tlb);

    std::atomic<bool> stop{false}, writer_waiting{false};
    std::atomic<std::uint64_t> holes{0}, wrong{0}, walks{0};
    std::vector<std::thread> threads;
    for (unsigned r = 0; r < 2; ++r) {
      threads.emplace_back([&, r] {
        std::mt19937_64 rng(seed * 100 + r);
        while (!stop.load(std::memory_order_relaxed)) {
          const std::uint64_t a = (rng() % (kChurn / kPageSize)) * kPageSize;
          rcu::ReadGuard guard;
          for (;;) {
            const auto w = walk(f, memory, t.root(), a, [](Step<HostToyFormat>&) { return Visit::Continue; });
            if (w.end == WalkEnd::NotPresent && w.entry == f.frozen_entry()) continue;  // mid-BBM: retry
            if (w.end == WalkEnd::Leaf) {
              const std::uint64_t span = f.g.span(w.level);
              if (f.leaf_address(w.entry, w.level) + (a & (span - 1)) != kBase + a) wrong.fetch_add(1);
            } else if (a < kStable) {
              holes.fetch_add(1);
            }
            break;
          }
          walks.fetch_add(1, std::memory_order_relaxed);
        }
      });
    }
    for (unsigned m = 0; m < 2; ++m) {
      threads.emplace_back([&, m] {
        std::mt19937_64 rng(seed * 200 + m);
        while (!stop.load(std::memory_order_relaxed)) {
          const std::uint64_t a = (rng() % (kChurn / kPageSize)) * kPageSize;
          const std::uint64_t n = 1 + rng() % 32;
          const std::uint64_t e = std::min(kChurn, a + n * kPageSize);
          // glibc's rwlock prefers readers: step aside while the structural thread waits.
          while (writer_waiting.load(std::memory_order_relaxed)) std::this_thread::yield();
          std::shared_lock shared(lock);
          auto r = t.map({Gpa(a), Gpa(e)}, kBase + a, kRw, {}, Shared{});
          if (r) std::move(*r).apply(tlb);
          if (rng() % 4 == 0) {
            auto relaxed = t.relax(Gpa(a), kRw);
            if (relaxed) std::move(*relaxed).apply(tlb);
          }
        }
      });
    }
    std::mt19937_64 rng(seed);
    // At least 150 rounds, and until the readers have walked alongside them (a fast machine or
    // a slow thread start could otherwise finish every round before the first walk).
    for (int round = 0; round < 150 || (walks.load() < 2000 && round < 1000000); ++round) {
      writer_waiting = true;
      std::unique_lock exclusive(lock);
      writer_waiting = false;
      const std::uint64_t b = (rng() % (kChurn / kBlock)) * kBlock;
      const Range<Gpa> r{Gpa(b), Gpa(std::min(kChurn, b + (1 + rng() % 8) * kBlock))};
      switch (rng() % 4) {
        case 0: std::move(t.split(r).value()).apply(tlb); break;
        case 1: std::move(t.collapse(r).value().flush).apply(tlb); break;
        case 2: std::move(t.write_protect(r).value()).apply(tlb); break;
        default:
          if (!(r.begin < Gpa(kStable))) std::move(t.unmap(r).value()).apply(tlb);
          break;
      }
      exclusive.unlock();
      std::this_thread::yield();
    }
    stop = true;
    for (auto& th : threads) th.join();
    EXPECT_EQ(holes.load(), 0u);
    EXPECT_EQ(wrong.load(), 0u);
    EXPECT_GT(walks.load(), 0u);
    const auto reach = t.reachable_tables();
    for (unsigned l = 1; l <= 3; ++l) EXPECT_EQ(memory.tables_in_use(l), reach[l]) << "level " << l;
  }
  rcu::barrier();
  EXPECT_EQ(memory.tables_in_use(), 0u);
}

// A Shared write-protect changes entries while the hardware sets A bits in them (fetch_or):
// each change is a compare-exchange against the value read (two entries at once on x86-64),
// so no A bit set meanwhile is lost.
TEST(HostTablesStress, SharedWriteProtectLosesNoBitTheHardwareSetsMeanwhile) {
  HostToyFormat f;
  OwnedTableMemory memory(f.g, ~std::uint64_t{0}, toy::kToyTableAlign);
  TlbLog<Gpa> tlb;
  Tables t = std::move(Tables::create(f, memory, tlb).value());
  constexpr LeafAttrs kRwOld{true, true, false, false, false};
  const Range<Gpa> all{Gpa(0), Gpa(kStable)};
  std::move(t.map(all, kBase, kRwOld, {.max_level = 1}).value()).apply(tlb);
  std::vector<Hpa> entries;
  for (Tables::Iterator it(f, memory, t.root(), 0, kStable); it.valid(); it.next()) {
    if (it.level() == 1) entries.push_back(it.entry_address());
  }
  ASSERT_EQ(entries.size(), kStable / 0x1000);
  // One persistent "hardware" thread, started by a round number so both sides begin within
  // a spin of each other and walk the entries in the same direction: their windows overlap.
  constexpr unsigned kRounds = 2000;
  std::atomic<unsigned> round{0}, done{0};
  std::thread hardware([&] {
    for (unsigned r = 1; r <= kRounds; ++r) {
      while (round.load() != r) {
      }
      for (Hpa e : entries) memory.fetch_or<std::uint64_t>(e, toy::Accessed::mask);
      done.store(r);
    }
  });
  std::uint64_t lost = 0, protected_while_racing = 0;
  for (unsigned r = 1; r <= kRounds; ++r) {
    std::move(t.map(all, kBase, kRwOld, {.max_level = 1}).value()).apply(tlb);  // W back, A clear
    round.store(r);
    auto w = t.write_protect(all, Shared{});
    while (done.load() != r) {
    }
    ASSERT_TRUE(w);
    std::move(*w).apply(tlb);
    for (Hpa e : entries) {
      const std::uint64_t v = memory.read<std::uint64_t>(e).value();
      lost += toy::Accessed::get(v) ? 0u : 1u;
      protected_while_racing += toy::Write::get(v) ? 0u : 1u;
    }
  }
  hardware.join();
  EXPECT_EQ(lost, 0u) << "A bits the hardware set during a Shared write-protect were overwritten";
  EXPECT_EQ(protected_while_racing, kRounds * entries.size());
}

}  // namespace
}  // namespace vmmu::pt
