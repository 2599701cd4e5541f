#pragma once
// What a TDP MMU did, as KVM reports it in its per-VM and per-vCPU statistics
// (pages_4k/2m/1g, pf_taken/pf_spurious/pf_mmio..., remote_tlb_flush, ...).

#include <array>
#include <cstdint>

namespace vmmu::tdp {

// Counters a vCPU's faults update (owned by that vCPU's thread; summed on read).
struct FaultStats {
  std::uint64_t faults = 0;        // handle_fault calls
  std::uint64_t spurious = 0;      // the mapping already allowed the access
  std::uint64_t retried = 0;       // lost a race with an invalidation or a memslot update
  std::uint64_t mmio = 0;          // no memslot, or a write to a read-only slot
  std::uint64_t mmio_fast = 0;     // ... answered from an MMIO marker, no memslot lookup
  std::uint64_t relaxed = 0;       // an existing leaf gained write permission
  std::uint64_t lazy_splits = 0;   // huge leaves split by a write fault
  std::uint64_t dirtied = 0;       // pages logged dirty by faults
  std::uint64_t ring_full = 0;     // faults that found the vCPU's dirty ring full
  std::array<std::uint64_t, 4> mapped{};  // leaves installed, by level (1: 4K, 2: 2M, 3: 1G)

  FaultStats& operator+=(const FaultStats& o);
};

struct TdpStats {
  FaultStats faults;
  std::array<std::uint64_t, 4> leaves{};  // present leaves now, by level (KVM's pages_4k/2m/1g)
  std::uint64_t tables_in_use = 0;        // table pages, every root
  std::uint64_t roots_created = 0;
  std::uint64_t roots_freed = 0;
  std::uint64_t roots_invalidated = 0;
  std::uint64_t zaps = 0;                 // zap operations (range, slot, all)
  std::uint64_t zapped_leaves = 0;
  std::uint64_t eager_splits = 0;         // huge leaves split without a fault
  std::uint64_t merges_in_place = 0;      // page tables replaced by one huge leaf, never unmapped
  std::uint64_t merge_races = 0;          // merges that found a child changed under them
  std::uint64_t recovered_by_zap = 0;     // page tables zapped so faults can map huge again
  std::uint64_t write_protected = 0;      // leaves made read-only
  std::uint64_t dirty_cleared = 0;        // D bits cleared (dirty-bit tracking)
  std::uint64_t tlb_flushes = 0;          // remote flushes issued (one per operation)
  std::uint64_t invalidations = 0;        // invalidate_begin calls (MMU notifier)
  std::uint64_t aged = 0;                 // leaves found young by age()
};

}  // namespace vmmu::tdp
