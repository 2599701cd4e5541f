#pragma once
// The nested MMU (KVM's shadow MMU in guest mode: kvm_init_shadow_ept_mmu,
// kvm_init_shadow_npt_mmu): an L1 hypervisor runs an L2 guest under tables that live in L1's
// memory -- EPT (Intel) or NPT (AMD). The hardware cannot walk them (their output is L1
// guest-physical), so vmmu builds shadow tables -- owned, in the format of L1's kind, L2 gpa ->
// host -- one shadow page per (L1 table frame, role), through the shadow MMU's PageCache and
// Role (guest_mode set, and ept or npt: the two kinds, and L1's own shadow pages, never mix).
// `Kind` is the small policy of L1's tables (ept_kind.hpp, npt_kind.hpp): the root pointer, the
// walk, the exit L1 gets, the shadow format. Everything else is shared.
//
//   load(vcpu, pointer)       a VM entry with this EPTP / nCR3: a root from the vCPU's small
//                             cache of recent roots (switching back builds nothing), or found/made
//   access(vcpu, l2_gpa, op)  the hardware's walk of the shadow tables; on a miss, L1's tables
//                             are walked (A/D set as the architecture says) and the leaf installed
//                             with the walk's rights -- minus W while L1's D bit is clear (A/D
//                             on) or while the frame holds one of L1's tables. A fault in L1's
//                             tables is the VM exit L1 gets (EPT violation / misconfiguration /
//                             invalid EPTP; #NPF with EXITINFO1/2).
//   write_l1(gpa, value)      L1 wrote to a write-tracked frame (one of its tables): the write is
//                             emulated and the shadow entries it makes stale dropped
//   zap_roots / zap_all       INVEPT single / all-context, VMRUN's TLB_CONTROL flush of the ASID
//                             / of everything: the roots built for that pointer (or all) zapped
//
// Over L1's memslots (create()): memslot changes and MMU-notifier invalidations unmap the
// shadow leaves over the L1 frames they touch (and the shadow pages of L1 tables in them);
// read-only L1 memory maps read-only (an L2 write to it is L0's to emulate); and while an L1
// slot is dirty-logged (L1 being migrated) a leaf over one of its frames is writable only after
// an L2 write fault logged that frame, as under the shadow and TDP MMUs. L0's own writes to L1
// memory -- A/D bits set in L1's tables by the walk, write_l1's emulated stores -- are logged
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

#include "vmmu/core/access.hpp"
#include "vmmu/core/address.hpp"
#include "vmmu/core/result.hpp"
#include "vmmu/memory/memslots.hpp"
#include "vmmu/mmu/invalidations.hpp"
#include "vmmu/nested/nested_types.hpp"
#include "vmmu/pt/owned_table_memory.hpp"
#include "vmmu/pt/table_iterator.hpp"
#include "vmmu/pt/tlb_log.hpp"
#include "vmmu/shadow/guest_ram.hpp"
#include "vmmu/shadow/page_cache.hpp"
#include "vmmu/tdp/tdp_format.hpp"

namespace vmmu::nested {

template <class Kind>
class NestedMmu;

// Per vCPU (KVM's root plus prev_roots): the current root pointer and recently used roots.
template <class Kind>
class NestedVcpu {
 public:
  static constexpr std::size_t kCachedRoots = 4;
  NestedVcpu() = default;
  NestedVcpu(const NestedVcpu&) = delete;
  NestedVcpu& operator=(const NestedVcpu&) = delete;
  ~NestedVcpu();

  // The loaded EPTP / nCR3 (empty: none, or an invalid one).
  [[nodiscard]] std::optional<typename Kind::Pointer> pointer() const;
  [[nodiscard]] std::optional<std::uint64_t> eptp() const
    requires Kind::kEpt
  {
    return pointer();
  }
  [[nodiscard]] std::optional<Hpa> root() const;  // the current shadow root table

 private:
  friend class NestedMmu<Kind>;
  struct Cached {
    typename Kind::Pointer pointer{};
    shadow::ShadowPage* root = nullptr;
    // Validated once: a switch back does not redo it. On the heap: a switch moves pointers, not
    // contexts (an NPT one holds a whole GuestPaging).
    std::unique_ptr<const typename Kind::Context> ctx;
  };
  NestedMmu<Kind>* mmu_ = nullptr;
  const typename Kind::Context* ctx_ = nullptr;         // roots_[0]'s; null: no pointer, or an invalid one
  std::optional<typename Kind::PointerError> invalid_;  // why the last pointer was refused
  std::array<Cached, kCachedRoots> roots_{};            // [0] is current; most recent first
};

template <class Kind>
class NestedMmu {
 public:
  using Vcpu = NestedVcpu<Kind>;
  using Exit = NestedExitOf<typename Kind::Fault>;
  using L2Result = Result<L2Translation, Exit>;
  using Caps = typename Kind::Caps;

  // `l1`: L1's memory (frames backing its guest-physical space, its tables among them),
  // without memslots: no dirty logging, nothing to observe (a case file's memory).
  NestedMmu(shadow::GuestRam& l1, Caps caps);
  // Over L1's memslots, observing their changes until destroyed (`slots` outlives the MMU).
  static std::unique_ptr<NestedMmu> create(Memslots& slots, Caps caps);
  ~NestedMmu();
  NestedMmu(const NestedMmu&) = delete;
  NestedMmu& operator=(const NestedMmu&) = delete;

