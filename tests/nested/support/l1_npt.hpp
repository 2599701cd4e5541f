#pragma once
// An L1 for shadow NPT tests: L1's memory (every frame backed, zero until written) holding a
// 4-level nested page table that L1 edits through the MMU (its tables are write-tracked), and
// one vCPU. L1 runs with EFER.NXE; MAXPHYADDR 46.

#include <cstdint>

#include "nested/support/l1_ram.hpp"
#include "vmmu/nested/shadow_npt_mmu.hpp"

namespace vmmu::nested::npt_test {

namespace gpte = x86::gpte;

inline constexpr std::uint64_t kPml4 = 0x20000, kPdpt = 0x21000, kPd = 0x22000, kPt = 0x23000;
inline constexpr std::uint64_t kUrw = gpte::P::mask | gpte::RW::mask | gpte::US::mask;  // a user, writable entry
inline constexpr unsigned kMaxPhyAddr = 46;
inline constexpr x86::CpuModel kCpu{.maxphyaddr = kMaxPhyAddr};

inline NptRoot root_at(std::uint64_t pml4, bool nxe = true) { return {pml4, false, nxe}; }

struct L1Npt : test::L1Ram {
  ShadowNptMmu mmu{ram, kCpu};
  ShadowNptVcpu vcpu;

  // PML4[0] -> PDPT[0] -> PD[0] -> PT: L2 0x0..0x1fffff in 4 KiB pages.
  L1Npt() {
    poke(kPml4, kPdpt | kUrw);
    poke(kPdpt, kPd | kUrw);
    poke(kPd, kPt | kUrw);
  }
  // L2 page `l2` (below 2 MiB) -> L1 frame `l1` with `bits`.
  void map4k(std::uint64_t l2, std::uint64_t l1, std::uint64_t bits = kUrw) {
    poke(kPt + ((l2 >> 12) & 511) * 8, l1 | bits);
  }
  L2NptAccess access(std::uint64_t l2, AccessKind op) { return mmu.access(vcpu, Gpa(l2), op); }
};

// Entry addresses of the path to L2 0x5000 by level.
constexpr std::uint64_t path_entry(unsigned level) {
  return level == 4 ? kPml4 : level == 3 ? kPdpt : level == 2 ? kPd : kPt + 5 * 8;
}

}  // namespace vmmu::nested::npt_test
