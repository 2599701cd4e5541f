#pragma once
// An L1 for shadow EPT tests: L1's memory (every frame backed, zero until written) holding a
// 4-level EPT that L1 edits through the MMU (its tables are write-tracked), and one vCPU.

#include <cstdint>

#include "nested/support/l1_ram.hpp"
#include "vmmu/nested/shadow_ept_mmu.hpp"

namespace vmmu::nested::test {

namespace ept = x86::ept;

inline constexpr std::uint64_t kRwx = 7;
inline constexpr std::uint64_t kPml4 = 0x10000, kPdpt = 0x11000, kPd = 0x12000, kPt = 0x13000;
inline constexpr std::uint64_t kTable = ept::R::mask | ept::W::mask | ept::X::mask;
inline constexpr std::uint64_t kWb = ept::kMemTypeWb << 3;

inline std::uint64_t eptp_for(std::uint64_t pml4, bool ad) {
  return pml4 | ept::kMemTypeWb | (3u << 3) | (ad ? ept::eptp::AccessedDirty::mask : 0);
}

struct L1 : L1Ram {
  ShadowEptMmu mmu{ram, x86::EptCapabilities{.maxphyaddr = 46}};
  ShadowEptVcpu vcpu;

  // PML4[0] -> PDPT[0] -> PD[0] -> PT: L2 0x0..0x1fffff in 4 KiB pages.
  L1() {
    poke(kPml4, kPdpt | kTable);
    poke(kPdpt, kPd | kTable);
    poke(kPd, kPt | kTable);
  }
  // L2 page `l2` (below 2 MiB) -> L1 frame `l1` with `rights`.
  void map4k(std::uint64_t l2, std::uint64_t l1, std::uint64_t rights) {
    poke(kPt + ((l2 >> 12) & 511) * 8, l1 | rights | kWb);
  }
  L2Access access(std::uint64_t l2, AccessKind op) { return mmu.access(vcpu, Gpa(l2), op); }
};

}  // namespace vmmu::nested::test
