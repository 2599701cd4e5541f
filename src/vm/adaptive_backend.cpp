// The adaptive MMU behind the MMU interface: per process, shadow paging until its tables
// change often, then two-dimensional paging (adaptive_backend.hpp).

#include "adaptive_backend.hpp"

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
  if (!on_tdp_ && process_tdp_ != nullptr && process_tdp_->load(std::memory_order_acquire)) move_to_tdp();
  Result<mmu::GvaHit, mmu::GvaStop> r = current().access(paging, pcid, gva, access, use);
  tick();
  return r;
}

void AdaptiveVcpu::load_root(const x86::GuestPaging& paging, std::uint16_t pcid, bool flush) {
  const std::uint64_t key = root_key(paging);
  if (process_tdp_ == nullptr || key != process_root_.raw()) {
    process_tdp_ = &owner_.process_mode(Gfn(key));
    process_root_ = Gfn(key);
    start_window();
  }
  on_tdp_ = process_tdp_->load(std::memory_order_acquire);
  current().load_root(paging, pcid, flush);
}

void AdaptiveVcpu::start_window() {
  window_accesses_ = 0;
  window_events_ = owner_.table_events(process_root_);
}

void AdaptiveVcpu::tick() {
  const mmu::AdaptivePolicy& p = owner_.policy();
  if (on_tdp_ || p.window == 0 || p.threshold == 0 || process_root_.raw() == kNoRoot) return;
  if (++window_accesses_ < p.window) return;
  const std::uint64_t events = owner_.table_events(process_root_);
  if (events - window_events_ >= p.threshold) {
    move_to_tdp();
    return;
  }
  window_accesses_ = 0;
  window_events_ = events;
}

void AdaptiveVcpu::move_to_tdp() {
  // This vCPU's shadow roots go first (they pin pages), then the process's shadow pages.
  shadow_.unload_root();
  owner_.switch_to_tdp(*process_tdp_, process_root_);
  on_tdp_ = true;
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
  const Status<shadow::ShadowExit> st =
      shadow_->access_gpa(gpa, access, [&](std::byte* host) { use(host); }, use.bytes());
  if (!st) return Unexpected{exit_of(st.error())};
  return {};
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
  const tdp::TdpStats t = tdp_->stats();
  const shadow::ShadowStats s = shadow_->stats();
  mmu::MmuStats out;
  out.faults = t.faults.faults + s.faults;
  out.reflected = s.reflected;
  out.emulated = s.emulated;
  out.syncs = s.syncs;
  out.unsyncs = s.unsyncs;
  out.table_pages = t.tables_in_use + s.shadow_pages;
  out.zapped = t.zapped_leaves + s.zapped_pages;
  out.write_protected = t.write_protected;
  out.tlb_flushes = t.tlb_flushes + s.tlb_flushes;
  out.roots_created = t.roots_created + s.roots_built;
  out.switched = switched_.load(std::memory_order_relaxed);
  return out;
}

std::optional<std::string> AdaptiveBackend::check_invariants() {
  if (std::optional<std::string> e = tdp_->check_invariants()) return "tdp: " + *e;
  if (std::optional<std::string> e = shadow_->check_invariants()) return "shadow: " + *e;
  return std::nullopt;
}

std::atomic<bool>& AdaptiveBackend::process_mode(Gfn root) {
  std::lock_guard g(processes_mutex_);
  std::unique_ptr<std::atomic<bool>>& m = processes_[root.raw()];
  if (!m) m = std::make_unique<std::atomic<bool>>(false);
  return *m;
}

void AdaptiveBackend::switch_to_tdp(std::atomic<bool>& mode, Gfn root) {
  if (mode.exchange(true, std::memory_order_acq_rel)) return;  // another vCPU moved it
  switched_.fetch_add(1, std::memory_order_relaxed);
  // Zapping the shadow pages of the root table takes the tree below it (each child goes with
  // its last parent); a root another vCPU still holds stays, invalid, until it lets go.
  shadow_->unmap({root, root + 1});
}

}  // namespace vmmu::vm::detail
