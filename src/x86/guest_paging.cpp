#include "vmmu/x86/guest_paging.hpp"

#include <algorithm>

#include "vmmu/x86/walk.hpp"

namespace vmmu::x86 {
namespace {

// Bits M..hi (hi >= M), or nothing when M > hi.
constexpr std::uint64_t bits_from(unsigned hi, unsigned m) { return m > hi ? 0 : bit_range(hi, m); }

// The permission rules of Intel SDM 4.6.1 for one access class and the walk's rights `acc`.
constexpr bool denied(unsigned acc, bool write, bool user, bool fetch, bool smap_check, bool wp, bool smep,
                      bool smap) {
  const bool u = (acc & gpte::kAccUser) != 0;
  const bool w = (acc & gpte::kAccWrite) != 0;
  const bool x = (acc & gpte::kAccExec) != 0;
  if (user) return !u || (write && !w) || (fetch && !x);
  if (write && !w && wp) return true;  // CR0.WP = 0: supervisor writes ignore R/W
  if (fetch && !x) return true;
  if (fetch && u && smep) return true;  // SMEP: no supervisor fetch from a user page
  // SMAP: no supervisor data access to a user page, unless RFLAGS.AC allows an explicit one.
  return !fetch && u && smap && smap_check;
}

// The permission-bitmap index of an access class (see GuestPaging::permission_index).
constexpr unsigned class_index(Access a, bool ac) {
  const bool user = a.user && !a.implicit_supervisor;
  const bool smap_check = !user && (a.implicit_supervisor || !ac);
  return (a.is_write() ? 1u : 0u) | (user ? 2u : 0u) | (a.is_fetch() ? 4u : 0u) | (smap_check ? 8u : 0u);
}

void configure_32bit(GuestFormatConfig& c, const Registers& regs, const CpuModel& cpu) {
  // 32-bit paging (Intel SDM 4.3): no reserved bits in tables or 4K pages. With CR4.PSE a PDE
  // with PS maps 4 MiB: bit 21 reserved, bits 20:13 give PA bits 39:32 (PSE-36), those at or
  // above min(MAXPHYADDR, 40) reserved; without PSE-36 all of 21:13 are.
  if (!cr4::PSE::get(regs.cr4)) return;  // PS is ignored: every PDE points to a table
  c.leaf_levels = 1u << 2;
  const unsigned m = cpu.pse36 ? std::clamp(cpu.maxphyaddr, 32u, 40u) : 32u;
  c.rsvd[2][1] = bit_range(21, m - 19);
}

void configure_pae(GuestFormatConfig& c, const CpuModel& cpu, std::uint64_t xd_reserved) {
  // PAE paging (Intel SDM 4.4, tables 4-8..4-11): PDE/PTE bits 62:M reserved, XD without NXE.
  const std::uint64_t high = bits_from(62, cpu.maxphyaddr) | xd_reserved;
  const std::uint64_t pdpte = bits_from(63, cpu.maxphyaddr) | gpte::PdpteReserved::mask | gpte::PdpteReservedLow::mask;
  c.rsvd[3][0] = c.rsvd[3][1] = pdpte;
  c.rsvd[2][0] = high;
  c.rsvd[2][1] = high | bit_range(20, 13);
  c.rsvd[1][0] = c.rsvd[1][1] = high;
  c.leaf_levels = 1u << 2;
  c.pdpte_levels = 1u << 3;
}

void configure_long(GuestFormatConfig& c, const CpuModel& cpu, unsigned levels, std::uint64_t xd_reserved) {
  // 4/5-level paging (Intel SDM 4.5, tables 4-14..4-20): bits 51:M reserved, XD without NXE;
  // PS reserved in PML5E/PML4E, and in the PDPTE without 1 GiB pages; a large page's bits
  // between its PAT bit (12) and its frame are reserved.
  const std::uint64_t high = bits_from(51, cpu.maxphyaddr) | xd_reserved;
  for (unsigned level = 1; level <= levels; ++level) {
    c.rsvd[level][0] = high;
    c.rsvd[level][1] = high | gpte::PS::mask;
  }
  c.rsvd[1][1] = high;  // bit 7 of a PTE is PAT
  c.rsvd[2][1] = high | bit_range(20, 13);
  c.leaf_levels = 1u << 2;
  if (cpu.pages_1g) {
    c.rsvd[3][1] = high | bit_range(29, 13);
    c.leaf_levels |= 1u << 3;
  }
}

}  // namespace

GuestPaging GuestPaging::from(const Registers& regs, CpuModel cpu) {
  GuestPaging p;
  p.regs_ = regs;
  p.cpu_ = cpu;
  p.mode_ = paging_mode(regs);
  const bool paging = p.mode_ != PagingMode::Off;
  const bool long_mode = p.mode_ == PagingMode::Long4 || p.mode_ == PagingMode::Long5;
  const bool nx = (p.mode_ == PagingMode::Pae || long_mode) && efer::NXE::get(regs.efer);
  const std::uint64_t xd_reserved = nx ? 0 : gpte::XD::mask;

  switch (p.mode_) {
    case PagingMode::Off: break;
    case PagingMode::Bits32:
      p.root_ = Gpa(regs.cr3 & gpte::Addr32::mask);
      configure_32bit(p.config_, regs, cpu);
      break;
    case PagingMode::Pae:
      p.root_ = Gpa(regs.cr3 & bit_range(31, 5));
      configure_pae(p.config_, cpu, xd_reserved);
      break;
    case PagingMode::Long4:
    case PagingMode::Long5:
      p.root_ = Gpa(regs.cr3 & gpte::Addr::mask & ~bits_from(63, cpu.maxphyaddr));
      configure_long(p.config_, cpu, p.mode_ == PagingMode::Long5 ? 5 : 4, xd_reserved);
      break;
  }
  p.config_.nx = nx;
  for (unsigned level = 1; level <= pt::kMaxLevels; ++level) {
    std::uint64_t implied = nx ? 0 : gpte::XD::mask;
    if (((p.config_.pdpte_levels >> level) & 1u) != 0) implied |= gpte::RW::mask | gpte::US::mask | gpte::A::mask | gpte::XD::mask;
    p.config_.implied[level] = implied;
  }
  p.config_.protection_keys = long_mode && cr4::PKE::get(regs.cr4);
  p.linear_bits_ = p.mode_ == PagingMode::Long5 ? 57 : p.mode_ == PagingMode::Long4 ? 48 : 32;
  p.ac_ = rflags::AC::get(regs.rflags);
  p.wp_ = cr0::WP::get(regs.cr0);
  p.pke_ = p.config_.protection_keys;
  const bool smep = paging && cr4::SMEP::get(regs.cr4);
  const bool smap = paging && cr4::SMAP::get(regs.cr4);
  p.fetch_reported_ = smep || nx;

  for (const AccessKind kind : {AccessKind::Read, AccessKind::Write, AccessKind::Fetch}) {
    for (const bool user : {false, true}) {
      for (const bool implicit : {false, true}) {
        p.access_class_[static_cast<unsigned>(kind) | (user ? 4u : 0u) | (implicit ? 8u : 0u)] =
            static_cast<std::uint8_t>(class_index(Access{kind, user, implicit}, p.ac_));
      }
    }
  }
  for (unsigned index = 0; index < p.permissions_.size(); ++index) {
    std::uint8_t faults = 0;
    for (unsigned acc = 0; acc <= gpte::kAccAll; ++acc) {
      if (paging && denied(acc, (index & 1u) != 0, (index & 2u) != 0, (index & 4u) != 0, (index & 8u) != 0, p.wp_,
                           smep, smap)) {
        faults = static_cast<std::uint8_t>(faults | (1u << acc));
      }
    }
    p.permissions_[index] = faults;
    // Keys deny data accesses only (Intel SDM 4.6.2): reads with AD, writes with WD (supervisor
    // writes only with CR0.WP).
    const bool write = (index & 1u) != 0, user = (index & 2u) != 0, fetch = (index & 4u) != 0;
    std::uint16_t keys = 0;
    for (unsigned key = 0; key < 16 && p.pke_ && !fetch; ++key) {
      const std::uint32_t bits = (regs.pkru >> (2 * key)) & 3u;
      if ((bits & 1u) != 0 || (write && (bits & 2u) != 0 && (user || p.wp_))) keys = static_cast<std::uint16_t>(keys | (1u << key));
    }
    p.key_denials_[index] = keys;
  }
  return p;
}

std::uint32_t GuestPaging::access_error_code(Access a) const {
  std::uint32_t code = 0;
  if (a.is_write()) code |= pferr::kWrite;
  if (a.user && !a.implicit_supervisor) code |= pferr::kUser;
  if (a.is_fetch() && fetch_reported_) code |= pferr::kFetch;
  return code;
}

std::string_view to_string(WalkFaultKind k) {
  switch (k) {
    case WalkFaultKind::PageFault: return "page_fault";
    case WalkFaultKind::GeneralProtection: return "general_protection";
    case WalkFaultKind::TableUnreadable: return "table_unreadable";
  }
  return "?";
}

}  // namespace vmmu::x86
