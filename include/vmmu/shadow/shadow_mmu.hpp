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
//   frame holds a shadowed guest table (write tracking); CR0.WP=0: a supervisor write to a
//   read-only page gets a writable, non-user leaf (non-executable with SMEP), or is emulated
//   when SMAP forbids making a user page supervisor (smap_andnot_wp).
//
// Roots: one shadow page per (guest root gfn, root role); a host deeper than the guest gets
// passthrough pages above the guest's root (a 4-level guest under a 5-level host: entries 0
// and 511 of the level-5 page both lead to the shadow of the guest's PML4).
// Guest modes run now: paging off (direct pages), 32-bit paging (passthrough levels above the
// guest's root, whose four quarters and each page table's two halves are shadow pages told
// apart by quadrant; a 4 MiB page is two 2 MiB halves of direct pages), 4-level and 5-level
// paging. PAE guests are refused (ShadowExit::Unsupported) until their PDPTE roots land.
//
// Thread safety: every member takes the MMU's lock (KVM's mmu_lock); the hardware walk reads
// entries atomically. Nothing unlinks or frees a shadow page before the MMU is destroyed yet.

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "vmmu/core/access.hpp"
#include "vmmu/core/address.hpp"
#include "vmmu/core/result.hpp"
#include "vmmu/pt/owned_table_memory.hpp"
#include "vmmu/pt/ops/install.hpp"
#include "vmmu/pt/table_iterator.hpp"
#include "vmmu/pt/tlb_log.hpp"
#include "vmmu/shadow/guest_ram.hpp"
#include "vmmu/shadow/page_cache.hpp"
#include "vmmu/shadow/shadow_format.hpp"
#include "vmmu/x86/guest_paging.hpp"
#include "vmmu/x86/walk.hpp"

namespace vmmu::shadow {

struct ShadowConfig {
  unsigned host_levels = 4;  // 4 or 5
};

// Why an access could not complete that is not the guest's own fault.
enum class ShadowExit : std::uint8_t {
  Mmio,         // no guest memory at the frame
  OutOfMemory,  // no shadow page could be allocated
  Unsupported,  // a guest paging mode this MMU does not shadow yet, or a guest deeper than the host
  Stuck,        // the fault path built entries the hardware still refused (an MMU bug)
};
std::string_view to_string(ShadowExit e);

struct ShadowStats {
  std::uint64_t hardware_hits = 0;  // accesses the shadow tables answered
  std::uint64_t faults = 0;         // shadow faults handled
  std::uint64_t reflected = 0;      // ... that were the guest's own #PF / #GP
  std::uint64_t emulated = 0;       // ... whose access was emulated (write-tracked, WP=0 + SMAP)
  std::uint64_t shadow_pages = 0;
};

// What an access through the MMU gave: the guest's translation (gpa, guest page size), or the
// guest's fault, or an exit.
struct Outcome {
  Result<x86::Translation, x86::WalkFault> guest;
  std::optional<ShadowExit> exit;
};

class ShadowMmu {
 public:
  ShadowMmu(GuestRam& ram, ShadowConfig config);
  ~ShadowMmu();
  ShadowMmu(const ShadowMmu&) = delete;
  ShadowMmu& operator=(const ShadowMmu&) = delete;

  // One access at `gva` by a vCPU whose paging state is `paging`: the hardware walk, and on a
  // refusal the fault path and one retry.
  Outcome access(const x86::GuestPaging& paging, Gva gva, Access access);

  // The root shadow page for `paging` (found or made, held as a root).
  // Errors: OutOfMemory, Unsupported.
  Result<ShadowPage*, ShadowExit> load_root(const x86::GuestPaging& paging);

  [[nodiscard]] ShadowStats stats() const;
  [[nodiscard]] const ShadowFormat& format() const { return format_; }
  // For tests and invariant checks; callers hold no lock, so only while no access runs.
  [[nodiscard]] const PageCache& pages() const { return pages_; }

  // The first broken invariant of docs/architecture.md's shadow section, named; nullopt when
  // all hold. With VMMU_CHECK_INVARIANTS every fault checks them and aborts on one.
  [[nodiscard]] std::optional<std::string> check_invariants() const;

 private:
  enum class Fault : std::uint8_t { Retry, Reflect, Emulate };
  struct Handled {
    Fault kind;
    Outcome outcome;
  };
  Handled handle_fault(const x86::GuestPaging& paging, ShadowPage& root, std::uint64_t linear, Access access);
  // The host's paging state for running `paging` on `root`, rebuilt only when it changes.
  const x86::GuestPaging& host_paging(const x86::GuestPaging& paging, const ShadowPage& root);
  std::optional<x86::Translation> hardware(const x86::GuestPaging& host, std::uint64_t linear, Access access);
  Result<ShadowPage*, ShadowExit> root_locked(const x86::GuestPaging& paging);
  // The child page (gfn, role) at the entry `it` stands on, found or made and linked if the
  // entry is empty (nullptr when it was linked already); `it` moves into it.
  Result<ShadowPage*, ShadowExit> child(pt::TableIterator<ShadowFormat, pt::OwnedTableMemory>& it, Gfn gfn, Role role,
                                        pt::TlbFlush<Gva>& flush);
  void write_protect(Gfn gfn);
  [[nodiscard]] std::optional<std::string> invariants_locked() const;

  GuestRam& ram_;
  ShadowConfig config_;
  ShadowFormat format_;
  mutable pt::OwnedTableMemory memory_;  // const checks iterate the tables (reads only)
  pt::TlbLog<Gva> tlb_;
  mutable std::mutex mutex_;
  PageCache pages_;
  std::unordered_map<const ShadowPage*, x86::GuestPaging> roots_;  // each root's paging state
  // The last host paging state built (GuestPaging::from is the cost of a hardware walk).
  struct HostPaging {
    x86::Registers registers;
    x86::GuestPaging paging;
  };
  std::optional<HostPaging> host_;
  ShadowStats stats_{};
};

}  // namespace vmmu::shadow
