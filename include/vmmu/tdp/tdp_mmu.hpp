#pragma once
// TdpMmu: one VM's two-dimensional-paging MMU -- vmmu's own EPT or NPT tables translating
// guest-physical addresses to the host memory the memslots lend, modelled on KVM's TDP MMU
// (arch/x86/kvm/mmu/tdp_mmu.c) with its developers' complaints addressed.
//
//   vCPU access (VcpuMmu, gpa, access)
//       │ translate: lock-free walk of the vCPU's root (sets A, and D on writes, if A/D on)
//       ▼ not mapped / not allowed
//   handle_fault ── memslot? no ──► MMIO marker (generation-tagged), Mmio exit
//       │ yes: largest level the slot, its backing and dirty logging allow
//       │      marker hit? Mmio without a slot lookup
//       ▼
//   install with compare-exchange (lost race: re-decide), mark dirty (bitmap or vCPU ring)
//
// Structural operations -- the MMU family's verbs (mmu/fault.hpp): unmap (KVM: zap),
// write_protect (dirty logging), split, collapse (KVM: recover huge pages), age -- run over
// every valid root and issue one TLB flush each.
//
// Locking: one ReaderLock. Faults and the modelled hardware's accesses hold it shared (a
// per-vCPU cache line, so faults scale), with an RCU read-side section for lock-free table
// walks and the memslot snapshot; exclusive operations take it exclusively, which also waits
// for every access in flight -- what a remote TLB flush with IPIs achieves on real hardware.
// Merge in place and write-protection with atomic updates run shared, concurrently with
// faults. Table pages unlinked while walkers may hold them are freed after an RCU grace
// period. A thread must not call into the MMU from inside `access()`'s callback.
//
// With VMMU_CHECK_INVARIANTS every exclusive operation ends with check_invariants(), and every
// fault checks the leaf it installed against the memslots.

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "vmmu/core/access.hpp"
#include "vmmu/core/address.hpp"
#include "vmmu/core/reader_lock.hpp"
#include "vmmu/core/result.hpp"
#include "vmmu/memory/dirty_ring.hpp"
#include "vmmu/memory/memslots.hpp"
#include "vmmu/mmu/fault.hpp"
#include "vmmu/pt/table_error.hpp"
#include "vmmu/pt/owned_table_memory.hpp"
#include "vmmu/pt/tlb_log.hpp"
#include "vmmu/pt/ops/mode.hpp"
#include "vmmu/tdp/gpa_tlb.hpp"
#include "vmmu/tdp/policy.hpp"
#include "vmmu/tdp/roots.hpp"
#include "vmmu/tdp/stats.hpp"
#include "vmmu/tdp/tdp_format.hpp"

namespace vmmu::tdp {

struct TdpConfig {
  TdpFormatOptions format;
  Policies policies;
  std::uint64_t table_budget = ~std::uint64_t{0};  // table pages the VM may use
  std::uint32_t dirty_ring_size = 0;               // 0: dirty bitmaps; else entries per vCPU ring
};

// The MMU family's fault outcome (mmu/fault.hpp).
using mmu::FaultAction;
using mmu::FaultOutcome;

// Why an access through the tables did not reach memory.
enum class AccessExit : std::uint8_t { Mmio, RingFull, OutOfRange, OutOfMemory };
std::string_view to_string(AccessExit e);

class TdpMmu;

// One vCPU's handle on the MMU: its current root, its reader slot, its fault statistics and,
// in dirty-ring mode, its dirty ring. Used by one thread at a time. Cache-line aligned: two
// vCPUs' handles never share a line (their counters are written on every fault).
class alignas(64) VcpuMmu {
 public:
  // `with_ring`: in dirty-ring mode (TdpConfig::dirty_ring_size > 0) this handle gets a ring;
  // handles for device (non-vCPU) accesses pass false and log into the slot bitmaps.
  explicit VcpuMmu(TdpMmu& mmu, RootRole role = {}, bool with_ring = true);
  ~VcpuMmu();
  VcpuMmu(const VcpuMmu&) = delete;
  VcpuMmu& operator=(const VcpuMmu&) = delete;

  // Drops the current root reference (KVM's kvm_mmu_unload); the next access loads one.
  void unload_root();
  // Switches to another root role (SMM entry / exit, nested guest): unloads if it changed.
  void set_root_role(RootRole role);
  [[nodiscard]] RootRole root_role() const { return role_; }
  [[nodiscard]] std::uint64_t root_loads() const { return root_loads_.load(std::memory_order_relaxed); }
  [[nodiscard]] FaultStats stats() const;
  [[nodiscard]] DirtyRing* dirty_ring() { return ring_.get(); }
  [[nodiscard]] TdpMmu& mmu() { return mmu_; }

