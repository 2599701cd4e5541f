#pragma once
// clamp: MMU range calls and memslot changes name guest frames (Gfn, 4 KiB); a table format
// takes input addresses (Gpa for EPT, Ipa for stage 2) in its own pages, below its input limit.
// The one conversion every MMU uses.

#include <optional>

#include "vmmu/core/address.hpp"
#include "vmmu/pt/geometry.hpp"

namespace vmmu::pt {

// `gfns` as input bytes of tables shaped `g`: widened outward to whole level-1 pages (stage 2's
// 16 KiB / 64 KiB granules), cut at the input limit; nullopt when nothing is left.
template <class Input>
[[nodiscard]] constexpr std::optional<Range<Input>> clamp(Range<Gfn> gfns, const Geometry& g) {
  const std::uint64_t page = g.span(1);
  const std::uint64_t limit = g.input_limit() & ~(page - 1);
  const std::uint64_t limit_gfns = limit >> kPageShift;  // frames past it would overflow a shift
  if (gfns.begin.raw() >= limit_gfns || !(gfns.begin < gfns.end)) return std::nullopt;
  const std::uint64_t begin = (gfns.begin.raw() << kPageShift) & ~(page - 1);
  const std::uint64_t end =
      gfns.end.raw() >= limit_gfns ? limit : ((gfns.end.raw() << kPageShift) + page - 1) & ~(page - 1);
  return Range<Input>{Input(begin), Input(end < limit ? end : limit)};
}

}  // namespace vmmu::pt
