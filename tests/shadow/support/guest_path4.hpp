#pragma once
// The upper tables of a small 4-level guest for shadow tests: PML4 0x1000 -> PDPT 0x2000 ->
// PD 0x3000 -> PT 0x4000 (all P | RW | US), so gva page i is PT entry i.

#include <cstdint>

#include "vmmu/memory/sparse_memory.hpp"
#include "vmmu/x86/guest_entry.hpp"

namespace vmmu::shadow::test {

inline constexpr std::uint64_t kTableEntry = x86::gpte::P::mask | x86::gpte::RW::mask | x86::gpte::US::mask;
inline constexpr std::uint64_t kGuestPt = 0x4000;

inline void write_path4(SparseMemory<Gpa>& mem) {
  mem.write<std::uint64_t>(Gpa(0x1000), 0x2000 | kTableEntry);
  mem.write<std::uint64_t>(Gpa(0x2000), 0x3000 | kTableEntry);
  mem.write<std::uint64_t>(Gpa(0x3000), kGuestPt | kTableEntry);
}

}  // namespace vmmu::shadow::test
