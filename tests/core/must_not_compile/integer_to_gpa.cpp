#include "vmmu/core/address.hpp"
vmmu::Gpa take(vmmu::Gpa g) { return g; }
int main() { return static_cast<int>(take(0x1000).raw()); }  // no implicit integer -> address
