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
// Thread safety: every member takes the MMU's lock; a vCPU object is used by one thread.

#include <array>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>

#include "vmmu/core/address.hpp"
#include "vmmu/core/access.hpp"
#include "vmmu/core/result.hpp"
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
  L1Mmio,       // L1's gpa has no memory behind it: L0 emulates (L1 never sees it)
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
  // `l1`: L1's memory (frames backing its guest-physical space, its EPT tables among them).
  ShadowEptMmu(shadow::GuestRam& l1, x86::EptCapabilities caps);
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

  [[nodiscard]] NestedStats stats() const;
  // Every shadow EPT leaf agrees with L1's EPT walk composed with L1's memory, and no frame
  // holding an L1 EPT table is writable through one. Returns the first violation.
  [[nodiscard]] std::optional<std::string> check_invariants() const;

 private:
  friend class ShadowEptVcpu;
  using Iterator = pt::TableIterator<tdp::TdpFormat, pt::OwnedTableMemory>;
  using Flush = pt::TlbFlush<Gpa>;

  L2Access fault(ShadowEptVcpu& vcpu, Gpa l2_gpa, AccessKind op, Flush& flush);
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

  shadow::GuestRam& l1_;
  x86::EptCapabilities caps_;
  tdp::TdpFormat format4_, format5_;
  mutable pt::OwnedTableMemory memory_;  // const checks iterate the tables (reads only)
  pt::TlbLog<Gpa> tlb_;                  // invalidations of L2 gpa ranges (INVEPT's, and ours)
  shadow::PageCache pages_;
  mutable std::mutex lock_;
  NestedStats stats_;
};

}  // namespace vmmu::nested
