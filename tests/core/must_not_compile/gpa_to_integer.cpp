#include "vmmu/core/address.hpp"
int main() {
  vmmu::Gpa gpa(0x1000);
  std::uint64_t raw = gpa;  // only .raw() leaves the address space
  return static_cast<int>(raw);
}
