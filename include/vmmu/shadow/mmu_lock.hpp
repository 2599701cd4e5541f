#pragma once
// MmuLock: the shadow MMU's one lock (KVM's mmu_lock), a word taken with one atomic exchange
// and released with a plain store.
//
// Why not std::mutex: uncontended it costs two atomic read-modify-writes, one to lock and one
// to unlock (the unlock must learn whether a sleeper needs waking) -- ~14 ns of a ~160 ns
// shadow fault on the EPYC machine the benchmarks run on, against ~6 ns here. A waiter
// re-reads the word a while, then yields its processor between reads, as ReaderLock's waiters
// do: the lock is held for one fault or one guest flush, and host-side operations that hold
// it longer (memslot changes, dirty-log harvests) are rare.
//
// Not recursive; lock and unlock on the same thread (BasicLockable: std::lock_guard,
// std::unique_lock).

#include <atomic>
#include <thread>

namespace vmmu::shadow {

class MmuLock {
 public:
  void lock() {
    if (!locked_.exchange(true, std::memory_order_acquire)) return;
    wait_then_lock();
  }
  void unlock() { locked_.store(false, std::memory_order_release); }

 private:
  [[gnu::noinline, gnu::cold]] void wait_then_lock() {
    for (unsigned reads = 0;;) {
      // Read-only while held: spinning on the exchange would move the line to every waiter.
      while (locked_.load(std::memory_order_relaxed)) {
        if (++reads > kSpinReads) std::this_thread::yield();
      }
      if (!locked_.exchange(true, std::memory_order_acquire)) return;
    }
  }
  static constexpr unsigned kSpinReads = 64;
  std::atomic<bool> locked_{false};
};

}  // namespace vmmu::shadow
