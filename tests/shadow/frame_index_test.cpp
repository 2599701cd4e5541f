// The frame-indexed rmaps and write-tracking counts (frame_index.hpp): one word per frame that
// becomes a descriptor for several leaves and back, chunks that come and go with their
// frames, and the 2 MiB / 1 GiB tracking counts huge leaves are refused by.

#include <gtest/gtest.h>

#include <vector>

#include "vmmu/shadow/frame_index.hpp"

namespace vmmu::shadow::test {
namespace {

std::vector<Hpa> entries(const Rmap& r) { return {r.begin(), r.end()}; }

TEST(ShadowFrameIndex, AFramesRmapGrowsToADescriptorAndShrinksBackToOneWord) {
  FrameIndex f;
  const Gfn g(0x1234);
  EXPECT_TRUE(f.rmap(g).empty());
  f.rmap_add(g, Hpa(0x10008));
  EXPECT_EQ(entries(f.rmap(g)), (std::vector<Hpa>{Hpa(0x10008)}));
  f.rmap_add(g, Hpa(0x20010));
  f.rmap_add(g, Hpa(0x30018));
  EXPECT_EQ(entries(f.rmap(g)), (std::vector<Hpa>{Hpa(0x10008), Hpa(0x20010), Hpa(0x30018)}));
  f.rmap_remove(g, Hpa(0x20010));
  f.rmap_remove(g, Hpa(0x10008));
  EXPECT_EQ(entries(f.rmap(g)), (std::vector<Hpa>{Hpa(0x30018)}));
  f.rmap_remove(g, Hpa(0x99998));  // not there: nothing changes
  EXPECT_EQ(f.rmap(g).size(), 1u);
  EXPECT_TRUE(f.rmap(g + 1).empty()) << "a neighbour in the same chunk";
  f.rmap_remove(g, Hpa(0x30018));
  EXPECT_TRUE(f.rmap(g).empty());
  EXPECT_EQ(f.rmapped_frames(), 0u);
  EXPECT_EQ(f.bytes(), 0u) << "the chunk goes with its last entry";
}

TEST(ShadowFrameIndex, TrackingCountsPerFrameAndPerHugeFrame) {
  FrameIndex f;
  const Gfn g((std::uint64_t{3} << 18) + 5 * 512 + 7);  // 1 GiB frame 3, 2 MiB frame 5 within it
  f.track(g);
  f.track(g);
  EXPECT_TRUE(f.tracked(g));
  EXPECT_FALSE(f.tracked(g + 1));
  EXPECT_TRUE(f.tracked_within(g + 1, 2));
  EXPECT_FALSE(f.tracked_within(g + 512, 2)) << "the next 2 MiB frame";
  EXPECT_TRUE(f.tracked_within(g + 512, 3));
  EXPECT_FALSE(f.tracked_within(g + (std::uint64_t{1} << 18), 3)) << "the next 1 GiB frame";
  f.untrack(g);
  EXPECT_TRUE(f.tracked(g)) << "a second page still tracks it";
  f.untrack(g);
  EXPECT_FALSE(f.tracked(g));
  EXPECT_FALSE(f.tracked_within(g, 2));
  EXPECT_FALSE(f.tracked_within(g, 3));
  EXPECT_EQ(f.bytes(), 0u);
}

TEST(ShadowFrameIndex, RmappedFindsFramesByStrideInRangesSmallAndLarge) {
  FrameIndex f;
  for (const std::uint64_t g : {0x200u, 0x201u, 0x400u, 0x40000u, 0x40001u}) f.rmap_add(Gfn(g), Hpa(0x1000 + g * 8));
  auto raw = [](const std::vector<Gfn>& v) {
    std::vector<std::uint64_t> out;
    for (const Gfn g : v) out.push_back(g.raw());
    return out;
  };
  EXPECT_EQ(raw(f.rmapped({Gfn(0x201), Gfn(0x401)}, 1)), (std::vector<std::uint64_t>{0x201, 0x400}));
  EXPECT_EQ(raw(f.rmapped({Gfn(0), Gfn(0x80000)}, 512)), (std::vector<std::uint64_t>{0x200, 0x400, 0x40000}));
  EXPECT_EQ(raw(f.rmapped({Gfn(0), Gfn(0x80000)}, std::uint64_t{1} << 18)), (std::vector<std::uint64_t>{0x40000}));
  // More 1 GiB frames than chunks: one pass over the chunks.
  EXPECT_EQ(raw(f.rmapped({Gfn(0), Gfn(0x200000)}, std::uint64_t{1} << 18)), (std::vector<std::uint64_t>{0x40000}));
  EXPECT_EQ(raw(f.rmapped({Gfn(0x40001), Gfn(0x40002)}, 1)), (std::vector<std::uint64_t>{0x40001}));
  EXPECT_TRUE(f.rmapped({Gfn(0x202), Gfn(0x400)}, 1).empty());
  f.track(Gfn(0x40001));
  EXPECT_EQ(raw(f.tracked_in({Gfn(0), Gfn(0x80000)})), (std::vector<std::uint64_t>{0x40001}));
}

TEST(ShadowFrameIndex, MaskedVisitSeesTheRmapsOfTheSetBitsOnly) {
  FrameIndex f;
  // A word straddling two chunks: frames 0x1e0 .. 0x21f.
  for (std::uint64_t g = 0x1e0; g < 0x220; ++g) f.rmap_add(Gfn(g), Hpa(g * 8));
  f.rmap_add(Gfn(0x200), Hpa(0x8000008));
  std::vector<Hpa> seen;
  const std::uint64_t mask = (std::uint64_t{1} << 3) | (std::uint64_t{1} << 0x20) | (std::uint64_t{1} << 63);
  f.for_each_rmap_masked(Gfn(0x1e0), mask, [&](Hpa e) { seen.push_back(e); });
  EXPECT_EQ(seen, (std::vector<Hpa>{Hpa(0x1e3 * 8), Hpa(0x200 * 8), Hpa(0x8000008), Hpa(0x21f * 8)}));
}

}  // namespace
}  // namespace vmmu::shadow::test
