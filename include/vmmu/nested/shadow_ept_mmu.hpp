#pragma once
// Shadow EPT (KVM's shadow MMU in guest mode, kvm_init_shadow_ept_mmu): an L1 hypervisor runs
// an L2 guest under EPT tables that live in L1's memory. The hardware cannot walk them (their
// output is L1 guest-physical), so vmmu builds shadow EPT tables -- owned, EPT format, L2 gpa
// -> host -- one shadow page per (L1 EPT table frame, role), through the shadow MMU's
// PageCache and Role (role.ept set, guest_mode set, access = EPT R/W/X above, ad_disabled
// from EPTP bit 6, ept_exec_only from the processor).
//
//   load_eptp(vcpu, eptp)     a VM entry with this EPTP: a root from the vCPU's small cache of
//                             recent roots (switching back builds nothing), or found/made
//   access(vcpu, l2_gpa, op)  the hardware's walk of the shadow tables; on a miss, L1's EPT is
//                             walked (A/D set as the architecture says) and the leaf installed
//                             with the walk's rights -- minus W while L1's D bit is clear (A/D
//                             on) or while the frame holds one of L1's EPT tables. A fault in
//                             L1's tables is the VM exit L1 gets (violation with its exit
//                             qualification, misconfiguration, invalid EPTP).
//   write_l1(gpa, value)      L1 wrote to a write-tracked frame (one of its EPT tables): the
//                             write is emulated and the shadow entries it makes stale dropped
//   invept_single / _all      INVEPT: the roots built for that EPTP (or all) are zapped
//
// Over L1's memslots (create()): memslot changes and MMU-notifier invalidations unmap the
// shadow EPT leaves over the L1 frames they touch (and the shadow pages of L1 EPT tables in
// them); read-only L1 memory maps read-only (an L2 write to it is L0's to emulate); and while
// an L1 slot is dirty-logged (L1 being migrated) a leaf over one of its frames is writable only
// after an L2 write fault logged that frame, as under the shadow and TDP MMUs. L0's own writes
// to L1 memory -- A/D bits set in L1's EPT by the walk, write_l1's emulated stores -- are logged
// too. get_dirty_log / clear_dirty_log write-protect the leaves over the frames they hand out.
//
// Thread safety: every member takes the MMU's lock; a vCPU object is used by one thread.

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "vmmu/core/address.hpp"
#include "vmmu/core/access.hpp"
#include "vmmu/core/result.hpp"
#include "vmmu/memory/memslots.hpp"
#include "vmmu/mmu/invalidations.hpp"
#include "vmmu/pt/owned_table_memory.hpp"
#include "vmmu/pt/table_iterator.hpp"
#include "vmmu/pt/tlb_log.hpp"
#include "vmmu/shadow/guest_ram.hpp"
#include "vmmu/shadow/page_cache.hpp"
#include "vmmu/tdp/tdp_format.hpp"
#include "vmmu/x86/ept_walk.hpp"

namespace vmmu::nested {

// A successful L2 access: where the byte is on the host, and what L1's EPT said.
struct L2Translation {
  Hpa host;                // the host byte (the shadow leaf's output)
  Gpa l1_gpa;              // L1's guest-physical address of the byte (L1's EPT walk)
  std::uint64_t page_size; // L1's leaf: 4K, 2M or 1G
  bool emulate = false;    // a write to a frame holding an L1 EPT table: L0 emulates it (write_l1)
};

enum class ExitKind : std::uint8_t {
  ToL1,         // reflected to L1: `fault` is the EPT violation / misconfiguration / invalid EPTP
  L1Mmio,       // L1's gpa has no memory behind it, or is read-only and written: L0 emulates
  OutOfMemory,  // a shadow table could not be allocated
};
std::string_view to_string(ExitKind k);

struct NestedExit {
  ExitKind kind = ExitKind::ToL1;
  x86::EptFault fault{};
  Gpa l1_gpa{};  // L1Mmio only
};

using L2Access = Result<L2Translation, NestedExit>;

struct NestedStats {
  std::uint64_t hits = 0;         // answered by the shadow tables alone
  std::uint64_t faults = 0;       // walked L1's EPT
  std::uint64_t reflected = 0;    // exits to L1
  std::uint64_t roots_built = 0;  // root shadow pages made
  std::uint64_t root_switches = 0;  // load_eptp answered from a vCPU's cache
  std::uint64_t l1_writes = 0;    // emulated writes to L1's EPT tables
  std::uint64_t invepts = 0;
  std::uint64_t logged = 0;       // L1 frames marked dirty (L2 write faults, A/D updates, write_l1)
  std::size_t pages = 0;          // shadow EPT pages now
};

class ShadowEptMmu;

// Per vCPU (KVM's root plus prev_roots): the current EPTP and recently used roots.
class ShadowEptVcpu {
 public:
  static constexpr std::size_t kCachedRoots = 4;
  ShadowEptVcpu() = default;
  ShadowEptVcpu(const ShadowEptVcpu&) = delete;
  ShadowEptVcpu& operator=(const ShadowEptVcpu&) = delete;
  ~ShadowEptVcpu();

