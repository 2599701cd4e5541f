#pragma once
// The guest's own path to a gva, entry by entry (for the fault path and the invariants).

#include <array>
#include <cstdint>

#include "vmmu/pt/walk.hpp"
#include "vmmu/shadow/guest_ram.hpp"
#include "vmmu/x86/guest_paging.hpp"

namespace vmmu::shadow::detail {

// One guest entry on the walk's path: its value, the guest table holding it, its rights.
struct GuestStep {
  std::uint64_t entry = 0;
  Gfn table;
  std::uint8_t rights = 0;
};
using GuestPath = std::array<GuestStep, pt::kMaxLevels + 1>;

// The guest's path to `linear`, read after the walk set its A/D bits (nothing with paging off).
inline GuestPath guest_path(const x86::GuestPaging& paging, GuestRamTables& tables, std::uint64_t linear) {
  GuestPath path{};
  paging.with_format([&](const auto& format, Gpa root) {
    pt::walk(format, tables, root, linear, [&](const auto& step) {
      path[step.level] = {std::uint64_t{step.entry}, gfn_of(step.entry_address), format.access(step.entry, step.level)};
      return pt::Visit::Continue;
    });
  });
  return path;
}


}  // namespace vmmu::shadow::detail
