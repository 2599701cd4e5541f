#pragma once
// ShadowMmu: shadow paging (issue 12) -- tables vmmu owns that map a guest's gva straight to
// the host pages behind its RAM, built from the guest's own page tables on faults.
//
//   access(paging, gva, access)   the modelled hardware: an x86 walk of the shadow tables
//        │                        (host registers: CR0.WP forced on, EFER.NX on, the guest's
//        │ refused                SMEP / SMAP / PKE / PKRU / RFLAGS.AC)
//        ▼
//   handle_fault                  the guest's walk (x86 walker: its exact #PF, its A/D
//        │                        bits) -> reflect; else the chain of shadow pages from the
//        │                        root to a 4 KiB leaf, each found or made by (gfn, role)
//        ▼                        (child_role), and the leaf:
//   leaf rights = the guest path's rights, minus W while the guest's D bit is clear or the
//   frame holds a shadowed guest table (write tracking: a write to it is emulated and applied
//   entry by entry, write_emulation.cpp -- unless its pages, all last-level, go unsync and are
//   synced at the guest's next TLB flush, sync.cpp); CR0.WP=0: a supervisor write to a
//   read-only page gets a writable, non-user leaf (non-executable with SMEP), or is emulated
//   when SMAP forbids making a user page supervisor (smap_andnot_wp).
//
// Roots: one shadow page per (guest root gfn, root role); a host deeper than the guest gets
// passthrough pages above the guest's root (a 4-level guest under a 5-level host: entries 0
// and 511 of the level-5 page both lead to the shadow of the guest's PML4).
// Guest modes run now: paging off (direct pages), 32-bit paging (passthrough levels above the
// guest's root, whose four quarters and each page table's two halves are shadow pages told
// apart by quadrant; a 4 MiB page is two 2 MiB halves of direct pages), 4-level and 5-level
// paging, and PAE paging (the page shadowing the four PDPTEs is keyed by CR3's frame and its
// 32-byte slot, role.pdpt, below passthrough levels).
//
// A VM's ShadowMmu (create()) runs over its memslots: guest RAM is what they back, read-only
// slots map read-only, dirty-logged slots map writable only on a write fault that logged the
// page first, and memslot changes and MMU-notifier invalidations unmap what they must through
// the rmaps. vCPUs reach it through a ShadowVcpu (shadow_vcpu.hpp): its root stays pinned
// while it is the vCPU's, so a zap only marks it invalid.
//
// Thread safety: every member takes the MMU's lock (KVM's mmu_lock, an MmuLock); the hardware
// walk reads entries atomically and `use` runs under the lock, so a zap's flush waits for it.
// Zapped shadow pages are unlinked, and their tables retired after the flush and an RCU grace
// period. The lock is also the accesses' grace period for the memslot snapshot (as the TDP
// MMU's fault lock): a memslot change publishes its snapshot, then takes this lock in
// on_memslot_change before it frees the old one, and every snapshot read here is under the
// lock -- so the vCPU-side members take no RCU read-side section (it cost ~15 ns a fault).
//
// Memslot observers take the lock while Memslots holds its own: nothing here takes the
// memslot mutex (Memslots::slot / slots) under the lock.

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "vmmu/core/access.hpp"
#include "vmmu/core/address.hpp"
#include "vmmu/core/rcu.hpp"
#include "vmmu/core/result.hpp"
#include "vmmu/memory/memslots.hpp"
#include "vmmu/pt/owned_table_memory.hpp"
#include "vmmu/pt/ops/exclusive.hpp"
#include "vmmu/pt/ops/install.hpp"
#include "vmmu/pt/table_iterator.hpp"
#include "vmmu/pt/tlb_log.hpp"
#include "vmmu/shadow/guest_ram.hpp"
#include "vmmu/shadow/mmu_lock.hpp"
#include "vmmu/shadow/page_cache.hpp"
#include "vmmu/shadow/shadow_format.hpp"
#include "vmmu/shadow/shadow_vcpu.hpp"
#include "vmmu/tdp/policy.hpp"
#include "vmmu/x86/guest_paging.hpp"
#include "vmmu/x86/invpcid.hpp"
#include "vmmu/x86/walk.hpp"

