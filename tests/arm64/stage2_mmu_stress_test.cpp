// Concurrent stage-2 faults (shared lock, compare-exchange installs) racing structural
// operations (exclusive: dirty-log enabling, split, collapse, write-protect, unmap, age) and
// lock-free readers. Every translation anyone observes must be the slot's host memory; at the
// end the tables must pass the invariant check (walker vs memslots, table accounting).

#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>
#include <vector>

#include "arm64/stage2_mmu_test_support.hpp"
#include "vmmu/arm64/stage2_mmu.hpp"
#include "vmmu/core/rcu.hpp"

namespace vmmu::arm64 {
namespace {

constexpr std::uint64_t k2M = 2 * 1024 * 1024;
constexpr std::uint64_t kSlotBytes = 8 * k2M;
const Ipa kRam(0x8000'0000);

TEST(Stage2MmuStress, ConcurrentFaultsAndStructuralOperationsKeepTranslationsRight) {
  const unsigned seed = 11u;
  SCOPED_TRACE("seed " + std::to_string(seed));
  testing::HostBuffer ram(kSlotBytes, k2M);
  Memslots slots;
  ASSERT_TRUE(slots.add({SlotId{1}, Gfn(kRam.raw() >> kPageShift), kSlotBytes >> kPageShift, ram.data(), {}}));
  auto mmu = std::move(Stage2Mmu::create(*choose_layout(40, Granule::K4), slots).value());

  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> wrong{0}, errors{0}, faults{0};
  auto check = [&](Ipa ipa) {
    if (auto m = mmu->lookup(ipa)) {
      if (m->output != ram.hpa() + (ipa - kRam)) wrong.fetch_add(1);
    }
  };
  std::vector<std::thread> threads;
  for (unsigned v = 0; v < 3; ++v) {
    threads.emplace_back([&, v] {
      std::mt19937_64 rng(seed * 10 + v);
      while (!stop.load(std::memory_order_relaxed)) {
        // Mostly inside the slot, sometimes just past it (MMIO).
        const Ipa ipa = kRam + (rng() % (kSlotBytes + k2M)) / 8 * 8;
        const Access access = rng() % 3 == 0 ? Access::write() : rng() % 4 == 0 ? Access::fetch() : Access::read();
        auto r = mmu->handle_fault(ipa, access);
        if (!r) {
          errors.fetch_add(1);
        } else if (r->action == FaultAction::Mmio) {
          if (ipa < kRam + kSlotBytes) wrong.fetch_add(1);
        }
        check(ipa);
        faults.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  threads.emplace_back([&] {
    std::mt19937_64 rng(seed * 100);
    while (!stop.load(std::memory_order_relaxed)) check(kRam + rng() % kSlotBytes);
  });

  std::mt19937_64 rng(seed);
  // At least 120 rounds, and until the vCPU threads have faulted alongside them.
  for (int round = 0; round < 120 || (faults.load() < 500 && round < 1000000); ++round) {
    const Ipa b = kRam + (rng() % 8) * k2M;
    const Range<Ipa> r{b, b + (1 + rng() % 3) * k2M};
    const Range<Ipa> clipped{r.begin, r.end < kRam + kSlotBytes ? r.end : kRam + kSlotBytes};
    bool ok = true;
    switch (rng() % 6) {
      case 0: ok = static_cast<bool>(mmu->enable_dirty_logging(clipped)); break;
      case 1: ok = static_cast<bool>(mmu->split(clipped)); break;
      case 2: ok = mmu->collapse(clipped).has_value(); break;
      case 3: ok = static_cast<bool>(mmu->write_protect(clipped)); break;
      case 4: ok = static_cast<bool>(mmu->unmap(clipped)); break;
      default: ok = mmu->age(clipped).has_value(); break;
    }
    EXPECT_TRUE(ok) << "round " << round;
    std::this_thread::yield();
  }
  stop = true;
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0u);
  EXPECT_EQ(errors.load(), 0u);
  EXPECT_GT(faults.load(), 0u);
  auto bad = mmu->check_invariants();
  EXPECT_FALSE(bad) << *bad;
  mmu.reset();
  rcu::barrier();
}

}  // namespace
}  // namespace vmmu::arm64
