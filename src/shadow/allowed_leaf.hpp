#pragma once
// "The leaf this guest entry allows for slot i of a last-level shadow page", shared by the
// two places that map a leaf without the fault that would check it: prefetch (prefetch.cpp)
// and the re-reading of guest entries on sync, INVLPG and emulated writes (write_emulation.cpp).

#include <atomic>

#include "vmmu/shadow/shadow_mmu.hpp"

namespace vmmu::shadow {

// The guest entry behind slot i of the last-level page `sp` (`guest_table`: its guest table's
// host page), read atomically: the guest may be writing it.
template <class F>
typename F::Entry guest_leaf_entry(const ShadowPage& sp, std::byte* guest_table, unsigned i) {
  using E = typename F::Entry;
  const Role role = sp.role();
  // A 1024-entry guest page table's half this page shadows (quadrant), else the whole table;
  // guest tables are naturally aligned in page-aligned host pages.
  const unsigned guest_first = role.gpte4() ? role.quadrant() * kShadowEntries : 0;
  E* slot = reinterpret_cast<E*>(guest_table) + guest_first + i;  // NOLINT: a guest table is an array of entries
  return std::atomic_ref<E>(*slot).load(std::memory_order_acquire);
}

// What guest entry i of the last-level page `sp` allows by itself: its frame and the path's
// rights, without W while its D bit is clear; nullopt when it is not present, reserved or not
// accessed yet (only an entry the guest has used -- it set A itself -- maps without a fault).
template <class F>
std::optional<ShadowMmu::GuestAllows> ShadowMmu::guest_allows(const F& f, const ShadowPage& sp,
                                                              std::byte* guest_table, unsigned i) {
  namespace gpte = x86::gpte;
  const typename F::Entry e = guest_leaf_entry<F>(sp, guest_table, i);
  if (!f.present(e, 1) || f.reserved(e, 1) || !f.accessed(e)) return std::nullopt;
  auto rights = static_cast<std::uint8_t>(sp.role().access() & f.access(e, 1));
  if (!gpte::D::get(e)) rights &= static_cast<std::uint8_t>(~gpte::kAccWrite);
  return GuestAllows{gfn_of(f.leaf_address(e, 1)), {rights, static_cast<std::uint8_t>(f.protection_key(e))}};
}

// The host side of a leaf the guest allows: nullopt when its frame has no memory or is being
// invalidated; without W when the frame is a shadowed table, read-only or logged dirty (as on
// a fault, which logs the page on its write; a leaf mapped without a fault never takes
// CR0.WP=0's widening).
inline std::optional<ShadowMmu::AllowedLeaf> ShadowMmu::backed(GuestAllows g) const {
  namespace gpte = x86::gpte;
  const HostFrame backing = host_frame(g.frame);
  if (backing.host == nullptr || invalidating(g.frame)) return std::nullopt;
  if (write_tracked(g.frame) || !backing.writable ||
      (backing.region != nullptr && backing.region->flags.is_log_dirty())) {
    g.rights.access &= static_cast<std::uint8_t>(~gpte::kAccWrite);
  }
  return AllowedLeaf{g.frame, backing.host, g.rights};
}

template <class F>
std::optional<ShadowMmu::AllowedLeaf> ShadowMmu::allowed_leaf(const F& f, const ShadowPage& sp,
                                                               std::byte* guest_table, unsigned i) const {
  const std::optional<GuestAllows> g = guest_allows(f, sp, guest_table, i);
  if (!g) return std::nullopt;
  return backed(*g);
}

}  // namespace vmmu::shadow