namespace vmmu::shadow {

struct ShadowConfig {
  unsigned host_levels = 4;  // 4 or 5
  // What starting dirty logging does to huge shadow leaves (TDP's policy of the same name):
  // WriteProtect keeps them mapped for reads, Drop zaps them.
  tdp::HugeOnDirtyLog huge_on_dirty_log = tdp::HugeOnDirtyLog::WriteProtect;
  // Most shadow pages the VM may have; 0: KVM's default, 20 per mille of the guest pages the
  // memslots back, at least 64 (unlimited over bare GuestRam).
  std::uint64_t page_quota = 0;
  // A write fault on a guest page table shadowed only by last-level pages lets them go unsync
  // and maps the frame writable instead of emulating every write; they are synced on the
  // guest's TLB flushes (KVM's unsync). Off: every such write is emulated.
  bool unsync = true;
};

// Why create() refused a configuration.
enum class ShadowConfigError : std::uint8_t {
  HostLevels,  // host_levels is not 4 or 5
};
std::string_view to_string(ShadowConfigError e);

// Why an access could not complete that is not the guest's own fault.
enum class ShadowExit : std::uint8_t {
  Mmio,         // no guest memory at the frame
  OutOfMemory,  // no shadow page could be allocated
  Unsupported,  // a guest paging mode this MMU does not shadow yet, or a guest deeper than the host
  Stuck,        // the fault path built entries the hardware still refused (an MMU bug)
  RingFull,     // a dirty ring is full (not used: this MMU logs into the slots' bitmaps)
};
std::string_view to_string(ShadowExit e);

struct ShadowStats {
  std::uint64_t hardware_hits = 0;      // accesses the shadow tables answered
  std::uint64_t faults = 0;             // shadow faults handled
  std::uint64_t reflected = 0;          // ... that were the guest's own #PF / #GP
  std::uint64_t emulated = 0;           // ... whose access was emulated (write-tracked, WP=0 + SMAP)
  std::uint64_t write_misaligned = 0;   // shadow pages zapped for a write not one guest entry
  std::uint64_t write_flooded = 0;      // shadow pages zapped for repeated writes without use
  std::uint64_t syncs = 0;              // unsync pages synced
  std::uint64_t unsyncs = 0;            // pages let go unsync
  std::uint64_t shadow_pages = 0;       // now
  std::uint64_t shadow_pages_peak = 0;  // most at once
  std::uint64_t zapped_pages = 0;       // shadow pages zapped
  std::uint64_t tlb_flushes = 0;        // flushes issued (MMU changes and guest flushes)
  std::uint64_t roots_built = 0;        // root shadow pages made
  std::uint64_t roots_reused = 0;       // root loads that found the root already there (cache or MMU)
  std::uint64_t root_cache_hits = 0;    // ... of them answered by the vCPU's previous roots (no lookup)
  std::uint64_t root_syncs = 0;         // roots synced for a guest flush (CR3 load, INVPCID, ...)
  std::uint64_t huge_leaves = 0;        // huge shadow leaves installed (2 MiB / 1 GiB)
  std::uint64_t huge_splits = 0;        // huge leaves replaced by a table of small leaves
  std::uint64_t huge_dropped = 0;       // huge leaves zapped when dirty logging started (Drop)
  std::uint64_t reclaimed = 0;          // pages zapped to stay within the quota
  std::uint64_t prefetched = 0;         // leaves installed for a fault's neighbours (prefetch.cpp)
};

// What an access through the MMU gave: the guest's translation (gpa, guest page size), or the
// guest's fault, or an exit.
struct Outcome {
  Result<x86::Translation, x86::WalkFault> guest;
  std::optional<ShadowExit> exit;
};

class ShadowMmu {
 public:
  // A VM's shadow MMU over its memslots (see the header comment); it observes them until
  // destroyed. Errors: HostLevels.
  static Result<std::unique_ptr<ShadowMmu>, ShadowConfigError> create(const ShadowConfig& config, Memslots& slots);
  // Over guest RAM alone (case files: `vmmu walk --mmu shadow`): every frame writable, no
  // memslot events.
  ShadowMmu(GuestRam& ram, ShadowConfig config);
  ~ShadowMmu();
  ShadowMmu(const ShadowMmu&) = delete;
  ShadowMmu& operator=(const ShadowMmu&) = delete;

