#include "vmmu/vm/vm.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "guest_copy.hpp"
#include "vmmu/vm/vcpu.hpp"

namespace vmmu::vm {
namespace {

// A free device handle from the pool (created when the pool is empty), returned on scope exit.
// Device accesses get no dirty ring (with_ring = false): they log into the slot bitmaps.
// Under RootPolicy::Rebuild a handle keeps no root between accesses: roots then live only as
// long as a vCPU holds them (KVM before 6.4), and an idle device must not keep one alive.
class PooledMmu {
 public:
  PooledMmu(std::mutex& m, std::vector<std::unique_ptr<tdp::VcpuMmu>>& pool, tdp::TdpMmu& mmu)
      : m_(m), pool_(pool), unload_(mmu.policies().roots == tdp::RootPolicy::Rebuild) {
    {
      std::lock_guard g(m_);
      if (!pool_.empty()) {
        h_ = std::move(pool_.back());
        pool_.pop_back();
      }
    }
    if (!h_) h_ = std::make_unique<tdp::VcpuMmu>(mmu, tdp::RootRole{}, false);
  }
  ~PooledMmu() {
    if (unload_) h_->unload_root();
    std::lock_guard g(m_);
    pool_.push_back(std::move(h_));
  }
  PooledMmu(const PooledMmu&) = delete;
  PooledMmu& operator=(const PooledMmu&) = delete;
  tdp::VcpuMmu& operator*() { return *h_; }

 private:
  std::mutex& m_;
  std::vector<std::unique_ptr<tdp::VcpuMmu>>& pool_;
  bool unload_;
  std::unique_ptr<tdp::VcpuMmu> h_;
};

template <class Copy>
Status<tdp::AccessExit> transfer(tdp::TdpMmu& mmu, tdp::VcpuMmu& h, Gpa gpa, std::size_t size, Access access,
                                 Copy&& copy) {
  for (std::size_t done = 0; done < size;) {
    const Gpa at = gpa + done;
    const std::size_t piece = std::min<std::size_t>(size - done, kPageSize - at.offset_in(kPageSize));
    Status<tdp::AccessExit> st = mmu.access(h, at, access, [&](std::byte* host) { copy(host, done, piece); });
    if (!st) return st;
    done += piece;
  }
  return {};
}

}  // namespace

std::string_view to_string(VmError e) {
  switch (e) {
    case VmError::BadLevels: return "TDP tables must have 4 or 5 levels";
    case VmError::OutOfMemory: return "out of memory for the first TDP root";
  }
  return "?";
}

Vm::Vm(const VmConfig& config) : config_(config), slots_(std::make_unique<Memslots>()) {}

Vm::~Vm() = default;

Result<std::unique_ptr<Vm>, VmError> Vm::create(const VmConfig& config) {
  const unsigned levels = config.tdp.format.levels;
  if (levels != 4 && levels != 5) return Unexpected{VmError::BadLevels};
  std::unique_ptr<Vm> vm(new Vm(config));
  Result<std::unique_ptr<tdp::TdpMmu>, pt::TableError> mmu = tdp::TdpMmu::create(config.tdp, *vm->slots_);
  if (!mmu) return Unexpected{mmu.error() == pt::TableError::OutOfRange ? VmError::BadLevels : VmError::OutOfMemory};
  vm->mmu_ = std::move(*mmu);
  // The first root now, so a budget too small for even one table page fails here, not on the
  // first access. With RootPolicy::Keep the MMU keeps it for the vCPUs to share.
  tdp::RootRole role;
  role.levels = static_cast<std::uint8_t>(levels);
  Result<tdp::Root*, pt::TableError> root = vm->mmu_->roots().get(role);
  if (!root) return Unexpected{VmError::OutOfMemory};
  vm->mmu_->roots().put(*root);
  return vm;
}

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

Status<tdp::AccessExit> Vm::read(Gpa gpa, std::span<std::byte> out) {
  PooledMmu h(device_mutex_, device_mmus_, *mmu_);
  return transfer(*mmu_, *h, gpa, out.size(), Access::read(), detail::copy_into(out));
}

Status<tdp::AccessExit> Vm::write(Gpa gpa, std::span<const std::byte> in) {
  PooledMmu h(device_mutex_, device_mmus_, *mmu_);
  return transfer(*mmu_, *h, gpa, in.size(), Access::write(), detail::copy_from(in));
}

}  // namespace vmmu::vm