 private:
  friend class TdpMmu;
  // The root to run on, loaded if missing or invalid. Call with the MMU lock held shared.
  // Inline: every fault asks, and the answer is almost always the root already loaded.
  Result<Root*, pt::TableError> current_root() {
    Root* r = root_.load(std::memory_order_relaxed);
    if (r != nullptr && !r->invalid.load(std::memory_order_acquire)) [[likely]] return r;
    return load_root(r);
  }
  // current_root() when `old` (the current root, or null) cannot be used.
  Result<Root*, pt::TableError> load_root(Root* old);
  // Owner-thread counter increment that other threads may read (no atomic RMW on the hot path).
  static void bump(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }

  TdpMmu& mmu_;
  RootRole role_;
  std::atomic<Root*> root_{nullptr};  // written by the owner under the MMU lock (shared)
  unsigned slot_;
  std::unique_ptr<DirtyRing> ring_;
  GpaTlb tlb_;  // the modelled hardware's TLB (owner thread, under the MMU lock)
  std::atomic<std::uint64_t> root_loads_{0};
  struct alignas(64) Counters {
    std::atomic<std::uint64_t> faults{0}, spurious{0}, retried{0}, mmio{0}, mmio_fast{0}, relaxed{0}, lazy_splits{0},
        dirtied{0}, ring_full{0};
    std::array<std::atomic<std::uint64_t>, 4> mapped{};
  } c_;
};

class TdpMmu {
 public:
  // Errors: OutOfRange when the format options are not 4 or 5 levels.
  static Result<std::unique_ptr<TdpMmu>, pt::TableError> create(const TdpConfig& config, Memslots& slots);
  ~TdpMmu();
  TdpMmu(const TdpMmu&) = delete;
  TdpMmu& operator=(const TdpMmu&) = delete;

  [[nodiscard]] const TdpConfig& config() const { return config_; }
  [[nodiscard]] const TdpFormat& format() const { return format_; }
  [[nodiscard]] const Policies& policies() const { return config_.policies; }
  [[nodiscard]] Memslots& memslots() { return slots_; }
  // Guest-physical addresses the tables translate (2^48 or 2^57).
  [[nodiscard]] std::uint64_t gpa_limit() const { return format_.geometry().input_limit(); }

  // ---- the vCPU side --------------------------------------------------------------------

  // Resolves a TDP violation on `gpa` (see the header comment). Safe from many threads.
  // Errors: OutOfMemory (table budget).
  Result<FaultOutcome, pt::TableError> handle_fault(VcpuMmu& vcpu, Gpa gpa, Access access);

  // The modelled hardware's access: translates `gpa` through the vCPU's TLB or its root,
  // faulting as needed, and calls use(host pointer to gpa) while the translation is pinned
  // (a TLB flush waits for `use` to return). `use` must stay inside gpa's 4 KiB page and must not call
  // into the MMU.
  template <class Use>
  Status<AccessExit> access(VcpuMmu& vcpu, Gpa gpa, Access a, Use&& use) {
    for (;;) {
      {
        ReaderLock::Shared shared(lock_, vcpu.slot_);
        std::byte* host = vcpu.tlb_.lookup(gpa, a, flush_generation_.load(std::memory_order_acquire));
        if (host == nullptr) host = translate(vcpu, gpa, a);
        if (host != nullptr) {
          use(host);
          return {};
        }
      }
      Result<FaultOutcome, pt::TableError> f = handle_fault(vcpu, gpa, a);
      if (!f) return Unexpected{AccessExit::OutOfMemory};
      switch (f->action) {
        case FaultAction::Mmio: return Unexpected{AccessExit::Mmio};
        case FaultAction::RingFull: return Unexpected{AccessExit::RingFull};
        case FaultAction::OutOfRange: return Unexpected{AccessExit::OutOfRange};
        default: break;
      }
    }
  }

  // ---- host-side events -----------------------------------------------------------------

  // MMU notifier: the host is about to change the memory behind `gfns` (KVM's
  // invalidate_range_start): unmaps their leaves; faults on them retry until invalidate_end.
  void invalidate_begin(Range<Gfn> gfns);
  void invalidate_end(Range<Gfn> gfns);
  // Unmaps (KVM: zaps) every leaf touching `gfns`, and tables left empty; a huge leaf
  // straddling an edge goes whole (faults map back what is still needed), so no table memory
  // is needed. Errors: OutOfRange (past gpa_limit(), or end before begin).
  Status<pt::TableError> unmap(Range<Gfn> gfns);
  // Drops everything (KVM: zap all, fast): invalidates every root (a generation bump, no
  // table walk on any fault path); vCPUs load a new root on their next access.
  void unmap_all();