  // One access at `gva` by a vCPU whose paging state is `paging`: the hardware walk, and on a
  // refusal the fault path and one retry.
  Outcome access(const x86::GuestPaging& paging, Gva gva, Access access);

  // ---- the vCPU side (KVM's kvm_mmu ops) --------------------------------------------------

  // The modelled hardware's access with data: the walk of the vCPU's root (loaded for
  // `paging` first if it is not that root: a role change keeps the old root), the fault path
  // on a refusal, then use(host address of gva's byte) under the lock. `use` stays in the
  // 4 KiB page and must not call the MMU. A write to a write-tracked guest table goes through
  // `use` too; the MMU then brings the shadow pages of that table in line: entry by entry when
  // `bytes` (what `use` writes from that byte) is one guest entry, else by zapping them. Faults
  // on a range under invalidation wait (outside the lock) until it ends.
  template <class Use>
  Outcome access(ShadowVcpu& vcpu, const x86::GuestPaging& paging, Gva gva, Access a, Use&& use,
                 std::uint32_t bytes = 0) {
    for (;;) {
      {
        const std::lock_guard lock(mutex_);
        Reached r = reach_locked(vcpu, paging, gva, a);
        if (!r.again) {
          if (r.host != nullptr) {
            use(r.host);
            if (r.table_written) table_written_locked(r.gpa, bytes, &paging);
          }
          return std::move(r.outcome);
        }
      }
      std::this_thread::yield();  // invalidation in progress: let it end
    }
  }

  // A guest-physical access (device DMA, Vm::read / write): use(host address of gpa's byte)
  // under the lock, the page logged first when written, and a write to a guest table has the
  // consequences a guest write has (`bytes` as for access()). Errors: Mmio (no memory, or a
  // write to a read-only slot).
  template <class Use>
  Status<ShadowExit> access_gpa(Gpa gpa, Access a, Use&& use, std::uint32_t bytes = 0) {
    const std::lock_guard lock(mutex_);
    const GpaReached r = reach_gpa_locked(gpa, a);
    if (r.host == nullptr) return Unexpected{ShadowExit::Mmio};
    use(r.host);
    if (r.table_written) table_written_locked(gpa, bytes, nullptr);
    return {};
  }

  // CR3 load (and any paging-state change) under PCID `pcid` (0 without CR4.PCIDE): the
  // vCPU's root becomes the one for `paging` -- from the vCPU's cache of previous roots
  // (no lookup), else found in the MMU or built; the old root goes into the cache, not
  // zapped. `flush`: the guest asked for a TLB flush (CR3 bit 63 clear with PCIDs, always
  // without): the unsync pages under the new root are synced and cached roots of the same PCID become stale. A no-flush
  // load of a cached root syncs nothing unless the guest flushed its PCID meanwhile.
  Status<ShadowExit> load_cr3(ShadowVcpu& vcpu, const x86::GuestPaging& paging, bool flush = true,
                              std::uint16_t pcid = 0);
  // INVLPG: the guest changed its mapping of `gva` and flushed it (in every root of the vCPU:
  // INVLPG drops global translations of every PCID; an unsync page's entry for it is synced).
  void invlpg(ShadowVcpu& vcpu, Gva gva);
  // INVPCID of type `type` for `pcid` (Address: the page holding linear address `linear`).
  // The shadow MMU keeps no global translations apart, so the types excluding globals flush
  // them too (a flush may always drop more).
  void invpcid(ShadowVcpu& vcpu, x86::InvpcidType type, std::uint16_t pcid, Gva linear);
  // A guest TLB flush of every PCID (CR4.PGE or CR4.PCIDE 1->0, CR0.PG 1->0): the current
  // root is synced, cached roots become stale.
  void flush_tlb(ShadowVcpu& vcpu);
  // Releases the vCPU's root and its cached roots (KVM's kvm_mmu_unload); the next access
  // loads one.
  void unload(ShadowVcpu& vcpu);

