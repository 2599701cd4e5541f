// pt::clamp, the Gfn -> input-address conversion the TDP MMU and stage 2 share.
#include "vmmu/pt/clamp.hpp"

#include <gtest/gtest.h>

namespace vmmu::pt {
namespace {

// 4 levels of 9 bits over 4 KiB pages: 48-bit input (EPT, stage 2 with 4K granule).
constexpr Geometry k4K = Geometry::uniform(4, 12, 9, 9, 8);
// 64 KiB granule, 3 levels of 13 bits (the root 6): 48-bit input.
constexpr Geometry k64K = Geometry::uniform(3, 16, 13, 6, 8);

TEST(ClampTest, FourKPagesAreBytesOfTheFrames) {
  const auto r = clamp<Gpa>({Gfn(3), Gfn(10)}, k4K);
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, (Range<Gpa>{Gpa(0x3000), Gpa(0xa000)}));
}

TEST(ClampTest, WidensOutwardToTheGranule) {
  // Frames 17..33 touch the 64 KiB pages 1 and 2.
  const auto r = clamp<Ipa>({Gfn(17), Gfn(33)}, k64K);
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, (Range<Ipa>{Ipa(0x10000), Ipa(0x30000)}));
}

TEST(ClampTest, CutsAtTheInputLimit) {
  const std::uint64_t last = (std::uint64_t{1} << 36) - 1;  // the last 4 KiB frame of 48 bits
  const auto r = clamp<Gpa>({Gfn(last), Gfn(last + 100)}, k4K);
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, (Range<Gpa>{Gpa(last << 12), Gpa(std::uint64_t{1} << 48)}));
  // Frames whose byte address would not fit 64 bits: cut, not wrapped.
  const auto all = clamp<Gpa>({Gfn(0), Gfn(~std::uint64_t{0})}, k4K);
  ASSERT_TRUE(all);
  EXPECT_EQ(all->end, Gpa(std::uint64_t{1} << 48));
}

TEST(ClampTest, NothingLeftIsNullopt) {
  EXPECT_FALSE(clamp<Gpa>({Gfn(5), Gfn(5)}, k4K));
  EXPECT_FALSE(clamp<Gpa>({Gfn(6), Gfn(5)}, k4K));
  EXPECT_FALSE(clamp<Gpa>({Gfn(std::uint64_t{1} << 36), Gfn(std::uint64_t{1} << 37)}, k4K));
  EXPECT_FALSE(clamp<Gpa>({Gfn(~std::uint64_t{0} - 1), Gfn(~std::uint64_t{0})}, k4K));
}

}  // namespace
}  // namespace vmmu::pt
