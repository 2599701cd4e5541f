// A project outside vmmu's tree, built against the installed package: walks a two-level
// toy-free real x86 case (4-level paging, one 4K page) through the public API.
#include <cstdio>

#include <vmmu/core/page_size.hpp>
#include <vmmu/memory/sparse_memory.hpp>
#include <vmmu/x86/walk.hpp>

int main() {
  using namespace vmmu;
  SparseMemory<Gpa> memory;
  // PML4 at 0x1000 -> PDPT 0x2000 -> PD 0x3000 -> PT 0x4000 -> frame 0x5000, all P|RW.
  memory.write<std::uint64_t>(Gpa(0x1000), 0x2003);
  memory.write<std::uint64_t>(Gpa(0x2000), 0x3003);
  memory.write<std::uint64_t>(Gpa(0x3000), 0x4003);
  memory.write<std::uint64_t>(Gpa(0x4000), 0x5003);
  x86::Registers regs;
  regs.cr0 = 0x80000001;  // PG | PE
  regs.cr4 = 0x20;        // PAE
  regs.efer = 0x500;      // LME | LMA
  regs.cr3 = 0x1000;
  auto paging = x86::GuestPaging::from(regs, x86::CpuModel{.maxphyaddr = 40});
  auto result = x86::walk(paging, memory, Gva(0x123), Access::read());
  if (!result || result->gpa != Gpa(0x5123)) {
    std::puts("consumer: unexpected translation");
    return 1;
  }
  std::printf("consumer: gva 0x123 -> gpa %#llx (%s page), found vmmu via find_package\n",
              static_cast<unsigned long long>(result->gpa.raw()), size_name(result->page_size).c_str());
  return 0;
}