  // L1 enters L2 with `pointer`. Errors: the PointerError naming what is invalid (VM entry
  // fails; accesses then answer Kind::invalid_pointer()); OutOfMemory is reported by the next
  // access.
  Result<Hpa, typename Kind::PointerError> load(Vcpu& vcpu, typename Kind::Pointer pointer);
  Result<Hpa, typename Kind::PointerError> load_eptp(Vcpu& vcpu, typename Kind::Pointer eptp)
    requires Kind::kEpt
  {
    return load(vcpu, eptp);
  }
  Result<Hpa, typename Kind::PointerError> load_ncr3(Vcpu& vcpu, typename Kind::Pointer ncr3)
    requires(!Kind::kEpt)
  {
    return load(vcpu, ncr3);
  }

  // An L2 guest-physical access.
  L2Result access(Vcpu& vcpu, Gpa l2_gpa, AccessKind op);

  // L1's write of `value` to the 8-byte word at `addr` (trapped: the frame is write-tracked).
  void write_l1(Gpa addr, std::uint64_t value);
  [[nodiscard]] bool write_tracked(Gfn gfn) const;

  // The roots built for `pointer` go (INVEPT single-context: under either A/D setting).
  void zap_roots(typename Kind::Pointer pointer);
  // Every shadow page goes (INVEPT all-context, TLB_CONTROL flush-all).
  void zap_all();
  void invept_single(typename Kind::Pointer eptp)
    requires Kind::kEpt
  {
    zap_roots(eptp);
  }
  void invept_all()
    requires Kind::kEpt
  {
    zap_all();
  }
  // VMRUN's TLB_CONTROL: flush this guest's ASID (the vCPU's nCR3), or everything.
  void flush_asid(const Vcpu& vcpu)
    requires(!Kind::kEpt)
  {
    if (const auto p = vcpu.pointer()) zap_roots(*p);
  }
  void flush_all()
    requires(!Kind::kEpt)
  {
    zap_all();
  }

  // ---- L0's side of L1's memory (create() only) ----------------------------------------------

  // MMU notifier: the host is about to change the memory behind L1's `gfns`: what maps them
  // goes, and faults on them wait (access() retries) until invalidate_end.
  void invalidate_begin(Range<Gfn> gfns);
  void invalidate_end(Range<Gfn> gfns);
  // KVM_GET_DIRTY_LOG for L1's slot: takes and clears its bits and write-protects the shadow
  // leaves over the frames they name. Errors: UnknownSlot (also without memslots),
  // NotLoggingDirty.
  Result<std::vector<std::uint64_t>, MemslotError> get_dirty_log(SlotId slot);
  // KVM_CLEAR_DIRTY_LOG: clears the bits of pages first_page + i (bit i of `mask`, i < pages)
  // and write-protects those frames' leaves. Errors: those of get_dirty_log, RangeOutsideSlot.
  Status<MemslotError> clear_dirty_log(SlotId slot, std::uint64_t first_page, std::uint64_t pages,
                                       std::span<const std::uint64_t> mask);

  [[nodiscard]] NestedStats stats() const;
  // Every shadow leaf agrees with L1's walk composed with L1's memory, and no frame holding
  // an L1 table is writable through one. Returns the first violation.
  [[nodiscard]] std::optional<std::string> check_invariants() const;

 private:
  friend class NestedVcpu<Kind>;
  // `l1` null: `own` is L1's memory.
  NestedMmu(std::unique_ptr<shadow::GuestRam> own, Memslots* slots, Caps caps, shadow::GuestRam* l1 = nullptr);
  using Iterator = pt::TableIterator<tdp::TdpFormat, pt::OwnedTableMemory>;
  using Flush = pt::TlbFlush<Gpa>;

  // `again`: an L1 frame the fault needs is under invalidation (nothing installed; retry).
  L2Result fault(Vcpu& vcpu, Gpa l2_gpa, AccessKind op, Flush& flush, bool& again);
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
  void reload_root(Vcpu& vcpu, Flush& flush);
  void free_page(shadow::ShadowPage* p, Flush& flush);
  void finish(Flush&& flush);
  void checked(const char* what) const;
  [[nodiscard]] std::optional<std::string> invariants_locked() const;
  [[nodiscard]] std::optional<std::string> check_leaf(const Iterator& it, const typename Kind::Context& ctx) const;

  std::unique_ptr<shadow::GuestRam> own_ram_;  // create(): the memslots as L1's memory
  shadow::GuestRam& l1_;
  Memslots* slots_ = nullptr;                   // create() only
  std::uint64_t observer_ = 0;
  Caps caps_;
  tdp::TdpFormat format4_, format5_;
  mutable pt::OwnedTableMemory memory_;  // const checks iterate the tables (reads only)
  pt::TlbLog<Gpa> tlb_;                  // invalidations of L2 gpa ranges (flushes', and ours)
  shadow::PageCache pages_;
  mutable std::mutex lock_;
  NestedStats stats_;
  mmu::Invalidations invalidations_;  // MMU-notifier state, under the lock
};

}  // namespace vmmu::nested