  // ---- dirty logging (the slot's LogDirty flag is set / cleared through Memslots) -------

  // KVM_GET_DIRTY_LOG: takes and clears the slot's dirty bits and write-protects (or clears
  // the D bits of) the pages they name. Errors: the memslot's (UnknownSlot, NotLoggingDirty).
  Result<std::vector<std::uint64_t>, MemslotError> get_dirty_log(SlotId slot);
  // The slot's dirty bits without clearing them (KVM_GET_DIRTY_LOG with manual protect); with
  // dirty-bit tracking, D bits are folded into the bitmap first.
  Result<std::vector<std::uint64_t>, MemslotError> peek_dirty_log(SlotId slot);
  // KVM_CLEAR_DIRTY_LOG (manual protect): clears the bits of `mask` for pages
  // [first_page, first_page + pages) and write-protects those pages.
  Status<MemslotError> clear_dirty_log(SlotId slot, std::uint64_t first_page, std::uint64_t pages,
                                       std::span<const std::uint64_t> mask);
  // Dirty ring: collects the vCPU's published entries (any one collector thread at a time).
  std::size_t harvest_dirty_ring(VcpuMmu& vcpu, std::vector<DirtyGfn>& out);
  // KVM_RESET_DIRTY_RINGS for one vCPU: write-protects every harvested page, frees the entries.
  std::size_t reset_dirty_ring(VcpuMmu& vcpu);

  // ---- huge pages, protection, aging (explicit; also used by the operations above) ------

  // Splits every huge leaf touching `gfns` down to 4K, keeping permissions (no fault needed).
  // Returns how many huge leaves were split. Errors: OutOfRange, OutOfMemory.
  Result<std::uint64_t, pt::TableError> split(Range<Gfn> gfns);
  // Collapses in place (KVM: recovers huge pages): every page table inside `gfns` whose
  // entries are present, contiguous,
  // equally permitted and allowed to be huge becomes one huge leaf in a single atomic store,
  // never unmapping the range (then 2M leaves into 1G the same way). Runs concurrently with
  // faults. Returns how many tables were replaced.
  std::uint64_t collapse(Range<Gfn> gfns);
  // Unmaps the page tables inside `gfns` that could be huge, so faults map huge again (KVM's
  // zap_collapsible_sptes, its recovery before 6.13). Returns how many.
  std::uint64_t unmap_collapsible(Range<Gfn> gfns);
  // Clears write permission on every leaf touching `gfns`; returns leaves changed.
  // pt::Exclusive: takes the lock exclusively, whole page tables are stored. pt::Shared: stays
  // concurrent with faults, every entry compare-exchanged (a bit set meanwhile is kept).
  std::uint64_t write_protect(Range<Gfn> gfns, pt::Exclusive = {});
  std::uint64_t write_protect(Range<Gfn> gfns, pt::Shared);
  // Test-and-clear the accessed state of every leaf touching `gfns` (A bits; unmapping when
  // the format has no A/D bits). Returns how many leaves were young. No TLB flush (as KVM 6.13+).
  std::uint64_t age(Range<Gfn> gfns);
  [[nodiscard]] bool test_age(Range<Gfn> gfns);

  // Forbids (or allows again) huge mappings that would cover any of `gfns`: KVM's
  // disallow_lpage counts (mixed private/shared attributes, write-tracked pages). Counts
  // nest. disallow splits huge leaves covering the range (unmaps them whole when out of table
  // memory).
  void disallow_huge(Range<Gfn> gfns);
  void allow_huge(Range<Gfn> gfns);

  // ---- observation ----------------------------------------------------------------------

  [[nodiscard]] TdpStats stats();
  [[nodiscard]] pt::TlbLog<Gpa>& tlb() { return tlb_; }
  [[nodiscard]] const pt::OwnedTableMemory& table_memory() const { return memory_; }
  [[nodiscard]] RootSet& roots() { return *roots_; }
  // The leaf mapping `gpa` in the first valid root: (host address of gpa, level, attrs).
  struct Leaf {
    Hpa host;
    unsigned level;
    pt::LeafAttrs attrs;
  };
  [[nodiscard]] std::optional<Leaf> lookup(Gpa gpa);
  // Every invariant (see docs/architecture.md): each leaf against the memslots, no writable
  // leaf in a read-only slot or on a dirty-logged page not yet logged, root reference counts,
  // table pages reachable == accounted. Returns the first violation. Takes the lock.
  [[nodiscard]] std::optional<std::string> check_invariants();

 private:
  friend class VcpuMmu;
  TdpMmu(const TdpConfig& config, Memslots& slots);

