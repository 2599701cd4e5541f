// Vcpu memory access: gva -> gpa through the software TLB or a guest walk whose table
// accesses go through the TDP MMU, then the data through the TDP MMU too.

#include <algorithm>
#include <bit>

#include "guest_copy.hpp"
#include "tdp_table_memory.hpp"
#include "vmmu/vm/vcpu.hpp"
#include "vmmu/vm/vm.hpp"
#include "vmmu/x86/walk.hpp"

namespace vmmu::vm {
namespace {

namespace gpte = x86::gpte;
constexpr std::uint64_t k32 = 0xffff'ffffULL;

GuestExit exit_of(tdp::AccessExit e, Gva gva, Gpa gpa) {
  switch (e) {
    case tdp::AccessExit::Mmio: return {GuestExitKind::Mmio, 0, gva, gpa};
    case tdp::AccessExit::RingFull: return {GuestExitKind::RingFull, 0, gva, gpa};
    case tdp::AccessExit::OutOfRange: return {GuestExitKind::OutOfRange, 0, gva, gpa};
    case tdp::AccessExit::OutOfMemory: return {GuestExitKind::OutOfMemory, 0, gva, gpa};
  }
  return {GuestExitKind::Mmio, 0, gva, gpa};
}

std::uint8_t rights_of(const x86::Translation& t) {
  return static_cast<std::uint8_t>((t.user ? gpte::kAccUser : 0) | (t.writable ? gpte::kAccWrite : 0) |
                                   (t.nx ? 0 : gpte::kAccExec));
}

}  // namespace

Result<GvaTranslation, GuestExit> Vcpu::translate(Gva gva, Access access) {
  if (paging_.mode() == x86::PagingMode::Off) return GvaTranslation{Gpa(gva.raw() & k32), kPageSize, false};
  const std::uint64_t linear = paging_.linear_bits() == 32 ? gva.raw() & k32 : gva.raw();
  const TlbEntry* e = tlb_.lookup(linear >> kPageShift, pcid());
  // A hit is used only if the current role allows the access (exactly the walker's check), a
  // write finds D already set, and the protection key was cached under the current CR4.PKE;
  // anything else walks again, as hardware re-walks before faulting or setting D.
  if (e != nullptr && e->pke == paging_.protection_keys() && (e->dirty || !access.is_write()) &&
      ((static_cast<unsigned>(paging_.permission_faults(paging_.permission_index(access))) >> e->rights) & 1u) == 0 &&
      !((e->rights & gpte::kAccUser) != 0 && paging_.protection_key_denies(e->key, access))) {
    bump(c_.tlb_hits);
    return GvaTranslation{gpa_of(Gfn(e->gfn)) + (linear & (kPageSize - 1)), kPageSize << e->size_shift, true};
  }
  return walk(gva, linear, access);
}

Result<GvaTranslation, GuestExit> Vcpu::walk(Gva gva, std::uint64_t linear, Access access) {
  bump(c_.walks);
  const std::uint64_t vpn = linear >> kPageShift;
  detail::TdpTableMemory tables(vm_.mmu(), mmu_);
  const Result<x86::Translation, x86::WalkFault> r = x86::walk(paging_, tables, Gva(linear), access, walk_options_);
  if (const std::optional<tdp::AccessExit> ex = tables.exit()) return Unexpected{exit_of(*ex, gva, tables.exit_gpa())};
  if (!r) {
    // A page fault invalidates the faulting address's entries (SDM 4.10.4.1).
    tlb_.drop(vpn);
    switch (r.error().kind) {
      case x86::WalkFaultKind::PageFault:
        bump(c_.page_faults);
        return Unexpected{GuestExit{GuestExitKind::PageFault, r.error().error_code, gva, Gpa()}};
      case x86::WalkFaultKind::GeneralProtection:
        return Unexpected{GuestExit{GuestExitKind::GeneralProtection, 0, gva, Gpa()}};
      case x86::WalkFaultKind::TableUnreadable: break;  // always comes with an exit (above)
    }
    return Unexpected{GuestExit{GuestExitKind::Mmio, 0, gva, Gpa()}};
  }
  const std::uint64_t leaf = r->entry;
  TlbEntry e;
  e.vpn = vpn;
  e.gfn = gfn_of(r->gpa).raw();
  e.pcid = pcid();
  e.size_shift = static_cast<std::uint8_t>(static_cast<unsigned>(std::countr_zero(r->page_size)) - kPageShift);
  e.rights = rights_of(*r);
  e.key = r->protection_key;
  e.global = x86::cr4::PGE::get(regs_.cr4) && gpte::G::get(leaf);  // G is ignored without PGE
  e.dirty = access.is_write() || gpte::D::get(leaf) || !walk_options_.update_accessed_dirty;
  e.pke = paging_.protection_keys();
  tlb_.insert(e);
  return GvaTranslation{r->gpa, r->page_size, false};
}

template <class Copy>
Status<GuestExit> Vcpu::transfer(Gva gva, std::size_t size, Access access, Copy&& copy) {
  for (std::size_t done = 0; done < size;) {
    const Gva at = gva + done;
    const std::size_t piece = std::min<std::size_t>(size - done, kPageSize - at.offset_in(kPageSize));
    const Result<GvaTranslation, GuestExit> t = translate(at, access);
    if (!t) return Unexpected{t.error()};
    const Status<tdp::AccessExit> st =
        vm_.mmu().access(mmu_, t->gpa, access, [&](std::byte* host) { copy(host, done, piece); });
    if (!st) return Unexpected{exit_of(st.error(), at, t->gpa)};
    done += piece;
  }
  return {};
}

template <class Copy>
Status<GuestExit> Vcpu::transfer_gpa(Gpa gpa, std::size_t size, Access access, Copy&& copy) {
  for (std::size_t done = 0; done < size;) {
    const Gpa at = gpa + done;
    const std::size_t piece = std::min<std::size_t>(size - done, kPageSize - at.offset_in(kPageSize));
    const Status<tdp::AccessExit> st =
        vm_.mmu().access(mmu_, at, access, [&](std::byte* host) { copy(host, done, piece); });
    if (!st) return Unexpected{exit_of(st.error(), Gva(), at)};  // no gva: a physical access
    done += piece;
  }
  return {};
}

Status<GuestExit> Vcpu::read(Gva gva, std::span<std::byte> out, bool user) {
  return transfer(gva, out.size(), Access::read(user), detail::copy_into(out));
}

Status<GuestExit> Vcpu::write(Gva gva, std::span<const std::byte> in, bool user) {
  return transfer(gva, in.size(), Access::write(user), detail::copy_from(in));
}

Status<GuestExit> Vcpu::fetch(Gva gva, std::span<std::byte> out, bool user) {
  return transfer(gva, out.size(), Access::fetch(user), detail::copy_into(out));
}

Status<GuestExit> Vcpu::read_gpa(Gpa gpa, std::span<std::byte> out) {
  return transfer_gpa(gpa, out.size(), Access::read(), detail::copy_into(out));
}

Status<GuestExit> Vcpu::write_gpa(Gpa gpa, std::span<const std::byte> in) {
  return transfer_gpa(gpa, in.size(), Access::write(), detail::copy_from(in));
}

}  // namespace vmmu::vm
