#include "vmmu/core/address.hpp"
vmmu::Pfn host(vmmu::Pfn p) { return p; }
int main() { return static_cast<int>(host(vmmu::Gfn(3)).raw()); }  // guest frame is not a host frame
