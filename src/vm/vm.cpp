#include "vmmu/vm/vm.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "adaptive_backend.hpp"
#include "guest_copy.hpp"
#include "shadow_backend.hpp"
#include "tdp_backend.hpp"
#include "vmmu/vm/vcpu.hpp"

namespace vmmu::vm {
namespace {

template <class Copy>
Status<mmu::Exit> transfer(mmu::Mmu& mmu, Gpa gpa, std::size_t size, Access access, Copy&& copy) {
  for (std::size_t done = 0; done < size;) {
    const Gpa at = gpa + done;
    const std::size_t piece = std::min<std::size_t>(size - done, kPageSize - at.offset_in(kPageSize));
    const auto use = [&](std::byte* host) { copy(host, done, piece); };
    Status<mmu::Exit> st = mmu.access_gpa(at, access, mmu::HostUse(use, static_cast<std::uint32_t>(piece)));
    if (!st) return st;
    done += piece;
  }
  return {};
}

Result<std::unique_ptr<tdp::TdpMmu>, VmError> make_tdp(const VmConfig& config, Memslots& slots) {
  Result<std::unique_ptr<tdp::TdpMmu>, pt::TableError> mmu = tdp::TdpMmu::create(config.tdp, slots);
  if (!mmu) return Unexpected{mmu.error() == pt::TableError::OutOfRange ? VmError::BadLevels : VmError::OutOfMemory};
  // The first root now, so a budget too small for even one table page fails here, not on the
  // first access. With RootPolicy::Keep the MMU keeps it for the vCPUs to share.
  tdp::RootRole role;
  role.levels = static_cast<std::uint8_t>(config.tdp.format.levels);
  Result<tdp::Root*, pt::TableError> root = (*mmu)->roots().get(role);
  if (!root) return Unexpected{VmError::OutOfMemory};
  (*mmu)->roots().put(*root);
  return std::move(*mmu);
}

// The shadow MMU's tables have the depth the TDP ones would (tdp.format.levels); its
// huge-on-dirty-log choice is the TDP policy of the same name.
Result<std::unique_ptr<shadow::ShadowMmu>, VmError> make_shadow(const VmConfig& config, Memslots& slots) {
  shadow::ShadowConfig sc;
  sc.host_levels = config.tdp.format.levels;
  sc.huge_on_dirty_log = config.tdp.policies.huge_on_dirty_log;
  sc.unsync = config.shadow_unsync;
  Result<std::unique_ptr<shadow::ShadowMmu>, shadow::ShadowConfigError> mmu = shadow::ShadowMmu::create(sc, slots);
  if (!mmu) return Unexpected{VmError::BadLevels};
  return std::move(*mmu);
}

// The only place that looks at which MMU the VM runs.
Result<std::unique_ptr<detail::MmuBackend>, VmError> make_backend(const VmConfig& config, Memslots& slots) {
  using Backend = std::unique_ptr<detail::MmuBackend>;
  std::unique_ptr<tdp::TdpMmu> t;
  std::unique_ptr<shadow::ShadowMmu> s;
  if (config.mmu != mmu::MmuKind::Shadow) {
    Result<std::unique_ptr<tdp::TdpMmu>, VmError> made = make_tdp(config, slots);
    if (!made) return Unexpected{made.error()};
    t = std::move(*made);
  }
  if (config.mmu != mmu::MmuKind::Tdp) {
    Result<std::unique_ptr<shadow::ShadowMmu>, VmError> made = make_shadow(config, slots);
    if (!made) return Unexpected{made.error()};
    s = std::move(*made);
  }
  switch (config.mmu) {
    case mmu::MmuKind::Tdp: return Backend(std::make_unique<detail::TdpBackend>(std::move(t)));
    case mmu::MmuKind::Shadow: return Backend(std::make_unique<detail::ShadowBackend>(std::move(s)));
    case mmu::MmuKind::Adaptive:
      return Backend(std::make_unique<detail::AdaptiveBackend>(std::move(t), std::move(s), slots, config.adaptive));
  }
  return Unexpected{VmError::BadLevels};
}

}  // namespace

std::string_view to_string(VmError e) {
  switch (e) {
    case VmError::BadLevels: return "the MMU's tables must have 4 or 5 levels";
    case VmError::OutOfMemory: return "out of memory for the first TDP root";
    case VmError::AdaptiveWithDirtyRing:
      return "the adaptive MMU cannot use a dirty ring: only its TDP side has rings, a shadowed process logs "
             "into the slot's bitmap (use dirty bitmaps, dirty_ring_size 0)";
  }
  return "?";
}

Vm::Vm(const VmConfig& config) : config_(config), slots_(std::make_unique<Memslots>()) {}

Vm::~Vm() = default;

Result<std::unique_ptr<Vm>, VmError> Vm::create(const VmConfig& config) {
  const unsigned levels = config.tdp.format.levels;
  if (levels != 4 && levels != 5) return Unexpected{VmError::BadLevels};
  // A ring user reads only the rings; a shadowed process would log its writes elsewhere.
  if (config.mmu == mmu::MmuKind::Adaptive && config.tdp.dirty_ring_size != 0)
    return Unexpected{VmError::AdaptiveWithDirtyRing};
  std::unique_ptr<Vm> vm(new Vm(config));
  Result<std::unique_ptr<detail::MmuBackend>, VmError> mmu = make_backend(config, *vm->slots_);
  if (!mmu) return Unexpected{mmu.error()};
  vm->mmu_ = std::move(*mmu);
  return vm;
}

mmu::Mmu& Vm::mmu() { return *mmu_; }

tdp::TdpMmu* Vm::tdp_mmu() { return mmu_->tdp(); }

mmu::MmuStats Vm::stats() { return mmu_->stats(); }

Vcpu& Vm::add_vcpu() {
  std::lock_guard g(vcpus_mutex_);
  vcpus_.push_back(std::unique_ptr<Vcpu>(new Vcpu(*this, vcpus_.size())));
  return *vcpus_.back();
}

std::size_t Vm::vcpu_count() const {
  std::lock_guard g(vcpus_mutex_);
  return vcpus_.size();
}

Vcpu& Vm::vcpu(std::size_t index) noexcept {
  std::lock_guard g(vcpus_mutex_);
  if (index >= vcpus_.size()) {
    // A caller's bug, not input: there is no vCPU to return, and nothing may throw out of the library.
    std::fprintf(stderr, "vmmu: Vm::vcpu(%zu) with %zu vCPUs\n", index, vcpus_.size());
    std::abort();
  }
  return *vcpus_[index];
}

Status<mmu::Exit> Vm::read(Gpa gpa, std::span<std::byte> out) {
  return transfer(*mmu_, gpa, out.size(), Access::read(), detail::copy_into(out));
}

Status<mmu::Exit> Vm::write(Gpa gpa, std::span<const std::byte> in) {
  return transfer(*mmu_, gpa, in.size(), Access::write(), detail::copy_from(in));
}

}  // namespace vmmu::vm
