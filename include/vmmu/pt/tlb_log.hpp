#pragma once
// TLB invalidation for owned tables: the log every invalidation goes through, and the
// [[nodiscard]] flush token a mutation hands back so the caller cannot forget it.
//
//   op (map/unmap/protect/...) ──► TlbFlush{range | all, unlinked tables}
//                                      │ apply(log): invalidate, then retire the tables
//                                      │ drop():     retire the tables without invalidating
//                                      ▼
//   break-before-make inside install ──► log.invalidate_address() at once (between the
//                                        invalid entry and the new one)
//
// Unlinked tables travel with the token: a walker (or a TLB's walk cache) may still hold
// them until the invalidation is done, so they are retired (RCU-deferred free) only then.

#include <atomic>
#include <cassert>
#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include "vmmu/core/address.hpp"
#include "vmmu/pt/owned_table_memory.hpp"

namespace vmmu::pt {

enum class TlbOp : std::uint8_t {
  Address,  // one entry at a level (arm64: TLBI IPAS2E1IS with a level hint)
  Range,    // every entry in an input range
  All,      // the whole translation regime (arm64: TLBI VMALLS12E1IS)
};

template <class A>
struct TlbEvent {
  TlbOp op;
  Range<A> range;      // the bytes the invalidated entry / range covers (empty for All)
  unsigned level = 0;  // Address: the entry's level
};

// Counts every invalidation; an optional observer sees each one as it happens (tests use it
// to look at the tables at that moment). Set the observer before concurrent use.
template <class A>
class TlbLog {
 public:
  void invalidate_address(A addr, std::uint64_t span, unsigned level) {
    by_address_.fetch_add(1, std::memory_order_relaxed);
    notify({TlbOp::Address, {addr, addr + span}, level});
  }
  void invalidate_range(Range<A> r) {
    by_range_.fetch_add(1, std::memory_order_relaxed);
    notify({TlbOp::Range, r, 0});
  }
  void invalidate_all() {
    all_.fetch_add(1, std::memory_order_relaxed);
    notify({TlbOp::All, {}, 0});
  }
  void count_break_before_make() { bbm_.fetch_add(1, std::memory_order_relaxed); }

  [[nodiscard]] std::uint64_t by_address() const { return by_address_.load(std::memory_order_relaxed); }
  [[nodiscard]] std::uint64_t by_range() const { return by_range_.load(std::memory_order_relaxed); }
  [[nodiscard]] std::uint64_t all() const { return all_.load(std::memory_order_relaxed); }
  [[nodiscard]] std::uint64_t breaks() const { return bbm_.load(std::memory_order_relaxed); }
  [[nodiscard]] std::uint64_t total() const { return by_address() + by_range() + all(); }

  void set_observer(std::function<void(const TlbEvent<A>&)> fn) { observer_ = std::move(fn); }

 private:
  void notify(const TlbEvent<A>& e) {
    if (observer_) observer_(e);
  }
  std::atomic<std::uint64_t> by_address_{0}, by_range_{0}, all_{0}, bbm_{0};
  std::function<void(const TlbEvent<A>&)> observer_;
};

// The obligation to invalidate what a mutation changed. Move-only; must be applied or dropped
// (checked in debug builds).
template <class A>
class [[nodiscard]] TlbFlush {
 public:
  enum class Kind : std::uint8_t { None, Range, All };

  TlbFlush() = default;
  explicit TlbFlush(OwnedTableMemory* memory) : memory_(memory) {}
  TlbFlush(TlbFlush&& o) noexcept { *this = std::move(o); }
  TlbFlush& operator=(TlbFlush&& o) noexcept {
    assert(done());
    kind_ = std::exchange(o.kind_, Kind::None);
    range_ = o.range_;
    memory_ = o.memory_;
    retired_ = std::exchange(o.retired_, {});
    return *this;
  }
  TlbFlush(const TlbFlush&) = delete;
  TlbFlush& operator=(const TlbFlush&) = delete;
  ~TlbFlush() { assert(done() && "TlbFlush neither applied nor dropped"); }

  [[nodiscard]] Kind kind() const { return kind_; }
  [[nodiscard]] Range<A> range() const { return range_; }
  [[nodiscard]] std::size_t unlinked_tables() const { return retired_.size(); }

  // Widen to cover [begin, end); becomes one range (the hull) or stays All.
  void add(Range<A> r) {
    if (kind_ == Kind::All) return;
    if (kind_ == Kind::None) {
      kind_ = Kind::Range;
      range_ = r;
      return;
    }
    if (r.begin < range_.begin) range_.begin = r.begin;
    if (range_.end < r.end) range_.end = r.end;
  }
  void add_all() { kind_ = Kind::All; }
  void add_retired(RetiredTable t) { retired_.push_back(t); }
  void merge(TlbFlush&& o) {
    if (o.kind_ == Kind::All) add_all();
    if (o.kind_ == Kind::Range) add(o.range_);
    if (memory_ == nullptr) memory_ = o.memory_;
    retired_.insert(retired_.end(), o.retired_.begin(), o.retired_.end());
    o.kind_ = Kind::None;
    o.retired_.clear();
  }

  // Issue the invalidation, then free the unlinked tables after readers are done.
  void apply(TlbLog<A>& log) && {
    if (kind_ == Kind::Range) log.invalidate_range(range_);
    if (kind_ == Kind::All) log.invalidate_all();
    finish();
  }
  // The caller takes responsibility for invalidating (or knows nothing can be cached).
  void drop() && { finish(); }

 private:
  [[nodiscard]] bool done() const { return kind_ == Kind::None && retired_.empty(); }
  void finish() {
    for (const RetiredTable& t : retired_) memory_->retire(t);
    retired_.clear();
    kind_ = Kind::None;
  }

  Kind kind_ = Kind::None;
  Range<A> range_{};
  OwnedTableMemory* memory_ = nullptr;
  std::vector<RetiredTable> retired_;
};

}  // namespace vmmu::pt
