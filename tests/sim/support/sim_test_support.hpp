#pragma once
// Small scenarios for the simulator's tests and the lookups they make in reports.

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vmmu/core/page_size.hpp"
#include "vmmu/sim/report.hpp"
#include "vmmu/sim/runner.hpp"
#include "vmmu/sim/scenario.hpp"

namespace vmmu::sim::test {

// One memslot of `size` bytes backed by `backing`-sized pages, `vcpus` vCPUs, the given phases.
inline Scenario tiny(std::vector<PhaseParams> phases, std::uint64_t size = 8 * MiB, std::uint64_t backing = 2 * MiB,
                     unsigned vcpus = 2) {
  Scenario s;
  s.name = "tiny";
  s.vm.vcpus = vcpus;
  s.memslots.push_back(MemslotParams{size, backing, std::nullopt});
  for (PhaseParams& p : phases) s.phases.push_back(Phase{"", std::move(p)});
  return s;
}

inline const PhaseReport& phase(const RunReport& r, std::string_view name) {
  for (const PhaseReport& p : r.phases) {
    if (p.name == name) return p;
  }
  ADD_FAILURE() << "no phase " << name;
  static const PhaseReport none;
  return none;
}

// A figure of a phase (time, results, migration, statistics), or none.
inline std::optional<std::uint64_t> find_metric(const PhaseReport& p, std::string_view key) {
  for (const Metric& m : all_metrics(p)) {
    if (m.key == key) return m.value;
  }
  return std::nullopt;
}

inline std::uint64_t metric(const RunReport& r, std::string_view phase_name, std::string_view key) {
  auto v = find_metric(phase(r, phase_name), key);
  EXPECT_TRUE(v.has_value()) << phase_name << " has no figure " << key;
  return v.value_or(0);
}

// Runs `s`; a run error fails the test.
inline RunReport run_ok(const Scenario& s) {
  auto r = run(s);
  EXPECT_TRUE(r.has_value()) << (r ? "" : r.error());
  if (!r) return RunReport{};
  for (const std::string& f : r->failures()) ADD_FAILURE() << f;
  return std::move(*r);
}

}  // namespace vmmu::sim::test
