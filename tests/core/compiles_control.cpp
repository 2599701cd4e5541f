// Control for the must_not_compile snippets: the legal operations compile.
#include "vmmu/core/address.hpp"

int main() {
  vmmu::Gpa gpa(0x1000);
  vmmu::Gpa next = gpa + 8;
  std::uint64_t distance = next - gpa;
  vmmu::Gfn gfn = vmmu::gfn_of(gpa);
  return static_cast<int>(distance + gfn.raw() + gpa.raw()) == 0;
}
