#pragma once
// Vcpu: one virtual CPU -- its paging registers, its cpu role (how the guest walks, derived
// from the registers), its software TLB and its context on the VM's MMU (mmu::VcpuContext,
// whichever MMU the VM chose) -- and memory access at guest-virtual addresses the way the
// hardware does it.
//
//   read/write/fetch(gva) ─► VcpuContext::access ─┬─ TDP: TLB hit allowed by the current role,
//   (the guest's own #PF / #GP come out)          │  else x86::walk of the guest's tables
//                                                 │  through the TDP tables; data through them
//                                                 └─ shadow: the hardware walk of the shadow
//                                                    tables; on a miss the shadow fault path
//
// Register writes: every setter classifies the write with the register-effect table
// (vmmu/vm/register_effects.hpp, the VM's MMU's column) and applies the effects: TLB flushes,
// a role refresh, a root switch (shadow), and with RootPolicy::Rebuild a root unload. It
// returns what it applied.
//
// Register values are taken as given (no #GP for combinations hardware refuses); EFER.LMA is
// kept equal to CR0.PG && EFER.LME by set_cr0 / set_efer, as hardware does, and taken as given
// by set_registers (a state load, like KVM_SET_SREGS).
//
// Thread safety: one thread at a time per Vcpu; statistics may be read from any thread.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "vmmu/core/access.hpp"
#include "vmmu/core/address.hpp"
#include "vmmu/core/result.hpp"
#include "vmmu/mmu/mmu.hpp"
#include "vmmu/tdp/tdp_mmu.hpp"
#include "vmmu/vm/guest_exit.hpp"
#include "vmmu/vm/register_effects.hpp"
#include "vmmu/vm/soft_tlb.hpp"
#include "vmmu/x86/guest_paging.hpp"
#include "vmmu/x86/registers.hpp"
#include "vmmu/x86/walk_options.hpp"

namespace vmmu::vm {

class Vm;

struct VcpuStats {
  std::uint64_t register_writes = 0;
  std::uint64_t role_refreshes = 0;  // cpu role recomputed (RoleRefresh)
  std::uint64_t tlb_flushes = 0;     // flush effects applied (any scope) and INVLPGs
  std::uint64_t root_unloads = 0;    // roots dropped (NewRoot, RootPolicy::Rebuild)
  std::uint64_t root_switches = 0;   // roots switched to (SwitchRoot: shadow)
  std::uint64_t tlb_hits = 0;        // pages translated without a guest walk (TLB / shadow tables)
  std::uint64_t walks = 0;           // guest page walks
  std::uint64_t page_faults = 0;     // #PF exits
};

// A gva translated for one access (what the TLB or the walk gave).
struct GvaTranslation {
  Gpa gpa;
  std::uint64_t page_size = 0;  // guest leaf size (4K with paging off)
  bool from_tlb = false;
};

class Vcpu {
 public:
  ~Vcpu();
  Vcpu(const Vcpu&) = delete;
  Vcpu& operator=(const Vcpu&) = delete;

  [[nodiscard]] std::size_t index() const { return index_; }
  [[nodiscard]] Vm& vm() { return vm_; }

  // ---- registers ---------------------------------------------------------------------
  [[nodiscard]] const x86::Registers& registers() const { return regs_; }
  // The cpu role (KVM's cpu_role): recomputed on RoleRefresh; the registers a walk reads
  // live (CR3's root, PKRU, RFLAGS.AC) are copied into it on every write of them.
  [[nodiscard]] const x86::GuestPaging& paging() const { return paging_; }
  // PCID the TLB uses now: CR3[11:0] with CR4.PCIDE, else 0.
  [[nodiscard]] std::uint16_t pcid() const;

