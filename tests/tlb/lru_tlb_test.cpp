// The TLB model against the reference LRU model (support/reference_lru.hpp), on traces
// generated here.

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "tlb/support/reference_lru.hpp"
#include "vmmu/tlb/lru_tlb.hpp"

namespace vmmu::tlb {
namespace {

using test_support::ReferenceLru;

// Misses of the model on the same accesses (4 KiB pages; a walk fills after each miss).
std::uint64_t model_misses(LruTlb& tlb, const std::vector<std::pair<std::uint64_t, bool>>& trace) {
  std::uint64_t misses = 0;
  for (auto [page, write] : trace) {
    if (tlb.lookup(page, write) == Lookup::Hit) continue;
    ++misses;
    tlb.insert(page, PageSize::Size4K, write);
  }
  return misses;
}

std::vector<std::pair<std::uint64_t, bool>> generated_trace(std::uint32_t seed, std::uint64_t pages, std::size_t n) {
  std::mt19937_64 rng(seed);
  // Mostly a hot set with locality, sometimes a cold page: every kind of miss happens.
  std::vector<std::pair<std::uint64_t, bool>> t;
  std::uint64_t hot = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint64_t r = rng() % 100;
    if (r < 5) hot = rng() % pages;
    const std::uint64_t page = r < 70 ? (hot + rng() % 8) % pages : rng() % pages;
    t.emplace_back(page, rng() % 4 == 0);
  }
  return t;
}

struct Shape {
  std::uint32_t entries, ways;
};

class LruTlbMatchesReference : public ::testing::TestWithParam<Shape> {};

TEST_P(LruTlbMatchesReference, MissesEqualReferenceLruOnGeneratedTraces) {
  const Shape s = GetParam();
  for (std::uint32_t seed = 1; seed <= 5; ++seed) {
    const auto trace = generated_trace(seed, 4 * s.entries, 20000);
    auto tlb = LruTlb::create({s.entries, s.ways});
    ASSERT_TRUE(tlb);
    ReferenceLru ref(s.entries, s.ways == 0 ? s.entries : s.ways);
    std::uint64_t ref_misses = 0;
    for (auto [page, write] : trace) ref_misses += ref.access(page, write) ? 1u : 0u;
    EXPECT_EQ(model_misses(*tlb, trace), ref_misses) << "seed " << seed;
    EXPECT_GT(ref_misses, s.entries);  // capacity misses happened, not only compulsory ones
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, LruTlbMatchesReference,
                         ::testing::Values(Shape{64, 0}, Shape{64, 4}, Shape{1536, 12}, Shape{16, 1}, Shape{8, 0}));

TEST(LruTlb, OneEntryCoversAHugePage) {
  auto tlb = LruTlb::create({4, 0});
  ASSERT_TRUE(tlb);
  tlb->insert(0x200, PageSize::Size2M, true);  // the 2 MiB page 0x200000..0x3fffff
  EXPECT_EQ(tlb->lookup(0x200, false), Lookup::Hit);
  EXPECT_EQ(tlb->lookup(0x3ff, true), Lookup::Hit);
  EXPECT_EQ(tlb->lookup(0x400, false), Lookup::Miss);
  EXPECT_EQ(tlb->lookup(0x1ff, false), Lookup::Miss);
}

TEST(LruTlb, WriteThroughAReadFillIsNotDirty) {
  auto tlb = LruTlb::create({4, 0});
  ASSERT_TRUE(tlb);
  tlb->insert(7, PageSize::Size4K, false);
  EXPECT_EQ(tlb->lookup(7, false), Lookup::Hit);
  EXPECT_EQ(tlb->lookup(7, true), Lookup::NotDirty);
  tlb->insert(7, PageSize::Size4K, true);
  EXPECT_EQ(tlb->lookup(7, true), Lookup::Hit);
}

TEST(LruTlb, FlushDropsEverything) {
  auto tlb = LruTlb::create({4, 0});
  ASSERT_TRUE(tlb);
  tlb->insert(1, PageSize::Size4K, true);
  tlb->insert(0, PageSize::Size1G, true);
  tlb->flush();
  EXPECT_EQ(tlb->lookup(1, false), Lookup::Miss);
  EXPECT_EQ(tlb->lookup(5, false), Lookup::Miss);
}

TEST(LruTlb, ShapeErrorsAreNamed) {
  EXPECT_EQ(LruTlb::create({0, 0}).error(), TlbError::NoEntries);
  EXPECT_EQ(LruTlb::create({64, 5}).error(), TlbError::WaysNotDivisor);
  EXPECT_EQ(LruTlb::create({4, 8}).error(), TlbError::WaysNotDivisor);
}

}  // namespace
}  // namespace vmmu::tlb
