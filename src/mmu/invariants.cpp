#include "vmmu/mmu/invariants.hpp"

#include <cstdio>
#include <cstdlib>

namespace vmmu::mmu {

void invariant_broken(std::string_view mmu, std::string_view after, std::string_view broken) {
  std::fprintf(stderr, "vmmu: %.*s invariant broken after %.*s: %.*s\n", static_cast<int>(mmu.size()), mmu.data(),
               static_cast<int>(after.size()), after.data(), static_cast<int>(broken.size()), broken.data());
  std::abort();
}

}  // namespace vmmu::mmu
