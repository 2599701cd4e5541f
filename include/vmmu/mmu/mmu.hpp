#pragma once
// The MMU a VM chose -- two-dimensional paging (tdp/), shadow paging (shadow/), or both with
// each guest process on one of them (adaptive: agile paging) -- as one interface, so Vm and
// Vcpu never branch on which they have. KVM's split, kept:
//
//   VcpuContext (per vCPU, KVM's struct kvm_mmu)        Mmu (per VM)
//     access(gva) / access_gpa(gpa)                       memslot events (observed by the MMU)
//     load_root (new CR3 or cpu role)                     invalidate_begin / end, unmap, unmap_all
//     flush_tlb (guest TLB flush: shadow syncs)           dirty log get / peek / clear, dirty ring
//     invlpg, unload_root                                 device access (DMA), stats, invariants
//
//   Vcpu ──register write──► effect table (vm/register_effects) ──► flush_tlb / load_root /
//                                                                   unload_root / invlpg
//   Vcpu ──read/write/fetch(gva)──► VcpuContext::access ─┬─ TDP: software TLB, guest walk
//                                                        │  through the TDP tables, then gpa
//                                                        └─ shadow: the hardware walk of the
//                                                           shadow tables, fault, retry
//
// A guest's own fault (#PF with its exact error code, #GP) is a value (`GvaStop::fault`), an
// exit to the VMM (MMIO, a full dirty ring, no table memory, a mode the MMU cannot run) is
// another (`GvaStop::exit`); nothing throws.

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "vmmu/core/access.hpp"
#include "vmmu/core/address.hpp"
#include "vmmu/core/result.hpp"
#include "vmmu/memory/dirty_ring.hpp"
#include "vmmu/memory/memslot_types.hpp"
#include "vmmu/pt/table_error.hpp"
#include "vmmu/x86/guest_paging.hpp"
#include "vmmu/x86/invpcid.hpp"
#include "vmmu/x86/walk.hpp"
#include "vmmu/x86/walk_options.hpp"

namespace vmmu::tdp {
class TdpMmu;
class VcpuMmu;
}  // namespace vmmu::tdp
namespace vmmu::shadow {
class ShadowMmu;
}  // namespace vmmu::shadow

namespace vmmu::mmu {

enum class MmuKind : std::uint8_t { Tdp, Shadow, Adaptive };
std::string_view to_string(MmuKind k);  // "tdp", "shadow", "adaptive"
// "tdp", "shadow" or "adaptive" (what scenarios and replay run).
std::optional<MmuKind> parse_mmu_kind(std::string_view s);

// The adaptive MMU's policy (agile paging, Gandhi et al., ISCA 2016, per process): every
// guest process (guest root, CR3) starts shadowed; when, within a window of `window` accesses
// a vCPU makes through the MMU while running it, the shadow MMU handled `threshold` or more
// writes to that process's tables (emulated, or letting a table go unsync), the process moves
// to two-dimensional paging (its shadow pages are zapped, the tables they shadowed watched).
// After `return_after` windows in a row with fewer than `threshold` writes to those tables,
// it moves back to shadow. One busy window moves a process to TDP but it takes
// `return_after` quiet ones in a row to move it back: with 2 or more, tables busy every
// other window cannot make it flap every window. 0 for window or threshold: never moves;
// 0 for return_after: never moves back.
struct AdaptivePolicy {
  std::uint64_t window = 4096;
  std::uint64_t threshold = 64;
  std::uint64_t return_after = 8;
};

// Why an access did not reach memory that is not the guest's own fault.
enum class Exit : std::uint8_t {
  Mmio,         // no memslot, or a write to a read-only one: emulate
  RingFull,     // the vCPU's dirty ring is full: harvest and reset, then access again
  OutOfRange,   // an address beyond what the MMU's tables translate
  OutOfMemory,  // the MMU's table budget is exhausted
  Unsupported,  // a guest paging mode this MMU does not run
};
std::string_view to_string(Exit e);

// What the access does with the data: called with the host address of the byte accessed,
// while the translation is pinned. It must stay inside that 4 KiB page and must not call the
// MMU. A non-owning reference to a callable (it lives as long as the call it is passed to);
// empty: translate only. `bytes`: how many bytes from that address it touches (0: unknown) --
// a shadow MMU applies a write to a guest page table entry by entry only when it knows them.
class HostUse {
 public:
  HostUse() = default;
  template <class F>
    requires(!std::is_same_v<std::remove_cvref_t<F>, HostUse> && std::is_invocable_v<F&, std::byte*>)
  HostUse(F&& f, std::uint32_t bytes = 0)  // NOLINT: implicit, as a function reference is
      : object_(const_cast<void*>(static_cast<const void*>(std::addressof(f)))),
        call_([](void* o, std::byte* host) { (*static_cast<std::remove_reference_t<F>*>(o))(host); }),
        bytes_(bytes) {}
  explicit operator bool() const { return call_ != nullptr; }
  void operator()(std::byte* host) const { call_(object_, host); }
  [[nodiscard]] std::uint32_t bytes() const { return bytes_; }

