#pragma once
// Clearing one leaf attribute as one AND per entry: what write-protect, age and dirty-bit
// re-protection do to every leaf of a range. Range operations given a ClearFlag update whole
// page tables with `entry & ~mask` -- a plain store when Exclusive, a compare-exchange when
// Shared -- instead of decoding and re-encoding each leaf's attributes.
//
// The mask is the format's own bits, not a second copy of its layout: a leaf built with the
// attribute XOR the same leaf without it (OwnedFormat: a leaf is its address OR bits fixed by
// (level, attrs)), so each format still names its bits once, in make_leaf. An attribute the
// format does not keep (x86 D without A/D bits, arm64 stage 2 D) has the empty mask: nothing
// changes, as decoding and re-encoding would have found.

#include <array>
#include <cassert>
#include <cstdint>

#include "vmmu/core/address.hpp"
#include "vmmu/pt/owned_format.hpp"

namespace vmmu::pt::ops {

enum class LeafFlag : std::uint8_t { Write, Accessed, Dirty };

// `a` without `flag`.
[[nodiscard]] constexpr LeafAttrs without(LeafAttrs a, LeafFlag flag) {
  switch (flag) {
    case LeafFlag::Write: return a.without_write();
    case LeafFlag::Accessed: return a.old();
    case LeafFlag::Dirty: return a.clean();
  }
  return a;
}

template <OwnedFormat F>
class ClearFlag {
 public:
  using Entry = typename F::Entry;

  ClearFlag(const F& f, LeafFlag flag) {
    LeafAttrs all;
    all.read = all.write = all.exec = all.accessed = all.dirty = true;
    for (unsigned level = 1; level <= f.geometry().root_level(); ++level) {
      const Entry with = f.make_leaf(Hpa{}, level, all), cleared = f.make_leaf(Hpa{}, level, without(all, flag));
      // Clearing an attribute must clear bits only; a format that encoded it by setting a bit
      // would need a set-mask too (none does: x86 W/A/D, arm64 S2AP[1]/AF).
      assert((with & cleared) == cleared);
      masks_[level] = with & ~cleared;
    }
  }

  // The bits the attribute occupies in a leaf at `level`.
  [[nodiscard]] Entry mask(unsigned level) const { return masks_[level]; }

 private:
  std::array<Entry, kMaxLevels + 1> masks_{};
};

}  // namespace vmmu::pt::ops