  [[nodiscard]] std::optional<std::uint64_t> eptp() const;
  [[nodiscard]] std::optional<Hpa> root() const;  // the current shadow root table

 private:
  friend class ShadowEptMmu;
  struct Cached {
    std::uint64_t eptp = 0;
    shadow::ShadowPage* root = nullptr;
    std::optional<x86::EptContext> ctx;  // validated once: a switch back does not redo it
  };
  ShadowEptMmu* mmu_ = nullptr;
  std::optional<x86::EptContext> ctx_;           // empty: no EPTP, or an invalid one
  std::optional<x86::EptpError> invalid_;        // why the last EPTP was refused
  std::array<Cached, kCachedRoots> roots_{};     // [0] is current; most recent first
};

class ShadowEptMmu {
 public:
  // `l1`: L1's memory (frames backing its guest-physical space, its EPT tables among them),
  // without memslots: no dirty logging, nothing to observe (a case file's memory).
  ShadowEptMmu(shadow::GuestRam& l1, x86::EptCapabilities caps);
  // Over L1's memslots, observing their changes until destroyed (`slots` outlives the MMU).
  static std::unique_ptr<ShadowEptMmu> create(Memslots& slots, x86::EptCapabilities caps);
  ~ShadowEptMmu();
  ShadowEptMmu(const ShadowEptMmu&) = delete;
  ShadowEptMmu& operator=(const ShadowEptMmu&) = delete;

  // L1 enters L2 with `eptp`. Errors: the EptpError naming what is invalid (VM entry fails;
  // accesses then answer invalid_eptp); OutOfMemory is reported by the next access.
  Result<Hpa, x86::EptpError> load_eptp(ShadowEptVcpu& vcpu, std::uint64_t eptp);

  // An L2 guest-physical access.
  L2Access access(ShadowEptVcpu& vcpu, Gpa l2_gpa, AccessKind op);

  // L1's write of `value` to the 8-byte word at `addr` (trapped: the frame is write-tracked).
  void write_l1(Gpa addr, std::uint64_t value);
  [[nodiscard]] bool write_tracked(Gfn gfn) const;

  void invept_single(std::uint64_t eptp);
  void invept_all();

  // ---- L0's side of L1's memory (create() only) ----------------------------------------------

  // MMU notifier: the host is about to change the memory behind L1's `gfns`: what maps them
  // goes, and faults on them wait (access() retries) until invalidate_end.
  void invalidate_begin(Range<Gfn> gfns);
  void invalidate_end(Range<Gfn> gfns);
  // KVM_GET_DIRTY_LOG for L1's slot: takes and clears its bits and write-protects the shadow
  // EPT leaves over the frames they name. Errors: UnknownSlot (also without memslots),
  // NotLoggingDirty.
  Result<std::vector<std::uint64_t>, MemslotError> get_dirty_log(SlotId slot);
  // KVM_CLEAR_DIRTY_LOG: clears the bits of pages first_page + i (bit i of `mask`, i < pages)
  // and write-protects those frames' leaves. Errors: those of get_dirty_log, RangeOutsideSlot.
  Status<MemslotError> clear_dirty_log(SlotId slot, std::uint64_t first_page, std::uint64_t pages,
                                       std::span<const std::uint64_t> mask);

