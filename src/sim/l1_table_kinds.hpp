#pragma once
// What differs between L1 hypervisors on VMX and SVM (l1_hypervisor.cpp): the format of the
// entries L1 writes for L2, the root pointer it gives VM entry, the flush before the first
// entry, and which reflected exit a missing path explains. Everything else is shared.

#include <cstdint>
#include <memory>

#include "vmmu/core/address.hpp"
#include "vmmu/memory/memslots.hpp"
#include "vmmu/nested/shadow_ept_mmu.hpp"
#include "vmmu/nested/shadow_npt_mmu.hpp"
#include "vmmu/sim/scenario.hpp"
#include "vmmu/x86/ept_entry.hpp"
#include "vmmu/x86/guest_entry.hpp"
#include "vmmu/x86/walk.hpp"

namespace vmmu::sim {

// L1 on VMX: a 4-level EPT (RWX, write-back leaves), INVEPT single-context before the first entry.
struct L1Ept {
  using Mmu = nested::ShadowEptMmu;
  using Vcpu = nested::ShadowEptVcpu;
  using Pointer = std::uint64_t;  // the EPTP
  static constexpr const char* kTables = "EPT";
  static constexpr std::uint64_t kTableRights = x86::ept::R::mask | x86::ept::W::mask | x86::ept::X::mask;
  static constexpr std::uint64_t kLeafRights = kTableRights | x86::ept::MemType::set(0, x86::ept::kMemTypeWb);

  static bool present(std::uint64_t e) { return x86::ept::present(e); }
  static Gpa address(std::uint64_t e) { return Gpa(x86::ept::Addr::bits(e)); }
  static Pointer pointer(Gpa root, const NestedParams& p) {
    namespace eptp = x86::ept::eptp;
    return root.raw() | eptp::MemType::set(0, x86::ept::kMemTypeWb) | eptp::WalkLengthMinus1::set(0, 4 - 1) |
           (p.ept_ad ? eptp::AccessedDirty::mask : 0);
  }
  static std::unique_ptr<Mmu> create(Memslots& slots) { return Mmu::create(slots, x86::EptCapabilities{}); }
  // A fresh EPTP: flush its context before the first entry, as KVM does for a new root.
  static void flush(Mmu& mmu, Pointer p) { mmu.invept_single(p); }
  static void enter(Mmu& mmu, Vcpu& vcpu, Pointer p) { (void)mmu.load_eptp(vcpu, p); }  // invalid: next access says
  // Every entry L1 writes grants everything: a violation is a missing path.
  static bool missing(const Mmu::Exit& e) { return e.fault.kind == x86::EptFaultKind::Violation; }
};

// L1 on SVM: 4-level x86-64 nested tables (P|RW|US, NX clear), VMRUN with TLB_CONTROL
// flush-all before the first entry.
struct L1Npt {
  using Mmu = nested::ShadowNptMmu;
  using Vcpu = nested::ShadowNptVcpu;
  using Pointer = nested::NptRoot;
  static constexpr const char* kTables = "nested page tables";
  static constexpr std::uint64_t kTableRights = x86::gpte::P::mask | x86::gpte::RW::mask | x86::gpte::US::mask;
  static constexpr std::uint64_t kLeafRights = kTableRights;

  static bool present(std::uint64_t e) { return x86::gpte::P::get(e); }
  static Gpa address(std::uint64_t e) { return Gpa(x86::gpte::Addr::bits(e)); }
  static Pointer pointer(Gpa root, const NestedParams&) { return {root.raw(), false, true}; }
  static std::unique_ptr<Mmu> create(Memslots& slots) { return Mmu::create(slots, x86::CpuModel{}); }
  static void flush(Mmu& mmu, Pointer) { mmu.flush_all(); }
  static void enter(Mmu& mmu, Vcpu& vcpu, Pointer p) { (void)mmu.load_ncr3(vcpu, p); }  // invalid: next access says
  // Only a not-present #NPF is a missing path (L1 grants everything it maps).
  static bool missing(const Mmu::Exit& e) {
    return e.fault.kind == nested::NptFaultKind::Npf && (e.fault.exit_info1 & x86::pferr::kPresent) == 0;
  }
};

}  // namespace vmmu::sim
