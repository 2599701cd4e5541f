#pragma once
// A SparseMemory as the shadow MMU's guest RAM: every frame backed (zero until written).

#include "vmmu/memory/sparse_memory.hpp"
#include "vmmu/shadow/guest_ram.hpp"

namespace vmmu::shadow::test {

class SparseRam final : public GuestRam {
 public:
  explicit SparseRam(SparseMemory<Gpa>& memory) : memory_(memory) {}
  std::byte* page(Gfn gfn) override { return memory_.backing(gpa_of(gfn)); }

 private:
  SparseMemory<Gpa>& memory_;
};

}  // namespace vmmu::shadow::test
