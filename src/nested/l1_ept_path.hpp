#pragma once
// The entries of L1's EPT on the path to one L2 gpa, read after the EPT walker has judged the
// walk (and set its A/D bits): which L1 tables the shadow pages shadow, and the rights and
// D bit each level grants; and the index arithmetic of the shadow tables. Shared by the
// fault path, the MMU and the invariants.

#include <array>
#include <cstdint>

#include "vmmu/core/address.hpp"
#include "vmmu/pt/geometry.hpp"
#include "vmmu/pt/walk.hpp"
#include "vmmu/shadow/guest_ram.hpp"
#include "vmmu/x86/ept_format.hpp"
#include "vmmu/x86/ept_walk.hpp"

namespace vmmu::nested::detail {

// EPT's geometry, named once in x86/ept_format.hpp (a 5-level one: levels 1-4 are the same
// for a 4-level EPT).
inline constexpr const pt::Geometry& kEptGeometry = x86::EptFormat<Hpa, 5>::kGeometry;

constexpr unsigned index_at(std::uint64_t input, unsigned level) { return kEptGeometry.index(input, level); }
inline Hpa entry_at(Hpa table, unsigned index) { return pt::entry_address<x86::EptFormat<Hpa, 5>>(table, index); }
constexpr std::uint64_t span_at(unsigned level) { return kEptGeometry.span(level); }

// entry[level] for every level from the root down to `leaf_level` (a walk that succeeded).
struct L1Path {
  std::array<std::uint64_t, 6> entry{};
};

inline L1Path read_l1_path(const x86::EptContext& ctx, shadow::GuestRamTables& tables, Gpa l2, unsigned leaf_level) {
  L1Path p;
  Gpa table = ctx.root<Gpa>();
  for (unsigned level = ctx.levels(); level >= leaf_level; --level) {
    const std::uint64_t e = tables.read<std::uint64_t>(table + index_at(l2.raw(), level) * kEptGeometry.entry_bytes()).value_or(0);
    p.entry[level] = e;
    table = Gpa(x86::ept::Addr::bits(e));
  }
  return p;
}

}  // namespace vmmu::nested::detail
