#include "vmmu/sim/fault_injection.hpp"

namespace vmmu::sim {

// Weak: a test program's own definition replaces it (a file of its own, so the compiler never
// inlines the default into a phase).
[[gnu::weak]] InjectedFault injected_fault() { return InjectedFault::None; }

}  // namespace vmmu::sim