  [[nodiscard]] NestedStats stats() const;
  // Every shadow EPT leaf agrees with L1's EPT walk composed with L1's memory, and no frame
  // holding an L1 EPT table is writable through one. Returns the first violation.
  [[nodiscard]] std::optional<std::string> check_invariants() const;

 private:
  friend class ShadowEptVcpu;
  ShadowEptMmu(std::unique_ptr<shadow::GuestRam> own, Memslots* slots, x86::EptCapabilities caps);
  using Iterator = pt::TableIterator<tdp::TdpFormat, pt::OwnedTableMemory>;
  using Flush = pt::TlbFlush<Gpa>;

  // `again`: an L1 frame the fault needs is under invalidation (nothing installed; retry).
  L2Access fault(ShadowEptVcpu& vcpu, Gpa l2_gpa, AccessKind op, Flush& flush, bool& again);
  // The host page behind L1's `gfn` and, over memslots, its region (the caller holds an RCU
  // read-side section while it uses them).
  struct L1Frame {
    std::byte* host = nullptr;
    const MemslotRegion* region = nullptr;
  };
  [[nodiscard]] L1Frame l1_frame(Gfn gfn) const;
  // L0 wrote L1's `gfn` (an A/D update, an emulated store): logged if its slot logs.
  void l1_written(Gfn gfn);
  void on_memslot_change(const MemslotChange& change);
  void unmap_locked(Range<Gfn> gfns, Flush& flush);
  void write_protect_range(Range<Gfn> gfns, Flush& flush);
  void reprotect_masked(Gfn first, std::span<const std::uint64_t> words, Flush& flush);
  // A harvest's write-protection of what `words` name, its flush and its invariant check.
  void reprotect_and_flush(Gfn first, std::span<const std::uint64_t> words, const char* what);
  bool protect_leaf(Hpa entry, Flush& flush);
  void zap_page(shadow::ShadowPage* p, Flush& flush);
  Result<shadow::ShadowPage*, pt::TableError> child(Iterator& it, Gfn gfn, shadow::Role role, Flush& flush);
  // The tables of a root at `level` (4 or 5): the same entries, walked from that level.
  [[nodiscard]] const tdp::TdpFormat& format(unsigned root_level) const {
    return root_level == 5 ? format5_ : format4_;
  }
  // An iterator standing on entry `index` of shadow page `p` (how rmaps and parents reach it).
  [[nodiscard]] Iterator entry_of(const shadow::ShadowPage& p, unsigned index) const;
  [[nodiscard]] Iterator entry_at(Hpa entry, unsigned level) const;
  void write_protect(Gfn gfn, Flush& flush);
  void clear(Iterator& it, Flush& flush);
  void clear_entry(shadow::ShadowPage& p, unsigned index, Flush& flush);
  void free_if_orphan(shadow::ShadowPage* p, Flush& flush);
  void zap_root(shadow::ShadowPage* root, Flush& flush);
  void release(shadow::ShadowPage* root, Flush& flush);
  [[nodiscard]] shadow::Role root_role(const x86::EptContext& ctx) const;
  void reload_root(ShadowEptVcpu& vcpu, Flush& flush);
  void free_page(shadow::ShadowPage* p, Flush& flush);
  void finish(Flush&& flush);
  void checked(const char* what) const;
  [[nodiscard]] std::optional<std::string> invariants_locked() const;
  [[nodiscard]] std::optional<std::string> check_leaf(const Iterator& it, const x86::EptContext& ctx) const;

  std::unique_ptr<shadow::GuestRam> own_ram_;  // create(): the memslots as L1's memory
  shadow::GuestRam& l1_;
  Memslots* slots_ = nullptr;                   // create() only
  std::uint64_t observer_ = 0;
  x86::EptCapabilities caps_;
  tdp::TdpFormat format4_, format5_;
  mutable pt::OwnedTableMemory memory_;  // const checks iterate the tables (reads only)
  pt::TlbLog<Gpa> tlb_;                  // invalidations of L2 gpa ranges (INVEPT's, and ours)
  shadow::PageCache pages_;
  mutable std::mutex lock_;
  NestedStats stats_;
  mmu::Invalidations invalidations_;  // MMU-notifier state, under the lock
};

}  // namespace vmmu::nested
