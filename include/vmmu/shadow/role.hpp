#pragma once
// The role of a shadow page (KVM's kvm_mmu_page_role): everything besides the guest table's
// gfn that decides what the page's entries mean. Two shadow pages with the same (gfn, role)
// are interchangeable, so the role is one packed word compared and hashed as an integer.
//
//   bits  field            meaning
//   3:0   level            vmmu level of the shadow table (1 = maps 4 KiB pages)
//   4     gpte4            the guest's entries are 4 bytes (32-bit paging)
//   6:5   quadrant         which part of the guest table this page shadows (a 1024-entry
//                          table's quarter or half; the half of a root below a passthrough page)
//   7     direct           no guest table behind it (paging off, or below a guest huge page)
//   10:8  access           x86::gpte::kAcc* rights the guest path above grants
//   11    cr0_wp           CR0.WP
//   12    smep_andnot_wp   CR4.SMEP && !CR0.WP (kernel-writable user pages must not be executable)
//   13    smap_andnot_wp   CR4.SMAP && !CR0.WP (user pages are never made kernel-writable)
//   14    efer_nx          EFER.NX
//   15    ad_disabled      the guest's A/D bits are not maintained (walk options)
//   16    guest_mode       built for a nested (L2) guest
//   17    passthrough      a host level above the guest's root: no guest table, one child
//   18    invalid          zapped while still in use as a root: never found by a lookup
//   19    pke_andnot_wp    CR4.PKE && !CR0.WP (user pages are never made kernel-writable: a
//                          supervisor access to a user page is subject to PKRU)
//   26:20 pdpt             a PAE guest's CR3 bits 11:5 (which 32-byte PDPT of the frame), in
//                          the page shadowing the PDPT and the passthrough pages above it
//   27    ept              shadows an L1 hypervisor's EPT tables (nested, src/nested): access
//                          is then EPT R/W/X (bits 2:0 of an EPT entry), not kAcc*
//   28    ept_exec_only    ... on a processor allowing execute-only EPT entries
//   30:29 ept_huge_level   a direct nested page (EPT or NPT): the level of L1's huge leaf above
//                          it (2 or 3), so a 2 MiB and a 1 GiB L1 page over the same frames do
//                          not share pages
//   31    npt              shadows an L1 hypervisor's NPT tables (nested, src/nested): access
//                          is kAcc* of a user walk
//
// Child roles are derived in one function, child_role(), from the parent's role.

#include <cstdint>
#include <string>

#include "vmmu/core/bits.hpp"
#include "vmmu/x86/guest_paging.hpp"

