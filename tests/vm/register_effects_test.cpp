// The register-effect table: every row against hand-written expectations, coverage of every
// bit of every register, and agreement with what the cpu role actually reads.

#include <gtest/gtest.h>

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "vmmu/vm/register_effects.hpp"
#include "vmmu/x86/guest_paging.hpp"
#include "vmmu/x86/walk.hpp"

namespace vmmu::vm {
namespace {

namespace cr0 = x86::cr0;
namespace cr4 = x86::cr4;
namespace efer = x86::efer;
using E = Effect;
using tdp::RootPolicy;

constexpr std::uint64_t kCr0Pe = cr0::PE::mask, kCr0Wp = cr0::WP::mask, kCr0Pg = cr0::PG::mask;
constexpr std::uint64_t kCr0Ts = 1ULL << 3, kCr0Cd = 1ULL << 30;
constexpr std::uint64_t kPcide = regbits::Cr4Pcide::mask, kNoFlush = regbits::Cr3NoFlush::mask;
constexpr std::uint64_t kOsfxsr = 1ULL << 9, kPks = cr4::PKS::mask;
constexpr std::uint64_t kSce = 1ULL << 0, kIf = 1ULL << 9;

// A 64-bit guest: paging on, WP, PAE, LME/LMA/NXE.
x86::Registers long_mode() {
  x86::Registers r;
  r.cr0 = kCr0Pe | kCr0Wp | kCr0Pg;
  r.cr3 = 0x1000;
  r.cr4 = cr4::PAE::mask;
  r.efer = efer::LME::mask | efer::LMA::mask | efer::NXE::mask;
  return r;
}
x86::Registers with_cr4(std::uint64_t bits) {
  x86::Registers r = long_mode();
  r.cr4 |= bits;
  return r;
}

struct Case {
  const char* what;
  x86::Registers before;
  Register reg;
  std::uint64_t value;  // written
  Effects keep;         // expected with RootPolicy::Keep
};

// Written from the manual and KVM, not from the table: expected under Keep; under Rebuild the
// same plus NewRoot exactly where RoleRefresh appears (checked separately below).
std::vector<Case> cases() {
  const x86::Registers lm = long_mode();
  x86::Registers off;  // paging off
  off.cr0 = kCr0Pe;
  return {
      {"CR0.WP 1->0", lm, Register::Cr0, lm.cr0 & ~kCr0Wp, E::RoleRefresh},
      {"CR0.WP 0->1", off, Register::Cr0, off.cr0 | kCr0Wp, E::RoleRefresh},
      {"CR0.PG 1->0", lm, Register::Cr0, lm.cr0 & ~kCr0Pg, E::RoleRefresh | E::TlbFlushAll},
      {"CR0.PG 0->1", off, Register::Cr0, off.cr0 | kCr0Pg, E::RoleRefresh},
      {"CR0.PE 1->0 (paging off)", off, Register::Cr0, 0, {}},
      {"CR0.CD set", lm, Register::Cr0, lm.cr0 | kCr0Cd, {}},
      {"CR0.TS set", lm, Register::Cr0, lm.cr0 | kCr0Ts, {}},
      {"CR0 rewritten unchanged", lm, Register::Cr0, lm.cr0, {}},
      {"CR3 same value", lm, Register::Cr3, lm.cr3, E::TlbFlush},
      {"CR3 new value", lm, Register::Cr3, 0x5000, E::TlbFlush},
      {"CR3 bit 63 without PCIDE", lm, Register::Cr3, 0x5000 | kNoFlush, E::TlbFlush},
      {"CR3 with PCIDE, flushing", with_cr4(kPcide), Register::Cr3, 0x5003, E::TlbFlush},
      {"CR3 with PCIDE, NOFLUSH", with_cr4(kPcide), Register::Cr3, 0x5003 | kNoFlush, {}},
      {"CR4.PSE set", lm, Register::Cr4, lm.cr4 | cr4::PSE::mask, E::RoleRefresh},
      {"CR4.PAE clear", lm, Register::Cr4, lm.cr4 & ~cr4::PAE::mask, E::RoleRefresh | E::TlbFlushCurrent},
      {"CR4.PAE set", off, Register::Cr4, cr4::PAE::mask, E::RoleRefresh | E::TlbFlushCurrent},
      {"CR4.PGE set", lm, Register::Cr4, lm.cr4 | cr4::PGE::mask, E::TlbFlushAll},
      {"CR4.PGE clear", with_cr4(cr4::PGE::mask), Register::Cr4, lm.cr4, E::TlbFlushAll},
      {"CR4.PCIDE set", lm, Register::Cr4, lm.cr4 | kPcide, {}},
      {"CR4.PCIDE clear", with_cr4(kPcide), Register::Cr4, lm.cr4, E::TlbFlushAll},
      {"CR4.LA57 set", off, Register::Cr4, cr4::LA57::mask, E::RoleRefresh},
      {"CR4.SMEP set", lm, Register::Cr4, lm.cr4 | cr4::SMEP::mask, E::RoleRefresh | E::TlbFlushCurrent},
      {"CR4.SMEP clear", with_cr4(cr4::SMEP::mask), Register::Cr4, lm.cr4, E::RoleRefresh},
      {"CR4.SMAP set", lm, Register::Cr4, lm.cr4 | cr4::SMAP::mask, E::RoleRefresh},
      {"CR4.SMAP clear", with_cr4(cr4::SMAP::mask), Register::Cr4, lm.cr4, E::RoleRefresh},
      {"CR4.PKE set", lm, Register::Cr4, lm.cr4 | cr4::PKE::mask, E::RoleRefresh},
      {"CR4.PKE clear", with_cr4(cr4::PKE::mask), Register::Cr4, lm.cr4, E::RoleRefresh},
      {"CR4.OSFXSR set", lm, Register::Cr4, lm.cr4 | kOsfxsr, {}},
      {"CR4.PKS set (not modelled)", lm, Register::Cr4, lm.cr4 | kPks, {}},
      {"CR4.PGE and SMEP set together", lm, Register::Cr4, lm.cr4 | cr4::PGE::mask | cr4::SMEP::mask,
       E::TlbFlushAll | E::TlbFlushCurrent | E::RoleRefresh},
      {"CR4 rewritten unchanged", lm, Register::Cr4, lm.cr4, {}},
      {"EFER rewritten unchanged", off, Register::Efer, 0, {}},
      {"EFER.LME set", off, Register::Efer, efer::LME::mask, E::RoleRefresh},
      {"EFER.LMA clear", lm, Register::Efer, lm.efer & ~efer::LMA::mask, E::RoleRefresh},
      {"EFER.NXE clear", lm, Register::Efer, lm.efer & ~efer::NXE::mask, E::RoleRefresh},
      {"EFER.SCE set", lm, Register::Efer, lm.efer | kSce, {}},
      {"PKRU change", lm, Register::Pkru, 0x5555'5554, {}},
      {"PKRU high bits ignored", lm, Register::Pkru, 0xffff'ffff'0000'0000ULL, {}},
      {"RFLAGS.AC set", lm, Register::Rflags, lm.rflags | x86::rflags::AC::mask, {}},
      {"RFLAGS.IF set", lm, Register::Rflags, lm.rflags | kIf, {}},
  };
}

TEST(RegisterEffects, EveryCaseMatchesTheHandWrittenExpectation) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.what);
    const Effects keep = classify(c.before, c.reg, c.value, RootPolicy::Keep);
    EXPECT_EQ(to_string(keep), to_string(c.keep));
    Effects rebuild = c.keep;
    if (c.keep.has(E::RoleRefresh)) rebuild |= E::NewRoot;
    EXPECT_EQ(to_string(classify(c.before, c.reg, c.value, RootPolicy::Rebuild)), to_string(rebuild));
  }
}

// The shadow column: the guest's CR3 and cpu role pick the shadow root, so exactly the
// writes that change the role or write CR3 switch roots (SwitchRoot); flushes are the
// architecture's, as under TDP; and no write ever drops the root (NewRoot) under Keep.
TEST(RegisterEffects, ShadowColumnSwitchesRootOnEveryCr3WriteAndRoleChangeAndNeverZaps) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.what);
    Effects shadow = c.keep;
    if (c.keep.has(E::RoleRefresh) || c.reg == Register::Cr3) shadow |= E::SwitchRoot;
    EXPECT_EQ(to_string(classify(c.before, c.reg, c.value, RootPolicy::Keep, mmu::MmuKind::Shadow)),
              to_string(shadow));
    EXPECT_FALSE(classify(c.before, c.reg, c.value, RootPolicy::Keep, mmu::MmuKind::Tdp).has(E::SwitchRoot));
  }
}

