#include "vmmu/tdp/roots.hpp"

#include <algorithm>

namespace vmmu::tdp {

bool RootSet::try_hold(Root* r) {
  std::int64_t n = r->refs.load(std::memory_order_relaxed);
  while (n != 0) {
    if (r->refs.compare_exchange_weak(n, n + 1, std::memory_order_acq_rel)) return true;
  }
  return false;  // its last reference is being dropped
}

RootSet::~RootSet() {
  std::lock_guard g(mutex_);
  roots_.clear();  // each root's tables are retired (freed after RCU readers)
}

Result<Root*, pt::TableError> RootSet::get(RootRole role) {
  std::lock_guard g(mutex_);
  for (const auto& r : roots_) {
    if (r->role == role && !r->invalid.load(std::memory_order_acquire) && try_hold(r.get())) return r.get();
  }
  Result<TdpTables, pt::TableError> tables = TdpTables::create(format_, memory_, tlb_);
  if (!tables) return Unexpected{tables.error()};
  auto root = std::make_unique<Root>(role, std::move(*tables), next_id_++);
  root->refs.store(own_ref_ ? 2 : 1, std::memory_order_relaxed);
  roots_.push_back(std::move(root));
  created_.fetch_add(1, std::memory_order_relaxed);
  return roots_.back().get();
}

void RootSet::put(Root* r) {
  if (r->refs.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  std::unique_ptr<Root> dead;
  {
    std::lock_guard g(mutex_);
    // Nobody revives a root at 0 (try_hold refuses), so this thread alone frees it.
    auto it = std::find_if(roots_.begin(), roots_.end(), [r](const auto& p) { return p.get() == r; });
    dead = std::move(*it);
    roots_.erase(it);
  }
  freed_.fetch_add(1, std::memory_order_relaxed);
  // ~Root retires its tables: freed after every lock-free walker that may hold them is done.
}

std::uint64_t RootSet::invalidate_all() {
  std::vector<Root*> drop;
  {
    std::lock_guard g(mutex_);
    for (const auto& r : roots_) {
      if (r->invalid.exchange(true, std::memory_order_acq_rel)) continue;
      drop.push_back(r.get());
    }
  }
  if (own_ref_) {
    for (Root* r : drop) put(r);
  }
  return drop.size();
}

std::vector<Root*> RootSet::valid_roots() {
  std::lock_guard g(mutex_);
  std::vector<Root*> out;
  for (const auto& r : roots_) {
    if (r->invalid.load(std::memory_order_acquire) || !try_hold(r.get())) continue;
    out.push_back(r.get());
  }
  return out;
}

void RootSet::for_each(const std::function<void(const Root&)>& fn) const {
  std::lock_guard g(mutex_);
  for (const auto& r : roots_) fn(*r);
}

}  // namespace vmmu::tdp