 private:
  void* object_ = nullptr;
  void (*call_)(void*, std::byte*) = nullptr;
  std::uint32_t bytes_ = 0;
};

// A gva access that reached memory: the guest's translation.
struct GvaHit {
  Gpa gpa;
  std::uint64_t page_size = 0;  // the guest leaf's size (4K with paging off)
  bool from_tlb = false;        // answered without a guest walk
};

// A gva access that did not: the guest's fault (exit empty), or an exit at `gpa`.
struct GvaStop {
  std::optional<Exit> exit;
  x86::WalkFault fault;  // when !exit: the walker's kind and exact error code
  Gpa gpa;               // with an exit: the guest-physical address met (may be unknown: 0)
};

struct VcpuMmuStats {
  std::uint64_t tlb_hits = 0;    // accesses answered without a guest walk (TLB / shadow tables)
  std::uint64_t walks = 0;       // guest page walks
  std::uint64_t faults = 0;      // MMU faults this vCPU took (TDP violations / shadow faults)
  std::uint64_t root_loads = 0;  // roots loaded
};

// One vCPU's side of the MMU (KVM's struct kvm_mmu). Used by the vCPU's thread only.
class VcpuContext {
 public:
  virtual ~VcpuContext() = default;

  // One access at `gva` by a vCPU whose paging state is `paging` and current PCID `pcid`;
  // `use` (if any) gets the host address of the byte. Errors: the guest's fault or an exit.
  virtual Result<GvaHit, GvaStop> access(const x86::GuestPaging& paging, std::uint16_t pcid, Gva gva, Access access,
                                         HostUse use) = 0;
  // A guest-physical access made by this vCPU (paging off, or a page the VMM names by gpa).
  // Errors: Mmio, RingFull, OutOfRange, OutOfMemory.
  virtual Status<Exit> access_gpa(Gpa gpa, Access access, HostUse use) = 0;

  // A new CR3 or cpu role (Effect::SwitchRoot) under PCID `pcid` (0 without CR4.PCIDE): find
  // or build the root for `paging`, keeping the old one cached; `flush`: the write also
  // flushed that PCID's translations (shadow: sync).
  virtual void load_root(const x86::GuestPaging& paging, std::uint16_t pcid, bool flush) = 0;
  // A guest TLB flush without a root switch (shadow: sync unsync pages).
  virtual void flush_tlb(const x86::GuestPaging& paging) = 0;
  // INVLPG of the page holding linear address `gva`.
  virtual void invlpg(const x86::GuestPaging& paging, Gva gva) = 0;
  // INVPCID of `type` for `pcid` (Address: the page holding linear address `linear`).
  virtual void invpcid(x86::InvpcidType type, std::uint16_t pcid, Gva linear) = 0;
  // Drops the vCPU's root (Effect::NewRoot, RootPolicy::Rebuild); the next access loads one.
  virtual void unload_root() = 0;
  // Whether guest walks write A/D bits back (default yes).
  virtual void set_walk_options(x86::WalkOptions o) = 0;

