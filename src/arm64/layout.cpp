#include "vmmu/arm64/layout.hpp"

#include <algorithm>

namespace vmmu::arm64 {

std::string_view to_string(LayoutError e) {
  switch (e) {
    case LayoutError::T0szOutOfRange: return "VTCR_EL2.T0SZ outside [16, 39] ([12, 39] with 52-bit descriptors)";
    case LayoutError::StartLevelReserved: return "VTCR_EL2.SL0 is reserved for this granule and PA range";
    case LayoutError::StartLevelInconsistent: return "VTCR_EL2.SL0 start level cannot resolve the IPA size";
    case LayoutError::IpaSizeOutOfRange: return "IPA size outside [25, 48] bits ([25, 52] with 52-bit descriptors)";
  }
  return "?";
}

std::uint64_t Layout::concatenated() const {
  const unsigned s = stride(granule);
  return root_bits > s ? std::uint64_t{1} << (root_bits - s) : 1;
}

pt::Geometry Layout::geometry() const {
  return pt::Geometry::uniform(levels, granule_shift(granule), stride(granule), root_bits, 8);
}

std::vector<std::uint64_t> Layout::leaf_sizes() const {
  std::vector<std::uint64_t> sizes{granule_bytes(granule)};
  for (int level = kFinalLevel - 1; level >= start_level; --level) {
    if (block_allowed(granule, level, lpa)) sizes.push_back(std::uint64_t{1} << level_shift(granule, level));
  }
  return sizes;
}

Result<int, LayoutError> decode_start_level(Granule granule, unsigned sl0, unsigned pa_bits, bool lpa, bool sl2) {
  // 4K: SL0 0/1/2 = level 2/1/0, 3 = level 3 only with FEAT_TTST (not modelled); with DS=1,
  // SL2:SL0 = 0b100 is level -1 and SL2 with any other SL0 is reserved.
  // 16K, 64K: SL0 0/1/2/3 = level 3/2/1/0; level 0 needs DS=1 (16K) or never exists (64K).
  const LayoutError reserved = LayoutError::StartLevelReserved;
  if (granule == Granule::K4) {
    if (sl2) return lpa && sl0 == 0 ? Result<int, LayoutError>(-1) : Unexpected{reserved};
    if (sl0 == 3) return Unexpected{reserved};
    if (sl0 == 2 && pa_bits < 44) return Unexpected{reserved};
    return 2 - static_cast<int>(sl0);
  }
  if (sl0 == 3 && !(lpa && granule == Granule::K16)) return Unexpected{reserved};
  if (sl0 == 2 && pa_bits < (granule == Granule::K16 ? 42u : 44u)) return Unexpected{reserved};
  return 3 - static_cast<int>(sl0);
}

int encode_sl0(Granule granule, int start_level, bool lpa) {
  if (granule == Granule::K4) {
    if (start_level == -1) return lpa ? 0 : -1;
    return start_level >= 0 && start_level <= 2 ? 2 - start_level : -1;
  }
  if (start_level == 0) return lpa && granule == Granule::K16 ? 3 : -1;
  return start_level >= 1 && start_level <= 3 ? 3 - start_level : -1;
}

bool start_level_fits(Granule granule, unsigned ipa_bits, int start_level) {
  if (start_level < -1 || start_level > static_cast<int>(kFinalLevel)) return false;
  const unsigned below = kFinalLevel - static_cast<unsigned>(start_level);
  const unsigned min_bits = below * stride(granule) + granule_shift(granule) + 1;
  const unsigned max_bits = min_bits + (stride(granule) - 1) + 4;
  return ipa_bits >= min_bits && ipa_bits <= max_bits;
}

namespace {

Layout make_layout(Granule granule, unsigned ipa_bits, int start_level, bool lpa) {
  Layout l;
  l.granule = granule;
  l.ipa_bits = ipa_bits;
  l.start_level = start_level;
  l.levels = static_cast<unsigned>(static_cast<int>(kFinalLevel) + 1 - start_level);
  l.root_bits = ipa_bits - level_shift(granule, start_level);
  l.sl0 = static_cast<unsigned>(encode_sl0(granule, start_level, lpa));
  l.sl2 = start_level == -1;
  l.lpa = lpa;
  return l;
}

}  // namespace

Result<Layout, LayoutError> decode_layout(Granule granule, unsigned t0sz, unsigned sl0, unsigned pa_bits, bool lpa,
                                          bool sl2) {
  if (t0sz < (lpa ? kMinT0szLpa : kMinT0sz) || t0sz > kMaxT0sz) return Unexpected{LayoutError::T0szOutOfRange};
  Result<int, LayoutError> start = decode_start_level(granule, sl0, pa_bits, lpa, sl2);
  if (!start) return Unexpected{start.error()};
  const unsigned ipa_bits = 64 - t0sz;
  if (!start_level_fits(granule, ipa_bits, *start)) return Unexpected{LayoutError::StartLevelInconsistent};
  return make_layout(granule, ipa_bits, *start, lpa);
}

Result<Layout, LayoutError> choose_layout(unsigned ipa_bits, Granule granule, bool lpa) {
  if (ipa_bits < kMinIpaBits || ipa_bits > (lpa ? kMaxIpaBitsLpa : kMaxIpaBits)) {
    return Unexpected{LayoutError::IpaSizeOutOfRange};
  }
  const unsigned g = granule_shift(granule), s = stride(granule);
  // KVM: levels = ARM64_HW_PGTABLE_LEVELS(ipa - 4) = ceil((ipa - 4 - G) / S), at least 2.
  const unsigned kvm_levels = std::max(2u, (ipa_bits - 4 - g + s - 1) / s);
  for (unsigned levels = std::min(kvm_levels, kFinalLevel + 1); levels >= 1; --levels) {
    const int start = static_cast<int>(kFinalLevel + 1 - levels);
    if (encode_sl0(granule, start, lpa) >= 0 && start_level_fits(granule, ipa_bits, start)) {
      return make_layout(granule, ipa_bits, start, lpa);
    }
  }
  return Unexpected{LayoutError::IpaSizeOutOfRange};  // unreachable for ipa_bits in range
}

}  // namespace vmmu::arm64