  // ---- host-side events ---------------------------------------------------------------------

  // MMU notifier: the host is about to change the memory behind `gfns`: unmaps what maps
  // them (and shadow pages of guest tables in them); faults on them wait until
  // invalidate_end.
  void invalidate_begin(Range<Gfn> gfns);
  void invalidate_end(Range<Gfn> gfns);
  // Unmaps every shadow leaf mapping a frame of `gfns`, and zaps the shadow pages of guest
  // tables in them (their contents came from that memory).
  void unmap(Range<Gfn> gfns);
  // Zaps every shadow page (roots in use stay, invalid, until released).
  void unmap_all();

  // ---- dirty logging (the slot's LogDirty flag is set / cleared through Memslots) ---------

  // KVM_GET_DIRTY_LOG: takes and clears the slot's dirty bits and write-protects the pages
  // they name. Errors: UnknownSlot, NotLoggingDirty.
  Result<std::vector<std::uint64_t>, MemslotError> get_dirty_log(SlotId slot);
  // The slot's dirty bits, not cleared. Errors: UnknownSlot, NotLoggingDirty.
  Result<std::vector<std::uint64_t>, MemslotError> peek_dirty_log(SlotId slot);
  // KVM_CLEAR_DIRTY_LOG: clears the bits of `mask` for pages [first_page, first_page + pages)
  // and write-protects those pages. Errors: UnknownSlot, NotLoggingDirty, RangeOutsideSlot.
  Status<MemslotError> clear_dirty_log(SlotId slot, std::uint64_t first_page, std::uint64_t pages,
                                       std::span<const std::uint64_t> mask);

  // The root shadow page for `paging` (found or made, held as a root).
  // Errors: OutOfMemory, Unsupported.
  Result<ShadowPage*, ShadowExit> load_root(const x86::GuestPaging& paging);

  [[nodiscard]] ShadowStats stats() const;
  // Guest-table writes under the process whose root table is in `root` (table_writes.cpp):
  // emulated writes to its shadowed tables and tables let go unsync, each counted once for
  // every root whose shadow tree holds the written table (a shared table counts for each).
  [[nodiscard]] std::uint64_t table_writes(Gfn root) const;
  // The guest tables (frames) shadow pages under the root in `root` shadow now.
  [[nodiscard]] std::vector<Gfn> tables_under(Gfn root) const;
  // Host memory the shadow pages take: their tables and their bookkeeping (ShadowPage: the
  // guest frame of each leaf, parent links), not the rmaps (see rmap_bytes()).
  [[nodiscard]] std::uint64_t shadow_page_bytes() const;
  [[nodiscard]] std::uint64_t rmap_bytes() const;
  [[nodiscard]] const ShadowConfig& config() const { return config_; }
  // The shadow-page quota now (see ShadowConfig::page_quota); ~0 when unlimited.
  [[nodiscard]] std::uint64_t page_quota() const;
  [[nodiscard]] const ShadowFormat& format() const { return format_; }
  // For tests and invariant checks; callers hold no lock, so only while no access runs.
  [[nodiscard]] const PageCache& pages() const { return pages_; }

  // The first broken invariant of docs/architecture.md's shadow section, named; nullopt when
  // all hold. With VMMU_CHECK_INVARIANTS every fault checks them and aborts on one.
  [[nodiscard]] std::optional<std::string> check_invariants() const;

 private:
  friend class ShadowVcpu;
  ShadowMmu(std::unique_ptr<GuestRam> ram, Memslots& slots, ShadowConfig config);

