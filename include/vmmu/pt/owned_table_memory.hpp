#pragma once
// OwnedTableMemory: where owned tables live -- the table-memory policy of the owned-table layer.
//
//   allocate(level) ──► zeroed table of geometry.table_bytes(level) bytes, aligned to its own
//                       size (so a concatenated arm64 root of 2..16 granules is size-aligned,
//                       as VTTBR_EL2.BADDR requires; Arm ARM D8.2.7). 4 KiB tables come from
//                       a pool of pages the kernel gave zeroed and already faulted in, many at
//                       a time (KVM's kvm_mmu_memory_cache): no page fault and no memset on
//                       the fault path, where two vCPUs' page faults would meet in the kernel
//   read / compare_exchange / store ──► std::atomic_ref on the entry (satisfies pt::TableMemory)
//   free_unpublished(...) ──► immediately (no walker ever saw it)
//   retire(...)           ──► after every RCU reader that might hold it is done (rcu::defer)
//
// An Hpa is the host virtual address of the table (user space: "host physical" is our own
// memory). Counts of tables in use are kept per level; a retired table stops counting at once
// (it is unreachable) and is freed after the grace period. Pool pages go back to the pool,
// zeroed; the pool is the process's (every table memory shares it) and keeps up to
// table_pool_warm_cap() of them warm, so a VM's tables reuse pages earlier tables used instead
// of touching fresh ones; pages beyond that go back to the kernel when they are freed.
//
// Thread safety: every member may be called concurrently.

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>

#include "vmmu/core/address.hpp"
#include "vmmu/core/result.hpp"
#include "vmmu/pt/geometry.hpp"
#include "vmmu/pt/table_error.hpp"

namespace vmmu::pt {

class TablePool;

struct RetiredTable {
  Hpa table;
  unsigned level;
};

// Free pages of the process's 4 KiB table pool: `warm` zeroed and touched, `cold`
// returned to the kernel (address space kept for reuse).
struct TablePoolPages {
  std::size_t warm;
  std::size_t cold;
};
[[nodiscard]] TablePoolPages table_pool_pages();
// How many free pages the pool keeps warm at most.
[[nodiscard]] std::size_t table_pool_warm_cap();

class OwnedTableMemory {
 public:
  // `page_budget` limits how many tables may be in use at once (tests use it to fail an
  // allocation in the middle of an operation); `min_align` raises the alignment of small
  // tables (formats whose address field starts above bit log2(table bytes)).
  explicit OwnedTableMemory(const Geometry& geometry, std::uint64_t page_budget = ~std::uint64_t{0},
                           std::size_t min_align = 64);
  ~OwnedTableMemory();
  OwnedTableMemory(const OwnedTableMemory&) = delete;
  OwnedTableMemory& operator=(const OwnedTableMemory&) = delete;

  [[nodiscard]] const Geometry& geometry() const { return geometry_; }

  // A zeroed table for `level`.
  // Errors: OutOfMemory when the budget is used up or the host allocation fails.
  Result<Hpa, TableError> allocate(unsigned level);
  // Frees a table no walker can have seen (it was never linked into a tree).
  void free_unpublished(Hpa table, unsigned level);
  // Frees an unlinked table once every RCU read-side section that may see it has ended (at
  // once after quiesce()).
  void retire(RetiredTable t);
  // For an owner going away (a VM's MMU destructor): waits out every RCU reader that may still
  // hold one of these tables, so that tables retired from now on go back to the pool at once
  // instead of a grace period later -- the next VM reuses them warm. Only when nobody can start
  // a new walk of these tables any more. Inside a read-side section, where waiting would wait
  // for itself, it does nothing: frees stay deferred.
  void quiesce();

  [[nodiscard]] std::uint64_t tables_in_use(unsigned level) const {
    return in_use_[level].load(std::memory_order_relaxed);
  }
  [[nodiscard]] std::uint64_t tables_in_use() const;
  void set_budget(std::uint64_t pages) { budget_.store(pages, std::memory_order_relaxed); }

  // pt::TableMemory<OwnedTableMemory, Hpa>. Entries are naturally aligned inside a live table.
  template <class T>
  std::optional<T> read(Hpa addr) const {
    if (addr.raw() == 0) return std::nullopt;
    return std::atomic_ref<T>(*pointer<T>(addr)).load(std::memory_order_acquire);
  }
  // acq_rel: a table entry's publication makes the child table's contents visible to walkers.
  template <class T>
  bool compare_exchange(Hpa addr, T& expected, T desired) {
    return std::atomic_ref<T>(*pointer<T>(addr)).compare_exchange_strong(expected, desired,
                                                                         std::memory_order_acq_rel);
  }
  template <class T>
  void store(Hpa addr, T value) {
    std::atomic_ref<T>(*pointer<T>(addr)).store(value, std::memory_order_release);
  }

  // The modelled hardware's A/D update: sets `bits` atomically, whatever else changes.
  template <class T>
  void fetch_or(Hpa addr, T bits) {
    std::atomic_ref<T>(*pointer<T>(addr)).fetch_or(bits, std::memory_order_acq_rel);
  }

  // The host pointer behind an Hpa (user space: an Hpa *is* a host virtual address).
  template <class T>
  static T* pointer(Hpa addr) {
    return reinterpret_cast<T*>(static_cast<std::uintptr_t>(addr.raw()));  // NOLINT: Hpa is a host VA
  }

 private:
  [[nodiscard]] std::size_t bytes(unsigned level) const;
  [[nodiscard]] std::size_t alignment(unsigned level) const;
  [[nodiscard]] bool pooled(unsigned level) const;

  Geometry geometry_;
  std::size_t min_align_;
  std::atomic<std::uint64_t> budget_;
  std::atomic<std::uint64_t> total_{0};
  std::array<std::atomic<std::uint64_t>, kMaxLevels + 1> in_use_{};
  std::atomic<bool> quiesced_{false};
  std::shared_ptr<TablePool> pool_;  // shared with RCU callbacks that free into it
};

}  // namespace vmmu::pt
