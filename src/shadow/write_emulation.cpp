// Emulated writes to write-tracked guest tables (issue 12 item 5, KVM's kvm_mmu_track_write):
// each synced shadow page of the written table applies the written guest entry to the shadow
// entries showing it -- a leaf follows the new entry in place (or goes), a child link stays
// only while it names the same child -- unless the write is not one guest entry (misaligned:
// the page is zapped) or the table is written again and again with no fault using it between
// (write flooding: zapped, as it is probably no longer a page table).

#include <atomic>
#include <cassert>
#include <type_traits>

#include "allowed_leaf.hpp"

namespace vmmu::shadow {
namespace {

namespace gpte = x86::gpte;

// KVM's threshold: the third emulated write with no use between unshadows the table.
constexpr unsigned kWriteFlooding = 3;

// A write of `bytes` at `offset` is not exactly one guest entry of `size` bytes -- but for
// either 4-byte half of an 8-byte entry (a 32-bit PAE guest writes its entries so: the
// whole entry is re-read after the write, as KVM does). 0 bytes: unknown.
bool misaligned(unsigned offset, std::uint32_t bytes, unsigned size) {
  if (bytes == 0 || (offset ^ (offset + bytes - 1)) & ~(size - 1)) return true;  // crosses an entry
  return bytes != size && !(size == 8 && bytes == 4);
}

}  // namespace

bool ShadowMmu::write_tracked(Gfn gfn) const {
  if (!pages_.tracked(gfn)) return false;
  const auto u = unsync_frames_.find(gfn.raw());
  if (u == unsync_frames_.end()) return true;
  std::size_t pages = 0;  // counted in place: a fault on an unsync frame asks this
  pages_.for_each_shadowing(gfn, [&](const ShadowPage*) { ++pages; });
  return pages > u->second;
}

void ShadowMmu::table_written_locked(Gpa gpa, std::uint32_t bytes, const x86::GuestPaging* paging) {
  const Gfn gfn = gfn_of(gpa);
  count_table_write_locked(gfn);
  const auto offset = static_cast<unsigned>(gpa.offset_in(kPageSize));
  pt::TlbFlush<Gva> flush(&memory_);
  // Unsync pages are left alone: they read the guest's entries when it flushes. By table: a
  // zap below may take pages after the one being applied.
  std::vector<Hpa>& tables = written_tables_;
  tables.clear();
  pages_.for_each_shadowing(gfn, [&](const ShadowPage* sp) {
    if (!sp->unsync()) tables.push_back(sp->table());
  });
  for (const Hpa table : tables) {
    ShadowPage* sp = pages_.by_table(table);
    if (sp == nullptr || sp->role().invalid()) continue;  // zapped with one before it
    const unsigned size = sp->role().gpte4() ? 4 : 8;
    if (misaligned(offset, bytes, size)) {
      ++stats_.write_misaligned;
      zap_page(sp, flush);
      continue;
    }
    if (sp->count_write() >= kWriteFlooding) {
      ++stats_.write_flooded;
      zap_page(sp, flush);
      continue;
    }
    // The shadow entries showing guest entry `gi`: one, but for a 32-bit guest's directory,
    // whose 4 MiB entries are two 2 MiB shadow entries each; a quadrant shows part of the
    // table, a PAE PDPT page the four entries of its 32-byte slot.
    const Role role = sp->role();
    const unsigned gi = offset / size;
    unsigned first = gi;
    unsigned count = 1;
    if (role.gpte4()) {
      const unsigned per_page = role.level() == 1 ? kShadowEntries : kShadowEntries / 2;
      if (gi / per_page != role.quadrant()) continue;
      count = kShadowEntries / per_page;
      first = (gi % per_page) * count;
    } else {
      if (gi < role.pdpt() * 4) continue;
      first = gi - role.pdpt() * 4;
    }
    if (role.level() == 1) {
      refresh_leaves(*sp, first, count, paging, flush);
      continue;
    }
    // A child link stays only if the new guest entry leads to the same child.
    bool present = false;
    Gfn child_gfn;
    std::uint8_t rights = 0;
    if (paging != nullptr && ram_.page(gfn) != nullptr && reads_like(role, *paging)) {
      paging->with_format([&](const auto& f, Gpa) {
        using E = typename std::decay_t<decltype(f)>::Entry;
        E* slot = reinterpret_cast<E*>(ram_.page(gfn)) + gi;  // NOLINT: guest tables are arrays of entries
        const E e = std::atomic_ref<E>(*slot).load(std::memory_order_acquire);
        const unsigned level = role.level();
        present = f.present(e, level) && !f.reserved(e, level) && !f.leaf(e, level);
        if (!present) return;
        child_gfn = gfn_of(f.table_address(e, level));
        rights = static_cast<std::uint8_t>(f.access(e, level));
      });
    }
    for (unsigned i = first; i < first + count; ++i) relink_check(*sp, i, present, child_gfn, rights, flush);
  }
  finish(std::move(flush));
  checked("a write to a guest table");
}

bool ShadowMmu::reads_like(Role role, const x86::GuestPaging& paging) const {
  // The guest entries' size and the NX rule decide what an entry means (the rest of the role
  // narrows rights, which the page's role carries).
  if (paging.mode() == x86::PagingMode::Off) return false;
  const Role r = root_role(paging, config_.host_levels);
  return r.gpte4() == role.gpte4() && r.efer_nx() == role.efer_nx();
}

void ShadowMmu::refresh_leaves(ShadowPage& sp, unsigned first, unsigned count, const x86::GuestPaging* paging,
                               pt::TlbFlush<Gva>& flush) {
  const Role role = sp.role();
  std::byte* guest_table = ram_.page(sp.gfn());
  const bool readable = paging != nullptr && guest_table != nullptr && !role.direct() && reads_like(role, *paging);
  // Under the lock no one else writes shadow entries: plain stores, one flush for the page.
  pt::ops::PageRewrite<ShadowFormat> page(format_, sp.table(), 1);
  auto follow = [&](const auto* f) {
    for (unsigned i = first; i < first + count; ++i) {
      const std::uint64_t old = page.entry(i);
      if (!format_.present(old, 1)) continue;  // nothing mapped: the next access faults
      const GuestLeaf was = sp.leaf(i);
      std::optional<GuestAllows> g;
      if (f != nullptr) g = guest_allows(*f, sp, guest_table, i);
      // W stays only where the old leaf had it for the same frame (a fault checked the slot
      // and logged the page); another frame maps read-only (a write faults, and is checked
      // and logged there).
      std::uint64_t now = 0;
      if (g && g->frame == was.gfn) {
        // The same frame: its backing was checked when `old` was made, and every change since
        // (memslot, dirty logging, write tracking, invalidation) zapped or write-protected
        // `old` -- its host page and its W are still what the backing allows (a sync's own
        // frame is write-protected after the sync). A sync's common case: no look-up.
        if ((ShadowFormat::leaf_rights(old).access & gpte::kAccWrite) == 0) {
          g->rights.access &= static_cast<std::uint8_t>(~gpte::kAccWrite);
        }
        now = ShadowFormat::leaf_entry(format_.leaf_address(old, 1), 1, g->rights);
      } else {
        std::optional<AllowedLeaf> a;
        if (g) a = backed(*g);
        if (!a) {
          zap_leaf(was.gfn, pt::entry_address<ShadowFormat>(sp.table(), i), flush);
          continue;
        }
        a->rights.access &= static_cast<std::uint8_t>(~gpte::kAccWrite);
        now = ShadowFormat::leaf_entry(Hpa(reinterpret_cast<std::uintptr_t>(a->host)), 1, a->rights);
      }
      if (now == old) continue;
      [[maybe_unused]] const bool leaf = page.set(i, now);  // a level-1 entry is never a table
      assert(leaf);
      if (g->frame == was.gfn) continue;
      const Hpa entry = pt::entry_address<ShadowFormat>(sp.table(), i);
      pages_.rmap_remove(was.gfn, entry);
      pages_.rmap_add(g->frame, entry);
      sp.set_leaf(i, {g->frame, kPageSize});
    }
  };
  // Without a paging state that reads the page's entries, every present leaf goes.
  if (!readable || !paging->with_format([&](const auto& f, Gpa) { follow(&f); })) {
    follow(static_cast<const x86::Format4*>(nullptr));
  }
  // The page may be linked at several gvas: the flush covers every gva.
  page.record_all(flush);
}

void ShadowMmu::relink_check(ShadowPage& sp, unsigned index, bool present, Gfn table, std::uint8_t rights,
                             pt::TlbFlush<Gva>& flush) {
  const unsigned level = sp.role().level();
  const std::uint64_t e = memory_.read<std::uint64_t>(pt::entry_address<ShadowFormat>(sp.table(), index)).value_or(0);
  if (!format_.present(e, level)) return;
  if (present && !format_.leaf(e, level)) {
    const ShadowPage* c = pages_.by_table(format_.table_address(e, level));
    const auto access = static_cast<std::uint8_t>(sp.role().access() & rights);
    if (!c->role().direct() && c->gfn() == table && c->role().access() == access) return;
  }
  zap_entry(sp, index, flush);
}

}  // namespace vmmu::shadow
