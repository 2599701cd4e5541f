#pragma once
// L1's memory for the nested tests: every frame backed (zero until written), L1's own stores
// and loads of its words, and the host byte behind an L1 gpa. The EPT and NPT fixtures
// (l1_ept.hpp, l1_npt.hpp) build their tables in it.

#include <cstdint>

#include "shadow/support/sparse_ram.hpp"
#include "vmmu/memory/sparse_memory.hpp"

namespace vmmu::nested::test {

struct L1Ram {
  SparseMemory<Gpa> memory;
  shadow::test::SparseRam ram{memory};

  // Before the MMU has seen the frame (building L1's tables); after, use the MMU's write_l1.
  void poke(std::uint64_t gpa, std::uint64_t value) { memory.write<std::uint64_t>(Gpa(gpa), value); }
  [[nodiscard]] std::uint64_t peek(std::uint64_t gpa) const { return *memory.read<std::uint64_t>(Gpa(gpa)); }
  [[nodiscard]] Hpa host_of(std::uint64_t l1_gpa) {
    return Hpa(reinterpret_cast<std::uintptr_t>(ram.page(gfn_of(Gpa(l1_gpa))))) + (l1_gpa & 0xfff);
  }
};

}  // namespace vmmu::nested::test
