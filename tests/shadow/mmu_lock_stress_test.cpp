// The shadow MMU's lock (mmu_lock.hpp) under concurrency: it excludes, and it is the vCPU
// accesses' grace period for the memslot snapshot -- a memslot deleted while a vCPU reads
// through it is not read after the delete returns (the accesses take no RCU section; the
// memslot change waits for them by taking the lock).

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "shadow/support/shadow_vm.hpp"
#include "vmmu/shadow/mmu_lock.hpp"

namespace vmmu::shadow::test {
namespace {

TEST(ShadowMmuLockStress, ExcludesOtherThreads) {
  MmuLock lock;
  std::uint64_t counter = 0;  // plain: only the lock orders the increments
  constexpr int kThreads = 3;
  constexpr std::uint64_t kEach = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (std::uint64_t i = 0; i < kEach; ++i) {
        const std::lock_guard g(lock);
        const std::uint64_t seen = counter;
        if (i % 64 == 0) std::this_thread::yield();  // hold it across a reschedule now and then
        counter = seen + 1;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(counter, kThreads * kEach);
}

TEST(ShadowMmuLockStress, DeletedSlotIsNotReadAfterTheDeleteReturns) {
  ShadowVm vm;
  // A second slot at 16 MiB, mapped by guest page 511's entry.
  constexpr std::uint64_t kSlotGpa = std::uint64_t{16} << 20;
  vmmu::test::HostMemory extra(kPageSize, kPageSize);
  ASSERT_TRUE(vm.slots.add(MemslotSpec{SlotId{2}, gfn_of(Gpa(kSlotGpa)), 1, extra.data(), MemslotFlags::none()}));
  vm.put(0x4000 + 511 * 8, kSlotGpa | kLeafBits);
  const auto paging = long4(0x1000);
  constexpr std::uint64_t kGva = 511 * kPageSize;
  auto word = [&] { return std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(extra.data())); };
  word().store(7);

  std::atomic<bool> deleted{false};
  std::atomic<std::uint64_t> reads{0};
  std::atomic<int> wrong{0};
  std::thread reader([&] {
    ShadowVcpu v(*vm.mmu);
    while (!deleted.load(std::memory_order_acquire)) {
      std::uint64_t value = 0;
      // Plain read of the host page under the MMU's lock: a race with the writes below when
      // the delete did not wait for it.
      const Outcome o = vm.mmu->access(v, paging, Gva(kGva), Access::read(),
                                       [&](std::byte* p) { value = *reinterpret_cast<const std::uint64_t*>(p); });
      if (o.guest && value != 7) wrong.fetch_add(1);
      reads.fetch_add(1, std::memory_order_release);
    }
  });
  while (reads.load(std::memory_order_acquire) < 50) std::this_thread::yield();
  ASSERT_TRUE(vm.slots.remove(SlotId{2}));
  // The slot is gone: its memory is the host's again and changes without the guest.
  *reinterpret_cast<std::uint64_t*>(extra.data()) = 8;
  const std::uint64_t after = reads.load(std::memory_order_acquire);
  while (reads.load(std::memory_order_acquire) < after + 50) std::this_thread::yield();
  deleted.store(true, std::memory_order_release);
  reader.join();
  EXPECT_EQ(wrong.load(), 0) << "a vCPU read the deleted slot's memory after the delete returned";
  ShadowVcpu v(*vm.mmu);
  bool used = false;
  const Outcome o = vm.mmu->access(v, paging, Gva(kGva), Access::read(), [&](std::byte*) { used = true; });
  EXPECT_EQ(o.exit, ShadowExit::Mmio);
  EXPECT_FALSE(used);
}

}  // namespace
}  // namespace vmmu::shadow::test