TEST(RegisterEffects, ShadowCr0WpAndSmepFlipsAreRoleChangesNotZaps) {
  const x86::Registers lm = long_mode();
  const Effects wp = classify(lm, Register::Cr0, lm.cr0 & ~kCr0Wp, RootPolicy::Keep, mmu::MmuKind::Shadow);
  EXPECT_EQ(to_string(wp), to_string(E::RoleRefresh | E::SwitchRoot));
  const Effects smep_off =
      classify(with_cr4(cr4::SMEP::mask), Register::Cr4, lm.cr4, RootPolicy::Keep, mmu::MmuKind::Shadow);
  EXPECT_EQ(to_string(smep_off), to_string(E::RoleRefresh | E::SwitchRoot));
  const Effects noflush =
      classify(with_cr4(kPcide), Register::Cr3, 0x5003 | kNoFlush, RootPolicy::Keep, mmu::MmuKind::Shadow);
  EXPECT_EQ(to_string(noflush), to_string(Effects(E::SwitchRoot)));
}

TEST(RegisterEffects, EveryRowIsExercisedByACase) {
  // A row fires in a case when the case changes (or, for CR3, writes) the row's bits in the
  // row's direction; every row of the table must be met by at least one hand-written case.
  std::set<std::string> met;
  for (const Case& c : cases()) {
    const std::uint64_t old = value_of(c.before, c.reg);
    const std::uint64_t value = c.reg == Register::Pkru ? c.value & 0xffff'ffffULL : c.value;
    const bool no_flush = regbits::Cr4Pcide::get(c.before.cr4) && regbits::Cr3NoFlush::get(c.value);
    for (const EffectRule& r : effect_rules()) {
      if (r.reg != c.reg) continue;
      bool fires = false;
      switch (r.trigger) {
        case Trigger::Toggle: fires = ((old ^ value) & r.mask) != 0; break;
        case Trigger::Set: fires = ((~old & value) & r.mask) != 0; break;
        case Trigger::Clear: fires = ((old & ~value) & r.mask) != 0; break;
        case Trigger::Write: fires = !no_flush; break;
        case Trigger::NoFlushWrite: fires = no_flush; break;
      }
      if (fires) met.insert(std::string(r.name));
    }
  }
  for (const EffectRule& r : effect_rules()) EXPECT_TRUE(met.count(std::string(r.name))) << r.name;
}