  // What the vCPU side reached: the outcome, and the host byte for `use` (null: no access).
  struct Reached {
    Outcome outcome;
    std::byte* host = nullptr;
    Gfn frame;                   // the frame accessed
    Gpa gpa;                     // the byte accessed
    bool table_written = false;  // a write to a write-tracked guest table
    bool again = false;          // the frame is under invalidation: wait, then again
  };
  Reached reach_locked(ShadowVcpu& vcpu, const x86::GuestPaging& paging, Gva gva, Access a);
  struct GpaReached {
    std::byte* host = nullptr;
    bool table_written = false;
  };
  GpaReached reach_gpa_locked(Gpa gpa, Access a);
  // ---- write emulation (write_emulation.cpp, KVM's kvm_mmu_track_write) -------------------
  // After a write of `bytes` at `gpa` to a write-tracked guest table: each synced shadow page
  // of it applies the written entry (under `paging`, when given and of the page's kind), or is
  // zapped for a write that is not one entry or for write flooding.
  void table_written_locked(Gpa gpa, std::uint32_t bytes, const x86::GuestPaging* paging);
  // Re-reads the guest entries behind leaves [first, first + count) of the level-1 page `sp`
  // under `paging`: each present leaf follows its entry in place, or goes when it cannot (not
  // present, not accessed, no paging state that reads the page's entries, ...).
  void refresh_leaves(ShadowPage& sp, unsigned first, unsigned count, const x86::GuestPaging* paging,
                      pt::TlbFlush<Gva>& flush);
  // The leaf guest entry `i` of the last-level page `sp` allows (`guest_table`: its guest
  // table's host page, read through `f`), for mapping it with no fault: nullopt when the
  // entry is not present, reserved or not accessed yet, or its frame has no memory or is
  // being invalidated; rights without W while the guest's D bit is clear or the frame is a
  // shadowed table, read-only or logged dirty (src/shadow/allowed_leaf.hpp).
  struct AllowedLeaf {
    Gfn frame;
    std::byte* host = nullptr;
    LeafRights rights;
  };
  template <class F>
  [[nodiscard]] std::optional<AllowedLeaf> allowed_leaf(const F& f, const ShadowPage& sp, std::byte* guest_table,
                                                        unsigned i) const;
  // allowed_leaf's two halves: what the guest entry allows by itself (nullopt: not present,
  // reserved or not accessed; W only with D), and what the frame's backing allows of that.
  struct GuestAllows {
    Gfn frame;
    LeafRights rights;
  };
  template <class F>
  [[nodiscard]] static std::optional<GuestAllows> guest_allows(const F& f, const ShadowPage& sp,
                                                               std::byte* guest_table, unsigned i);
  [[nodiscard]] std::optional<AllowedLeaf> backed(GuestAllows g) const;
  // Whether `paging` reads guest entries as a page of `role` does (entry size, NX).
  [[nodiscard]] bool reads_like(Role role, const x86::GuestPaging& paging) const;
  // Entry `index` of the level>1 page `sp` after its guest entry became `guest` (present,
  // table address, rights): the child link stays if it still names the same child, else goes.
  void relink_check(ShadowPage& sp, unsigned index, bool present, Gfn table, std::uint8_t rights,
                    pt::TlbFlush<Gva>& flush);
  // Clears entry `index` of `sp` (KVM's mmu_page_zap_pte): a leaf leaves its rmap, a child
  // loses this parent link and is zapped when that was its last.
  void zap_entry(ShadowPage& sp, unsigned index, pt::TlbFlush<Gva>& flush);
  // zap_entry's first half: returns the child left with no parent (for the caller to zap).
  ShadowPage* clear_entry(ShadowPage& sp, unsigned index, pt::TlbFlush<Gva>& flush);
  // Frames with a synced shadow page of a guest table: every write to them must come to us.
  // (A frame whose pages are all unsync is mapped writable.)
  [[nodiscard]] bool write_tracked(Gfn gfn) const;

