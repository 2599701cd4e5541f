#include "vmmu/memory/guest_memory.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>

#include "vmmu/core/format.hpp"
#include "vmmu/pt/format.hpp"

namespace vmmu {

static_assert(pt::TableMemory<GuestMemory, Gpa>);
static_assert(pt::TableMemory<GuestMemory::Reader, Gpa>);

namespace {

// Visits the host pieces behind [gpa, gpa + size) in order: fn(region, host, done, len) for
// each run of bytes inside one page. Stops at the first unbacked byte and returns its
// address; nullopt when every byte is backed.
template <class Fn>
std::optional<Gpa> for_each_piece(const MemslotSnapshot& snap, Gpa gpa, std::size_t size, Fn&& fn) {
  std::size_t done = 0;
  while (done < size) {
    const Gpa at = gpa + done;
    const MemslotRegion* r = snap.find(gfn_of(at));
    if (r == nullptr) return at;
    const std::size_t len = std::min<std::size_t>(size - done, kPageSize - at.offset_in(kPageSize));
    fn(*r, r->host_of(gfn_of(at)) + at.offset_in(kPageSize), done, len);
    done += len;
  }
  return std::nullopt;
}

}  // namespace

std::string_view to_string(GuestMemoryErrorKind k) {
  switch (k) {
    case GuestMemoryErrorKind::Unbacked: return "not backed by any memslot";
    case GuestMemoryErrorKind::ReadOnly: return "write to a read-only memslot";
    case GuestMemoryErrorKind::Misaligned: return "not aligned to the access size";
  }
  return "unknown guest memory error";
}

std::string to_string(const GuestMemoryError& e) { return fmt::format("{}: {}", e.gpa, to_string(e.kind)); }

bool GuestMemory::refill(Gfn gfn) {
  const MemslotSnapshot& snap = slots_->snapshot();
  const MemslotRegion* r = snap.find(gfn);
  if (r == nullptr) return false;
  // Tagged with the generation of the snapshot the region came from, not the counter: if the
  // counter is already ahead, the next access just misses and refills.
  hit_ = Hit{r->gfn_begin << kPageShift, r->pages << kPageShift, r->host, snap.generation(),
             r->dirty, r->dirty_first, r, r->writable()};
  return true;
}

Status<GuestMemoryError> GuestMemory::read_bytes(Gpa gpa, std::span<std::byte> out) {
  rcu::ReadGuard guard;  // one snapshot for the check and the copy
  const MemslotSnapshot& snap = slots_->snapshot();
  if (auto bad = for_each_piece(snap, gpa, out.size(), [](auto&&...) {})) {
    return Unexpected{GuestMemoryError{GuestMemoryErrorKind::Unbacked, *bad}};
  }
  (void)for_each_piece(snap, gpa, out.size(), [&](const MemslotRegion&, std::byte* host, std::size_t done, std::size_t len) {
    std::memcpy(out.data() + done, host, len);
  });
  return {};
}

Status<GuestMemoryError> GuestMemory::write_bytes(Gpa gpa, std::span<const std::byte> in) {
  rcu::ReadGuard guard;
  const MemslotSnapshot& snap = slots_->snapshot();
  std::optional<Gpa> read_only;
  auto bad = for_each_piece(snap, gpa, in.size(), [&](const MemslotRegion& r, std::byte*, std::size_t done, std::size_t) {
    if (!r.writable() && !read_only) read_only = gpa + done;
  });
  if (bad && (!read_only || *bad < *read_only)) return Unexpected{GuestMemoryError{GuestMemoryErrorKind::Unbacked, *bad}};
  if (read_only) return Unexpected{GuestMemoryError{GuestMemoryErrorKind::ReadOnly, *read_only}};
  (void)for_each_piece(snap, gpa, in.size(), [&](const MemslotRegion& r, std::byte* host, std::size_t done, std::size_t len) {
    std::memcpy(host, in.data() + done, len);
    r.mark_dirty(gfn_of(gpa + done));
  });
  return {};
}

Result<bool, GuestMemoryError> GuestMemory::try_compare_exchange(Gpa gpa, std::uint64_t& expected,
                                                                 std::uint64_t desired) {
  if (!gpa.aligned_to(sizeof(std::uint64_t))) return Unexpected{GuestMemoryError{GuestMemoryErrorKind::Misaligned, gpa}};
  const MemslotRegion* r = region(gfn_of(gpa));
  if (r == nullptr) {
    expected = 0;
    return Unexpected{GuestMemoryError{GuestMemoryErrorKind::Unbacked, gpa}};
  }
  if (!r->writable()) {
    expected = std::atomic_ref<std::uint64_t>(*host_word<std::uint64_t>(gpa.raw() - hit_.gpa_begin))
                   .load(std::memory_order_acquire);
    return Unexpected{GuestMemoryError{GuestMemoryErrorKind::ReadOnly, gpa}};
  }
  return compare_exchange_slow<std::uint64_t>(gpa, expected, desired);  // r is cached now
}

bool GuestMemory::compare_exchange_unaligned(Gpa gpa, void* expected, const void* desired, std::size_t size) {
  rcu::ReadGuard guard;
  std::array<std::byte, 8> current{};
  const std::span<std::byte> cur(current.data(), size);
  if (!read_bytes(gpa, cur)) {
    std::memset(expected, 0, size);
    return false;
  }
  if (std::memcmp(current.data(), expected, size) != 0) {
    std::memcpy(expected, current.data(), size);
    return false;
  }
  return write_bytes(gpa, std::span<const std::byte>(static_cast<const std::byte*>(desired), size)).has_value();
}

}  // namespace vmmu
