#pragma once
// Stage2Mmu: one VM's arm64 stage-2 tables (IPA -> host memory) kept by vmmu, built on the
// format-generic owned-table layer (pt::OwnedTables) with the stage-2 descriptor format.
//
//   vCPU abort (ipa, access) ──► handle_fault ── memslot? ──no──► Mmio (emulate)
//                                    │ yes: leaf already there? relax (AF / write / exec)
//                                    │      else map the largest block the slot allows
//                                    ▼
//   explicit: map / unmap / write_protect / enable_dirty_logging / age / split / collapse
//
// Concurrency (KVM's model, arch/arm64/kvm/mmu.c): faults take the table lock (a ReaderLock,
// as the TDP MMU's: writers preferred, readers on their own cache lines) shared and install
// entries with compare-exchange (a lost race is retried); every structural operation takes
// it exclusively. Lock-free readers (lookup, a vCPU's walk) run inside an
// rcu::ReadGuard; unlinked tables are freed after them. Every break-before-make and every
// flush is recorded in tlb(): TLBI IPAS2E1IS = by_address, range = by_range, VMALLS12E1IS = all.
//
// With VMMU_CHECK_INVARIANTS every exclusive operation ends with check_invariants().

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "vmmu/arm64/layout.hpp"
#include "vmmu/arm64/registers.hpp"
#include "vmmu/arm64/stage2.hpp"
#include "vmmu/arm64/stage2_mmu_format.hpp"
#include "vmmu/core/access.hpp"
#include "vmmu/core/address.hpp"
#include "vmmu/core/reader_lock.hpp"
#include "vmmu/core/result.hpp"
#include "vmmu/memory/memslots.hpp"
#include "vmmu/mmu/fault.hpp"
#include "vmmu/pt/owned_tables.hpp"

namespace vmmu::arm64 {

using Stage2Tables = pt::OwnedTables<Stage2MmuFormat>;
using Stage2TlbLog = pt::TlbLog<Ipa>;

// The MMU family's fault outcome (mmu/fault.hpp); a stage-2 fault ends Mapped, Relaxed,
// Spurious, Mmio or OutOfRange (inject an address-size fault).
using mmu::FaultAction;
using mmu::FaultOutcome;

struct Stage2MmuOptions {
  std::uint64_t table_budget = ~std::uint64_t{0};  // table pages the VM may use
};

struct Stage2Counters {
  std::uint64_t faults = 0, mapped = 0, relaxed = 0, spurious = 0, mmio = 0;
};

class Stage2Mmu {
 public:
  // Errors: OutOfMemory (the root run could not be allocated).
  static Result<std::unique_ptr<Stage2Mmu>, pt::TableError> create(const Layout& layout, Memslots& slots,
                                                                  Stage2MmuOptions options = {});
  ~Stage2Mmu();
  Stage2Mmu(const Stage2Mmu&) = delete;
  Stage2Mmu& operator=(const Stage2Mmu&) = delete;

  // Resolves a stage-2 abort on `ipa` the way KVM's user_mem_abort does: no slot or a write
  // to a read-only slot -> Mmio; an existing leaf -> relax it (AF, write with dirty marking,
  // exec); otherwise map the largest block whose IPA and host address are congruent and which
  // lies inside the slot (pages only while the slot logs dirty pages; reads then map
  // read-only so the first write still faults). Safe to call from many threads at once.
  // Errors: OutOfMemory (table budget); Misaligned (the slot is not granule aligned there).
  Result<FaultOutcome, pt::TableError> handle_fault(Ipa ipa, Access access);

  // Maps every memslot-backed part of `range` (prefault), largest blocks first unless
  // `pages_only`. Errors: OutOfRange, Misaligned (not granule aligned), OutOfMemory.
  Status<pt::TableError> map(Range<Ipa> range, bool pages_only = false);
  // Removes every leaf touching `range`; a block straddling an edge goes whole (faults map
  // back what is still needed), so no table memory is needed. Errors: OutOfRange, Misaligned.
  Status<pt::TableError> unmap(Range<Ipa> range);
  // Clears write on every leaf touching `range`, then one range invalidation.
  // Errors: OutOfRange, Misaligned.
  Status<pt::TableError> write_protect(Range<Ipa> range);
  // Eager split to pages + write-protect: what enabling dirty logging on `range` does. Out of
  // table memory, blocks are unmapped instead of split. Errors: OutOfRange, Misaligned.
  Status<pt::TableError> enable_dirty_logging(Range<Ipa> range);
  // Test-and-clear the access flag; returns how many leaves were young. No TLB invalidation
  // (as KVM: a stale young entry only delays the next aging). Errors: OutOfRange, Misaligned.
  Result<std::uint64_t, pt::TableError> age(Range<Ipa> range);
  [[nodiscard]] bool test_age(Range<Ipa> range) const;
  // Adds permissions to the leaf mapping `ipa` (never removes any), local TLBI after.
  // Errors: NotMapped, OutOfRange.
  Status<pt::TableError> relax(Ipa ipa, pt::LeafAttrs add);
  // Eagerly splits every block touching `range` into pages. Errors: as map.
  Status<pt::TableError> split(Range<Ipa> range);
  // Folds uniform page tables back into blocks; returns how many. Errors: OutOfRange, Misaligned.
  Result<std::uint64_t, pt::TableError> collapse(Range<Ipa> range);

  // The leaf translating `ipa` (lock-free).
  [[nodiscard]] std::optional<Stage2Tables::Mapping> lookup(Ipa ipa) const;
  // Every leaf against the memslots through the architectural walker (arm64::walk): each
  // translates to its slot's host memory; none is writable in a read-only slot; table-page
  // counts match the tree. Returns the first violation. Call with no concurrent faults.
  [[nodiscard]] std::optional<std::string> check_invariants() const;

  [[nodiscard]] const Layout& layout() const { return layout_; }
  [[nodiscard]] Registers registers() const;  // VTCR_EL2 / VTTBR_EL2 describing these tables
  [[nodiscard]] Hpa root() const { return tables_->root(); }
  [[nodiscard]] Stage2TlbLog& tlb() { return tlb_; }
  [[nodiscard]] const pt::OwnedTableMemory& table_memory() const { return memory_; }
  [[nodiscard]] Stage2Counters counters() const;

 private:
  Stage2Mmu(const Layout& layout, Memslots& slots, Stage2MmuOptions options);
  Result<FaultOutcome, pt::TableError> fault_locked(Ipa ipa, Access access);
  void on_memslot_change(const MemslotChange& change);
  void checked(const char* what) const;
  static unsigned reader_slot();  // this thread's slot in lock_
  template <class T>
  Status<pt::TableError> finish(Result<T, pt::TableError> r, const char* what);

  Layout layout_;
  Stage2MmuFormat format_;
  Memslots& slots_;
  mutable pt::OwnedTableMemory memory_;  // mutable: the walker takes a TableMemory&
  Stage2TlbLog tlb_;
  std::optional<Stage2Tables> tables_;
  std::optional<Stage2> stage2_;  // the walker's view of the same tables (invariant checks)
  ReaderLock lock_;  // faults shared, structural operations exclusive (as TdpMmu)
  std::uint64_t observer_ = 0;
  std::atomic<std::uint64_t> faults_{0}, mapped_{0}, relaxed_{0}, spurious_{0}, mmio_{0};
};

}  // namespace vmmu::arm64