TEST(RegisterEffects, EveryBitOfEveryRegisterIsClassifiedOncePerDirection) {
  for (Register reg : {Register::Cr0, Register::Cr4, Register::Efer, Register::Pkru, Register::Rflags}) {
    for (unsigned bit = 0; bit < 64; ++bit) {
      const std::uint64_t m = 1ULL << bit;
      unsigned sets = 0, clears = 0;
      for (const EffectRule& r : effect_rules()) {
        if (r.reg != reg || (r.mask & m) == 0) continue;
        sets += r.trigger == Trigger::Toggle || r.trigger == Trigger::Set ? 1 : 0;
        clears += r.trigger == Trigger::Toggle || r.trigger == Trigger::Clear ? 1 : 0;
      }
      EXPECT_EQ(sets, 1u) << to_string(reg) << " bit " << bit;
      EXPECT_EQ(clears, 1u) << to_string(reg) << " bit " << bit;
    }
  }
  unsigned cr3_write = 0, cr3_noflush = 0;
  for (const EffectRule& r : effect_rules()) {
    EXPECT_FALSE(r.why.empty()) << r.name;
    EXPECT_FALSE(r.effects.has(E::NewRoot)) << r.name << ": the table is written for RootPolicy::Keep";
    EXPECT_FALSE(r.shadow.has(E::NewRoot)) << r.name << ": the table is written for RootPolicy::Keep";
    cr3_write += r.reg == Register::Cr3 && r.trigger == Trigger::Write ? 1 : 0;
    cr3_noflush += r.reg == Register::Cr3 && r.trigger == Trigger::NoFlushWrite ? 1 : 0;
  }
  EXPECT_EQ(cr3_write, 1u);
  EXPECT_EQ(cr3_noflush, 1u);
}

// Base states the exhaustive checks start from: paging off, 32-bit, PAE, long mode, 5-level,
// with every modifier on.
std::vector<x86::Registers> bases() {
  x86::Registers off;
  x86::Registers bits32;
  bits32.cr0 = kCr0Pe | kCr0Pg | kCr0Wp;
  bits32.cr4 = cr4::PSE::mask;
  x86::Registers pae = bits32;
  pae.cr4 = cr4::PAE::mask;
  pae.efer = efer::NXE::mask;
  x86::Registers lm = long_mode();
  x86::Registers la57 = lm;
  la57.cr4 |= cr4::LA57::mask;
  x86::Registers all = lm;
  all.cr4 |= cr4::PGE::mask | cr4::SMEP::mask | cr4::SMAP::mask | cr4::PKE::mask | kPcide;
  all.pkru = 0x0000'000c;
  all.rflags |= x86::rflags::AC::mask;
  return {off, bits32, pae, lm, la57, all};
}

