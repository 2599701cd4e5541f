// Two-dimensional L2 walks: the x86 walker over L2's tables, each table access an L2
// guest-physical access through the shadow EPT (see l2_walk.hpp).

#include "vmmu/nested/l2_walk.hpp"

#include <atomic>
#include <cstring>
#include <optional>

namespace vmmu::nested {
namespace {

namespace ept = x86::ept;
namespace eq = x86::ept::exit_qual;

// pt::TableMemory<_, Gpa> over L2's guest-physical space. The first access that exits ends
// the walk (reads fail from then on: the walker stops with TableUnreadable) and is kept.
class L2Tables {
 public:
  L2Tables(ShadowEptMmu& mmu, ShadowEptVcpu& vcpu, bool ept_ad) : mmu_(mmu), vcpu_(vcpu), ept_ad_(ept_ad) {}

  template <class T>
  std::optional<T> read(Gpa addr) const {
    // With EPTP bit 6 a read of a guest table is a write to EPT (SDM 29.3.3.2): it needs W and
    // sets D in L1's leaf.
    const std::optional<L2Translation> t = reach(addr, ept_ad_ ? AccessKind::Write : AccessKind::Read);
    if (!t) return std::nullopt;
    return std::atomic_ref<T>(*pointer<T>(t->host)).load(std::memory_order_acquire);
  }

  template <class T>
  bool compare_exchange(Gpa addr, T& expected, T desired) {
    const std::optional<L2Translation> t = reach(addr, AccessKind::Write);
    if (!t) return false;  // `expected` unchanged: the walk's update is dropped; the exit reported
    T* p = pointer<T>(t->host);
    if (!t->emulate) return std::atomic_ref<T>(*p).compare_exchange_strong(expected, desired, std::memory_order_acq_rel);
    // L2's table shares a frame with one of L1's EPT tables: L0 emulates the write, so the
    // shadow of that EPT table stays in step.
    const T now = std::atomic_ref<T>(*p).load(std::memory_order_acquire);
    if (now != expected) {
      expected = now;
      return false;
    }
    const std::uint64_t offset = t->host.raw() & 7;
    std::uint64_t word = std::atomic_ref<std::uint64_t>(*pointer<std::uint64_t>(Hpa(t->host.raw() - offset)))
                             .load(std::memory_order_acquire);
    std::memcpy(reinterpret_cast<std::byte*>(&word) + offset, &desired, sizeof(T));  // NOLINT
    mmu_.write_l1(Gpa(t->l1_gpa.raw() - offset), word);
    return true;
  }

  [[nodiscard]] const std::optional<NestedExit>& exit() const { return exit_; }
  [[nodiscard]] Gpa exit_gpa() const { return exit_gpa_; }

 private:
  template <class T>
  static T* pointer(Hpa host) {
    return reinterpret_cast<T*>(static_cast<std::uintptr_t>(host.raw()));  // NOLINT: L1's memory, aligned entries
  }

  std::optional<L2Translation> reach(Gpa addr, AccessKind kind) const {
    if (exit_) return std::nullopt;
    L2Access a = mmu_.access(vcpu_, addr, kind);
    if (a) return *a;
    exit_ = a.error();
    exit_gpa_ = addr;
    return std::nullopt;
  }

  ShadowEptMmu& mmu_;
  ShadowEptVcpu& vcpu_;
  bool ept_ad_;
  mutable std::optional<NestedExit> exit_;
  mutable Gpa exit_gpa_{};
};

}  // namespace

L2GvaAccess access_l2_gva(ShadowEptMmu& mmu, ShadowEptVcpu& vcpu, const x86::GuestPaging& l2, Gva gva,
                          Access access) {
  const std::optional<std::uint64_t> eptp = vcpu.eptp();
  const bool ept_ad = eptp && ept::eptp::AccessedDirty::get(*eptp);
  L2Tables tables(mmu, vcpu, ept_ad);
  const Result<x86::Translation, x86::WalkFault> w = x86::walk(l2, tables, gva, access);
  if (const std::optional<NestedExit>& exit = tables.exit()) {
    L2GvaFault f{.end = L2GvaEnd::Exit, .exit = *exit, .l2_gpa = tables.exit_gpa(), .gla = gva, .table_access = true};
    if (f.exit.kind == ExitKind::ToL1 && f.exit.fault.kind == x86::EptFaultKind::Violation) {
      // A table access, not the translation of the linear address: bit 8 clear. With EPT
      // A/D on, the access was a write for EPT, and the processor reports it as read and write.
      std::uint64_t& q = f.exit.fault.exit_qualification;
      q &= ~eq::LinearTranslation::mask;
      if (ept_ad) q |= eq::DataRead::mask | eq::DataWrite::mask;
    }
    return Unexpected{f};
  }
  if (!w) return Unexpected{L2GvaFault{.end = L2GvaEnd::L2Fault, .l2_fault = w.error(), .cr2 = gva}};
  const L2Access a = mmu.access(vcpu, w->gpa, access.kind);
  if (!a) return Unexpected{L2GvaFault{.end = L2GvaEnd::Exit, .exit = a.error(), .l2_gpa = w->gpa, .gla = gva}};
  return L2GvaTranslation{*a, w->gpa, w->page_size};
}

}  // namespace vmmu::nested