  // ---- unsync and sync (sync.cpp, KVM's mmu_try_to_unsync_pages / kvm_mmu_sync_roots) ------
  // A write fault on `gfn`: lets its shadow pages go unsync if all are last-level, non-root.
  bool try_unsync_locked(Gfn gfn);
  // A write to the guest table in `table` came to us (emulated or unsync): +1 for each root above it.
  void count_table_write_locked(Gfn table);
  // The walk up parent links to the roots above some pages (table_writes.cpp): `todo` holds
  // the pages to start from; `roots` receives the roots' gfns, each once.
  struct RootWalk {
    std::vector<const ShadowPage*> todo;
    std::vector<const ShadowPage*> seen;
    std::vector<std::uint64_t> roots;
  };
  static void roots_above(const PageCache& pages, RootWalk& w);
  // Records that `child` (unsync, or with unsync children) is reached through each of its
  // parent entries, up to the roots (KVM's mark_unsync).
  void mark_parents_unsync(const ShadowPage& child);
  // Syncs every unsync page under the vCPU's root (its guest flushed its TLB), walking only
  // the entries whose unsync-children bit is set.
  void sync_roots_locked(ShadowVcpu& vcpu);
  void sync_children_locked(ShadowPage& sp, const x86::GuestPaging& paging, pt::TlbFlush<Gva>& flush);
  // Re-reads every guest entry behind `sp`'s leaves (refresh_leaf). `mark_synced`: the page
  // is synced and its frame write-protected again; else (a new parent links the page) only
  // its contents are brought up to date.
  void sync_page_locked(ShadowPage& sp, const x86::GuestPaging& paging, bool mark_synced, pt::TlbFlush<Gva>& flush);
  // `sp` leaves the unsync state's accounting (synced or zapped).
  void forget_unsync(ShadowPage& sp);
  // The vCPU's root for `paging`, loaded (and pinned) if it is not already.
  Result<ShadowPage*, ShadowExit> vcpu_root_locked(ShadowVcpu& vcpu, const x86::GuestPaging& paging);
  void release_root_locked(ShadowPage* root);
  // ---- roots across CR3 switches (root_cache.cpp) ------------------------------------------
  // load_cr3's work: the root for (paging, pcid) made current, the old one cached.
  Result<ShadowPage*, ShadowExit> switch_root_locked(ShadowVcpu& vcpu, const x86::GuestPaging& paging,
                                                     std::uint16_t pcid, bool flush);
  // `c` becomes the most recent cached root; the oldest is evicted (released) when full.
  void cache_root_locked(ShadowVcpu& vcpu, const ShadowVcpu::CachedRoot& c);
  // The guest flushed `pcid` (every PCID: nullopt): the current root synced if it is
  // concerned, cached roots concerned marked stale.
  void guest_flush_locked(ShadowVcpu& vcpu, std::optional<std::uint16_t> pcid);
  // Syncs the unsync pages under the current root (sync_roots_locked); counted as a root sync.
  void sync_current_root_locked(ShadowVcpu& vcpu);
  // The shadow leaf for linear address `linear` under `root`, if any: synced from its guest
  // entry when its page is unsync and `paging` (the root's paging state) is given, else cleared.
  void zap_gva_locked(const ShadowPage& root, std::uint64_t linear, const x86::GuestPaging* paging,
                      pt::TlbFlush<Gva>& flush);
  void release_cached_locked(ShadowVcpu& vcpu);

  // A guest frame's backing as the fault path needs it: host page (null: none), whether it
  // may be written, and the region (null without memslots) for dirty logging.
  struct HostFrame {
    std::byte* host = nullptr;
    bool writable = true;
    const MemslotRegion* region = nullptr;
  };
  HostFrame host_frame(Gfn gfn) const;
  [[nodiscard]] bool invalidating(Gfn gfn) const;

