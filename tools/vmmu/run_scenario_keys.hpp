#pragma once
// The keys a vmmu-scenario/1 document may hold (docs/scenario-format.md), shared by the reader
// (run_scenario_json.cpp) and the --set resolver (run_scenario_set.cpp).

#include <algorithm>
#include <array>
#include <span>
#include <string>
#include <string_view>

namespace vmmu::cli::scenario_keys {

using Names = std::span<const std::string_view>;

inline constexpr std::array<std::string_view, 8> kTopKeys = {"format", "name",     "description", "seed",
                                                             "vm",     "policies", "memslots",    "phases"};
inline constexpr std::array<std::string_view, 9> kVmKeys = {
    "mmu", "tdp", "levels", "ad_bits", "pages_1g", "dirty_ring_size", "vcpus", "shadow", "nested"};
inline constexpr std::array<std::string_view, 1> kVmShadowKeys = {"unsync"};
inline constexpr std::array<std::string_view, 3> kVmNestedKeys = {"kind", "ept_ad", "prefault"};
inline constexpr std::array<std::string_view, 4> kMemslotKeys = {"size", "backing_page_size", "gpa", "host_huge_pages"};

// "a, b, c".
inline std::string join(Names names) {
  std::string out;
  for (std::string_view n : names) out += (out.empty() ? "" : ", ") + std::string(n);
  return out;
}

inline bool contains(Names names, std::string_view n) {
  return std::find(names.begin(), names.end(), n) != names.end();
}

}  // namespace vmmu::cli::scenario_keys
