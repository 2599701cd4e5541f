#include "vmmu/core/address.hpp"
int main() { return vmmu::Gpa(1) == vmmu::Hpa(1); }  // different spaces never compare
