// The nested MMU: roots per root pointer with a per-vCPU cache, the hardware's walk of the
// shadow tables, and keeping in step with L1 (emulated writes to its tables, flushes).

#include "vmmu/nested/nested_mmu.hpp"

#include <algorithm>
#include <atomic>
#include <thread>

#include "vmmu/core/rcu.hpp"
#include "vmmu/mmu/invariants.hpp"
#include "vmmu/nested/ept_kind.hpp"
#include "vmmu/nested/npt_kind.hpp"

namespace vmmu::nested {
namespace {

using shadow::Role;
using shadow::ShadowPage;

template <class K>
tdp::TdpFormat shadow_format(unsigned levels) {
  return tdp::TdpFormat(
      tdp::TdpFormatOptions{.kind = K::kShadowFormat, .levels = levels, .ad_bits = false, .pages_1g = true});
}

}  // namespace

std::string_view to_string(ExitKind k) {
  switch (k) {
    case ExitKind::ToL1: return "reflected to L1";
    case ExitKind::L1Mmio: return "L1 MMIO";
    case ExitKind::OutOfMemory: return "out of memory for shadow tables";
  }
  return "?";
}

template <class K>
NestedVcpu<K>::~NestedVcpu() {
  if (mmu_ == nullptr) return;
  const std::lock_guard lock(mmu_->lock_);
  typename NestedMmu<K>::Flush flush(&mmu_->memory_);
  for (Cached& c : roots_) {
    if (c.root != nullptr) mmu_->release(c.root, flush);
    c = {};
  }
  mmu_->finish(std::move(flush));
}

template <class K>
std::optional<typename K::Pointer> NestedVcpu<K>::pointer() const {
  if (!ctx_) return std::nullopt;
  return K::pointer(*ctx_);
}

template <class K>
std::optional<Hpa> NestedVcpu<K>::root() const {
  if (!ctx_ || roots_[0].root == nullptr) return std::nullopt;
  return roots_[0].root->table();
}

// Shadow tables of a 4-level and a 5-level L1 table have the same entries (512 per table, 9
// bits per level): one table memory, and the format of the root's depth for walks from a root.
template <class K>
NestedMmu<K>::NestedMmu(shadow::GuestRam& l1, Caps caps) : NestedMmu(nullptr, nullptr, caps, &l1) {}

template <class K>
NestedMmu<K>::NestedMmu(std::unique_ptr<shadow::GuestRam> own, Memslots* slots, Caps caps, shadow::GuestRam* l1)
    : own_ram_(std::move(own)),
      l1_(l1 != nullptr ? *l1 : *own_ram_),
      slots_(slots),
      caps_(caps),
      format4_(shadow_format<K>(4)),
      format5_(shadow_format<K>(5)),
      memory_(format5_.geometry()),
      pages_(memory_) {}

template <class K>
NestedMmu<K>::~NestedMmu() {
  if (slots_ != nullptr) slots_->remove_observer(observer_);
  memory_.quiesce();
}

template <class K>
Result<Hpa, typename K::PointerError> NestedMmu<K>::load(Vcpu& vcpu, typename K::Pointer pointer) {
  const std::lock_guard lock(lock_);
  vcpu.mmu_ = this;
  auto& roots = vcpu.roots_;
  for (std::size_t i = 0; i < roots.size(); ++i) {
    if (roots[i].root == nullptr || !(roots[i].pointer == pointer)) continue;
    if (roots[i].root->role().invalid()) break;  // zapped by a flush: rebuilt below
    std::rotate(roots.begin(), roots.begin() + static_cast<std::ptrdiff_t>(i),
                roots.begin() + static_cast<std::ptrdiff_t>(i) + 1);
    vcpu.ctx_ = roots[0].ctx.get();
    vcpu.invalid_.reset();
    ++stats_.root_switches;
    checked("a root switch");
    return roots[0].root->table();
  }
  auto ctx = K::context(pointer, caps_);
  if (!ctx) {
    vcpu.ctx_ = nullptr;
    vcpu.invalid_ = ctx.error();
    return Unexpected{ctx.error()};
  }
  vcpu.invalid_.reset();
  // A new current root; the least recently used one leaves the cache.
  Flush flush(&memory_);
  if (roots.back().root != nullptr) release(roots.back().root, flush);
  std::rotate(roots.rbegin(), roots.rbegin() + 1, roots.rend());
  roots[0] = {pointer, nullptr, std::make_unique<const typename K::Context>(*ctx)};
  vcpu.ctx_ = roots[0].ctx.get();
  reload_root(vcpu, flush);
  finish(std::move(flush));
  checked("a root load");
  if (roots[0].root == nullptr) return Hpa(0);  // out of memory: the next access says so
  return roots[0].root->table();
}

template <class K>
void NestedMmu<K>::reload_root(Vcpu& vcpu, Flush& flush) {
  typename Vcpu::Cached& cur = vcpu.roots_[0];
  // The same pointer elsewhere in the cache, zapped or not, goes: one root per pointer.
  for (std::size_t i = 1; i < vcpu.roots_.size(); ++i) {
    if (vcpu.roots_[i].root != nullptr && vcpu.roots_[i].pointer == cur.pointer) {
      release(vcpu.roots_[i].root, flush);
      vcpu.roots_[i] = {};
    }
  }
  if (cur.root != nullptr) release(cur.root, flush);
  cur.root = nullptr;
  const Role role = K::root_role(*vcpu.ctx_, caps_);
  const Gfn gfn = gfn_of(K::root(*vcpu.ctx_));
  ShadowPage* p = pages_.find(gfn, role);
  if (p == nullptr) {
    Result<ShadowPage*, pt::TableError> made = pages_.create(gfn, role);
    if (!made) return;
    p = *made;
    ++stats_.roots_built;
    write_protect(gfn, flush);
  }
  p->hold_root();
  cur.root = p;
}

template <class K>
typename NestedMmu<K>::L2Result NestedMmu<K>::access(Vcpu& vcpu, Gpa l2_gpa, AccessKind op) {
  for (;;) {
    {
      const std::lock_guard lock(lock_);
      if (!vcpu.ctx_) {
        ++stats_.reflected;
        return Unexpected{Exit{ExitKind::ToL1, K::invalid_pointer(), {}}};
      }
      Flush flush(&memory_);
      ShadowPage* root = vcpu.roots_[0].root;
      if (root == nullptr || root->role().invalid()) {
        reload_root(vcpu, flush);
        root = vcpu.roots_[0].root;
        if (root == nullptr) {
          finish(std::move(flush));
          return Unexpected{Exit{ExitKind::OutOfMemory, {}, {}}};
        }
      }
      // What the hardware does with the shadow tables (no A/D: the shadow root leaves them off).
      const tdp::TdpFormat& f = format(root->role().level());
      const std::uint64_t input = l2_gpa.raw() & (f.geometry().input_limit() - 1);
      const pt::WalkResult<tdp::TdpFormat> w = pt::walk(f, memory_, root->table(), input,
                                                        [](const pt::Step<tdp::TdpFormat>&) { return pt::Visit::Continue; });
      const ShadowNeed n = K::need(op);
      if (w.end == pt::WalkEnd::Leaf && (w.entry & n.mask) == n.value) {
        const shadow::GuestLeaf l = pages_.holding(w.entry_address)->leaf(f.geometry().index(input, 1));
        ++stats_.hits;
        finish(std::move(flush));
        const std::uint64_t offset = input & (kPageSize - 1);
        return L2Translation{f.leaf_address(w.entry, 1) + offset, gpa_of(l.gfn) + offset, l.page_size};
      }
      bool again = false;
      L2Result r = fault(vcpu, l2_gpa, op, flush, again);
      finish(std::move(flush));
      checked("an L2 fault");
      if (!again) return r;
    }
    std::this_thread::yield();  // L1 memory under invalidation: let it end
  }
}

template <class K>
bool NestedMmu<K>::write_tracked(Gfn gfn) const {
  const std::lock_guard lock(lock_);
  return pages_.tracked(gfn);
}

template <class K>
void NestedMmu<K>::write_l1(Gpa addr, std::uint64_t value) {
  const std::lock_guard lock(lock_);
  ++stats_.l1_writes;
  {
    const rcu::ReadGuard rcu;
    std::byte* page = l1_.page(gfn_of(addr));
    if (page != nullptr) {
      // An aligned 8-byte word of a page: the cast is aligned.
      auto* word = reinterpret_cast<std::uint64_t*>(page + (addr.offset_in(kPageSize) & ~std::uint64_t{7}));  // NOLINT
      std::atomic_ref<std::uint64_t>(*word).store(value, std::memory_order_release);
      l1_written(gfn_of(addr));  // L1's own store, made by L0: a migration must copy it
    }
  }
  // The entry's shadow in every page shadowing the table goes; the next access refaults.
  const auto index = static_cast<unsigned>(addr.offset_in(kPageSize) / sizeof(std::uint64_t));
  // By table, looked up again each time: clearing one entry may free another of these pages
  // (an L1 table pointing to itself is shadowed at two levels).
  std::vector<Hpa> tables;
  for (const ShadowPage* p : pages_.shadowing(gfn_of(addr))) tables.push_back(p->table());
  Flush flush(&memory_);
  for (const Hpa t : tables) {
    if (ShadowPage* p = pages_.by_table(t)) clear_entry(*p, index, flush);
  }
  finish(std::move(flush));
  checked("an L1 write to its tables");
}

template <class K>
void NestedMmu<K>::zap_roots(typename K::Pointer pointer) {
  const std::lock_guard lock(lock_);
  ++stats_.invepts;
  auto ctx = K::context(pointer, caps_);
  if (ctx) {
    Flush flush(&memory_);
    // EPT (SDM 30.3, INVEPT type 1): mappings derived from EPTP[51:12] under either A/D
    // setting. NPT roots always have A/D: the other role finds nothing.
    for (bool ad : {false, true}) {
      const Role role = Role(K::root_role(*ctx, caps_)).set_ad_disabled(!ad);
      if (ShadowPage* p = pages_.find(gfn_of(K::root(*ctx)), role)) zap_root(p, flush);
    }
    finish(std::move(flush));
  }
  checked("a flush of one root pointer");
}

template <class K>
void NestedMmu<K>::zap_all() {
  const std::lock_guard lock(lock_);
  ++stats_.invepts;
  // Every link goes first, then every page but the roots vCPUs still hold.
  std::vector<ShadowPage*> all;
  pages_.for_each([&](ShadowPage& p) { all.push_back(&p); });
  Flush flush(&memory_);
  flush.add_all();
  for (ShadowPage* p : all) {
    for (unsigned i = 0; i < shadow::kShadowEntries; ++i) {
      Iterator it = entry_of(*p, i);
      if (it.is_leaf()) pages_.rmap_remove(p->leaf(i).gfn, it.entry_address());
      if (it.is_leaf() || it.is_table()) clear(it, flush);
    }
    p->clear_parents();
  }
  for (ShadowPage* p : all) {
    if (p->root_count() > 0) {
      pages_.unhash(p);
    } else {
      const unsigned level = p->role().level();
      std::unique_ptr<ShadowPage> gone = pages_.remove(p);
      flush.add_retired({gone->table(), level});
    }
  }
  finish(std::move(flush));
  checked("a flush of everything");
}

template <class K>
NestedStats NestedMmu<K>::stats() const {
  const std::lock_guard lock(lock_);
  NestedStats s = stats_;
  s.pages = pages_.size();
  return s;
}

template <class K>
void NestedMmu<K>::finish(Flush&& flush) {
  std::move(flush).apply(tlb_);
}

template <class K>
void NestedMmu<K>::checked(const char* what) const {
  mmu::check_or_abort(K::kName, what, [&] { return invariants_locked(); });
}

template <class K>
std::optional<std::string> NestedMmu<K>::check_invariants() const {
  const std::lock_guard lock(lock_);
  return invariants_locked();
}

#define VMMU_NESTED_MMU(K)                                                                                 \
  template NestedVcpu<K>::~NestedVcpu();                                                                   \
  template std::optional<K::Pointer> NestedVcpu<K>::pointer() const;                                       \
  template std::optional<Hpa> NestedVcpu<K>::root() const;                                                 \
  template NestedMmu<K>::NestedMmu(shadow::GuestRam&, Caps);                                               \
  template NestedMmu<K>::NestedMmu(std::unique_ptr<shadow::GuestRam>, Memslots*, Caps, shadow::GuestRam*); \
  template NestedMmu<K>::~NestedMmu();                                                                     \
  template Result<Hpa, K::PointerError> NestedMmu<K>::load(Vcpu&, K::Pointer);                             \
  template void NestedMmu<K>::reload_root(Vcpu&, Flush&);                                                  \
  template NestedMmu<K>::L2Result NestedMmu<K>::access(Vcpu&, Gpa, AccessKind);                            \
  template bool NestedMmu<K>::write_tracked(Gfn) const;                                                    \
  template void NestedMmu<K>::write_l1(Gpa, std::uint64_t);                                                \
  template void NestedMmu<K>::zap_roots(K::Pointer);                                                      \
  template void NestedMmu<K>::zap_all();                                                                   \
  template NestedStats NestedMmu<K>::stats() const;                                                        \
  template void NestedMmu<K>::finish(Flush&&);                                                             \
  template void NestedMmu<K>::checked(const char*) const;                                                  \
  template std::optional<std::string> NestedMmu<K>::check_invariants() const;
VMMU_NESTED_MMU(EptKind)
VMMU_NESTED_MMU(NptKind)
#undef VMMU_NESTED_MMU

}  // namespace vmmu::nested
