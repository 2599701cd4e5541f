#pragma once
// ReaderLock: a reader-writer lock whose readers scale -- each reader slot is its own cache
// line, so vCPU threads taking it shared never write a line another core reads (a
// std::shared_mutex makes every shared acquisition an atomic on one shared counter: with
// two faulting threads that line moves between cores on every fault).
//
//   reader (slot s):  slot[s] += 1 ; writer flag set? -> slot[s] -= 1, wait, try again
//   writer:           writer flag = 1 ; wait until every slot is 0 ; ... ; flag = 0
//
// Both sides use sequentially consistent operations, so a reader and a writer arriving
// together cannot both proceed (Dekker). Writers are preferred: a stream of readers cannot
// starve them. A thread must not take the lock shared twice (a waiting writer would
// deadlock it) nor shared while holding it exclusive.

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <thread>

namespace vmmu {

class ReaderLock {
 public:
  static constexpr unsigned kSlots = 64;

  // A slot for a new reader (vCPUs get their own; more than kSlots readers share).
  unsigned new_reader_slot() { return next_slot_.fetch_add(1, std::memory_order_relaxed) % kSlots; }

  void lock_shared(unsigned slot) {
    std::atomic<std::uint32_t>& n = slots_[slot].readers;
    for (;;) {
      n.fetch_add(1, std::memory_order_seq_cst);
      if (!writer_.load(std::memory_order_seq_cst)) return;
      n.fetch_sub(1, std::memory_order_release);
      while (writer_.load(std::memory_order_acquire)) std::this_thread::yield();
    }
  }
  void unlock_shared(unsigned slot) { slots_[slot].readers.fetch_sub(1, std::memory_order_release); }

  void lock() {
    writers_.lock();
    writer_.store(true, std::memory_order_seq_cst);
    for (Slot& s : slots_) {
      while (s.readers.load(std::memory_order_seq_cst) != 0) std::this_thread::yield();
    }
  }
  void unlock() {
    writer_.store(false, std::memory_order_release);
    writers_.unlock();
  }

  class [[nodiscard]] Shared {
   public:
    Shared(ReaderLock& l, unsigned slot) : l_(&l), slot_(slot) { l.lock_shared(slot); }
    ~Shared() {
      if (l_ != nullptr) l_->unlock_shared(slot_);
    }
    Shared(const Shared&) = delete;
    Shared& operator=(const Shared&) = delete;
    void unlock() {
      l_->unlock_shared(slot_);
      l_ = nullptr;
    }

   private:
    ReaderLock* l_;
    unsigned slot_;
  };
  class [[nodiscard]] Exclusive {
   public:
    explicit Exclusive(ReaderLock& l) : l_(l) { l.lock(); }
    ~Exclusive() { l_.unlock(); }
    Exclusive(const Exclusive&) = delete;
    Exclusive& operator=(const Exclusive&) = delete;

   private:
    ReaderLock& l_;
  };

 private:
  struct alignas(64) Slot {
    std::atomic<std::uint32_t> readers{0};
  };
  std::array<Slot, kSlots> slots_{};
  // Every shared acquisition reads writer_: its line holds nothing else that is written
  // (next_slot_ moves on every merge / concurrent write-protect, writers_ on every exclusive).
  alignas(64) std::atomic<bool> writer_{false};
  alignas(64) std::atomic<unsigned> next_slot_{0};
  std::mutex writers_;
};

}  // namespace vmmu
