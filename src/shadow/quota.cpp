// Shadow-page memory: what the pages cost in host memory, and the per-VM quota of them
// (issue 12 item 9, KVM's n_max_mmu_pages): 20 per mille of the guest's pages, at least 64,
// unless configured. Over it, a fault first reclaims the least recently used pages that are
// no root (KVM's make_mmu_pages_available); their children left without a parent go with them.

#include <algorithm>

#include "vmmu/core/rcu.hpp"
#include "vmmu/shadow/shadow_mmu.hpp"

namespace vmmu::shadow {
namespace {

constexpr std::uint64_t kPerMille = 20;
constexpr std::uint64_t kMinQuota = 64;

}  // namespace

std::uint64_t ShadowMmu::page_quota() const { return quota_.load(std::memory_order_relaxed); }

void ShadowMmu::update_quota() {
  // Once per memslot change, not per fault (summing the slots was a tenth of a fault).
  std::uint64_t quota = config_.page_quota;
  if (quota == 0 && slots_ == nullptr) quota = ~std::uint64_t{0};
  if (quota == 0) {
    const rcu::ReadGuard rcu;
    std::uint64_t pages = 0;
    for (const MemslotRegion& r : slots_->snapshot().regions()) pages += r.pages;
    quota = std::max(kMinQuota, pages * kPerMille / 1000);
  }
  quota_.store(quota, std::memory_order_relaxed);
}

std::uint64_t ShadowMmu::shadow_page_bytes() const {
  const std::lock_guard lock(mutex_);
  std::uint64_t bytes = 0;
  pages_.for_each([&](const ShadowPage& p) {
    bytes += format_.geometry().table_bytes(p.role().level()) + sizeof(ShadowPage) + p.parents().capacity() * sizeof(Hpa);
  });
  return bytes;
}

std::uint64_t ShadowMmu::rmap_bytes() const {
  const std::lock_guard lock(mutex_);
  return pages_.frame_bytes();
}

void ShadowMmu::reclaim_locked() {
  const std::uint64_t quota = page_quota();
  // A fault adds at most one page per level: make room for it.
  const std::uint64_t room = pt::kMaxLevels;
  if (pages_.size() + room <= quota) return;
  // Down to the quota less a batch of 1/16 of it.
  const std::uint64_t target = quota > room + quota / 16 ? quota - room - quota / 16 : 0;
  std::vector<std::pair<std::uint64_t, Hpa>> victims;
  pages_.for_each([&](const ShadowPage& p) {
    if (p.root_count() == 0 && !roots_.contains(&p)) victims.emplace_back(p.last_used(), p.table());
  });
  std::sort(victims.begin(), victims.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  pt::TlbFlush<Gva> flush(&memory_);
  for (const auto& [used, table] : victims) {
    if (pages_.size() <= target) break;
    ShadowPage* p = pages_.by_table(table);
    if (p == nullptr) continue;  // gone with an earlier victim
    const std::uint64_t before = pages_.size();
    zap_page(p, flush);
    stats_.reclaimed += before - pages_.size();
  }
  finish(std::move(flush));
  checked("a quota reclaim");
}

}  // namespace vmmu::shadow
