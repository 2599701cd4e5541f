// The adaptive MMU behind the MMU interface: per process, shadow paging while its tables are
// quiet, two-dimensional paging while they change often (adaptive_backend.hpp).

#include "adaptive_backend.hpp"

#include <algorithm>

namespace vmmu::vm::detail {
namespace {

// Paging off has no root table: its accesses stay shadowed (direct pages), under a key no
// frame has.
constexpr std::uint64_t kNoRoot = ~std::uint64_t{0};

std::uint64_t root_key(const x86::GuestPaging& paging) {
  return paging.mode() == x86::PagingMode::Off ? kNoRoot : gfn_of(paging.root()).raw();
}

}  // namespace

AdaptiveVcpu::AdaptiveVcpu(AdaptiveBackend& owner, SoftTlb& tlb)
    : owner_(owner), shadow_(*owner.shadow()), tdp_(*owner.tdp(), tlb) {}

Result<mmu::GvaHit, mmu::GvaStop> AdaptiveVcpu::access(const x86::GuestPaging& paging, std::uint16_t pcid, Gva gva,
                                                       Access access, mmu::HostUse use) {
  // Another vCPU may have moved this process meanwhile: follow it before touching its roots.
  if (process_ != nullptr && process_->on_tdp.load(std::memory_order_acquire) != on_tdp_) settle(paging, pcid);
  Result<mmu::GvaHit, mmu::GvaStop> r = current().access(paging, pcid, gva, access, use);
  if (r && access.is_write()) note_write(r->gpa);
  tick(paging, pcid);
  return r;
}

Status<mmu::Exit> AdaptiveVcpu::access_gpa(Gpa gpa, Access access, mmu::HostUse use) {
  Status<mmu::Exit> s = current().access_gpa(gpa, access, use);
  if (s && access.is_write()) note_write(gpa);
  return s;
}

void AdaptiveVcpu::note_write(Gpa gpa) {
  // Shadowed, the shadow MMU counts the process's table writes itself.
  if (!on_tdp_ || !watched_ || !std::ranges::binary_search(*watched_, gfn_of(gpa).raw())) return;
  process_->tdp_table_writes.fetch_add(1, std::memory_order_relaxed);
}

void AdaptiveVcpu::load_root(const x86::GuestPaging& paging, std::uint16_t pcid, bool flush) {
  const std::uint64_t key = root_key(paging);
  if (process_ == nullptr || key != process_root_.raw()) {
    process_ = &owner_.process(Gfn(key));
    process_root_ = Gfn(key);
    on_tdp_ = process_->on_tdp.load(std::memory_order_acquire);
    watched_ = on_tdp_ ? owner_.watched(*process_) : nullptr;
    quiet_windows_ = 0;
    start_window();
  } else if (process_->on_tdp.load(std::memory_order_acquire) != on_tdp_) {
    settle(paging, pcid);
  }
  current().load_root(paging, pcid, flush);
}

std::uint64_t AdaptiveVcpu::table_events() const {
  return on_tdp_ ? process_->tdp_table_writes.load(std::memory_order_relaxed) : owner_.table_events(process_root_);
}

void AdaptiveVcpu::start_window() {
  window_accesses_ = 0;
  window_events_ = table_events();
}

void AdaptiveVcpu::tick(const x86::GuestPaging& paging, std::uint16_t pcid) {
  const mmu::AdaptivePolicy& p = owner_.policy();
  if (p.window == 0 || p.threshold == 0 || process_root_.raw() == kNoRoot) return;
  if (++window_accesses_ < p.window) return;
  const std::uint64_t events = table_events();
  const bool busy = events - window_events_ >= p.threshold;
  window_accesses_ = 0;
  window_events_ = events;
  if (!on_tdp_) {
    if (!busy) return;
    // This vCPU's shadow roots go first (they pin pages), then the process's shadow pages.
    shadow_.unload_root();
    owner_.switch_to_tdp(*process_, process_root_);
    settle(paging, pcid);
    return;
  }
  quiet_windows_ = busy ? 0 : quiet_windows_ + 1;
  if (p.return_after == 0 || quiet_windows_ < p.return_after) return;
  owner_.switch_to_shadow(*process_);
  settle(paging, pcid);
}

void AdaptiveVcpu::settle(const x86::GuestPaging& paging, std::uint16_t pcid) {
  on_tdp_ = process_->on_tdp.load(std::memory_order_acquire);
  if (on_tdp_) {
    shadow_.unload_root();
    watched_ = owner_.watched(*process_);
    // The guest's flushes while shadowed reached only the shadow side.
    tdp_.flush_tlb(paging);
  } else {
    watched_ = nullptr;
    shadow_.load_root(paging, pcid, true);  // shadow pages built again, on demand
  }
  quiet_windows_ = 0;
  start_window();
}

mmu::VcpuMmuStats AdaptiveVcpu::stats() const {
  const mmu::VcpuMmuStats s = shadow_.stats(), t = tdp_.stats();
  return mmu::VcpuMmuStats{s.tlb_hits + t.tlb_hits, s.walks + t.walks, s.faults + t.faults,
                           s.root_loads + t.root_loads};
}

std::unique_ptr<mmu::VcpuContext> AdaptiveBackend::vcpu_context(SoftTlb& tlb) {
  return std::make_unique<AdaptiveVcpu>(*this, tlb);
}

Status<mmu::Exit> AdaptiveBackend::access_gpa(Gpa gpa, Access access, mmu::HostUse use) {
  return shadow_access_gpa(*shadow_, gpa, access, use);
}

Status<pt::TableError> AdaptiveBackend::unmap(Range<Gfn> gfns) {
  if (Status<pt::TableError> s = tdp_->unmap(gfns); !s) return s;
  shadow_->unmap(gfns);
  return {};
}

Result<std::vector<std::uint64_t>, MemslotError> AdaptiveBackend::get_dirty_log(SlotId slot) {
  // The union, reported, then cleared and write-protected in both MMUs (KVM's get + clear:
  // a page written after the peek is either reported now or still set for the next call).
  Result<std::vector<std::uint64_t>, MemslotError> bits = tdp_->peek_dirty_log(slot);
  if (!bits) return bits;
  const std::optional<MemslotSpec> spec = slots_.slot(slot);
  if (!spec) return Unexpected{MemslotError::UnknownSlot};
  if (Status<MemslotError> s = clear_dirty_log(slot, 0, spec->pages, *bits); !s) return Unexpected{s.error()};
  return bits;
}

Status<MemslotError> AdaptiveBackend::clear_dirty_log(SlotId slot, std::uint64_t first_page, std::uint64_t pages,
                                                      std::span<const std::uint64_t> mask) {
  if (Status<MemslotError> s = tdp_->clear_dirty_log(slot, first_page, pages, mask); !s) return s;
  return shadow_->clear_dirty_log(slot, first_page, pages, mask);
}

// Only the TDP side has dirty rings; a shadowed process logs into the slot's bitmap.
std::size_t AdaptiveBackend::harvest_dirty_ring(mmu::VcpuContext& vcpu, std::vector<DirtyGfn>& out) {
  tdp::VcpuMmu& h = static_cast<AdaptiveVcpu&>(vcpu).tdp_handle();
  return h.dirty_ring() == nullptr ? 0 : tdp_->harvest_dirty_ring(h, out);
}

std::size_t AdaptiveBackend::reset_dirty_ring(mmu::VcpuContext& vcpu) {
  tdp::VcpuMmu& h = static_cast<AdaptiveVcpu&>(vcpu).tdp_handle();
  return h.dirty_ring() == nullptr ? 0 : tdp_->reset_dirty_ring(h);
}

mmu::MmuStats AdaptiveBackend::stats() {
  mmu::MmuStats out = tdp_mmu_stats(*tdp_);
  out += shadow_mmu_stats(*shadow_);
  out.switched = switched_.load(std::memory_order_relaxed);
  out.switched_back = switched_back_.load(std::memory_order_relaxed);
  return out;
}

std::optional<std::string> AdaptiveBackend::check_invariants() {
  if (std::optional<std::string> e = tdp_->check_invariants()) return "tdp: " + *e;
  if (std::optional<std::string> e = shadow_->check_invariants()) return "shadow: " + *e;
  return std::nullopt;
}

AdaptiveProcess& AdaptiveBackend::process(Gfn root) {
  std::lock_guard g(processes_mutex_);
  std::unique_ptr<AdaptiveProcess>& p = processes_[root.raw()];
  if (!p) p = std::make_unique<AdaptiveProcess>();
  return *p;
}

AdaptiveProcess::Tables AdaptiveBackend::watched(AdaptiveProcess& p) {
  std::lock_guard g(processes_mutex_);
  return p.tables;
}

void AdaptiveBackend::switch_to_tdp(AdaptiveProcess& p, Gfn root) {
  std::lock_guard g(processes_mutex_);
  if (p.on_tdp.load(std::memory_order_relaxed)) return;  // another vCPU moved it
  std::vector<std::uint64_t> tables;
  for (const Gfn t : shadow_->tables_under(root)) tables.push_back(t.raw());
  std::ranges::sort(tables);
  p.tables = std::make_shared<const std::vector<std::uint64_t>>(std::move(tables));
  p.on_tdp.store(true, std::memory_order_release);
  switched_.fetch_add(1, std::memory_order_relaxed);
  // Zapping the shadow pages of the root table takes the tree below it (each child goes with
  // its last parent); a root another vCPU still holds stays, invalid, until it lets go.
  shadow_->unmap({root, root + 1});
}

void AdaptiveBackend::switch_to_shadow(AdaptiveProcess& p) {
  std::lock_guard g(processes_mutex_);
  if (!p.on_tdp.load(std::memory_order_relaxed)) return;  // another vCPU moved it
  p.tables = nullptr;
  p.on_tdp.store(false, std::memory_order_release);
  switched_back_.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace vmmu::vm::detail