  Effects set_cr0(std::uint64_t value);
  Effects set_cr3(std::uint64_t value);  // bit 63: NOFLUSH with CR4.PCIDE (not stored)
  Effects set_cr4(std::uint64_t value);
  Effects set_efer(std::uint64_t value);
  Effects set_pkru(std::uint32_t value);
  Effects set_rflags(std::uint64_t value);
  // Loads every register at once (VM entry, KVM_SET_SREGS): the union of each register's
  // effects, CR3 counting as written only when its value changes.
  Effects set_registers(const x86::Registers& regs);
  // INVLPG: drops the TLB's entries for the page holding `gva` (SDM 4.10.4.1).
  void invlpg(Gva gva);
  // INVPCID of `type` for `pcid` (Address: the page holding linear address `linear`), in the
  // software TLB and the MMU's roots (shadow: cached roots of that PCID). Errors:
  // GeneralProtection (a PCID above 4095, or a single-PCID type naming a PCID other than 0
  // with CR4.PCIDE clear).
  Status<GuestExit> invpcid(x86::InvpcidType type, std::uint16_t pcid, Gva linear);

  // ---- memory --------------------------------------------------------------------------
  // Guest-virtual access of any length, page by page. `user`: made at CPL 3.
  // Errors (GuestExit): PageFault with the walker's error code, GeneralProtection, Mmio,
  // RingFull, OutOfRange, OutOfMemory; exit.gva is the first byte not transferred (bytes
  // before its page have been transferred).
  Status<GuestExit> read(Gva gva, std::span<std::byte> out, bool user = false);
  Status<GuestExit> write(Gva gva, std::span<const std::byte> in, bool user = false);
  Status<GuestExit> fetch(Gva gva, std::span<std::byte> out, bool user = false);

  // gva -> gpa for `access` (TLB, else a walk that sets A/D and fills the TLB).
  // Errors: as read / write.
  Result<GvaTranslation, GuestExit> translate(Gva gva, Access access);
  // One access at `gva` inside its page, the way the hardware makes it: translated, then
  // through the MMU to memory, where `use` gets the host address of the byte (and must stay
  // in that page, and not call the MMU). Errors: as read / write.
  Result<GvaTranslation, GuestExit> access(Gva gva, Access access, mmu::HostUse use);

  // Guest-physical access by this vCPU through the MMU (what it does with paging off).
  // Errors: Mmio, RingFull, OutOfRange, OutOfMemory (exit.gpa: the first byte not transferred).
  Status<GuestExit> read_gpa(Gpa gpa, std::span<std::byte> out);
  Status<GuestExit> write_gpa(Gpa gpa, std::span<const std::byte> in);

  // ---- parts -----------------------------------------------------------------------------
  [[nodiscard]] mmu::VcpuContext& mmu() { return *mmu_; }
  // The TDP MMU's handle for TDP-only operations; null under shadow.
  [[nodiscard]] tdp::VcpuMmu* tdp_mmu() { return mmu_->tdp(); }
  // The software TLB (filled under TDP; the shadow MMU's hardware walk needs none).
  [[nodiscard]] const SoftTlb& tlb() const { return tlb_; }
  [[nodiscard]] VcpuStats stats() const;
  // Whether walks write A/D bits back (default: yes).
  void set_walk_options(x86::WalkOptions o) { mmu_->set_walk_options(o); }

 private:
  friend class Vm;
  Vcpu(Vm& vm, std::size_t index);

  Effects write_register(Register reg, std::uint64_t value);
  void apply(Effects e);
  void refresh_live();
  // `copy(host, offset, bytes)` for each page-sized piece after translating it.
  template <class Copy>
  Status<GuestExit> transfer(Gva gva, std::size_t size, Access access, Copy&& copy);
  template <class Copy>
  Status<GuestExit> transfer_gpa(Gpa gpa, std::size_t size, Access access, Copy&& copy);

  static void bump(std::atomic<std::uint64_t>& c) {
    c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }

  Vm& vm_;
  std::size_t index_;
  x86::CpuModel cpu_;
  tdp::RootPolicy root_policy_;
  mmu::MmuKind kind_;
  x86::Registers regs_{};
  x86::GuestPaging paging_;
  SoftTlb tlb_;
  std::unique_ptr<mmu::VcpuContext> mmu_;
  struct Counters {
    std::atomic<std::uint64_t> register_writes{0}, role_refreshes{0}, tlb_flushes{0}, root_unloads{0},
        root_switches{0}, page_faults{0};
  } c_;
};

}  // namespace vmmu::vm