  void on_memslot_change(const MemslotChange& change);
  // page_quota() from the configuration and the memslots now.
  void update_quota();
  // Before a fault builds: over the quota, zaps the least recently used non-root pages (a
  // batch, so that the next faults do not each reclaim). Roots are never taken.
  void reclaim_locked();
  // Zaps `sp` (KVM's prepare_zap + commit): unlinks it from its parents and children,
  // removes its leaves from the rmaps, zaps children left without a parent, and retires its
  // table with `flush`; a root still in use only becomes invalid and empty.
  void zap_page(ShadowPage* sp, pt::TlbFlush<Gva>& flush);
  void zap_pages(const std::vector<Hpa>& tables, pt::TlbFlush<Gva>& flush);
  // A shadow leaf by its rmap: the first frame it maps, its entry, its level.
  struct LeafRef {
    Gfn gfn;
    Hpa entry;
    unsigned level;
  };
  // The shadow leaves mapping any frame of `gfns` (huge ones starting below it included).
  [[nodiscard]] std::vector<LeafRef> leaves_over(Range<Gfn> gfns) const;
  // Clears the shadow leaf at `entry` (a leaf of the rmap of `gfn`).
  void zap_leaf(Gfn gfn, Hpa entry, pt::TlbFlush<Gva>& flush);
  void unmap_locked(Range<Gfn> gfns, pt::TlbFlush<Gva>& flush);
  // Removes write permission from the shadow leaf at `entry`; false: it had none.
  bool clear_write(Hpa entry);
  // Removes write permission from every leaf mapping a frame of `gfns`.
  void write_protect_locked(Range<Gfn> gfns, pt::TlbFlush<Gva>& flush);
  // Dirty logging starts on `gfns`: their leaves lose write permission (huge ones as the
  // policy says: write-protected, or dropped).
  void start_dirty_logging_locked(Range<Gfn> gfns, pt::TlbFlush<Gva>& flush);
  // Write-protects the pages first + 64 * w + i for each bit i of words[w].
  void reprotect_masked(Gfn first, std::span<const std::uint64_t> words, pt::TlbFlush<Gva>& flush);
  // A harvest's write-protection of what `words` name, its flush and its invariant check.
  void reprotect_and_flush(Gfn first, std::span<const std::uint64_t> words, const char* what);
  // Applies a flush: one per operation, counted.
  void finish(pt::TlbFlush<Gva>&& flush);
  void checked(const char* what) const;

  enum class Fault : std::uint8_t { Retry, Reflect, Emulate, Invalidated };
  struct Handled {
    Fault kind;
    Outcome outcome;
  };
  Handled handle_fault(const x86::GuestPaging& paging, ShadowPage& root, std::uint64_t linear, Access access);
  // The host's paging state for running `paging` on `root`, rebuilt only when it changes.
  const x86::GuestPaging& host_paging(const x86::GuestPaging& paging, const ShadowPage& root);
  // The hardware walk with the host's paging state; `host_byte`, when given, receives the
  // host address of the byte reached.
  std::optional<x86::Translation> hardware(const x86::GuestPaging& host, std::uint64_t linear, Access access,
                                           std::byte** host_byte = nullptr);
  Result<ShadowPage*, ShadowExit> root_locked(const x86::GuestPaging& paging);
  // The child of `parent` at the entry `it` stands on (not a table entry), found or made and
  // linked; `it` moves into it.
  Result<ShadowPage*, ShadowExit> child(const x86::GuestPaging& paging, ShadowPage& parent,
                                        pt::TableIterator<ShadowFormat, pt::OwnedTableMemory>& it, Gfn gfn, Role role,
                                        pt::TlbFlush<Gva>& flush);
  // Leaves for the accessed neighbours of the 4 KiB leaf just installed at `input` in `sp`.
  static constexpr unsigned kPrefetchEntries = 8;  // KVM's PTE_PREFETCH_NUM
  void prefetch(const x86::GuestPaging& paging, ShadowPage& sp, std::uint64_t input);
  // Write tracking starts on `gfn`: its leaves read-only, huge leaves over it zapped.
  void write_protect(Gfn gfn);
  // Fills the new page `p` (below the entry `it` stands on, a huge leaf mapping `old`) with
  // read-only leaves mapping the same pages, rmapped.
  void split_into(ShadowPage& p, const pt::TableIterator<ShadowFormat, pt::OwnedTableMemory>& it, GuestLeaf old);
  // The largest shadow leaf level (1..3) for this fault: the guest's page size, the memslot's
  // backing and extent, dirty logging and write tracking all allow it.
  [[nodiscard]] unsigned huge_level(const x86::Translation& t, std::uint64_t linear) const;
  // The first frame of the level-`level` page holding the fault's byte.
  [[nodiscard]] Gfn first_frame(const x86::Translation& t, std::uint64_t linear, unsigned level) const;
  [[nodiscard]] bool invalidating_any(Range<Gfn> gfns) const;
  [[nodiscard]] std::optional<std::string> invariants_locked() const;
  // Debug builds after a fault at `linear` under `root`: the invariants of what it touched
  // (fault_invariants_locked), and the full pass once every max(kFullCheckEvery, pages)
  // operations -- a pass after every fault made debug replays quadratic.
  void checked_fault(const ShadowPage& root, const x86::GuestPaging& paging, std::uint64_t linear);
  [[nodiscard]] std::optional<std::string> fault_invariants_locked(const ShadowPage& root,
                                                                   const x86::GuestPaging& paging,
                                                                   std::uint64_t linear) const;
  static constexpr std::uint64_t kFullCheckEvery = 64;
  // Invariant 3 for the table entry `entry` at `entry_address` (level `level`).
  [[nodiscard]] std::optional<std::string> link_broken(unsigned level, std::uint64_t entry, Hpa entry_address) const;
  // Invariants 1, 2, 3 (rmap) and 5 for the level-`level` leaf `entry` at `entry_address`
  // mapping shadow input `gva` under a root of paging state `paging`.
  [[nodiscard]] std::optional<std::string> leaf_broken(const x86::GuestPaging& paging, unsigned level, std::uint64_t gva,
                                                       std::uint64_t entry, Hpa entry_address) const;
  // Invariant 6: the unsync pages and the unsync-children bitmaps leading to them.
  [[nodiscard]] std::optional<std::string> unsync_broken() const;
  // Invariant 5 for one level-`level` leaf (rights `r`) mapping `gfn` at `gva`.
  [[nodiscard]] std::optional<std::string> backing_broken(Gfn gfn, unsigned level, std::uint64_t gva,
                                                          LeafRights r) const;

