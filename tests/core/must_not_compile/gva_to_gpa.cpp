#include "vmmu/core/address.hpp"
int main() {
  vmmu::Gva gva(0x1000);
  vmmu::Gpa gpa = gva;  // a guest virtual address is not a guest physical one
  return static_cast<int>(gpa.raw());
}
