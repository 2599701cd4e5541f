#include <gtest/gtest.h>

#include <fmt/format.h>

#include <type_traits>

#include "vmmu/core/address.hpp"
#include "vmmu/core/bits.hpp"
#include "vmmu/core/format.hpp"
#include "vmmu/core/page_size.hpp"
#include "vmmu/core/result.hpp"

namespace vmmu {
namespace {

// The same facts as the must_not_compile snippets, as traits, so they also hold in every build.
static_assert(!std::is_convertible_v<Gva, Gpa>);
static_assert(!std::is_convertible_v<Gpa, Hpa>);
static_assert(!std::is_convertible_v<Ipa, Gpa>);
static_assert(!std::is_convertible_v<std::uint64_t, Gpa>);
static_assert(!std::is_convertible_v<Gpa, std::uint64_t>);
static_assert(!std::is_convertible_v<Gfn, Pfn>);
static_assert(!std::is_constructible_v<Gpa, Gva>);
static_assert(sizeof(Gpa) == 8 && std::is_trivially_copyable_v<Gpa>);

TEST(AddressTypes, ArithmeticStaysInItsSpace) {
  Gpa a(0x1000);
  Gpa b = a + 0x234;
  EXPECT_EQ(b - a, 0x234u);
  EXPECT_EQ(b.align_down(kPageSize), a);
  EXPECT_EQ(b.offset_in(kPageSize), 0x234u);
  EXPECT_TRUE(a.aligned_to(kPageSize));
  EXPECT_FALSE(b.aligned_to(kPageSize));
}

TEST(AddressTypes, FrameNumbersRoundTrip) {
  EXPECT_EQ(gfn_of(Gpa(0x12345678)), Gfn(0x12345));
  EXPECT_EQ(gpa_of(Gfn(0x12345)), Gpa(0x12345000));
  EXPECT_EQ(hpa_of(pfn_of(Hpa(0xabc000))), Hpa(0xabc000));
}

TEST(AddressTypes, FormatterNamesTheSpace) {
  EXPECT_EQ(fmt::format("{}", Gpa(0x1000)), "gpa:0x1000");
  EXPECT_EQ(fmt::format("{}", Gva(0xffff)), "gva:0xffff");
  EXPECT_EQ(fmt::format("{}", Gfn(7)), "gfn:0x7");
}

TEST(AddressRange, HalfOpenContainsAndOverlaps) {
  Range<Gpa> r{Gpa(0x1000), Gpa(0x3000)};
  EXPECT_EQ(r.size(), 0x2000u);
  EXPECT_TRUE(r.contains(Gpa(0x1000)));
  EXPECT_FALSE(r.contains(Gpa(0x3000)));
  EXPECT_TRUE(r.overlaps({Gpa(0x2fff), Gpa(0x4000)}));
  EXPECT_FALSE(r.overlaps({Gpa(0x3000), Gpa(0x4000)}));
}

TEST(Bits, FieldsGetAndSetInPlace) {
  using Addr = Field<51, 12>;
  EXPECT_EQ(Addr::bits(0xfff0'0000'1234'5fffULL), 0x0000'0000'1234'5000ULL);
  EXPECT_EQ((Field<5, 3>::get(0b101000)), 0b101u);
  EXPECT_EQ((Field<5, 3>::set(0, 0b11)), 0b011000u);
  EXPECT_EQ(Bit<63>::mask, 0x8000'0000'0000'0000ULL);
  EXPECT_TRUE(disjoint({Bit<0>::mask, Field<3, 1>::mask}));
  EXPECT_FALSE(disjoint({Bit<2>::mask, Field<3, 1>::mask}));
  EXPECT_EQ(bit_range(63, 0), ~0ULL);
}

TEST(PageSizeNames, LargestExactUnit) {
  EXPECT_EQ(size_name(4 * KiB), "4K");
  EXPECT_EQ(size_name(2 * MiB), "2M");
  EXPECT_EQ(size_name(512 * GiB), "512G");
  EXPECT_EQ(size_name(4 * TiB), "4T");
  EXPECT_EQ(size_name(16 * KiB), "16K");
}

enum class Oops { Bad };

TEST(ResultType, HoldsValueOrError) {
  Result<int, Oops> ok = 3;
  Result<int, Oops> bad = Unexpected(Oops::Bad);
  ASSERT_TRUE(ok);
  EXPECT_EQ(*ok, 3);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error(), Oops::Bad);
  Status<Oops> fine;
  Status<Oops> failed = Unexpected(Oops::Bad);
  EXPECT_TRUE(fine);
  EXPECT_FALSE(failed);
}

}  // namespace
}  // namespace vmmu