  std::unique_ptr<GuestRam> own_ram_;  // create(): the memslots as guest RAM
  GuestRam& ram_;
  Memslots* slots_ = nullptr;
  std::uint64_t observer_ = 0;
  ShadowConfig config_;
  ShadowFormat format_;
  mutable pt::OwnedTableMemory memory_;  // const checks iterate the tables (reads only)
  pt::TlbLog<Gva> tlb_;
  mutable MmuLock mutex_;
  PageCache pages_;
  std::unordered_map<const ShadowPage*, x86::GuestPaging> roots_;  // each root's paging state
  // The last host paging state built (GuestPaging::from is the cost of a hardware walk).
  struct HostPaging {
    x86::Registers registers;
    x86::GuestPaging paging;
  };
  std::optional<HostPaging> host_;
  // The entries the last guest walk (handle_fault) and hardware walk used: scratch under the
  // lock, kept here because zeroing a WalkPath on every call cost a fault ~9 ns.
  x86::WalkPath guest_path_;
  x86::WalkPath hardware_path_;
  // Scratch under the lock, kept so that an emulated write allocates nothing: the roots above
  // a written table (count_table_write_locked), the tables of the written frame's pages.
  RootWalk root_walk_;
  std::vector<Hpa> written_tables_;
  ShadowStats stats_{};
  std::unordered_map<std::uint64_t, std::uint32_t> unsync_frames_;  // gfn -> its unsync pages
  std::unordered_map<std::uint64_t, std::uint64_t> table_writes_;   // root gfn -> table_writes()
  std::atomic<std::uint64_t> quota_{0};  // page_quota(), kept by update_quota()
  mutable std::uint64_t unchecked_ops_ = 0;  // faults checked incrementally since the last full pass

  // MMU-notifier state (KVM's mmu_invalidate_in_progress / range), under the lock.
  unsigned invalidations_in_progress_ = 0;
  Range<Gfn> invalidating_{};
};

}  // namespace vmmu::shadow
