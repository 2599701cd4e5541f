// Vcpu memory access: each page-sized piece through the vCPU's MMU context (vmmu/mmu/mmu.hpp),
// whose stops become the vCPU's exits.

#include <algorithm>

#include "guest_copy.hpp"
#include "vmmu/vm/vcpu.hpp"
#include "vmmu/vm/vm.hpp"

namespace vmmu::vm {
namespace {

GuestExitKind kind_of(mmu::Exit e) {
  switch (e) {
    case mmu::Exit::Mmio: return GuestExitKind::Mmio;
    case mmu::Exit::RingFull: return GuestExitKind::RingFull;
    case mmu::Exit::OutOfRange: return GuestExitKind::OutOfRange;
    case mmu::Exit::OutOfMemory: return GuestExitKind::OutOfMemory;
    case mmu::Exit::Unsupported: return GuestExitKind::Unsupported;
  }
  return GuestExitKind::Mmio;
}

}  // namespace

Result<GvaTranslation, GuestExit> Vcpu::access(Gva gva, Access access, mmu::HostUse use) {
  Result<mmu::GvaHit, mmu::GvaStop> r = mmu_->access(paging_, pcid(), gva, access, use);
  if (r) return GvaTranslation{r->gpa, r->page_size, r->from_tlb};
  const mmu::GvaStop& s = r.error();
  if (s.exit) return Unexpected{GuestExit{kind_of(*s.exit), 0, gva, s.gpa}};
  if (s.fault.kind == x86::WalkFaultKind::GeneralProtection) {
    return Unexpected{GuestExit{GuestExitKind::GeneralProtection, 0, gva, Gpa()}};
  }
  bump(c_.page_faults);
  return Unexpected{GuestExit{GuestExitKind::PageFault, s.fault.error_code, gva, Gpa()}};
}

Result<GvaTranslation, GuestExit> Vcpu::translate(Gva gva, Access access) { return this->access(gva, access, {}); }

template <class Copy>
Status<GuestExit> Vcpu::transfer(Gva gva, std::size_t size, Access access, Copy&& copy) {
  for (std::size_t done = 0; done < size;) {
    const Gva at = gva + done;
    const std::size_t piece = std::min<std::size_t>(size - done, kPageSize - at.offset_in(kPageSize));
    const auto use = [&](std::byte* host) { copy(host, done, piece); };
    const Result<GvaTranslation, GuestExit> t = this->access(at, access, mmu::HostUse(use, static_cast<std::uint32_t>(piece)));
    if (!t) return Unexpected{t.error()};
    done += piece;
  }
  return {};
}

template <class Copy>
Status<GuestExit> Vcpu::transfer_gpa(Gpa gpa, std::size_t size, Access access, Copy&& copy) {
  for (std::size_t done = 0; done < size;) {
    const Gpa at = gpa + done;
    const std::size_t piece = std::min<std::size_t>(size - done, kPageSize - at.offset_in(kPageSize));
    const auto use = [&](std::byte* host) { copy(host, done, piece); };
    const Status<mmu::Exit> st = mmu_->access_gpa(at, access, mmu::HostUse(use, static_cast<std::uint32_t>(piece)));
    if (!st) return Unexpected{GuestExit{kind_of(st.error()), 0, Gva(), at}};  // no gva: a physical access
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
