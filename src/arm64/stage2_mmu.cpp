#include "vmmu/arm64/stage2_mmu.hpp"

#include <fmt/format.h>
#include <mutex>

#include "vmmu/arm64/walk.hpp"
#include "vmmu/core/format.hpp"
#include "vmmu/core/rcu.hpp"
#include "vmmu/mmu/invariants.hpp"
#include "vmmu/pt/clamp.hpp"

namespace vmmu::arm64 {
namespace {

// Memslots describe the VM's guest-physical space -- on arm64 the IPA space -- in 4 KiB frames.
Gfn gfn_of_ipa(Ipa ipa) { return Gfn(ipa.raw() >> kPageShift); }
Ipa ipa_of_gfn(Gfn gfn) { return Ipa(gfn.raw() << kPageShift); }

}  // namespace

Stage2Mmu::Stage2Mmu(const Layout& layout, Memslots& slots, Stage2MmuOptions options)
    : layout_(layout), format_(layout), slots_(slots), memory_(layout.geometry(), options.table_budget, 64) {}

Result<std::unique_ptr<Stage2Mmu>, pt::TableError> Stage2Mmu::create(const Layout& layout, Memslots& slots,
                                                                    Stage2MmuOptions options) {
  std::unique_ptr<Stage2Mmu> mmu(new Stage2Mmu(layout, slots, options));
  Result<Stage2Tables, pt::TableError> tables = Stage2Tables::create(mmu->format_, mmu->memory_, mmu->tlb_);
  if (!tables) return Unexpected{tables.error()};
  mmu->tables_.emplace(std::move(*tables));
  if (auto s2 = Stage2::from(mmu->registers(), CpuModel{layout.lpa ? 52u : 48u})) mmu->stage2_.emplace(*s2);
  Stage2Mmu* self = mmu.get();
  mmu->observer_ = slots.add_observer([self](const MemslotChange& c) { self->on_memslot_change(c); });
  return mmu;
}

Stage2Mmu::~Stage2Mmu() {
  slots_.remove_observer(observer_);
  // As the TDP MMU's: the tables go back to the pool at once once the readers still inside
  // are done (else by RCU callbacks that do not touch *this).
  memory_.quiesce();
  tables_.reset();
}

Registers Stage2Mmu::registers() const {
  std::uint64_t vtcr = vtcr::T0sz::set(0, 64 - layout_.ipa_bits);
  vtcr = vtcr::Sl0::set(vtcr, layout_.sl0);
  vtcr = vtcr::Tg0::set(vtcr, tg0_encoding(layout_.granule));
  // 48-bit output: every host virtual address fits. 52-bit layouts (IPA above 48 bits) need
  // DS = 1 for 4K / 16K, and PS = 52 for BADDR to sit where 52-bit formats keep it.
  vtcr = vtcr::Ps::set(vtcr, layout_.lpa ? 6 : 5);
  vtcr = vtcr::Ds::set(vtcr, layout_.lpa && layout_.granule != Granule::K64);
  vtcr = vtcr::Sl2::set(vtcr, layout_.sl2);
  vtcr = vtcr::Sh0::set(vtcr, 3);
  vtcr = vtcr::Irgn0::set(vtcr, 1);
  vtcr = vtcr::Orgn0::set(vtcr, 1);
  const std::uint64_t root = tables_->root().raw();
  if (layout_.lpa) return {vtcr, vttbr::Baddr52Low::bits(root) | vttbr::BaddrHigh::set(0, root >> 48)};
  return {vtcr, vttbr::Baddr::bits(root)};
}

Stage2Counters Stage2Mmu::counters() const {
  return {faults_.load(), mapped_.load(), relaxed_.load(), spurious_.load(), mmio_.load()};
}

unsigned Stage2Mmu::reader_slot() {
  // No per-vCPU handle here: each thread gets a slot of its own (shared only past kSlots
  // threads, which is still correct: a slot is a count).
  static std::atomic<unsigned> next{0};
  thread_local const unsigned slot = next.fetch_add(1, std::memory_order_relaxed) % ReaderLock::kSlots;
  return slot;
}

Result<FaultOutcome, pt::TableError> Stage2Mmu::handle_fault(Ipa ipa, Access access) {
  faults_.fetch_add(1, std::memory_order_relaxed);
  if (ipa.raw() >= format_.geometry().input_limit()) return FaultOutcome{FaultAction::OutOfRange};
  ReaderLock::Shared shared(lock_, reader_slot());
  rcu::ReadGuard guard;  // the memslot snapshot stays valid while we map from it
  return fault_locked(ipa, access);
}

Result<FaultOutcome, pt::TableError> Stage2Mmu::fault_locked(Ipa ipa, Access access) {
  const Gfn gfn = gfn_of_ipa(ipa);
  const MemslotRegion* region = slots_.find(gfn);
  if (region == nullptr || (access.is_write() && !region->writable())) {
    mmio_.fetch_add(1, std::memory_order_relaxed);
    return FaultOutcome{FaultAction::Mmio};
  }
  const bool logging = region->flags.is_log_dirty();
  // An existing leaf: an access-flag or permission fault (or a race another vCPU won).
  if (auto m = tables_->lookup(ipa)) {
    // An access-flag fault counts as not allowed: the fault sets AF.
    if (mmu::allows(m->attrs, access, mmu::AccessFlag::FaultsWhenClear)) {
      spurious_.fetch_add(1, std::memory_order_relaxed);
      return FaultOutcome{FaultAction::Spurious, m->level, m->covers.size()};
    }
    // A write into a block of a dirty-logged slot maps a page below instead (split on map).
    if (!(logging && access.is_write() && m->level > 1)) {
      const pt::LeafAttrs add{false, access.is_write(), access.is_fetch(), true, false};
      Result<pt::TlbFlush<Ipa>, pt::TableError> r = tables_->relax(ipa, add);
      if (r) {
        std::move(*r).apply(tlb_);
        if (access.is_write()) region->mark_dirty(gfn);
        relaxed_.fetch_add(1, std::memory_order_relaxed);
        return FaultOutcome{FaultAction::Relaxed, m->level, m->covers.size(), access.is_write() && logging};
      }
      if (r.error() != pt::TableError::NotMapped) return Unexpected{r.error()};
    }
  }
  // Largest block whose IPA and host address are congruent and that lies inside the slot
  // region (KVM: fault_supports_stage2_huge_mapping); pages only while logging dirty pages.
  const pt::Geometry& g = format_.geometry();
  const Hpa host = region->hpa_of(gfn) + ipa.offset_in(kPageSize);
  for (unsigned level = g.root_level(); level >= 1; --level) {
    if (level > 1 && (logging || !format_.block_allowed(level))) continue;
    const std::uint64_t size = g.span(level);
    const Ipa base = ipa.align_down(size);
    const Hpa host_base = host - (ipa - base);
    if (!region->contains(gfn_of_ipa(base)) || !region->contains(gfn_of_ipa(base + (size - 1))) ||
        !host_base.aligned_to(size)) {
      continue;
    }
    // Reads of a logged slot map read-only so that the first write still faults and is logged.
    const pt::LeafAttrs attrs{true, region->writable() && (!logging || access.is_write()), access.is_fetch(), true,
                              false};
    Result<pt::TlbFlush<Ipa>, pt::TableError> r =
        tables_->map({base, base + size}, host_base, attrs, {.max_level = level}, pt::Shared{});
    if (!r) return Unexpected{r.error()};
    std::move(*r).apply(tlb_);
    const bool dirtied = logging && access.is_write();
    if (dirtied) region->mark_dirty(gfn);
    mapped_.fetch_add(1, std::memory_order_relaxed);
    return FaultOutcome{FaultAction::Mapped, level, size, dirtied};
  }
  return Unexpected{pt::TableError::Misaligned};
}

template <class T>
Status<pt::TableError> Stage2Mmu::finish(Result<T, pt::TableError> r, const char* what) {
  if (!r) return Unexpected{r.error()};
  if constexpr (std::is_same_v<T, pt::TlbFlush<Ipa>>) {
    std::move(*r).apply(tlb_);
  } else {
    std::move(r->flush).apply(tlb_);
  }
  checked(what);
  return {};
}

Status<pt::TableError> Stage2Mmu::map(Range<Ipa> range, bool pages_only) {
  const std::uint64_t granule = granule_bytes(layout_.granule);
  if (!range.begin.aligned_to(granule) || !range.end.aligned_to(granule)) return Unexpected{pt::TableError::Misaligned};
  ReaderLock::Exclusive exclusive(lock_);
  rcu::ReadGuard guard;
  for (const MemslotRegion& region : slots_.snapshot().regions()) {
    Ipa begin = ipa_of_gfn(region.begin()), end = ipa_of_gfn(region.end());
    if (begin < range.begin) begin = range.begin;
    if (range.end < end) end = range.end;
    begin = Ipa(begin.raw() + (granule - 1)).align_down(granule);
    end = end.align_down(granule);
    if (!(begin < end)) continue;
    const Hpa host = region.hpa_of(gfn_of_ipa(begin));
    const pt::LeafAttrs attrs{true, region.writable() && !region.flags.is_log_dirty(), false, true, false};
    const unsigned max_level = pages_only || region.flags.is_log_dirty() ? 1 : pt::kMaxLevels;
    auto r = tables_->map({begin, end}, host, attrs, {.max_level = max_level});
    if (!r) return Unexpected{r.error()};
    std::move(*r).apply(tlb_);
  }
  checked("map");
  return {};
}

Status<pt::TableError> Stage2Mmu::unmap(Range<Ipa> range) {
  if (auto bad = tables_->check_range(range)) return Unexpected{*bad};
  ReaderLock::Exclusive exclusive(lock_);
  // Blocks straddling an edge go whole (KVM does the same): needs no table memory.
  std::move(tables_->unmap(range, pt::WholeLeaves{})).apply(tlb_);
  checked("unmap");
  return {};
}

Status<pt::TableError> Stage2Mmu::write_protect(Range<Ipa> range) {
  ReaderLock::Exclusive exclusive(lock_);
  return finish(tables_->write_protect(range), "write_protect");
}

Status<pt::TableError> Stage2Mmu::enable_dirty_logging(Range<Ipa> range) {
  if (auto bad = tables_->check_range(range)) return Unexpected{*bad};
  ReaderLock::Exclusive exclusive(lock_);
  Result<pt::TlbFlush<Ipa>, pt::TableError> s = tables_->split(range, 1);
  if (s) {
    std::move(*s).apply(tlb_);
  } else {
    // Out of table memory: unmap instead (cannot fail); faults map pages back one by one.
    std::move(tables_->unmap(range, pt::WholeLeaves{})).apply(tlb_);
  }
  return finish(tables_->write_protect(range), "enable_dirty_logging");
}

Result<std::uint64_t, pt::TableError> Stage2Mmu::age(Range<Ipa> range) {
  ReaderLock::Exclusive exclusive(lock_);
  auto r = tables_->age(range);
  if (!r) return Unexpected{r.error()};
  // Clearing AF needs no invalidation: a stale young TLB entry only delays the next aging.
  std::move(r->flush).drop();
  return r->count;
}

bool Stage2Mmu::test_age(Range<Ipa> range) const {
  rcu::ReadGuard guard;
  return tables_->test_age(range);
}

Status<pt::TableError> Stage2Mmu::relax(Ipa ipa, pt::LeafAttrs add) {
  ReaderLock::Shared shared(lock_, reader_slot());
  auto r = tables_->relax(ipa, add);
  if (!r) return Unexpected{r.error()};
  std::move(*r).apply(tlb_);
  return {};
}

Status<pt::TableError> Stage2Mmu::split(Range<Ipa> range) {
  ReaderLock::Exclusive exclusive(lock_);
  return finish(tables_->split(range, 1), "split");
}

Result<std::uint64_t, pt::TableError> Stage2Mmu::collapse(Range<Ipa> range) {
  ReaderLock::Exclusive exclusive(lock_);
  auto r = tables_->collapse(range);
  if (!r) return Unexpected{r.error()};
  const std::uint64_t n = r->count;
  std::move(r->flush).apply(tlb_);
  checked("collapse");
  return n;
}

std::optional<Stage2Tables::Mapping> Stage2Mmu::lookup(Ipa ipa) const {
  rcu::ReadGuard guard;
  return tables_->lookup(ipa);
}

void Stage2Mmu::on_memslot_change(const MemslotChange& change) {
  auto each = [&](auto&& op) {
    for (Range<Gfn> r : {change.before, change.after}) {
      const std::optional<Range<Ipa>> ipas = pt::clamp<Ipa>(r, format_.geometry());
      if (!ipas) continue;
      // unmap and the others fail only on ranges the engine rejects; what a failure would
      // leave is removed by unmapping whole leaves, which cannot fail.
      if (!op(*ipas)) {
        ReaderLock::Exclusive exclusive(lock_);
        std::move(tables_->unmap(*ipas, pt::WholeLeaves{})).apply(tlb_);
      }
    }
  };
  switch (change.kind) {
    case MemslotChangeKind::Added: break;
    case MemslotChangeKind::Removed:
    case MemslotChangeKind::Moved:
    case MemslotChangeKind::OverlayAdded:
    case MemslotChangeKind::OverlayRemoved: each([&](Range<Ipa> r) { return unmap(r); }); break;
    case MemslotChangeKind::FlagsChanged:
      if (change.new_flags.is_read_only() && !change.old_flags.is_read_only()) {
        each([&](Range<Ipa> r) { return write_protect(r); });
      }
      if (change.new_flags.is_log_dirty() && !change.old_flags.is_log_dirty()) {
        each([&](Range<Ipa> r) { return enable_dirty_logging(r); });
      }
      break;
  }
}

std::optional<std::string> Stage2Mmu::check_invariants() const {
  rcu::ReadGuard guard;
  std::optional<std::string> bad;
  const pt::Geometry& g = format_.geometry();
  tables_->for_each_leaf({Ipa(0), Ipa(g.input_limit())}, [&](const Stage2Tables::Mapping& m) {
    if (bad) return;
    const Ipa base = m.covers.begin;
    const std::uint64_t size = m.covers.size();
    const MemslotRegion* region = slots_.find(gfn_of_ipa(base));
    if (region == nullptr || !region->contains(gfn_of_ipa(base + (size - 1)))) {
      bad = fmt::format("leaf {} ({} bytes) is not inside one memslot region", base, size);
      return;
    }
    const Hpa want = region->hpa_of(gfn_of_ipa(base));
    if (m.output != want) bad = fmt::format("leaf {} maps {}, its slot says {}", base, m.output, want);
    if (m.attrs.write && !region->writable()) bad = fmt::format("writable leaf {} in a read-only slot", base);
    // While the slot logs dirty pages a first write must fault and be logged: a writable leaf
    // is one page, and the log names it (the fault logs the 4 KiB frame it hit).
    if (!bad && m.attrs.write && region->flags.is_log_dirty()) {
      bool logged = false;
      for (std::uint64_t i = 0; i < (size >> kPageShift) && !logged; ++i) {
        const Gfn f = gfn_of_ipa(base) + i;
        logged = region->dirty != nullptr && region->dirty->test(region->dirty_first + (f.raw() - region->gfn_begin));
      }
      if (m.level > 1) {
        bad = fmt::format("block {} is writable while its slot logs dirty pages", base);
      } else if (!logged) {
        bad = fmt::format("page {} is writable while its slot logs dirty pages, but not logged", base);
      }
    }
    if (!stage2_ || bad) return;
    const Ipa last = base + (size - 1);
    auto t = walk(*stage2_, memory_, last, AccessKind::Read, {.update_descriptors = false});
    if (!t) {
      if (!(t.error().kind == FaultKind::AccessFlag && !m.attrs.accessed)) {
        bad = fmt::format("the walker faults ({}) on mapped {}", to_string(t.error().kind), last);
      }
    } else if (t->pa != want + (size - 1)) {
      bad = fmt::format("the walker translates {} to {}, expected {}", last, t->pa, want + (size - 1));
    }
  });
  if (bad) return bad;
  const auto reach = tables_->reachable_tables();
  for (unsigned l = 1; l <= g.root_level(); ++l) {
    if (reach[l] != memory_.tables_in_use(l)) {
      return fmt::format("level {}: {} tables reachable, {} accounted", l, reach[l], memory_.tables_in_use(l));
    }
  }
  return std::nullopt;
}

void Stage2Mmu::checked(const char* what) const {
  mmu::check_or_abort("stage-2", what, [&] { return check_invariants(); });
}

}  // namespace vmmu::arm64
