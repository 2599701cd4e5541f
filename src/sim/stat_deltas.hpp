#pragma once
// StatDeltas: a phase's counters as metrics (after - before), for the MMUs' statistics lists.
// Counters only grow: one that went backwards is a broken statistic, never a 0 for the
// "no zaps" checks to accept, so the first such is kept to end the run with its name.

#include <fmt/format.h>

#include <cstdint>
#include <string>
#include <vector>

#include "vmmu/core/result.hpp"
#include "vmmu/sim/report.hpp"

namespace vmmu::sim {

class StatDeltas {
 public:
  void counter(std::string key, std::string label, std::uint64_t before, std::uint64_t after) {
    if (after < before && backwards_.empty())
      backwards_ = fmt::format("statistic {} went backwards ({} before the phase, {} after)", key, before, after);
    out_.push_back(Metric{std::move(key), std::move(label), after - before, Unit::Count});
  }
  // A level after the phase, not a delta.
  void gauge(std::string key, std::string label, std::uint64_t after) {
    out_.push_back(Metric{std::move(key), std::move(label), after, Unit::Count});
  }
  // The metrics in order. Error: the first counter that went backwards.
  Result<std::vector<Metric>, std::string> take() {
    if (!backwards_.empty()) return Unexpected{backwards_};
    return std::move(out_);
  }

 private:
  std::vector<Metric> out_;
  std::string backwards_;
};

}  // namespace vmmu::sim
