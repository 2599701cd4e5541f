#pragma once
// Debug builds' invariant checks, one rule for every MMU: with VMMU_CHECK_INVARIANTS an MMU
// checks its invariants after an operation, and a broken one is a bug in the MMU, not bad
// input -- nothing can be handed back that would make sense, so it is printed (which MMU,
// after what, what broke) and the process aborts. Release builds compile the check away.

#include <optional>
#include <string>
#include <string_view>

namespace vmmu::mmu {

// Prints "vmmu: <mmu> invariant broken after <after>: <broken>" and aborts.
[[noreturn]] void invariant_broken(std::string_view mmu, std::string_view after, std::string_view broken);

// Debug builds: runs `check` (returning the first broken invariant, named, or nullopt) and
// aborts on one. Release builds: nothing (`check` is not called).
template <class Check>
void check_or_abort([[maybe_unused]] std::string_view mmu, [[maybe_unused]] std::string_view after,
                    [[maybe_unused]] Check&& check) {
#if defined(VMMU_CHECK_INVARIANTS)
  if (const std::optional<std::string> broken = check()) invariant_broken(mmu, after, *broken);
#endif
}

}  // namespace vmmu::mmu
