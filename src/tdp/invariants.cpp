// The TDP MMU's invariants (docs/architecture.md), checked with the lock held exclusively:
//   1. every present leaf maps, for each page it covers, the memory its memslot gives;
//   2. no writable leaf in a read-only slot; while a slot logs dirty pages by write
//      protection, a writable leaf maps only pages already logged (bitmap or a vCPU's ring);
//      by D bits, no huge leaf is writable (its one D bit would log 512 pages or more);
//   3. no frozen entry once operations are done; an MMIO marker of the current generation
//      only where no memslot is;
//   4. each root's reference count = vCPUs on it + the MMU's own (valid roots, Keep policy);
//   5. table pages accounted = table pages reachable from the live roots.
#include <fmt/format.h>

#include <set>

#include "vmmu/core/format.hpp"
#include "vmmu/core/rcu.hpp"
#include "vmmu/tdp/tdp_mmu.hpp"

namespace vmmu::tdp {

std::optional<std::string> TdpMmu::invariants_locked() {
  rcu::ReadGuard rcu;
  const pt::Geometry& g = format_.geometry();
  const bool by_dirty_bits = config_.policies.dirty_tracking == DirtyTracking::DirtyBits && format_.ad_bits();
  std::set<std::pair<std::uint32_t, std::uint64_t>> in_rings;
  std::vector<const Root*> vcpu_roots;
  {
    std::lock_guard g2(vcpus_mutex_);
    for (VcpuMmu* v : vcpus_) {
      if (v->ring_) {
        for (const DirtyGfn& d : v->ring_->pending()) in_rings.insert({d.slot.value, d.page});
      }
      if (Root* r = v->root_.load(std::memory_order_acquire)) vcpu_roots.push_back(r);
    }
  }
  const std::uint64_t generation = slots_.generation();
  std::optional<std::string> bad;
  std::array<std::uint64_t, pt::kMaxLevels + 1> reachable{};
  roots_->for_each([&](const Root& root) {
    if (bad) return;
    ++reachable[g.root_level()];
    for (pt::TableIterator it(format_, memory_, root.tables.root(), 0, g.input_limit()); it.valid() && !bad; it.next()) {
      const std::uint64_t e = it.entry();
      if (it.is_table()) {
        ++reachable[it.level() - 1];
        continue;
      }
      if (e == format_.frozen_entry()) {
        bad = fmt::format("root {}: a frozen entry at {:#x} level {} outlived its operation", root.id, it.address(), it.level());
        return;
      }
      const Gfn first = gfn_of(Gpa(it.address()));
      if (TdpFormat::mmio_current(e, generation) && slots_.find(first) != nullptr) {
        bad = fmt::format("root {}: a current MMIO marker at gfn {:#x}, which has a memslot", root.id, first.raw());
        return;
      }
      if (!it.is_leaf() || root.invalid.load(std::memory_order_relaxed)) continue;
      const pt::LeafAttrs a = format_.leaf_attrs(e, it.level());
      const Hpa out = format_.leaf_address(e, it.level());
      const std::uint64_t pages = it.span() >> kPageShift;
      for (std::uint64_t i = 0; i < pages && !bad; ++i) {
        const Gfn gfn = first + i;
        const MemslotRegion* r = slots_.find(gfn);
        if (r == nullptr) {
          bad = fmt::format("root {}: leaf at gfn {:#x} (level {}) has no memslot", root.id, gfn.raw(), it.level());
        } else if (r->hpa_of(gfn) != out + (i << kPageShift)) {
          bad = fmt::format("root {}: gfn {:#x} maps {}, its memslot says {}", root.id, gfn.raw(), out + (i << kPageShift),
                            r->hpa_of(gfn));
        } else if (a.write && !r->writable()) {
          bad = fmt::format("root {}: writable leaf at gfn {:#x} in a read-only slot", root.id, gfn.raw());
        } else if (a.write && r->flags.is_log_dirty() && by_dirty_bits && it.level() > 1) {
          bad = fmt::format("root {}: huge leaf at gfn {:#x} (level {}) is writable while its slot logs dirty pages by D bits",
                            root.id, gfn.raw(), it.level());
        } else if (a.write && r->flags.is_log_dirty() && !by_dirty_bits) {
          const std::uint64_t page = r->dirty_first + (gfn.raw() - r->gfn_begin);
          const bool logged = (r->dirty != nullptr && r->dirty->test(page)) || in_rings.contains({r->slot.value, page});
          if (!logged) {
            bad = fmt::format("root {}: gfn {:#x} is writable while its slot logs dirty pages, but not logged", root.id,
                              gfn.raw());
          }
        }
      }
    }
    if (bad) return;
    std::int64_t want = 0;
    for (const Root* r : vcpu_roots) want += r == &root ? 1 : 0;
    if (roots_->mmu_holds_reference() && !root.invalid.load(std::memory_order_relaxed)) ++want;
    if (root.refs.load(std::memory_order_relaxed) != want) {
      bad = fmt::format("root {}: {} references, {} expected (vCPUs + the MMU's own)", root.id,
                        root.refs.load(std::memory_order_relaxed), want);
    }
  });
  if (bad) return bad;
  for (unsigned l = 1; l <= g.root_level(); ++l) {
    if (reachable[l] != memory_.tables_in_use(l)) {
      return fmt::format("level {}: {} table pages reachable, {} accounted", l, reachable[l], memory_.tables_in_use(l));
    }
  }
  return std::nullopt;
}

// Merge in place and concurrent write-protection run shared with faults; their result is
// checked once they are done, with the lock taken exclusively so no fault is half-way.
void TdpMmu::checked_shared([[maybe_unused]] const char* what) {
#if defined(VMMU_CHECK_INVARIANTS)
  ReaderLock::Exclusive exclusive(lock_);
  checked(what);
#endif
}

}  // namespace vmmu::tdp
