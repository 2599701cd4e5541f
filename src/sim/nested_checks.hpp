#pragma once
// What vm.nested cannot run, for validate(): one ScenarioError naming the key.

#include <optional>

#include "vmmu/sim/scenario.hpp"

namespace vmmu::sim {

// None when the scenario has no vm.nested or runs nested as it is.
std::optional<ScenarioError> check_nested(const Scenario& s);

}  // namespace vmmu::sim
