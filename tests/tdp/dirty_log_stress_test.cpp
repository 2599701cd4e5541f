// Dirty logging under concurrency: vCPU threads write while a collector harvests, as live
// migration does -- after the last harvest, the collector's copy of guest memory must equal
// guest memory exactly (a lost dirty page would leave a stale page in the copy).
#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>

#include "tdp/support/tdp_fixture.hpp"

namespace vmmu::tdp {
namespace {

using test::HostMemory;
using test::TdpVm;

constexpr std::uint64_t kPages = 1024;
constexpr int kRounds = 1000;

struct Mode {
  const char* name;
  bool ring;
  DirtyTracking tracking;
  SplitPolicy split;
};

class DirtyLogStress : public ::testing::TestWithParam<Mode> {};

TEST_P(DirtyLogStress, NoWriteIsLostOverAThousandRounds) {
  TdpConfig cfg;
  cfg.policies.dirty_tracking = GetParam().tracking;
  cfg.policies.split = GetParam().split;
  cfg.dirty_ring_size = GetParam().ring ? 4096 : 0;
  TdpVm vm(cfg);
  HostMemory mem(kPages * kPageSize);
  vm.add_slot(1, Gfn(0), mem, std::uint64_t{1} << 21);
  std::vector<std::uint64_t> copy(kPages * kPageSize / 8, 0);
  auto words = [&](std::uint64_t page) { return reinterpret_cast<std::uint64_t*>(mem.data() + page * kPageSize); };
  auto copy_page = [&](std::uint64_t page) {
    for (std::uint64_t i = 0; i < kPageSize / 8; ++i) {
      copy[page * 512 + i] = std::atomic_ref<std::uint64_t>(words(page)[i]).load(std::memory_order_relaxed);
    }
  };
  // Map everything huge first, then start logging (the policies decide what happens to it).
  {
    auto& v = vm.vcpu();
    for (std::uint64_t p = 0; p < kPages; ++p) ASSERT_TRUE(vm.read64(v, gpa_of(Gfn(p))));
  }
  ASSERT_TRUE(vm.slots.set_flags(SlotId{1}, MemslotFlags::log_dirty()));

  constexpr int kWriters = 2;
  std::vector<VcpuMmu*> vcpus;
  for (int t = 0; t < kWriters; ++t) vcpus.push_back(&vm.vcpu());
  std::atomic<int> round{0};
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::atomic<std::uint64_t> writes{0};
  std::vector<std::thread> writers;
  for (int t = 0; t < kWriters; ++t) {
    writers.emplace_back([&, t] {
      std::mt19937_64 rng(static_cast<std::uint64_t>(t) + 1);
      std::uint64_t n = 0;
      VcpuMmu& v = *vcpus[static_cast<std::size_t>(t)];
      int my_round = -1, in_round = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        // A few writes per round, some racing with the harvest; then wait for the next
        // round (spinning vCPUs would starve the collector on a 2-core machine).
        const int r = round.load(std::memory_order_relaxed);
        if (r != my_round) {
          my_round = r;
          in_round = 0;
        }
        if (++in_round > 8) {
          std::this_thread::yield();
          continue;
        }
        const std::uint64_t page = rng() % kPages;
        const std::uint64_t slot = static_cast<std::uint64_t>(t) * 256 + rng() % 256;  // each writer its own words
        const std::uint64_t value = (static_cast<std::uint64_t>(t) << 56) | ++n;
        auto s = vm.write64(v, gpa_of(Gfn(page)) + slot * 8 % kPageSize, value);
        if (!s && s.error() == AccessExit::RingFull) {
          // KVM_EXIT_DIRTY_RING_FULL: wait for the collector to harvest and reset.
          std::this_thread::yield();
          continue;
        }
        if (!s) failures.fetch_add(1);
        writes.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  std::vector<DirtyGfn> harvested;
  auto harvest = [&] {
    if (GetParam().ring) {
      for (VcpuMmu* v : vcpus) {
        harvested.clear();
        vm.mmu->harvest_dirty_ring(*v, harvested);
        // Reset (re-protect) before copying: a write after the copy faults and logs again.
        vm.mmu->reset_dirty_ring(*v);
        for (const DirtyGfn& d : harvested) copy_page(d.page);
      }
      // Writes made by no vCPU (none here) would be in the bitmap.
    }
    auto bits = vm.mmu->get_dirty_log(SlotId{1});
    ASSERT_TRUE(bits);
    for (std::size_t w = 0; w < bits->size(); ++w) {
      for (std::uint64_t m = (*bits)[w]; m != 0; m &= m - 1) copy_page(w * 64 + static_cast<unsigned>(__builtin_ctzll(m)));
    }
  };
  // The first pass copies everything (migration's bulk copy), then rounds of harvests.
  for (std::uint64_t p = 0; p < kPages; ++p) copy_page(p);
  for (int r = 0; r < kRounds; ++r) {
    // Let the vCPUs write between harvests (and during them). The target is read before the
    // round opens: read after, the writers may already have spent this round's writes, and
    // the collector would wait for writes that never come.
    const std::uint64_t target = writes.load() + 4;
    round.store(r + 1);  // every round a new value: the writers start again
    while (writes.load() < target && failures.load() == 0) std::this_thread::yield();
    harvest();
  }
  stop.store(true);
  for (auto& w : writers) w.join();
  harvest();  // the final round, with the vCPUs stopped
  EXPECT_EQ(failures.load(), 0);
  EXPECT_GE(writes.load(), 4u * kRounds);
  std::uint64_t stale = 0;
  for (std::uint64_t i = 0; i < copy.size(); ++i) {
    stale += copy[i] != std::atomic_ref<std::uint64_t>(reinterpret_cast<std::uint64_t*>(mem.data())[i]).load() ? 1u : 0u;
  }
  EXPECT_EQ(stale, 0u) << "words of the migrated copy missing a write";
  EXPECT_GT(vcpus[0]->stats().dirtied + vcpus[1]->stats().dirtied + vm.mmu->stats().dirty_cleared, 0u);
  EXPECT_FALSE(vm.mmu->check_invariants().has_value());
}

INSTANTIATE_TEST_SUITE_P(Modes, DirtyLogStress,
                         ::testing::Values(Mode{"bitmap_eager", false, DirtyTracking::WriteProtect, SplitPolicy::Eager},
                                           Mode{"bitmap_lazy", false, DirtyTracking::WriteProtect, SplitPolicy::Lazy},
                                           Mode{"ring", true, DirtyTracking::WriteProtect, SplitPolicy::Eager},
                                           Mode{"dirty_bits", false, DirtyTracking::DirtyBits, SplitPolicy::Lazy}),
                         [](const ::testing::TestParamInfo<Mode>& p) { return std::string(p.param.name); });

}  // namespace
}  // namespace vmmu::tdp