namespace vmmu::shadow {

namespace role_bits {
using Level = Field<3, 0>;
using Gpte4 = Bit<4>;
using Quadrant = Field<6, 5>;
using Direct = Bit<7>;
using AccessBits = Field<10, 8>;
using Cr0Wp = Bit<11>;
using SmepAndnotWp = Bit<12>;
using SmapAndnotWp = Bit<13>;
using EferNx = Bit<14>;
using AdDisabled = Bit<15>;
using GuestMode = Bit<16>;
using Passthrough = Bit<17>;
using Invalid = Bit<18>;
using PkeAndnotWp = Bit<19>;
using Pdpt = Field<26, 20>;
using Ept = Bit<27>;
using EptExecOnly = Bit<28>;
using EptHugeLevel = Field<30, 29>;
using Npt = Bit<31>;
static_assert(disjoint({Level::mask, Gpte4::mask, Quadrant::mask, Direct::mask, AccessBits::mask, Cr0Wp::mask,
                        SmepAndnotWp::mask, SmapAndnotWp::mask, EferNx::mask, AdDisabled::mask, GuestMode::mask,
                        Passthrough::mask, Invalid::mask, PkeAndnotWp::mask, Pdpt::mask, Ept::mask,
                        EptExecOnly::mask, EptHugeLevel::mask, Npt::mask}));
static_assert(Pdpt::mask < (std::uint64_t{1} << 32));
}  // namespace role_bits

class Role {
 public:
  constexpr Role() = default;
  static constexpr Role from_word(std::uint32_t w) { return Role(w); }
  [[nodiscard]] constexpr std::uint32_t word() const { return w_; }

#define VMMU_ROLE_FIELD(name, F, T)                                                            \
  [[nodiscard]] constexpr T name() const { return static_cast<T>(F::get(w_)); }                \
  constexpr Role& set_##name(T v) {                                                            \
    w_ = static_cast<std::uint32_t>(F::set(w_, static_cast<std::uint64_t>(v)));                \
    return *this;                                                                              \
  }
  VMMU_ROLE_FIELD(level, role_bits::Level, unsigned)
  VMMU_ROLE_FIELD(gpte4, role_bits::Gpte4, bool)
  VMMU_ROLE_FIELD(quadrant, role_bits::Quadrant, unsigned)
  VMMU_ROLE_FIELD(direct, role_bits::Direct, bool)
  VMMU_ROLE_FIELD(access, role_bits::AccessBits, std::uint8_t)
  VMMU_ROLE_FIELD(cr0_wp, role_bits::Cr0Wp, bool)
  VMMU_ROLE_FIELD(smep_andnot_wp, role_bits::SmepAndnotWp, bool)
  VMMU_ROLE_FIELD(smap_andnot_wp, role_bits::SmapAndnotWp, bool)
  VMMU_ROLE_FIELD(efer_nx, role_bits::EferNx, bool)
  VMMU_ROLE_FIELD(ad_disabled, role_bits::AdDisabled, bool)
  VMMU_ROLE_FIELD(guest_mode, role_bits::GuestMode, bool)
  VMMU_ROLE_FIELD(passthrough, role_bits::Passthrough, bool)
  VMMU_ROLE_FIELD(invalid, role_bits::Invalid, bool)
  VMMU_ROLE_FIELD(pke_andnot_wp, role_bits::PkeAndnotWp, bool)
  VMMU_ROLE_FIELD(pdpt, role_bits::Pdpt, unsigned)
  VMMU_ROLE_FIELD(ept, role_bits::Ept, bool)
  VMMU_ROLE_FIELD(ept_exec_only, role_bits::EptExecOnly, bool)
  VMMU_ROLE_FIELD(ept_huge_level, role_bits::EptHugeLevel, unsigned)
  VMMU_ROLE_FIELD(npt, role_bits::Npt, bool)
#undef VMMU_ROLE_FIELD

  friend constexpr bool operator==(Role, Role) = default;
  friend constexpr auto operator<=>(Role a, Role b) { return a.w_ <=> b.w_; }

 private:
  explicit constexpr Role(std::uint32_t w) : w_(w) {}
  std::uint32_t w_ = 0;
};

// "level=4 access=7 wp nx ..." for messages and test failures.
std::string to_string(Role r);

// Levels of the guest's own tables in `mode` (0 with paging off: every shadow page is direct).
unsigned guest_levels(x86::PagingMode mode);

// The role of the root shadow page for a guest in `paging` under a host of `host_levels`
// (4 or 5). The root is a passthrough page when the host has more levels than the guest; with
// paging off it is direct. A guest with fewer levels than the host always gets a passthrough
// root: no special PAE root page (KVM's pae_root) is needed -- a PAE guest's four PDPTEs are
// shadowed by an ordinary level-3 page keyed by (CR3's frame, role.pdpt), see
// docs/architecture.md.
Role root_role(const x86::GuestPaging& paging, unsigned host_levels, bool ad_disabled = false, bool guest_mode = false);

// What a parent entry says about the child table it points to.
struct ChildOf {
  unsigned index = 0;        // the parent shadow entry's index
  std::uint8_t access = 0;   // rights of the guest entry pointing down (kAcc bits)
  bool direct = false;       // the guest entry is a huge leaf mapped by smaller shadow pages
  unsigned guest_levels = 0; // levels of the guest's tables (guest_levels(mode))
};

// The role of the shadow page below the parent entry `c.index` of a page with role `parent`
// (level > 1): one level down, the path's rights ANDed, direct below a direct page or a guest
// huge leaf, passthrough while still above the guest's root, the quarter of a 32-bit guest's
// root (one per GiB) or half of its page table (one per 2 MiB) that a page shadows; every
// CPU-mode bit inherited.
Role child_role(Role parent, const ChildOf& c);

}  // namespace vmmu::shadow