  [[nodiscard]] virtual VcpuMmuStats stats() const = 0;
  // The TDP MMU's handle for TDP-only operations; null under shadow.
  [[nodiscard]] virtual tdp::VcpuMmu* tdp() { return nullptr; }
};

// What both MMUs count, named alike (the per-kind figures are in TdpStats / ShadowStats).
struct MmuStats {
  std::uint64_t faults = 0;        // faults handled (TDP violations / shadow faults)
  std::uint64_t reflected = 0;     // guest #PF / #GP found by the MMU's fault path (shadow)
  std::uint64_t emulated = 0;      // accesses emulated (writes to write-tracked guest tables)
  std::uint64_t syncs = 0;         // unsync shadow pages synced
  std::uint64_t unsyncs = 0;       // shadow pages let go unsync
  std::uint64_t table_pages = 0;   // table pages the MMU owns now (TDP tables / shadow pages)
  std::uint64_t zapped = 0;        // leaves / shadow pages zapped
  std::uint64_t write_protected = 0;
  std::uint64_t tlb_flushes = 0;   // remote TLB flushes the MMU issued
  std::uint64_t roots_created = 0;
  std::uint64_t switched = 0;       // moves of a process from shadow to two-dimensional paging (adaptive)
  std::uint64_t switched_back = 0;  // ... and back to shadow paging (adaptive)

  // Both MMUs' figures together (adaptive: its TDP and shadow MMUs).
  MmuStats& operator+=(const MmuStats& o) {
    faults += o.faults, reflected += o.reflected, emulated += o.emulated, syncs += o.syncs, unsyncs += o.unsyncs;
    table_pages += o.table_pages, zapped += o.zapped, write_protected += o.write_protected;
    tlb_flushes += o.tlb_flushes, roots_created += o.roots_created;
    switched += o.switched, switched_back += o.switched_back;
    return *this;
  }
};

// One VM's MMU. Memslot changes reach it through Memslots (it observes them). Safe from any
// thread unless a member says otherwise.
class Mmu {
 public:
  virtual ~Mmu() = default;
  [[nodiscard]] virtual MmuKind kind() const = 0;

  // A device's (DMA) access at `gpa`: memslot lookup, dirty logging into the slot's bitmap.
  // Errors: Mmio, OutOfRange, OutOfMemory.
  virtual Status<Exit> access_gpa(Gpa gpa, Access access, HostUse use) = 0;

  // MMU notifier: the host is about to change (begin) / has changed (end) the memory behind
  // `gfns`; their mappings go, faults on them retry until the end.
  virtual void invalidate_begin(Range<Gfn> gfns) = 0;
  virtual void invalidate_end(Range<Gfn> gfns) = 0;
  // Unmaps (KVM: zaps) every mapping of `gfns`. Errors: OutOfRange.
  virtual Status<pt::TableError> unmap(Range<Gfn> gfns) = 0;
  virtual void unmap_all() = 0;

  // Dirty logging (the slot's LogDirty flag is set through Memslots), as KVM_GET_DIRTY_LOG,
  // KVM_GET_DIRTY_LOG with manual protect, KVM_CLEAR_DIRTY_LOG. Errors: the memslot's.
  virtual Result<std::vector<std::uint64_t>, MemslotError> get_dirty_log(SlotId slot) = 0;
  virtual Result<std::vector<std::uint64_t>, MemslotError> peek_dirty_log(SlotId slot) = 0;
  virtual Status<MemslotError> clear_dirty_log(SlotId slot, std::uint64_t first_page, std::uint64_t pages,
                                               std::span<const std::uint64_t> mask) = 0;
  // Dirty ring of `vcpu` (a context of this MMU): entries collected / harvested pages re-armed.
  virtual std::size_t harvest_dirty_ring(VcpuContext& vcpu, std::vector<DirtyGfn>& out) = 0;
  virtual std::size_t reset_dirty_ring(VcpuContext& vcpu) = 0;

  [[nodiscard]] virtual MmuStats stats() = 0;
  // The first broken invariant of the MMU, named; nullopt when all hold.
  [[nodiscard]] virtual std::optional<std::string> check_invariants() = 0;

  // The concrete MMU for verbs only it has (TDP: split, collapse, huge-page bans, lookup;
  // shadow: its page cache); null when the VM runs the other one.
  [[nodiscard]] virtual tdp::TdpMmu* tdp() { return nullptr; }
  [[nodiscard]] virtual shadow::ShadowMmu* shadow() { return nullptr; }
};

}  // namespace vmmu::mmu
