#include "vmmu/core/address.hpp"
int main() { return static_cast<int>(vmmu::Gpa(8) - vmmu::Gva(0)); }
