#pragma once
// TDP roots: the top tables vCPUs run on, shared by every vCPU whose root role matches, kept
// by the MMU until it invalidates them (KVM 6.4+, after roots dying with their last vCPU
// reference made a guest flipping CR4.SMEP rebuild its whole EPT by faults).
//
//   vCPU: get(role) ──► valid root with that role? ref+1 : create (ref = 1 + the MMU's own)
//         put(root) ──► ref-1; 0 -> unlinked and its tables freed after RCU readers
//   MMU:  invalidate_all() ──► every valid root marked invalid, the MMU's own reference
//         dropped; vCPUs notice on their next fault (one load) and move to a new root
//
// With RootPolicy::Rebuild the MMU holds no reference of its own: a root dies when its last
// vCPU drops it (KVM before 6.4).

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "vmmu/core/result.hpp"
#include "vmmu/pt/table_error.hpp"
#include "vmmu/pt/owned_tables.hpp"
#include "vmmu/tdp/tdp_format.hpp"

namespace vmmu::tdp {

using TdpTables = pt::OwnedTables<TdpFormat>;

// What the entries under a root mean (KVM's root_role): everything the guest's own paging
// state decides is deliberately absent, so guest register writes never change it.
struct RootRole {
  std::uint8_t levels = 4;
  bool smm = false;         // the SMM address space
  bool guest_mode = false;  // built for a nested (L2) guest
  friend constexpr bool operator==(const RootRole&, const RootRole&) = default;
};

struct Root {
  Root(RootRole r, TdpTables t, std::uint64_t n) : role(r), tables(std::move(t)), id(n) {}
  RootRole role;
  TdpTables tables;
  std::uint64_t id;
  std::atomic<std::int64_t> refs{0};
  std::atomic<bool> invalid{false};
};

class RootSet {
 public:
  RootSet(const TdpFormat& format, pt::OwnedTableMemory& memory, pt::TlbLog<Gpa>& tlb, bool mmu_holds_reference)
      : format_(format), memory_(memory), tlb_(tlb), own_ref_(mmu_holds_reference) {}
  ~RootSet();
  RootSet(const RootSet&) = delete;
  RootSet& operator=(const RootSet&) = delete;

  // A referenced valid root with `role`, created if none exists. Errors: OutOfMemory.
  Result<Root*, pt::TableError> get(RootRole role);
  // Takes a reference on `r` unless its last one is being dropped.
  static bool try_hold(Root* r);
  void put(Root* r);

  // Marks every valid root invalid and drops the MMU's references; returns how many.
  std::uint64_t invalidate_all();

  // Valid roots, each with a reference the caller must put().
  std::vector<Root*> valid_roots();
  // Every live root (valid or not), for invariant checks; call with no concurrent get/put.
  void for_each(const std::function<void(const Root&)>& fn) const;

  [[nodiscard]] std::uint64_t created() const { return created_.load(std::memory_order_relaxed); }
  [[nodiscard]] std::uint64_t freed() const { return freed_.load(std::memory_order_relaxed); }
  [[nodiscard]] bool mmu_holds_reference() const { return own_ref_; }

 private:
  const TdpFormat& format_;
  pt::OwnedTableMemory& memory_;
  pt::TlbLog<Gpa>& tlb_;
  bool own_ref_;
  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<Root>> roots_;
  std::uint64_t next_id_ = 1;
  std::atomic<std::uint64_t> created_{0}, freed_{0};
};

}  // namespace vmmu::tdp
