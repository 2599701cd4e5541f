// The RCU wrapper on one thread: nesting, misuse detection, deferred reclamation.

#include "vmmu/core/rcu.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>

namespace vmmu::rcu {
namespace {

TEST(Rcu, ReadGuardsNestAndCountDepth) {
  EXPECT_EQ(read_depth(), 0u);
  {
    ReadGuard outer;
    EXPECT_EQ(read_depth(), 1u);
    {
      ReadGuard inner;
      EXPECT_EQ(read_depth(), 2u);
    }
    EXPECT_EQ(read_depth(), 1u);
  }
  EXPECT_EQ(read_depth(), 0u);
}

TEST(Rcu, SynchronizeWithNoReadersReturns) {
  synchronize();
  synchronize();
  SUCCEED();
}

TEST(RcuDeathTest, SynchronizeInsideAReadSectionAborts) {
  EXPECT_DEATH(
      {
        ReadGuard g;
        synchronize();
      },
      "inside a read-side section");
}

TEST(Rcu, DeferredCallbacksAllRunByBarrier) {
  std::atomic<int> ran{0};
  for (int i = 0; i < 100; ++i) defer([&] { ran.fetch_add(1); });
  barrier();
  EXPECT_EQ(ran.load(), 100);
}

struct Tracked {
  explicit Tracked(std::atomic<int>& c) : count(c) {}
  ~Tracked() { count.fetch_add(1); }
  std::atomic<int>& count;
};

TEST(Rcu, RetireDeletesAfterAGracePeriod) {
  std::atomic<int> deleted{0};
  retire(new Tracked(deleted));
  retire(std::make_unique<Tracked>(deleted));
  retire(static_cast<Tracked*>(nullptr));
  barrier();
  EXPECT_EQ(deleted.load(), 2);
}

}  // namespace
}  // namespace vmmu::rcu
