#pragma once
// A seam for tests that must see the simulator's own checks fail (lost dirty pages, wrong data)
// end to end, up to `vmmu run`'s exit status. The library's injected_fault() is a weak
// definition that returns None, so programs that do not define it -- vmmu itself -- never
// inject anything; a test program defines it (tests/sim/cli/failed_checks_test.cpp) and picks
// the fault.

#include <cstdint>

namespace vmmu::sim {

enum class InjectedFault : std::uint8_t {
  None,
  LoseDirtyPage,  // migration: one written page of each round is left out of its harvest
  CorruptWord,    // conversion: one word of each range changes before the range is read back
};

InjectedFault injected_fault();

}  // namespace vmmu::sim
