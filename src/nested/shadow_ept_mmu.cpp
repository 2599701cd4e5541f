// The shadow EPT MMU: roots per EPTP with a per-vCPU cache, the hardware's walk of the shadow
// tables, and keeping in step with L1 (emulated writes to its EPT tables, INVEPT).

#include "vmmu/nested/shadow_ept_mmu.hpp"

#include <algorithm>
#include <atomic>
#include <thread>

#include "vmmu/core/rcu.hpp"
#include "vmmu/mmu/invariants.hpp"

namespace vmmu::nested {
namespace {

using shadow::Role;
using shadow::ShadowPage;
namespace ept = x86::ept;

tdp::TdpFormat ept_format(unsigned levels) {
  return tdp::TdpFormat(tdp::TdpFormatOptions{.kind = tdp::TdpKind::Ept, .levels = levels, .ad_bits = false,
                                              .pages_1g = true});
}

std::uint64_t need_bit(AccessKind op) {
  return op == AccessKind::Read ? ept::R::mask : op == AccessKind::Write ? ept::W::mask : ept::X::mask;
}

}  // namespace

std::string_view to_string(ExitKind k) {
  switch (k) {
    case ExitKind::ToL1: return "reflected to L1";
    case ExitKind::L1Mmio: return "L1 MMIO";
    case ExitKind::OutOfMemory: return "out of memory for shadow EPT tables";
  }
  return "?";
}

ShadowEptVcpu::~ShadowEptVcpu() {
  if (mmu_ == nullptr) return;
  const std::lock_guard lock(mmu_->lock_);
  ShadowEptMmu::Flush flush(&mmu_->memory_);
  for (Cached& c : roots_) {
    if (c.root != nullptr) mmu_->release(c.root, flush);
    c = {};
  }
  mmu_->finish(std::move(flush));
}

std::optional<std::uint64_t> ShadowEptVcpu::eptp() const {
  if (!ctx_) return std::nullopt;
  return ctx_->eptp();
}

std::optional<Hpa> ShadowEptVcpu::root() const {
  if (!ctx_ || roots_[0].root == nullptr) return std::nullopt;
  return roots_[0].root->table();
}

// Shadow tables of a 4-level and a 5-level L1 EPT have the same entries (512 per table, 9 bits
// per level): one table memory, and the format of the root's depth for walks from a root.
ShadowEptMmu::ShadowEptMmu(shadow::GuestRam& l1, x86::EptCapabilities caps)
    : l1_(l1),
      caps_(caps),
      format4_(ept_format(4)),
      format5_(ept_format(5)),
      memory_(format5_.geometry()),
      pages_(memory_) {}

ShadowEptMmu::ShadowEptMmu(std::unique_ptr<shadow::GuestRam> own, Memslots* slots, x86::EptCapabilities caps)
    : own_ram_(std::move(own)),
      l1_(*own_ram_),
      slots_(slots),
      caps_(caps),
      format4_(ept_format(4)),
      format5_(ept_format(5)),
      memory_(format5_.geometry()),
      pages_(memory_) {}

ShadowEptMmu::~ShadowEptMmu() {
  if (slots_ != nullptr) slots_->remove_observer(observer_);
  memory_.quiesce();
}

Role ShadowEptMmu::root_role(const x86::EptContext& ctx) const {
  Role r;
  r.set_level(ctx.levels()).set_access(7).set_guest_mode(true).set_ad_disabled(!ctx.accessed_dirty());
  return r.set_ept(true).set_ept_exec_only(caps_.execute_only);
}

Result<Hpa, x86::EptpError> ShadowEptMmu::load_eptp(ShadowEptVcpu& vcpu, std::uint64_t eptp) {
  const std::lock_guard lock(lock_);
  vcpu.mmu_ = this;
  auto& roots = vcpu.roots_;
  for (std::size_t i = 0; i < roots.size(); ++i) {
    if (roots[i].root == nullptr || roots[i].eptp != eptp) continue;
    if (roots[i].root->role().invalid()) break;  // zapped by INVEPT: rebuilt below
    std::rotate(roots.begin(), roots.begin() + static_cast<std::ptrdiff_t>(i),
                roots.begin() + static_cast<std::ptrdiff_t>(i) + 1);
    vcpu.ctx_ = roots[0].ctx;
    vcpu.invalid_.reset();
    ++stats_.root_switches;
    checked("an EPTP switch");
    return roots[0].root->table();
  }
  auto ctx = x86::EptContext::from(eptp, caps_);
  if (!ctx) {
    vcpu.ctx_.reset();
    vcpu.invalid_ = ctx.error();
    return Unexpected{ctx.error()};
  }
  vcpu.ctx_ = *ctx;
  vcpu.invalid_.reset();
  // A new current root; the least recently used one leaves the cache.
  Flush flush(&memory_);
  if (roots.back().root != nullptr) release(roots.back().root, flush);
  std::rotate(roots.rbegin(), roots.rbegin() + 1, roots.rend());
  roots[0] = {eptp, nullptr, *ctx};
  reload_root(vcpu, flush);
  finish(std::move(flush));
  checked("an EPTP load");
  if (roots[0].root == nullptr) return Hpa(0);  // out of memory: the next access says so
  return roots[0].root->table();
}

void ShadowEptMmu::reload_root(ShadowEptVcpu& vcpu, Flush& flush) {
  ShadowEptVcpu::Cached& cur = vcpu.roots_[0];
  // The same EPTP elsewhere in the cache, zapped or not, goes: one root per EPTP.
  for (std::size_t i = 1; i < vcpu.roots_.size(); ++i) {
    if (vcpu.roots_[i].root != nullptr && vcpu.roots_[i].eptp == cur.eptp) {
      release(vcpu.roots_[i].root, flush);
      vcpu.roots_[i] = {};
    }
  }
  if (cur.root != nullptr) release(cur.root, flush);
  cur.root = nullptr;
  const Role role = root_role(*vcpu.ctx_);
  const Gfn gfn = gfn_of(vcpu.ctx_->root<Gpa>());
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

L2Access ShadowEptMmu::access(ShadowEptVcpu& vcpu, Gpa l2_gpa, AccessKind op) {
  for (;;) {
    {
      const std::lock_guard lock(lock_);
      if (!vcpu.ctx_) {
        ++stats_.reflected;
        return Unexpected{NestedExit{ExitKind::ToL1, {x86::EptFaultKind::InvalidEptp, 0, 0}, {}}};
      }
      Flush flush(&memory_);
      ShadowPage* root = vcpu.roots_[0].root;
      if (root == nullptr || root->role().invalid()) {
        reload_root(vcpu, flush);
        root = vcpu.roots_[0].root;
        if (root == nullptr) {
          finish(std::move(flush));
          return Unexpected{NestedExit{ExitKind::OutOfMemory, {}, {}}};
        }
      }
      // What the hardware does with the shadow tables (no A/D: the shadow EPTP leaves them off).
      const tdp::TdpFormat& f = format(root->role().level());
      const std::uint64_t input = l2_gpa.raw() & (f.geometry().input_limit() - 1);
      const pt::WalkResult<tdp::TdpFormat> w = pt::walk(f, memory_, root->table(), input,
                                                        [](const pt::Step<tdp::TdpFormat>&) { return pt::Visit::Continue; });
      if (w.end == pt::WalkEnd::Leaf && (w.entry & need_bit(op)) != 0) {
        const shadow::GuestLeaf l = pages_.holding(w.entry_address)->leaf(f.geometry().index(input, 1));
        ++stats_.hits;
        finish(std::move(flush));
        const std::uint64_t offset = input & (kPageSize - 1);
        return L2Translation{f.leaf_address(w.entry, 1) + offset, gpa_of(l.gfn) + offset, l.page_size};
      }
      bool again = false;
      L2Access r = fault(vcpu, l2_gpa, op, flush, again);
      finish(std::move(flush));
      checked("an L2 fault");
      if (!again) return r;
    }
    std::this_thread::yield();  // L1 memory under invalidation: let it end
  }
}

bool ShadowEptMmu::write_tracked(Gfn gfn) const {
  const std::lock_guard lock(lock_);
  return pages_.tracked(gfn);
}

void ShadowEptMmu::write_l1(Gpa addr, std::uint64_t value) {
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
  checked("an L1 write to its EPT");
}

void ShadowEptMmu::invept_single(std::uint64_t eptp) {
  const std::lock_guard lock(lock_);
  ++stats_.invepts;
  // SDM 30.3 INVEPT type 1: mappings derived from EPTP[51:12], under either A/D setting.
  auto ctx = x86::EptContext::from(eptp, caps_);
  if (ctx) {
    Flush flush(&memory_);
    for (bool ad : {false, true}) {
      const Role role = Role(root_role(*ctx)).set_ad_disabled(!ad);
      if (ShadowPage* p = pages_.find(gfn_of(ctx->root<Gpa>()), role)) zap_root(p, flush);
    }
    finish(std::move(flush));
  }
  checked("INVEPT single-context");
}

void ShadowEptMmu::invept_all() {
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
  checked("INVEPT all-context");
}

NestedStats ShadowEptMmu::stats() const {
  const std::lock_guard lock(lock_);
  NestedStats s = stats_;
  s.pages = pages_.size();
  return s;
}

void ShadowEptMmu::finish(Flush&& flush) { std::move(flush).apply(tlb_); }

void ShadowEptMmu::checked(const char* what) const {
  mmu::check_or_abort("shadow EPT", what, [&] { return invariants_locked(); });
}

std::optional<std::string> ShadowEptMmu::check_invariants() const {
  const std::lock_guard lock(lock_);
  return invariants_locked();
}

}  // namespace vmmu::nested
