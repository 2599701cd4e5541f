#pragma once
// Bit layout of x86 guest paging-structure entries (Intel SDM vol. 3A, tables 4-4..4-6 for
// 32-bit paging, 4-8..4-11 for PAE, 4-15..4-20 for 4/5-level paging; AMD APM vol. 2, 5.3-5.4).
// The low 12 bits are common to the 4-byte and 8-byte entries; bits 63:32 exist only in the
// 8-byte ones.

#include <cstdint>
#include <initializer_list>  // vmmu/core/bits.hpp uses it without including it

#include "vmmu/core/bits.hpp"

namespace vmmu::x86::gpte {

using P = Bit<0>;     // present
using RW = Bit<1>;    // writable
using US = Bit<2>;    // user
using PWT = Bit<3>;
using PCD = Bit<4>;
using A = Bit<5>;     // accessed (every level but the PAE PDPTE)
using D = Bit<6>;     // dirty (leaves only)
using PS = Bit<7>;    // page size (PDE/PDPTE); PAT in a 4K PTE
using G = Bit<8>;     // global (leaves only)
using PatLarge = Bit<12>;         // PAT of a 2M/4M/1G leaf
using Addr32 = Field<31, 12>;     // 32-bit paging: table or 4K frame
using Addr32Large = Field<31, 22>;  // 32-bit paging: 4M frame, PA bits 31:22
using Pse36 = Field<20, 13>;      // 32-bit paging 4M PDE: PA bits 39:32 (PSE-36)
using Pse36Reserved = Bit<21>;    // 32-bit paging 4M PDE: always reserved
using Addr = Field<51, 12>;       // PAE / 4-level / 5-level: table or frame, bits 51:M reserved
using ProtKey = Field<62, 59>;    // 4/5-level leaves with CR4.PKE
using XD = Bit<63>;               // execute-disable with EFER.NXE, reserved otherwise

// PAE PDPTE (Intel SDM table 4-8): only P, PWT, PCD and the address; bits 2:1 and 8:5 reserved.
using PdpteReserved = Field<8, 5>;
using PdpteReservedLow = Field<2, 1>;

// Effective-access summary of a walk (KVM's ACC_* idea): bit per right granted.
inline constexpr std::uint8_t kAccExec = 1;
inline constexpr std::uint8_t kAccWrite = 2;
inline constexpr std::uint8_t kAccUser = 4;
inline constexpr std::uint8_t kAccAll = 7;

static_assert(disjoint({P::mask, RW::mask, US::mask, PWT::mask, PCD::mask, A::mask, D::mask, PS::mask, G::mask,
                        Addr::mask, ProtKey::mask, XD::mask}));
static_assert(disjoint({Pse36::mask, Pse36Reserved::mask, Addr32Large::mask, PatLarge::mask}));
static_assert((PdpteReserved::mask & (A::mask | D::mask | PS::mask)) == (A::mask | D::mask | PS::mask));
static_assert(Addr32::mask == 0xfffff000u && Addr32Large::mask == 0xffc00000u);
static_assert(Pse36::width == 8);  // PA bits 39:32

}  // namespace vmmu::x86::gpte