  // The lock-free hardware walk (lock held shared); null when it would fault.
  std::byte* translate(VcpuMmu& vcpu, Gpa gpa, Access a);
  Result<FaultOutcome, pt::TableError> fault_locked(VcpuMmu& v, Root& root, Gpa gpa, Access access,
                                                   std::uint64_t seq, std::uint64_t generation,
                                                   const MemslotRegion* region, pt::TlbFlush<Gpa>& flush);
  unsigned max_level(const MemslotRegion& region, Gfn gfn) const;
  bool retry_needed(Gfn gfn, std::uint64_t seq) const;
  bool huge_disallowed(Gfn gfn, unsigned level) const;
  bool log_dirty(VcpuMmu* v, const MemslotRegion& region, Gfn gfn);

  void on_memslot_change(const MemslotChange& change);
  void enable_dirty_logging(Range<Gfn> gfns);
  void disable_dirty_logging(Range<Gfn> gfns);
  // Write-protects (or clears D on) page `first + 64 * w + i` for each bit i of words[w], in
  // `roots`; lock held exclusively. Adds what it changed to `flush`.
  void reprotect_masked(const std::vector<Root*>& roots, Gfn first, std::span<const std::uint64_t> words,
                        pt::TlbFlush<Gpa>& flush);
  // Applies a flush token: one flush per operation, counted.
  void finish(pt::TlbFlush<Gpa>&& flush);
  // Zaps `gfns` (clamped to gpa_limit()); huge leaves straddling an edge go whole, so these
  // need no table memory and cannot fail.
  void unmap_locked(Range<Gfn> gfns, pt::TlbFlush<Gpa>& flush, std::int64_t moved_by = 0);
  void unmap_clamped(Range<Gfn> gfns, const char* what);  // takes the lock, one flush
  // `gfns` as guest-physical bytes, clamped to gpa_limit(); nullopt when nothing is left.
  std::optional<Range<Gpa>> clamp(Range<Gfn> gfns) const;
  // Leaves changed; the lock is held as the mode says.
  std::uint64_t write_protect_locked(Range<Gpa> range, auto mode, pt::TlbFlush<Gpa>& flush);
  void checked(const char* what);
  void checked_shared(const char* what);  // checked() after a shared operation (takes the lock)
  std::optional<std::string> invariants_locked();
  // Dirty-bit tracking: logs the pages of every leaf in `range` whose D bit is set, in their
  // slots' bitmaps, and clears the D bits (adding them to *flush), or leaves them when
  // `flush` is null because the leaves are about to be zapped. `moved_by`: the memslots
  // already moved these gfns by that many frames. Lock held exclusively.
  void fold_dirty_bits(Range<Gpa> range, pt::TlbFlush<Gpa>* flush, std::int64_t moved_by = 0);
  std::uint64_t count_huge(Root& root, Range<Gpa> range);
  void check_leaf(Root& root, const MemslotRegion& region, Gpa gpa);

  TdpConfig config_;
  TdpFormat format_;
  Memslots& slots_;
  pt::OwnedTableMemory memory_;
  pt::TlbLog<Gpa> tlb_;
  std::unique_ptr<RootSet> roots_;
  ReaderLock lock_;
  std::uint64_t observer_ = 0;

  // MMU-notifier state (KVM's mmu_invalidate_seq / _in_progress / range).
  std::atomic<std::uint64_t> invalidate_seq_{0};
  // Moves with every TLB flush the MMU issues: vCPU TLBs (GpaTlb) drop their entries.
  std::atomic<std::uint64_t> flush_generation_{1};
  std::atomic<std::uint32_t> invalidate_in_progress_{0};
  std::atomic<std::uint64_t> invalidate_begin_gfn_{0}, invalidate_end_gfn_{0};

  // Disallowed-huge counts per (level, frame); `any_disallowed_` keeps the fault path at one
  // load while there are none.
  mutable std::mutex disallow_mutex_;
  std::unordered_map<std::uint64_t, std::uint32_t> disallowed_[4];
  std::atomic<std::uint64_t> any_disallowed_{0};

  std::mutex vcpus_mutex_;
  std::vector<VcpuMmu*> vcpus_;  // for statistics and ring checks

  std::atomic<std::uint64_t> zaps_{0}, zapped_leaves_{0}, eager_splits_{0}, merges_{0}, merge_races_{0},
      recovered_by_zap_{0}, write_protected_{0}, dirty_cleared_{0}, flushes_{0}, invalidations_{0}, aged_{0},
      roots_invalidated_{0};
  FaultStats retired_vcpus_;  // statistics of vCPUs already destroyed
};

}  // namespace vmmu::tdp
