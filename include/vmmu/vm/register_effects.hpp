#pragma once
// What a guest register write does to the vCPU's MMU state, as ONE table: every modelled bit
// of CR0, CR3, CR4, EFER, PKRU and RFLAGS, per direction of change, with the effects the
// architecture (TLB flushes, Intel SDM vol. 3A 4.10.4.1) and KVM's role rules (which bits
// change the cpu role) give it.
//
//   write(reg, value) ──► rows of reg whose trigger fires ──► union of their effects
//                                                     RootPolicy::Rebuild: RoleRefresh => NewRoot
//
// Two columns, one per MMU (VmConfig::mmu). TDP: the root role depends on no guest register
// (vmmu/tdp/roots.hpp), so with RootPolicy::Keep no write ever needs a new root: only the
// guest-walk rules (the cpu role) and the guest TLB change. Shadow: the shadow tables stand
// for the guest's, so a CR3 write and every role change (CR0.WP, CR4.SMEP, ...) switch the
// vCPU to the root for the new CR3 / role (SwitchRoot: found in the MMU's cache or built),
// never zapping the old one, so switching back is free (KVM's kvm_mmu_new_pgd and role-keyed
// roots). RootPolicy::Rebuild models KVM before 6.4, whose kvm_mmu_reset_context() also
// unloaded the vCPU's root on every role change, under either MMU.
//
// Permission-only inputs (CR0.WP, CR4.SMEP/SMAP, PKRU, RFLAGS.AC) need no flush: a TLB entry
// keeps the walk's rights and the check against the current registers happens at use
// (SDM 4.10.2.2 lists what a TLB entry caches; 4.6 the checks made on each access).

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "vmmu/core/bits.hpp"
#include "vmmu/mmu/mmu.hpp"
#include "vmmu/tdp/policy.hpp"
#include "vmmu/x86/registers.hpp"

namespace vmmu::vm {

// Register bits vmmu/x86/registers.hpp does not name (the guest walk never reads them).
namespace regbits {
using Cr0Pe = x86::cr0::PE;
using Cr4Pcide = Bit<17>;     // process-context identifiers (SDM 4.10.1)
using Cr3Pcid = Field<11, 0>;  // the PCID when CR4.PCIDE = 1 (PWT/PCD otherwise)
using Cr3NoFlush = Bit<63>;   // MOV to CR3 operand only: keep the PCID's entries (never stored)
}  // namespace regbits

enum class Effect : std::uint8_t {
  TlbFlush = 1u << 0,         // the current PCID's non-global TLB entries
  TlbFlushCurrent = 1u << 1,  // every entry the current PCID may use, global ones included
  TlbFlushAll = 1u << 2,      // every entry of every PCID, global ones included
  RoleRefresh = 1u << 3,      // recompute the cpu role (the guest walk's rules)
  NewRoot = 1u << 4,          // drop the vCPU's TDP root (RootPolicy::Rebuild only); loading
                              // the next one flushes the whole guest TLB, as kvm_mmu_load does
  SwitchRoot = 1u << 5,       // shadow only: load the root for the new CR3 / cpu role, keeping
                              // the old one (with a flush effect: the guest TLB flush too)
};

// A set of effects; empty = the write needs nothing.
class Effects {
 public:
  constexpr Effects() = default;
  constexpr Effects(Effect e) : bits_(static_cast<std::uint8_t>(e)) {}  // NOLINT: a set of one
  [[nodiscard]] constexpr bool has(Effect e) const { return (bits_ & static_cast<std::uint8_t>(e)) != 0; }
  [[nodiscard]] constexpr bool empty() const { return bits_ == 0; }
  [[nodiscard]] constexpr std::uint8_t raw() const { return bits_; }
  // Any TLB flush at all.
  [[nodiscard]] constexpr bool flushes() const {
    return has(Effect::TlbFlush) || has(Effect::TlbFlushCurrent) || has(Effect::TlbFlushAll);
  }
  constexpr Effects& operator|=(Effects o) {
    bits_ = static_cast<std::uint8_t>(bits_ | o.bits_);
    return *this;
  }
  friend constexpr Effects operator|(Effects a, Effects b) { return a |= b; }
  friend constexpr bool operator==(Effects, Effects) = default;

 private:
  std::uint8_t bits_ = 0;
};
constexpr Effects operator|(Effect a, Effect b) { return Effects(a) | Effects(b); }

std::string_view to_string(Effect e);
std::string to_string(Effects e);  // "tlb-flush|role-refresh", or "none"

enum class Register : std::uint8_t { Cr0, Cr3, Cr4, Efer, Pkru, Rflags };
std::string_view to_string(Register r);

enum class Trigger : std::uint8_t {
  Toggle,        // a bit of the mask changes
  Set,           // a bit of the mask goes 0 -> 1
  Clear,         // a bit of the mask goes 1 -> 0
  Write,         // CR3: every write, changed or not, that is not a NoFlushWrite
  NoFlushWrite,  // CR3: written with operand bit 63 set while CR4.PCIDE = 1
};
std::string_view to_string(Trigger t);

struct EffectRule {
  Register reg;
  std::uint64_t mask;  // the bits the row is about
  Trigger trigger;
  Effects effects;     // under RootPolicy::Keep, TDP MMU
  Effects shadow;      // under RootPolicy::Keep, shadow MMU
  std::string_view name;
  std::string_view why;  // the manual's section and KVM's handling
  // Adaptive: the shadow column, a superset (a TDP context ignores the root switches).
  [[nodiscard]] constexpr Effects under(mmu::MmuKind k) const { return k == mmu::MmuKind::Tdp ? effects : shadow; }
};

// Every row, in register order. For each register the Toggle/Set/Clear rows cover all 64
// bits (the named ones, then one row for the rest), so every change is classified.
std::span<const EffectRule> effect_rules();

// The effects of writing `value` to `reg` when the registers are `before` (CR3: the
// MOV-to-CR3 operand, bit 63 included) under `kind`'s column. Register::Cr3 rows use
// before.cr4 for PCIDE.
Effects classify(const x86::Registers& before, Register reg, std::uint64_t value, tdp::RootPolicy roots,
                 mmu::MmuKind kind = mmu::MmuKind::Tdp);

// What the register holds after writing `value` (CR3 drops the NOFLUSH bit, SDM 4.10.4.1).
std::uint64_t stored_value(Register reg, std::uint64_t value);

// The register's current value in `regs` (PKRU zero-extended).
std::uint64_t value_of(const x86::Registers& regs, Register reg);

}  // namespace vmmu::vm
