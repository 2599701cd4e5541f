#pragma once
// GuestPaging: the "cpu role" of KVM -- everything a guest walk needs, derived once from the
// registers and the modelled CPU, so that a walk is loads and a few ANDs:
//   - the paging mode and the root table,
//   - the format configuration (reserved masks per level and PS, leaf levels, NX, PK),
//   - a permission bitmap per access class (KVM's permissions[]): bit `acc` set = fault,
//   - CR0.WP, SMAP/RFLAGS.AC, PKRU for the protection-key check.

#include <array>
#include <cstdint>
#include <utility>

#include "vmmu/core/access.hpp"
#include "vmmu/core/address.hpp"
#include "vmmu/x86/guest_format.hpp"
#include "vmmu/x86/registers.hpp"

namespace vmmu::x86 {

// What the modelled processor supports (CPUID), passed in, never assumed.
struct CpuModel {
  unsigned maxphyaddr = 52;  // physical-address width M; bits at or above it are reserved
  bool pages_1g = true;      // CPUID.80000001H:EDX.Page1GB: PDPTE.PS maps 1 GiB (else reserved)
  bool pse36 = true;         // CPUID.01H:EDX.PSE-36: 4 MiB PDE bits 20:13 give PA bits 39:32
};

class GuestPaging {
 public:
  // Errors: none; every register value gives a role (bits hardware would refuse to load are
  // ignored: CR3 is masked to the address bits the mode uses).
  static GuestPaging from(const Registers& regs, CpuModel cpu = {});

  [[nodiscard]] PagingMode mode() const { return mode_; }
  [[nodiscard]] const Registers& registers() const { return regs_; }
  [[nodiscard]] const CpuModel& cpu() const { return cpu_; }
  // The root table: CR3[31:12] (32-bit), the PDPTEs at CR3[31:5] (PAE), CR3[M-1:12] (long).
  [[nodiscard]] Gpa root() const { return root_; }
  [[nodiscard]] const GuestFormatConfig& format_config() const { return config_; }

  // Calls fn(format, root) with the format of this mode (Format32, FormatPae, Format4 or
  // Format5) and returns true; with paging off there are no tables: returns false, no call.
  template <class Fn>
  bool with_format(Fn&& fn) const {
    switch (mode_) {
      case PagingMode::Bits32: std::forward<Fn>(fn)(Format32(config_), root_); return true;
      case PagingMode::Pae: std::forward<Fn>(fn)(FormatPae(config_), root_); return true;
      case PagingMode::Long4: std::forward<Fn>(fn)(Format4(config_), root_); return true;
      case PagingMode::Long5: std::forward<Fn>(fn)(Format5(config_), root_); return true;
      case PagingMode::Off: break;
    }
    return false;
  }

  // Long mode: bits 63:47 (63:56 with LA57) of a gva must all equal bit 47 (56).
  [[nodiscard]] bool canonical(Gva gva) const {
    const unsigned unused = 64 - linear_bits_;  // 32 outside long mode: every gva passes
    if (linear_bits_ == 32) return true;
    return static_cast<std::uint64_t>(static_cast<std::int64_t>(gva.raw() << unused) >> unused) == gva.raw();
  }
  // Linear-address bits the mode translates: 32 outside long mode, 48 or 57 in it.
  [[nodiscard]] unsigned linear_bits() const { return linear_bits_; }
  // The linear address a walk translates for `gva`: its low 32 bits outside long mode.
  [[nodiscard]] std::uint64_t linear(Gva gva) const {
    return linear_bits_ == 32 ? gva.raw() & 0xffff'ffffULL : gva.raw();
  }

  // ---- permission check (used by the walker) ----
  // Index of an access's class in the permission bitmap: W | U<<1 | F<<2 | SMAP-check<<3.
  // U is a CPL-3 access that is not an implicit supervisor access. Looked up (RFLAGS.AC
  // folded in by from()): it is on every walk.
  [[nodiscard]] unsigned permission_index(Access a) const {
    static_assert(static_cast<unsigned>(AccessKind::Fetch) < 4, "the kind takes bits 1:0 of the look-up");
    return access_class_[static_cast<unsigned>(a.kind) | (a.user ? 4u : 0u) | (a.implicit_supervisor ? 8u : 0u)];
  }
  // Bit `acc` (gpte::kAcc* of the walk) set: the access class `index` faults on those rights.
  [[nodiscard]] std::uint8_t permission_faults(unsigned index) const { return permissions_[index]; }
  // Page-fault error-code bits an access contributes (W/R, U/S, I/D), whatever the fault.
  [[nodiscard]] std::uint32_t access_error_code(Access a) const;
  // Protection keys (Intel SDM 4.6.2): does PKRU deny this data access to a user page with key?
  [[nodiscard]] bool protection_key_denies(unsigned key, Access a) const {
    return ((unsigned{key_denials(permission_index(a))} >> key) & 1u) != 0;
  }
  // Bit `key` set: PKRU denies the access class `index` a user page with that key (KVM's
  // pkru_mask, one word per class so the walk needs one shift). 0 without CR4.PKE.
  [[nodiscard]] std::uint16_t key_denials(unsigned index) const { return key_denials_[index]; }
  [[nodiscard]] bool protection_keys() const { return pke_; }

 private:
  Registers regs_{};
  CpuModel cpu_{};
  PagingMode mode_ = PagingMode::Off;
  Gpa root_{};
  GuestFormatConfig config_{};
  std::array<std::uint8_t, 16> permissions_{};
  std::array<std::uint16_t, 16> key_denials_{};
  std::array<std::uint8_t, 16> access_class_{};  // by kind | user<<2 | implicit<<3: permission_index
  unsigned linear_bits_ = 32;
  bool ac_ = false;
  bool wp_ = false;
  bool pke_ = false;
  bool fetch_reported_ = false;  // I/D flag in error codes: SMEP or NX in effect
};

}  // namespace vmmu::x86
