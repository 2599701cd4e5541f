#include "vmmu/memory/memslots.hpp"

#include <algorithm>
#include <bit>
#include <cstdio>
#include <cstdlib>

#include "vmmu/core/rcu.hpp"

namespace vmmu {
namespace {

// Checks shared by slots and overlays: a non-empty, page-aligned host range mapped at guest
// frames that stay inside the 52-bit guest-physical space.
Status<MemslotError> check_range(Gfn base, std::uint64_t pages, const std::byte* host) {
  if (pages == 0) return Unexpected{MemslotError::ZeroSize};
  if (host == nullptr) return Unexpected{MemslotError::NullHost};
  if (reinterpret_cast<std::uintptr_t>(host) % kPageSize != 0) return Unexpected{MemslotError::MisalignedHost};
  if (base.raw() >= kMaxGfnCount || pages > kMaxGfnCount - base.raw()) return Unexpected{MemslotError::GfnOverflow};
  return {};
}

[[noreturn]] void invariant_failed(const char* what) {
  std::fprintf(stderr, "vmmu: memslot invariant violated: %s\n", what);
  std::abort();
}

}  // namespace

Memslots::Memslots() : current_(new MemslotSnapshot(0, {}, {})) {}

Memslots::~Memslots() { delete current_.load(std::memory_order_relaxed); }

Status<MemslotError> Memslots::add(const MemslotSpec& spec) {
  std::unique_lock lock(mutex_);
  if (!spec.flags.known()) return Unexpected{MemslotError::UnknownFlags};
  if (auto s = check_range(spec.base, spec.pages, spec.host); !s) return s;
  if (const std::uint64_t b = spec.backing_page_size;
      (b != kPageSize && b != (kPageSize << 9) && b != (kPageSize << 18)) ||
      reinterpret_cast<std::uintptr_t>(spec.host) % b != 0) {
    return Unexpected{MemslotError::BadPageSize};
  }
  if (slots_.contains(spec.id)) return Unexpected{MemslotError::DuplicateId};
  if (slots_.size() >= kMaxMemslots) return Unexpected{MemslotError::TooManySlots};
  for (const auto& [id, s] : slots_) {
    if (s.spec.range().overlaps(spec.range())) return Unexpected{MemslotError::Overlap};
  }
  SlotState state{spec, nullptr, {}};
  if (spec.flags.is_log_dirty()) state.dirty = std::make_shared<DirtyBitmap>(spec.pages);
  slots_.emplace(spec.id, std::move(state));
  publish(lock, {MemslotChangeKind::Added, spec.id, {}, spec.range(), MemslotFlags::none(), spec.flags, 0},
          /*wait=*/false);
  return {};
}

Status<MemslotError> Memslots::remove(SlotId id) {
  std::unique_lock lock(mutex_);
  auto it = slots_.find(id);
  if (it == slots_.end()) return Unexpected{MemslotError::UnknownSlot};
  const MemslotSpec spec = it->second.spec;
  for (const auto& [overlay, o] : it->second.overlays) overlay_owner_.erase(overlay);
  slots_.erase(it);
  publish(lock, {MemslotChangeKind::Removed, id, spec.range(), {}, spec.flags, MemslotFlags::none(), 0},
          /*wait=*/true);
  return {};
}

Status<MemslotError> Memslots::move(SlotId id, Gfn new_base) {
  std::unique_lock lock(mutex_);
  auto it = slots_.find(id);
  if (it == slots_.end()) return Unexpected{MemslotError::UnknownSlot};
  MemslotSpec& spec = it->second.spec;
  if (auto s = check_range(new_base, spec.pages, spec.host); !s) return s;
  const Range<Gfn> before = spec.range();
  const Range<Gfn> after{new_base, new_base + spec.pages};
  for (const auto& [other_id, s] : slots_) {
    if (other_id != id && s.spec.range().overlaps(after)) return Unexpected{MemslotError::Overlap};
  }
  spec.base = new_base;
  publish(lock, {MemslotChangeKind::Moved, id, before, after, spec.flags, spec.flags, 0}, /*wait=*/true);
  return {};
}

Status<MemslotError> Memslots::set_flags(SlotId id, MemslotFlags flags) {
  std::unique_lock lock(mutex_);
  auto it = slots_.find(id);
  if (it == slots_.end()) return Unexpected{MemslotError::UnknownSlot};
  if (!flags.known()) return Unexpected{MemslotError::UnknownFlags};
  SlotState& s = it->second;
  const MemslotFlags old = s.spec.flags;
  if (flags.is_log_dirty() && !old.is_log_dirty()) s.dirty = std::make_shared<DirtyBitmap>(s.spec.pages);
  if (!flags.is_log_dirty()) s.dirty.reset();
  s.spec.flags = flags;
  publish(lock, {MemslotChangeKind::FlagsChanged, id, s.spec.range(), s.spec.range(), old, flags, 0},
          /*wait=*/true);
  return {};
}

Result<OverlayId, MemslotError> Memslots::overlay_add(Gfn first, std::uint64_t pages, std::byte* host) {
  std::unique_lock lock(mutex_);
  if (auto s = check_range(first, pages, host); !s) return Unexpected{s.error()};
  const Range<Gfn> range{first, first + pages};
  auto it = std::find_if(slots_.begin(), slots_.end(), [&](const auto& kv) {
    const Range<Gfn> r = kv.second.spec.range();
    return !(range.begin < r.begin) && !(r.end < range.end);
  });
  if (it == slots_.end()) return Unexpected{MemslotError::OverlayOutsideSlot};
  SlotState& s = it->second;
  const std::uint64_t first_page = first - s.spec.base;
  for (const auto& [oid, o] : s.overlays) {
    if (first_page < o.first_page + o.pages && o.first_page < first_page + pages) {
      return Unexpected{MemslotError::OverlayOverlap};
    }
  }
  const OverlayId id{next_overlay_++};
  s.overlays.emplace(id.value, OverlayState{first_page, pages, host});
  overlay_owner_.emplace(id.value, s.spec.id);
  publish(lock, {MemslotChangeKind::OverlayAdded, s.spec.id, range, range, s.spec.flags, s.spec.flags, 0},
          /*wait=*/true);
  return id;
}

Status<MemslotError> Memslots::overlay_remove(OverlayId id) {
  std::unique_lock lock(mutex_);
  auto owner = overlay_owner_.find(id.value);
  if (owner == overlay_owner_.end()) return Unexpected{MemslotError::UnknownOverlay};
  SlotState& s = slots_.at(owner->second);
  const OverlayState o = s.overlays.at(id.value);
  s.overlays.erase(id.value);
  overlay_owner_.erase(owner);
  const Range<Gfn> range{s.spec.base + o.first_page, s.spec.base + o.first_page + o.pages};
  publish(lock, {MemslotChangeKind::OverlayRemoved, s.spec.id, range, range, s.spec.flags, s.spec.flags, 0},
          /*wait=*/true);
  return {};
}

void Memslots::publish(std::unique_lock<std::mutex>& lock, MemslotChange change, bool wait) {
  const std::uint64_t generation = generation_.load(std::memory_order_relaxed) + 1;
  std::unique_ptr<MemslotSnapshot> next = build(generation);
  // Pointer first, then generation: a reader that still sees the old generation may use a
  // cached region of the old snapshot, which is fine -- it is inside a section the grace
  // period below waits for (its read of the old generation orders it before the wait).
  const MemslotSnapshot* old = current_.exchange(next.release(), std::memory_order_acq_rel);
  generation_.store(generation, std::memory_order_release);
  change.generation = generation;
  for (const auto& [handle, fn] : observers_) fn(change);
#if defined(VMMU_CHECK_INVARIANTS)
  check_invariants();
#endif
  // The grace period runs without the mutex: queries and other writers need not wait for
  // it, and each writer still waits for the readers of the snapshot it replaced.
  lock.unlock();
  if (wait) {
    rcu::synchronize();
    delete old;
  } else {
    rcu::retire(old);
  }
}

std::unique_ptr<MemslotSnapshot> Memslots::build(std::uint64_t generation) const {
  std::vector<MemslotRegion> regions;
  std::vector<std::shared_ptr<DirtyBitmap>> bitmaps;
  regions.reserve(slots_.size() + 2 * overlay_owner_.size());
  for (const auto& kv : slots_) {
    const SlotState& s = kv.second;
    const MemslotSpec& spec = s.spec;
    auto piece = [&](std::uint64_t first_page, std::uint64_t pages, std::byte* host, OverlayId overlay) {
      const unsigned shift = overlay.value != 0 ? kPageShift : static_cast<unsigned>(std::countr_zero(spec.backing_page_size));
      regions.push_back({spec.base.raw() + first_page, pages, host, s.dirty.get(), first_page, spec.id, spec.flags,
                         overlay, static_cast<std::uint8_t>(shift)});
    };
    std::vector<std::pair<std::uint64_t, const OverlayState*>> overlays;
    for (const auto& [oid, o] : s.overlays) overlays.emplace_back(oid, &o);
    std::sort(overlays.begin(), overlays.end(),
              [](const auto& a, const auto& b) { return a.second->first_page < b.second->first_page; });
    std::uint64_t page = 0;
    for (const auto& [oid, o] : overlays) {
      if (o->first_page > page) piece(page, o->first_page - page, spec.host + page * kPageSize, OverlayId{});
      piece(o->first_page, o->pages, o->host, OverlayId{oid});
      page = o->first_page + o->pages;
    }
    if (page < spec.pages) piece(page, spec.pages - page, spec.host + page * kPageSize, OverlayId{});
    if (s.dirty) bitmaps.push_back(s.dirty);
  }
  return std::make_unique<MemslotSnapshot>(generation, std::move(regions), std::move(bitmaps));
}

// The snapshot must describe exactly the writer's state: every page of every slot in exactly
// one region, overlays inside their slot and disjoint, regions sorted and disjoint.
void Memslots::check_invariants() const {
  const MemslotSnapshot& snap = *current_.load(std::memory_order_relaxed);
  if (snap.generation() != generation_.load(std::memory_order_relaxed)) invariant_failed("generation");
  std::map<SlotId, std::uint64_t> pages;
  const MemslotRegion* prev = nullptr;
  for (const MemslotRegion& r : snap.regions()) {
    if (r.pages == 0) invariant_failed("empty region");
    if (prev != nullptr && prev->gfn_begin + prev->pages > r.gfn_begin) invariant_failed("regions overlap");
    auto it = slots_.find(r.slot);
    if (it == slots_.end()) invariant_failed("region of an unknown slot");
    if (!it->second.spec.range().contains(r.begin()) || it->second.spec.range().end < r.end()) {
      invariant_failed("region outside its slot");
    }
    if (r.flags != it->second.spec.flags || r.dirty != it->second.dirty.get()) invariant_failed("region flags");
    if (snap.find(r.begin()) != &r || snap.find(r.end() - 1) != &r) invariant_failed("lookup of region edges");
    pages[r.slot] += r.pages;
    prev = &r;
  }
  for (const auto& [id, s] : slots_) {
    if (pages[id] != s.spec.pages) invariant_failed("slot pages not covered exactly once");
    for (const auto& [oid, o] : s.overlays) {
      if (o.first_page + o.pages > s.spec.pages) invariant_failed("overlay outside its slot");
      auto owner = overlay_owner_.find(oid);
      if (owner == overlay_owner_.end() || owner->second != id) invariant_failed("overlay owner");
    }
  }
}

Result<std::shared_ptr<DirtyBitmap>, MemslotError> Memslots::bitmap_of(SlotId id) const {
  std::lock_guard lock(mutex_);
  auto it = slots_.find(id);
  if (it == slots_.end()) return Unexpected{MemslotError::UnknownSlot};
  if (!it->second.dirty) return Unexpected{MemslotError::NotLoggingDirty};
  return it->second.dirty;
}

Result<std::vector<std::uint64_t>, MemslotError> Memslots::dirty_log_take(SlotId id) {
  auto bitmap = bitmap_of(id);
  if (!bitmap) return Unexpected{bitmap.error()};
  return (*bitmap)->get_and_clear(0, (*bitmap)->pages());
}

Result<std::vector<std::uint64_t>, MemslotError> Memslots::dirty_log_take(SlotId id, std::uint64_t first_page,
                                                                          std::uint64_t pages) {
  auto bitmap = bitmap_of(id);
  if (!bitmap) return Unexpected{bitmap.error()};
  const std::uint64_t total = (*bitmap)->pages();
  if (first_page > total || pages > total - first_page) return Unexpected{MemslotError::RangeOutsideSlot};
  return (*bitmap)->get_and_clear(first_page, pages);
}

Status<MemslotError> Memslots::dirty_log_clear(SlotId id, std::uint64_t first_page, std::uint64_t pages,
                                               std::span<const std::uint64_t> mask) {
  auto bitmap = bitmap_of(id);
  if (!bitmap) return Unexpected{bitmap.error()};
  const std::uint64_t total = (*bitmap)->pages();
  if (first_page > total || pages > total - first_page || mask.size() < (pages + 63) / 64) {
    return Unexpected{MemslotError::RangeOutsideSlot};
  }
  (*bitmap)->clear(first_page, pages, mask);
  return {};
}

Result<std::vector<std::uint64_t>, MemslotError> Memslots::dirty_log_peek(SlotId id) const {
  auto bitmap = bitmap_of(id);
  if (!bitmap) return Unexpected{bitmap.error()};
  return (*bitmap)->peek(0, (*bitmap)->pages());
}

std::optional<MemslotSpec> Memslots::slot(SlotId id) const {
  std::lock_guard lock(mutex_);
  auto it = slots_.find(id);
  if (it == slots_.end()) return std::nullopt;
  return it->second.spec;
}

std::vector<MemslotSpec> Memslots::slots() const {
  std::lock_guard lock(mutex_);
  std::vector<MemslotSpec> out;
  for (const auto& [id, s] : slots_) out.push_back(s.spec);
  std::sort(out.begin(), out.end(), [](const MemslotSpec& a, const MemslotSpec& b) { return a.base < b.base; });
  return out;
}

std::vector<OverlayInfo> Memslots::overlays() const {
  std::lock_guard lock(mutex_);
  std::vector<OverlayInfo> out;
  for (const auto& [id, s] : slots_) {
    for (const auto& [oid, o] : s.overlays) out.push_back({OverlayId{oid}, id, s.spec.base + o.first_page, o.pages, o.host});
  }
  std::sort(out.begin(), out.end(), [](const OverlayInfo& a, const OverlayInfo& b) { return a.first < b.first; });
  return out;
}

std::size_t Memslots::slot_count() const {
  std::lock_guard lock(mutex_);
  return slots_.size();
}

std::uint64_t Memslots::add_observer(Observer fn) {
  std::lock_guard lock(mutex_);
  const std::uint64_t handle = next_observer_++;
  observers_.emplace(handle, std::move(fn));
  return handle;
}

void Memslots::remove_observer(std::uint64_t handle) {
  std::lock_guard lock(mutex_);
  observers_.erase(handle);
}

}  // namespace vmmu