x86::Registers with_value(x86::Registers r, Register reg, std::uint64_t v) {
  switch (reg) {
    case Register::Cr0: r.cr0 = v; break;
    case Register::Cr3: r.cr3 = v; break;
    case Register::Cr4: r.cr4 = v; break;
    case Register::Efer: r.efer = v; break;
    case Register::Pkru: r.pkru = static_cast<std::uint32_t>(v); break;
    case Register::Rflags: r.rflags = v; break;
  }
  return r;
}

// The walk's rules as GuestPaging derives them, without the inputs read at use time.
bool same_walk_rules(const x86::GuestPaging& a, const x86::GuestPaging& b) {
  if (a.mode() != b.mode() || a.linear_bits() != b.linear_bits() || a.protection_keys() != b.protection_keys()) {
    return false;
  }
  const x86::GuestFormatConfig& ca = a.format_config();
  const x86::GuestFormatConfig& cb = b.format_config();
  if (ca.rsvd != cb.rsvd || ca.leaf_levels != cb.leaf_levels || ca.pdpte_levels != cb.pdpte_levels ||
      ca.nx != cb.nx || ca.protection_keys != cb.protection_keys) {
    return false;
  }
  for (unsigned i = 0; i < 16; ++i) {
    if (a.permission_faults(i) != b.permission_faults(i)) return false;
  }
  for (Access acc : {Access::read(), Access::write(true), Access::fetch(), Access::fetch(true)}) {
    if (a.access_error_code(acc) != b.access_error_code(acc)) return false;
  }
  return true;
}

TEST(RegisterEffects, ABitChangeWithoutRoleRefreshLeavesTheWalkRulesAlone) {
  // Independent of the table: derive the cpu role before and after every single-bit change
  // and require a RoleRefresh whenever the rules a walk uses differ. (PKRU and RFLAGS.AC are
  // read at use time and held equal here; CR3 only moves the root.)
  for (const x86::Registers& base : bases()) {
    for (Register reg : {Register::Cr0, Register::Cr4, Register::Efer}) {
      for (unsigned bit = 0; bit < 64; ++bit) {
        const std::uint64_t value = value_of(base, reg) ^ (1ULL << bit);
        const Effects e = classify(base, reg, value, RootPolicy::Keep);
        if (e.has(E::RoleRefresh)) continue;
        const auto before = x86::GuestPaging::from(base);
        const auto after = x86::GuestPaging::from(with_value(base, reg, value));
        EXPECT_TRUE(same_walk_rules(before, after)) << to_string(reg) << " bit " << bit << " needs a role refresh";
      }
    }
  }
}

TEST(RegisterEffects, KeepNeverNeedsANewRootRebuildDoesOnEveryRoleChange) {
  for (const x86::Registers& base : bases()) {
    for (Register reg : {Register::Cr0, Register::Cr3, Register::Cr4, Register::Efer, Register::Pkru,
                         Register::Rflags}) {
      for (unsigned bit = 0; bit < 64; ++bit) {
        const std::uint64_t value = value_of(base, reg) ^ (1ULL << bit);
        const Effects keep = classify(base, reg, value, RootPolicy::Keep);
        const Effects rebuild = classify(base, reg, value, RootPolicy::Rebuild);
        EXPECT_FALSE(keep.has(E::NewRoot));
        EXPECT_EQ(rebuild.has(E::NewRoot), keep.has(E::RoleRefresh));
        EXPECT_EQ(rebuild, keep | (keep.has(E::RoleRefresh) ? Effects(E::NewRoot) : Effects()));
      }
    }
  }
}

TEST(RegisterEffects, StoredValueDropsTheNoFlushBitAndPkruHighBits) {
  EXPECT_EQ(stored_value(Register::Cr3, 0x5003 | kNoFlush), 0x5003u);
  EXPECT_EQ(stored_value(Register::Pkru, 0x1'0000'0004ULL), 4u);
  EXPECT_EQ(stored_value(Register::Cr4, ~0ULL), ~0ULL);
}

TEST(RegisterEffects, NamesPrint) {
  EXPECT_EQ(to_string(Effects()), "none");
  EXPECT_EQ(to_string(E::TlbFlush | E::RoleRefresh), "tlb-flush|role-refresh");
  EXPECT_EQ(to_string(Register::Efer), "efer");
  EXPECT_EQ(to_string(Trigger::NoFlushWrite), "write-noflush");
}

}  // namespace
}  // namespace vmmu::vm
