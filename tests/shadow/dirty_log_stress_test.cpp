// Dirty logging with huge shadow leaves under concurrency (issue 12 item 8): vCPU threads write
// through huge leaves that logging write-protected -- each first write splits one -- while a
// collector harvests and copies, as live migration does. After the last harvest the copy must
// equal guest memory: a dirtied page missing from the log would leave a stale word (KVM's
// first "write-protect, don't drop" change lost dirty pages this way).

#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>
#include <vector>

#include "shadow/support/shadow_vm.hpp"

namespace vmmu::shadow::test {
namespace {

constexpr std::uint64_t k2M = std::uint64_t{1} << 21;
constexpr std::uint64_t kHugeGva = std::uint64_t{1} << 30;
constexpr std::uint64_t kHugeData = 4 * k2M;  // four guest 2 MiB pages: 8..16 MiB
constexpr std::uint64_t kHugePages = 4;
constexpr std::uint64_t kPages = kHugePages * 512;
constexpr int kRounds = 300;

TEST(ShadowDirtyLogStress, NoWriteThroughASplitHugeLeafIsLost) {
  ShadowVm vm({}, std::uint64_t{16} << 20, k2M);
  vm.put(0x2000 + 8, 0x5000 | kTableBits);
  for (std::uint64_t i = 0; i < kHugePages; ++i) vm.put(0x5000 + i * 8, (kHugeData + i * k2M) | kLeafBits | x86::gpte::PS::mask);
  const auto paging = long4(0x1000);
  auto word = [&](std::uint64_t page, std::uint64_t i) {
    return std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(vm.mem.data() + kHugeData + page * kPageSize + i * 8));
  };
  // Map everything huge and writable, then start logging.
  {
    ShadowVcpu v(*vm.mmu);
    for (std::uint64_t i = 0; i < kHugePages; ++i) ASSERT_TRUE(vm.write64(v, paging, kHugeGva + i * k2M, 0).guest.has_value());
  }
  ASSERT_EQ(vm.mmu->stats().huge_leaves, kHugePages);
  ASSERT_TRUE(vm.slots.set_flags(SlotId{1}, MemslotFlags::log_dirty()));

  std::vector<std::uint64_t> copy(kPages * 512, 0);
  auto copy_page = [&](std::uint64_t page) {
    for (std::uint64_t i = 0; i < 512; ++i) copy[page * 512 + i] = word(page, i).load(std::memory_order_relaxed);
  };
  constexpr int kWriters = 2;
  std::atomic<int> round{0};
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::atomic<std::uint64_t> writes{0};
  std::vector<std::thread> writers;
  for (int t = 0; t < kWriters; ++t) {
    writers.emplace_back([&, t] {
      ShadowVcpu v(*vm.mmu);
      std::mt19937_64 rng(static_cast<std::uint64_t>(t) + 1);
      std::uint64_t n = 0;
      int my_round = -1, in_round = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        // A few writes per round (some racing with the harvest), then wait for the next.
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
        const Outcome o = vm.write64(v, paging, kHugeGva + page * kPageSize + slot * 8, value);
        if (!o.guest.has_value() || o.exit) failures.fetch_add(1);
        writes.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  auto harvest = [&] {
    auto bits = vm.mmu->get_dirty_log(SlotId{1});
    ASSERT_TRUE(bits);
    const std::uint64_t first = kHugeData >> kPageShift;
    for (std::uint64_t p = 0; p < kPages; ++p) {
      if (((*bits)[(first + p) / 64] >> ((first + p) % 64)) & 1) copy_page(p);
    }
  };
  for (std::uint64_t p = 0; p < kPages; ++p) copy_page(p);  // migration's bulk copy
  for (int r = 0; r < kRounds; ++r) {
    const std::uint64_t target = writes.load() + 4;
    round.store(r + 1);
    while (writes.load() < target && failures.load() == 0) std::this_thread::yield();
    harvest();
  }
  stop.store(true);
  for (auto& w : writers) w.join();
  harvest();  // the final round, with the vCPUs stopped
  EXPECT_EQ(failures.load(), 0);
  EXPECT_GE(writes.load(), 4u * kRounds);
  std::uint64_t stale = 0;
  for (std::uint64_t p = 0; p < kPages; ++p) {
    for (std::uint64_t i = 0; i < 512; ++i) stale += copy[p * 512 + i] != word(p, i).load() ? 1u : 0u;
  }
  EXPECT_EQ(stale, 0u) << "words of the migrated copy missing a write";
  EXPECT_EQ(vm.mmu->stats().huge_splits, kHugePages);  // every huge leaf was split by a write
  const std::optional<std::string> bad = vm.mmu->check_invariants();
  EXPECT_FALSE(bad) << *bad;
}

}  // namespace
}  // namespace vmmu::shadow::test
