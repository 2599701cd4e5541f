// Two-dimensional L2 walks: the x86 walker over L2's tables, each table access an L2
// guest-physical access through the shadow EPT or NPT (see l2_walk.hpp).

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
template <class K>
class L2Tables {
 public:
  // `as_write`: reads of L2's tables are writes for L1's tables (they need W and set D).
  L2Tables(NestedMmu<K>& mmu, NestedVcpu<K>& vcpu, bool as_write) : mmu_(mmu), vcpu_(vcpu), as_write_(as_write) {}

  template <class T>
  std::optional<T> read(Gpa addr) const {
    const std::optional<L2Translation> t = reach(addr, as_write_ ? AccessKind::Write : AccessKind::Read);
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

  [[nodiscard]] const std::optional<typename NestedMmu<K>::Exit>& exit() const { return exit_; }
  [[nodiscard]] Gpa exit_gpa() const { return exit_gpa_; }

 private:
  template <class T>
  static T* pointer(Hpa host) {
    return reinterpret_cast<T*>(static_cast<std::uintptr_t>(host.raw()));  // NOLINT: L1's memory, aligned entries
  }

  std::optional<L2Translation> reach(Gpa addr, AccessKind kind) const {
    if (exit_) return std::nullopt;
    auto a = mmu_.access(vcpu_, addr, kind);
    if (a) return *a;
    exit_ = a.error();
    exit_gpa_ = addr;
    return std::nullopt;
  }

  NestedMmu<K>& mmu_;
  NestedVcpu<K>& vcpu_;
  bool as_write_;
  mutable std::optional<typename NestedMmu<K>::Exit> exit_;
  mutable Gpa exit_gpa_{};
};

// With EPTP bit 6 a read of a guest table is a write to EPT (SDM 29.3.3.2).
bool tables_read_as_write(const ShadowEptVcpu& vcpu) {
  const std::optional<std::uint64_t> eptp = vcpu.eptp();
  return eptp && ept::eptp::AccessedDirty::get(*eptp);
}
// NPT always maintains A/D: L2's table accesses are user writes (KVM's nested_access).
bool tables_read_as_write(const ShadowNptVcpu&) { return true; }

// A table access, not the translation of the linear address: exit qualification bit 8 clear.
// With EPT A/D on, the access was a write for EPT, and the processor reports it as read and write.
void as_table_access(x86::EptFault& f, bool ept_ad) {
  if (f.kind != x86::EptFaultKind::Violation) return;
  f.exit_qualification &= ~eq::LinearTranslation::mask;
  if (ept_ad) f.exit_qualification |= eq::DataRead::mask | eq::DataWrite::mask;
}
// #NPF on a guest table access: EXITINFO1 bit 33, not 32.
void as_table_access(NptFault& f, bool) {
  if (f.kind == NptFaultKind::Npf) f.exit_info1 = (f.exit_info1 & ~npf::kFinal) | npf::kTables;
}

template <class K>
Result<L2GvaTranslation, L2GvaFaultOf<K>> walk_l2(NestedMmu<K>& mmu, NestedVcpu<K>& vcpu, const x86::GuestPaging& l2,
                                                  Gva gva, Access access) {
  const bool as_write = tables_read_as_write(vcpu);
  L2Tables<K> tables(mmu, vcpu, as_write);
  const Result<x86::Translation, x86::WalkFault> w = x86::walk(l2, tables, gva, access);
  if (const auto& exit = tables.exit()) {
    L2GvaFaultOf<K> f{
        .end = L2GvaEnd::Exit, .exit = *exit, .l2_gpa = tables.exit_gpa(), .gla = gva, .table_access = true};
    if (f.exit.kind == ExitKind::ToL1) as_table_access(f.exit.fault, as_write);
    return Unexpected{f};
  }
  if (!w) return Unexpected{L2GvaFaultOf<K>{.end = L2GvaEnd::L2Fault, .l2_fault = w.error(), .cr2 = gva}};
  const auto a = mmu.access(vcpu, w->gpa, access.kind);
  if (!a) return Unexpected{L2GvaFaultOf<K>{.end = L2GvaEnd::Exit, .exit = a.error(), .l2_gpa = w->gpa, .gla = gva}};
  return L2GvaTranslation{*a, w->gpa, w->page_size};
}

}  // namespace

L2GvaAccess access_l2_gva(ShadowEptMmu& mmu, ShadowEptVcpu& vcpu, const x86::GuestPaging& l2, Gva gva,
                          Access access) {
  return walk_l2(mmu, vcpu, l2, gva, access);
}

L2GvaNptAccess access_l2_gva(ShadowNptMmu& mmu, ShadowNptVcpu& vcpu, const x86::GuestPaging& l2, Gva gva,
                             Access access) {
  return walk_l2(mmu, vcpu, l2, gva, access);
}

}  // namespace vmmu::nested
