#include <algorithm>

#include "vmmu/tdp/tdp_mmu.hpp"

namespace vmmu::tdp {

VcpuMmu::VcpuMmu(TdpMmu& mmu, RootRole role, bool with_ring)
    : mmu_(mmu), role_(role), slot_(mmu.lock_.new_reader_slot()) {
  role_.levels = static_cast<std::uint8_t>(mmu.format().geometry().levels());
  if (with_ring && mmu.config().dirty_ring_size != 0) ring_ = std::make_unique<DirtyRing>(mmu.config().dirty_ring_size);
  std::lock_guard g(mmu_.vcpus_mutex_);
  mmu_.vcpus_.push_back(this);
}

VcpuMmu::~VcpuMmu() {
  unload_root();
  std::lock_guard g(mmu_.vcpus_mutex_);
  mmu_.retired_vcpus_ += stats();
  mmu_.vcpus_.erase(std::find(mmu_.vcpus_.begin(), mmu_.vcpus_.end(), this));
}

void VcpuMmu::unload_root() {
  // Shared: the invariant check (exclusive) sees the reference and the pointer change together.
  ReaderLock::Shared shared(mmu_.lock_, slot_);
  if (Root* r = root_.exchange(nullptr, std::memory_order_acq_rel)) mmu_.roots_->put(r);
  tlb_.clear();  // its entries came from that root
}

void VcpuMmu::set_root_role(RootRole role) {
  role.levels = role_.levels;
  if (role == role_) return;
  role_ = role;
  unload_root();
}

Result<Root*, pt::TableError> VcpuMmu::load_root(Root* r) {
  Result<Root*, pt::TableError> fresh = mmu_.roots_->get(role_);
  if (!fresh) return fresh;
  root_.store(*fresh, std::memory_order_release);
  tlb_.clear();  // loading a root flushes the TLB (KVM's kvm_mmu_load)
  if (r != nullptr) mmu_.roots_->put(r);
  bump(root_loads_);
  return fresh;
}

FaultStats VcpuMmu::stats() const {
  FaultStats s;
  s.faults = c_.faults.load(std::memory_order_relaxed);
  s.spurious = c_.spurious.load(std::memory_order_relaxed);
  s.retried = c_.retried.load(std::memory_order_relaxed);
  s.mmio = c_.mmio.load(std::memory_order_relaxed);
  s.mmio_fast = c_.mmio_fast.load(std::memory_order_relaxed);
  s.relaxed = c_.relaxed.load(std::memory_order_relaxed);
  s.lazy_splits = c_.lazy_splits.load(std::memory_order_relaxed);
  s.dirtied = c_.dirtied.load(std::memory_order_relaxed);
  s.ring_full = c_.ring_full.load(std::memory_order_relaxed);
  for (std::size_t i = 0; i < s.mapped.size(); ++i) s.mapped[i] = c_.mapped[i].load(std::memory_order_relaxed);
  return s;
}

}  // namespace vmmu::tdp
