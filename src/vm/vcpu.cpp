// Vcpu: registers, the effects of writing them, and statistics. Memory access is in
// vcpu_access.cpp.

#include "vmmu/vm/vcpu.hpp"

#include "mmu_backend.hpp"
#include "vmmu/vm/vm.hpp"

namespace vmmu::vm {
namespace {

namespace cr0 = x86::cr0;
namespace efer = x86::efer;

// EFER.LMA as hardware keeps it: long mode is active when paging is on with LME set.
std::uint64_t with_derived_lma(std::uint64_t efer_value, std::uint64_t cr0_value) {
  return efer::LMA::set(efer_value, cr0::PG::get(cr0_value) && efer::LME::get(efer_value));
}

}  // namespace

Vcpu::Vcpu(Vm& vm, std::size_t index)
    : vm_(vm),
      index_(index),
      cpu_(vm.config().cpu),
      root_policy_(vm.config().tdp.policies.roots),
      kind_(vm.config().mmu),
      paging_(x86::GuestPaging::from(regs_, cpu_)),
      mmu_(vm.mmu_->vcpu_context(tlb_)) {
  mmu_->load_root(paging_, pcid(), true);
}

Vcpu::~Vcpu() = default;

std::uint16_t Vcpu::pcid() const {
  return regbits::Cr4Pcide::get(regs_.cr4) ? static_cast<std::uint16_t>(regbits::Cr3Pcid::get(regs_.cr3)) : 0;
}

Effects Vcpu::set_cr0(std::uint64_t value) { return write_register(Register::Cr0, value); }
Effects Vcpu::set_cr3(std::uint64_t value) { return write_register(Register::Cr3, value); }
Effects Vcpu::set_cr4(std::uint64_t value) { return write_register(Register::Cr4, value); }
Effects Vcpu::set_efer(std::uint64_t value) { return write_register(Register::Efer, value); }
Effects Vcpu::set_pkru(std::uint32_t value) { return write_register(Register::Pkru, value); }
Effects Vcpu::set_rflags(std::uint64_t value) { return write_register(Register::Rflags, value); }

Effects Vcpu::write_register(Register reg, std::uint64_t value) {
  bump(c_.register_writes);
  const x86::Registers before = regs_;
  if (reg == Register::Efer) value = with_derived_lma(value, regs_.cr0);  // LMA is not writable
  Effects e = classify(before, reg, value, root_policy_, kind_);
  const std::uint64_t stored = stored_value(reg, value);
  switch (reg) {
    case Register::Cr0: regs_.cr0 = stored; break;
    case Register::Cr3: regs_.cr3 = stored; break;
    case Register::Cr4: regs_.cr4 = stored; break;
    case Register::Efer: regs_.efer = stored; break;
    case Register::Pkru: regs_.pkru = static_cast<std::uint32_t>(stored); break;
    case Register::Rflags: regs_.rflags = stored; break;
  }
  if (reg == Register::Cr0) {
    // Setting or clearing PG with LME set enters or leaves long mode: LMA follows.
    const std::uint64_t lma = with_derived_lma(regs_.efer, regs_.cr0);
    if (lma != regs_.efer) {
      e |= classify(before, Register::Efer, lma, root_policy_, kind_);
      regs_.efer = lma;
    }
  }
  apply(e);
  return e;
}

Effects Vcpu::set_registers(const x86::Registers& regs) {
  bump(c_.register_writes);
  const x86::Registers before = regs_;
  Effects e;
  e |= classify(before, Register::Cr0, regs.cr0, root_policy_, kind_);
  e |= classify(before, Register::Cr4, regs.cr4, root_policy_, kind_);
  e |= classify(before, Register::Efer, regs.efer, root_policy_, kind_);
  e |= classify(before, Register::Pkru, regs.pkru, root_policy_, kind_);
  e |= classify(before, Register::Rflags, regs.rflags, root_policy_, kind_);
  if (regs.cr3 != before.cr3) {
    // A state load is not a MOV to CR3: it reloads CR3 only when it differs, under the new CR4.
    x86::Registers mid = before;
    mid.cr4 = regs.cr4;
    e |= classify(mid, Register::Cr3, regs.cr3, root_policy_, kind_);
  }
  regs_ = regs;
  regs_.cr3 = stored_value(Register::Cr3, regs.cr3);
  apply(e);
  return e;
}

void Vcpu::apply(Effects e) {
  // One flush, the widest asked for, under the PCID the write left current. A new root also
  // flushes everything: loading a root flushes the current context (KVM's kvm_mmu_load), so
  // under RootPolicy::Rebuild a role change costs the guest its TLB too.
  if (e.has(Effect::TlbFlushAll) || e.has(Effect::NewRoot)) {
    tlb_.flush(TlbScope::All, pcid());
  } else if (e.has(Effect::TlbFlushCurrent)) {
    tlb_.flush(TlbScope::Pcid, pcid());
  } else if (e.has(Effect::TlbFlush)) {
    tlb_.flush(TlbScope::NonGlobal, pcid());
  }
  if (e.flushes() || e.has(Effect::NewRoot)) bump(c_.tlb_flushes);
  if (e.has(Effect::RoleRefresh)) {
    paging_ = x86::GuestPaging::from(regs_, cpu_);
    bump(c_.role_refreshes);
  } else {
    refresh_live();
  }
  if (e.has(Effect::NewRoot)) {
    mmu_->unload_root();
    bump(c_.root_unloads);
  }
  // The MMU's side (shadow: its tables stand for the guest's; TDP: nothing, its column never
  // switches roots and the software TLB was flushed above).
  if (e.has(Effect::SwitchRoot)) {
    mmu_->load_root(paging_, pcid(), e.flushes());
    bump(c_.root_switches);
  } else if (e.flushes()) {
    mmu_->flush_tlb(paging_);
  }
}

void Vcpu::refresh_live() {
  // GuestPaging keeps copies of the registers a walk reads at use time (CR3's root, PKRU,
  // RFLAGS.AC); they are not role inputs, but the copy must follow them. GuestPaging has no
  // cheaper way to update them than being rebuilt (not counted as a role refresh).
  const x86::Registers& seen = paging_.registers();
  // CR4.PGE too: the TLB fill reads it from here to tell global entries.
  const bool ac_changed = x86::rflags::AC::get(seen.rflags) != x86::rflags::AC::get(regs_.rflags);
  const bool pge_changed = x86::cr4::PGE::get(seen.cr4) != x86::cr4::PGE::get(regs_.cr4);
  if (seen.cr3 != regs_.cr3 || seen.pkru != regs_.pkru || ac_changed || pge_changed)
    paging_ = x86::GuestPaging::from(regs_, cpu_);
}

void Vcpu::invlpg(Gva gva) {
  const std::uint64_t linear = paging_.linear(gva);
  tlb_.invalidate_page(linear >> kPageShift, pcid());
  mmu_->invlpg(paging_, Gva(linear));
  bump(c_.tlb_flushes);
}

Status<GuestExit> Vcpu::invpcid(x86::InvpcidType type, std::uint16_t pcid_value, Gva linear) {
  // SDM vol. 2A, INVPCID: #GP(0) for a PCID above 4095, and for a PCID other than 0 in a
  // single-PCID type while CR4.PCIDE = 0.
  const bool one_pcid = type == x86::InvpcidType::Address || type == x86::InvpcidType::SingleContext;
  if (pcid_value > regbits::Cr3Pcid::mask ||
      (one_pcid && pcid_value != 0 && !regbits::Cr4Pcide::get(regs_.cr4))) {
    return Unexpected{GuestExit{GuestExitKind::GeneralProtection, 0, linear, Gpa()}};
  }
  switch (type) {
    case x86::InvpcidType::Address: tlb_.invalidate_pcid_page(linear.raw() >> kPageShift, pcid_value); break;
    case x86::InvpcidType::SingleContext: tlb_.flush(TlbScope::NonGlobal, pcid_value); break;
    case x86::InvpcidType::AllContexts: tlb_.flush(TlbScope::All, pcid_value); break;
    case x86::InvpcidType::AllNonGlobal: tlb_.flush(TlbScope::NonGlobalAll, pcid_value); break;
  }
  mmu_->invpcid(type, pcid_value, linear);
  bump(c_.tlb_flushes);
  return {};
}

VcpuStats Vcpu::stats() const {
  auto get = [](const std::atomic<std::uint64_t>& c) { return c.load(std::memory_order_relaxed); };
  const mmu::VcpuMmuStats m = mmu_->stats();
  return VcpuStats{get(c_.register_writes), get(c_.role_refreshes), get(c_.tlb_flushes), get(c_.root_unloads),
                   get(c_.root_switches),   m.tlb_hits,             m.walks,             get(c_.page_faults)};
}

}  // namespace vmmu::vm
