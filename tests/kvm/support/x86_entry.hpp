#pragma once
// The 64-bit paging-structure entry layout (4- and 5-level paging) and the control-register
// bits the conformance test generates, named independently of the walker under test so the
// test does not share its mistakes. Intel SDM vol. 3A, 4.5 (Tables 4-14 .. 4-20), 2.5 (CRs),
// 2.2.1 (EFER).

#include <cstdint>

#include "vmmu/core/bits.hpp"

namespace vmmu::test::kvm::x86e {

using Present = Bit<0>;
using Writable = Bit<1>;
using User = Bit<2>;
using Pwt = Bit<3>;
using Pcd = Bit<4>;
using Accessed = Bit<5>;
using Dirty = Bit<6>;             // leaves only; ignored in tables
using PageSize = Bit<7>;          // PS in PDE / PDPTE; reserved in PML4E / PML5E; PAT in a PTE
using Global = Bit<8>;            // leaves only; ignored in tables
using Avl = Field<11, 9>;         // ignored
using LargePat = Bit<12>;         // PAT of a 2M / 1G leaf
using Address = Field<51, 12>;    // up to MAXPHYADDR-1; the rest of 51:12 is reserved
using Ignored = Field<58, 52>;    // ignored
using ProtectionKey = Field<62, 59>;  // leaves with CR4.PKE; ignored otherwise
using ExecuteDisable = Bit<63>;   // reserved unless EFER.NXE

static_assert(disjoint({Present::mask, Writable::mask, User::mask, Pwt::mask, Pcd::mask, Accessed::mask,
                        Dirty::mask, PageSize::mask, Global::mask, Avl::mask, Address::mask, Ignored::mask,
                        ProtectionKey::mask, ExecuteDisable::mask}));
static_assert((Present::mask | Writable::mask | User::mask | Pwt::mask | Pcd::mask | Accessed::mask |
               Dirty::mask | PageSize::mask | Global::mask | Avl::mask | Address::mask | Ignored::mask |
               ProtectionKey::mask | ExecuteDisable::mask) == ~std::uint64_t{0});
static_assert(LargePat::mask == bit_range(12, 12) && (LargePat::mask & Address::mask) != 0);

namespace cr0 {
using Pe = Bit<0>;
using Et = Bit<4>;
using Wp = Bit<16>;
using Pg = Bit<31>;
}  // namespace cr0
namespace cr3 {
using Pwt = Bit<3>;
using Pcd = Bit<4>;
}  // namespace cr3
namespace cr4 {
using Pse = Bit<4>;
using Pae = Bit<5>;
using Pge = Bit<7>;
using La57 = Bit<12>;
using Smep = Bit<20>;
using Smap = Bit<21>;
using Pke = Bit<22>;
}  // namespace cr4
namespace efer {
using Sce = Bit<0>;
using Lme = Bit<8>;
using Lma = Bit<10>;
using Nxe = Bit<11>;
}  // namespace efer
namespace rflags {
using Fixed1 = Bit<1>;
using Ac = Bit<18>;
}  // namespace rflags

}  // namespace vmmu::test::kvm::x86e
