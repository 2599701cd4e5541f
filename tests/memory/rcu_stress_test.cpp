// The RCU wrapper across threads: grace periods wait for readers that began before them,
// deferred callbacks run after them, threads register themselves.

#include "vmmu/core/rcu.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

namespace vmmu::rcu {
namespace {

using namespace std::chrono_literals;

// A reader thread that enters a section, reports it, and leaves when told.
class HeldReader {
 public:
  HeldReader()
      : thread_([this] {
          ReadGuard g;
          inside_.store(true);
          while (!release_.load()) std::this_thread::sleep_for(1ms);
          left_.store(true);  // still inside the section
        }) {
    while (!inside_.load()) std::this_thread::sleep_for(1ms);
  }
  ~HeldReader() {
    release();
    thread_.join();
  }
  void release() { release_.store(true); }
  [[nodiscard]] bool left() const { return left_.load(); }

 private:
  std::atomic<bool> inside_{false}, release_{false}, left_{false};
  std::thread thread_;
};

TEST(RcuStress, SynchronizeWaitsForAReaderThatBeganBefore) {
  HeldReader reader;
  std::atomic<bool> done{false};
  std::thread writer([&] {
    synchronize();
    done.store(true);
  });
  std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(done.load()) << "synchronize returned while a reader was still inside";
  reader.release();
  writer.join();
  EXPECT_TRUE(reader.left());
  EXPECT_TRUE(done.load());
}

TEST(RcuStress, DeferredCallbackWaitsForAReaderThatBeganBefore) {
  HeldReader reader;
  std::atomic<bool> ran{false};
  bool reader_left_first = false;
  defer([&] {
    reader_left_first = reader.left();
    ran.store(true);
  });
  std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(ran.load());
  reader.release();
  barrier();
  EXPECT_TRUE(ran.load());
  EXPECT_TRUE(reader_left_first);
}

TEST(RcuStress, ShortLivedThreadsRegisterAndUnregisterThemselves) {
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    while (!stop.load()) synchronize();
  });
  for (int round = 0; round < 20; ++round) {
    std::vector<std::thread> readers;
    for (int t = 0; t < 4; ++t) {
      readers.emplace_back([] {
        for (int i = 0; i < 100; ++i) {
          ReadGuard g;
          EXPECT_EQ(read_depth(), 1u);
        }
      });
    }
    for (auto& r : readers) r.join();
  }
  stop.store(true);
  writer.join();
}

// A pointer published RCU-style: readers never see a freed object (ASan / TSan would
// report it), and the values they see are whole.
TEST(RcuStress, ReadersNeverSeeARetiredObjectFreed) {
  struct Box {
    std::atomic<std::uint64_t> a, b;
  };
  std::atomic<Box*> current{new Box{{1}, {1}}};
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> reads{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; ++t) {
    readers.emplace_back([&] {
      while (!stop.load(std::memory_order_relaxed)) {
        ReadGuard g;
        const Box* box = current.load(std::memory_order_acquire);
        EXPECT_EQ(box->a.load(std::memory_order_relaxed), box->b.load(std::memory_order_relaxed));
        reads.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  while (reads.load() == 0) std::this_thread::sleep_for(1ms);  // readers are running
  for (std::uint64_t i = 2; i < 2000; ++i) {
    Box* old = current.exchange(new Box{{i}, {i}}, std::memory_order_acq_rel);
    if (i % 2 == 0) {
      retire(old);
    } else {
      synchronize();
      old->a.store(0, std::memory_order_relaxed);  // poison: a reader would see a != b
      delete old;
    }
  }
  stop.store(true);
  for (auto& r : readers) r.join();
  barrier();
  delete current.load();
  EXPECT_GT(reads.load(), 0u);
}

}  // namespace
}  // namespace vmmu::rcu
