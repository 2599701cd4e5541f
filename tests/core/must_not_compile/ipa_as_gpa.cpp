#include "vmmu/core/address.hpp"
vmmu::Gpa x86(vmmu::Gpa g) { return g; }
int main() { return static_cast<int>(x86(vmmu::Ipa(3)).raw()); }
