#pragma once
// PhaseProgress: runs a phase's work on vCPU threads while the calling thread reports
// progress, and counts the units of work the threads finish.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "vmmu/sim/runner.hpp"

namespace vmmu::sim {

class PhaseProgress {
 public:
  PhaseProgress(const RunOptions& options, std::string_view phase, std::size_t index, std::size_t phases);

  // Starts a new step of `total` units (0: unknown); reports it at once.
  void step(std::string step, std::uint64_t total);
  // Work threads add what they finished (in batches: every add is an atomic on one line).
  void add(std::uint64_t units) { done_.fetch_add(units, std::memory_order_relaxed); }
  // Reports the current step now (from the calling thread).
  void report();
  // Reports it if `progress_interval` has passed since the last report: for work the calling
  // thread does itself.
  void tick();
  // Reports completion of the phase.
  void finish();

  // Runs fn(0..n-1) on n threads, reporting progress from this thread until all return.
  void parallel(unsigned n, const std::function<void(unsigned)>& fn);

 private:
  const RunOptions& options_;
  std::string phase_;
  std::size_t index_, phases_;
  std::string step_;
  std::uint64_t total_ = 0;
  std::atomic<std::uint64_t> done_{0};
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_report_;
};

// Elapsed nanoseconds of `fn()`.
template <class Fn>
std::uint64_t timed(Fn&& fn) {
  const auto t0 = std::chrono::steady_clock::now();
  fn();
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count());
}

}  // namespace vmmu::sim
