#include "vmmu/vm/register_effects.hpp"

#include <array>

namespace vmmu::vm {
namespace {

namespace cr0 = x86::cr0;
namespace cr4 = x86::cr4;
namespace efer = x86::efer;
using regbits::Cr0Pe;
using regbits::Cr3NoFlush;
using regbits::Cr4Pcide;
using enum Effect;
using enum Register;
using enum Trigger;

constexpr std::uint64_t kAll = ~std::uint64_t{0};
constexpr std::uint64_t kCr0Named = Cr0Pe::mask | cr0::WP::mask | cr0::PG::mask;
constexpr std::uint64_t kCr4Named = cr4::PSE::mask | cr4::PAE::mask | cr4::PGE::mask | Cr4Pcide::mask |
                                    cr4::LA57::mask | cr4::SMEP::mask | cr4::SMAP::mask | cr4::PKE::mask;
constexpr std::uint64_t kEferNamed = efer::LME::mask | efer::LMA::mask | efer::NXE::mask;
constexpr Effects kNone{};

// Sections: Intel SDM vol. 3A 4.10.4.1 (operations that invalidate TLBs), 4.6 (access rights,
// checked on every access), 4.1.3 (paging-mode modifiers). KVM: kvm_post_set_cr0/cr4 and
// set_efer in arch/x86/kvm/x86.c, KVM_MMU_CR0/CR4/EFER_ROLE_BITS in mmu.h.
constexpr std::array kRules{
    // ---- CR0 ----
    EffectRule{Cr0, Cr0Pe::mask, Toggle, kNone, kNone, "CR0.PE", "no paging effect by itself (CR0.PG requires it)"},
    EffectRule{Cr0, cr0::WP::mask, Toggle, RoleRefresh, RoleRefresh | SwitchRoot, "CR0.WP",
               "supervisor-write rule, checked on each access (SDM 4.6): no flush; KVM 6.4+ re-inits the "
               "role and keeps the roots"},
    EffectRule{Cr0, cr0::PG::mask, Set, RoleRefresh, RoleRefresh | SwitchRoot, "CR0.PG 0->1",
               "new paging mode; nothing is cached while PG = 0, the clear already emptied the TLB"},
    EffectRule{Cr0, cr0::PG::mask, Clear, RoleRefresh | TlbFlushAll, RoleRefresh | TlbFlushAll | SwitchRoot, "CR0.PG 1->0",
               "SDM 4.10.4.1: clearing PG invalidates every entry of every PCID, global ones included"},
    EffectRule{Cr0, kAll & ~kCr0Named, Toggle, kNone, kNone, "CR0 other bits",
               "CD/NW/TS/...: SDM 4.10.4.1 says they may invalidate, never that they must"},
    // ---- CR3 ----
    EffectRule{Cr3, kAll, Write, TlbFlush, TlbFlush | SwitchRoot, "CR3 write",
               "SDM 4.10.4.1: MOV to CR3 invalidates the non-global entries of the PCID it loads (PCID 0 "
               "without CR4.PCIDE), even when the value does not change; the TDP root is untouched"},
    EffectRule{Cr3, Cr3NoFlush::mask, NoFlushWrite, kNone, SwitchRoot, "CR3 write, NOFLUSH",
               "SDM 4.10.4.1: with CR4.PCIDE = 1 and operand bit 63 set, nothing need be invalidated"},
    // ---- CR4 ----
    EffectRule{Cr4, cr4::PSE::mask, Toggle, RoleRefresh, RoleRefresh | SwitchRoot, "CR4.PSE", "4 MiB pages in 32-bit paging: a role bit"},
    EffectRule{Cr4, cr4::PAE::mask, Toggle, RoleRefresh | TlbFlushCurrent, RoleRefresh | TlbFlushCurrent | SwitchRoot, "CR4.PAE",
               "SDM 4.10.4.1: changing PAE invalidates the current PCID's entries; a role bit"},
    EffectRule{Cr4, cr4::PGE::mask, Toggle, TlbFlushAll, TlbFlushAll, "CR4.PGE",
               "SDM 4.10.4.1: changing PGE invalidates everything, global entries included; not a role bit"},
    EffectRule{Cr4, Cr4Pcide::mask, Set, kNone, kNone, "CR4.PCIDE 0->1",
               "SDM 4.10.4.1 asks for no flush (CR3[11:0] must be 0, so the current PCID stays 0)"},
    EffectRule{Cr4, Cr4Pcide::mask, Clear, TlbFlushAll, TlbFlushAll, "CR4.PCIDE 1->0",
               "SDM 4.10.4.1: clearing PCIDE invalidates every entry of every PCID"},
    EffectRule{Cr4, cr4::LA57::mask, Toggle, RoleRefresh, RoleRefresh | SwitchRoot, "CR4.LA57",
               "5-level paging: a role bit; writable only outside long mode, where nothing cached uses it"},
    EffectRule{Cr4, cr4::SMEP::mask, Set, RoleRefresh | TlbFlushCurrent, RoleRefresh | TlbFlushCurrent | SwitchRoot, "CR4.SMEP 0->1",
               "SDM 4.10.4.1: setting SMEP invalidates the current PCID's entries; a role bit"},
    EffectRule{Cr4, cr4::SMEP::mask, Clear, RoleRefresh, RoleRefresh | SwitchRoot, "CR4.SMEP 1->0",
               "checked on each access (SDM 4.6): no flush; a role bit"},
    EffectRule{Cr4, cr4::SMAP::mask, Toggle, RoleRefresh, RoleRefresh | SwitchRoot, "CR4.SMAP",
               "checked on each access (SDM 4.6): no flush; a role bit"},
    EffectRule{Cr4, cr4::PKE::mask, Toggle, RoleRefresh, RoleRefresh | SwitchRoot, "CR4.PKE",
               "protection keys: a role bit, no flush (KVM resets the role only); the software TLB re-walks "
               "entries filled under the other PKE value"},
    EffectRule{Cr4, kAll & ~kCr4Named, Toggle, kNone, kNone, "CR4 other bits",
               "VME/PVI/TSD/DE/.../PKS (not modelled): no paging effect in this model"},
    // ---- EFER ----
    EffectRule{Efer, efer::LME::mask, Toggle, RoleRefresh, RoleRefresh | SwitchRoot, "EFER.LME",
               "a role bit (KVM_MMU_EFER_ROLE_BITS); changes only with CR0.PG = 0 (#GP otherwise)"},
    EffectRule{Efer, efer::LMA::mask, Toggle, RoleRefresh, RoleRefresh | SwitchRoot, "EFER.LMA",
               "long mode active (CR0.PG && EFER.LME): the role's efer_lma"},
    EffectRule{Efer, efer::NXE::mask, Toggle, RoleRefresh, RoleRefresh | SwitchRoot, "EFER.NXE",
               "XD in effect: a role bit; WRMSR invalidates nothing, a refused fetch re-walks"},
    EffectRule{Efer, kAll & ~kEferNamed, Toggle, kNone, kNone, "EFER other bits", "SCE/SVME/...: no paging effect"},
    // ---- PKRU ----
    EffectRule{Pkru, kAll, Toggle, kNone, kNone, "PKRU",
               "SDM 4.6.2: PKRU is read on every data access to a user page; TLBs do not cache it"},
    // ---- RFLAGS ----
    EffectRule{Rflags, x86::rflags::AC::mask, Toggle, kNone, kNone, "RFLAGS.AC",
               "SDM 4.6: SMAP's AC exception is decided per access; KVM reads it live"},
    EffectRule{Rflags, kAll & ~x86::rflags::AC::mask, Toggle, kNone, kNone, "RFLAGS other bits", "no paging effect"},
};

}  // namespace

std::span<const EffectRule> effect_rules() { return kRules; }

Effects classify(const x86::Registers& before, Register reg, std::uint64_t value, tdp::RootPolicy roots,
                 mmu::MmuKind kind) {
  Effects out;
  if (reg == Cr3) {
    const bool no_flush = Cr4Pcide::get(before.cr4) && Cr3NoFlush::get(value);
    const Trigger fired = no_flush ? NoFlushWrite : Write;
    for (const EffectRule& r : kRules) {
      if (r.reg == Cr3 && r.trigger == fired) out |= r.under(kind);
    }
  } else {
    if (reg == Pkru) value &= 0xffff'ffffULL;
    const std::uint64_t old = value_of(before, reg);
    const std::uint64_t changed = old ^ value;
    for (const EffectRule& r : kRules) {
      if (r.reg != reg) continue;
      std::uint64_t hit = 0;
      switch (r.trigger) {
        case Toggle: hit = changed; break;
        case Set: hit = changed & value; break;
        case Clear: hit = changed & old; break;
        case Write:
        case NoFlushWrite: break;
      }
      if ((hit & r.mask) != 0) out |= r.under(kind);
    }
  }
  // KVM before 6.4: kvm_mmu_reset_context() unloaded the roots on every role change.
  if (roots == tdp::RootPolicy::Rebuild && out.has(RoleRefresh)) out |= NewRoot;
  return out;
}

std::uint64_t stored_value(Register reg, std::uint64_t value) {
  switch (reg) {
    case Cr3: return value & ~Cr3NoFlush::mask;
    case Pkru: return value & 0xffff'ffffULL;
    default: return value;
  }
}

std::uint64_t value_of(const x86::Registers& regs, Register reg) {
  switch (reg) {
    case Cr0: return regs.cr0;
    case Cr3: return regs.cr3;
    case Cr4: return regs.cr4;
    case Efer: return regs.efer;
    case Pkru: return regs.pkru;
    case Rflags: return regs.rflags;
  }
  return 0;
}

std::string_view to_string(Effect e) {
  switch (e) {
    case TlbFlush: return "tlb-flush";
    case TlbFlushCurrent: return "tlb-flush-current";
    case TlbFlushAll: return "tlb-flush-all";
    case RoleRefresh: return "role-refresh";
    case NewRoot: return "new-root";
    case SwitchRoot: return "switch-root";
  }
  return "?";
}

std::string to_string(Effects e) {
  std::string out;
  for (Effect one : {TlbFlush, TlbFlushCurrent, TlbFlushAll, RoleRefresh, NewRoot, SwitchRoot}) {
    if (!e.has(one)) continue;
    if (!out.empty()) out += '|';
    out += to_string(one);
  }
  return out.empty() ? "none" : out;
}

std::string_view to_string(Register r) {
  switch (r) {
    case Cr0: return "cr0";
    case Cr3: return "cr3";
    case Cr4: return "cr4";
    case Efer: return "efer";
    case Pkru: return "pkru";
    case Rflags: return "rflags";
  }
  return "?";
}

std::string_view to_string(Trigger t) {
  switch (t) {
    case Toggle: return "toggle";
    case Set: return "set";
    case Clear: return "clear";
    case Write: return "write";
    case NoFlushWrite: return "write-noflush";
  }
  return "?";
}

}  // namespace vmmu::vm
