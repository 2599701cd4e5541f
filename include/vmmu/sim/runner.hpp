#pragma once
// Running a scenario: build its VM, run its phases in order on vCPU threads, measure each.
//
//   run(scenario) ── validate ── host capacity ── SimVm (memslots on aligned host memory, vCPU handles)
//       └─ per phase: statistics snapshot, wall clock, the phase's work on vCPU threads
//          (progress reported from the calling thread), snapshot again -> PhaseReport

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "vmmu/core/result.hpp"
#include "vmmu/sim/report.hpp"
#include "vmmu/sim/scenario.hpp"

namespace vmmu::sim {

// Where a running phase is, for a progress line.
struct Progress {
  std::string_view phase;               // the phase's name
  std::size_t index = 0;                // 0-based position of the phase in the scenario
  std::size_t phases = 0;               // phases in the scenario
  std::string_view step;                // "dirty memory (iteration 2/3)", "" when the phase has one step
  std::uint64_t done = 0;               // units of work done in this step ...
  std::uint64_t total = 0;              // ... of this many (0: unknown)
  std::chrono::nanoseconds elapsed{0};  // since the phase started
  std::string_view variant;             // --compare: "split=lazy" for the run in progress; else ""
  bool finished = false;                // the phase has ended (the last report for it)
};

struct RunOptions {
  // Called from run()'s thread when a step starts, every `progress_interval` while it runs,
  // and once with `finished` when the phase ends. Must not call back into the run.
  std::function<void(const Progress&)> progress;
  std::chrono::milliseconds progress_interval{100};
  std::string variant;  // copied into Progress::variant
};

// Runs `scenario` (phases named with name_phases()). A failed check (a lost dirty page, wrong
// data after a conversion) does not stop the run: it is in the phase's failures.
// Errors: one line naming the problem: an invalid scenario ("vm.vcpus: expected ..."), more
// memory than the host has available ("memslots[0].size: ...", before any is mapped), host
// memory that cannot be mapped, a memslot the VM refuses, the MMU running out of table memory.
Result<RunReport, std::string> run(const Scenario& scenario, const RunOptions& options = {});

}  // namespace vmmu::sim
