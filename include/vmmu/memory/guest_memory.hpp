#pragma once
// GuestMemory: the accessor through which vmmu reads and writes guest-physical memory --
// page-table entries for the walkers, bytes for emulation -- backed by Memslots.
//
// It satisfies pt::TableMemory<GuestMemory, Gpa>:
//   read<T>(gpa)                          nullopt when no memslot backs gpa
//   compare_exchange<T>(gpa, exp, des)    atomic on the host memory (std::atomic_ref):
//       - success: true; marks the page dirty in a LogDirty slot;
//       - the value differs: false, `exp` = the current value;
//       - read-only slot: nothing written; false, `exp` = the current value (so "false but
//         unchanged" means "not writable: the update is dropped", like a write to ROM);
//       - unbacked: false, `exp` = 0.
//
// Read-side contract (RCU): every access, and every use of a pointer it returns, must happen
// inside an RCU read-side section whenever another thread may update the Memslots. Either
//   auto r = memory.reader();        // GuestMemory::Reader: a section + the same accessors
//   walk(paging, r, gva, access);    // 4-5 reads, one section
// or hold an rcu::ReadGuard yourself around calls on the GuestMemory. Taking the section per
// walk instead of per read keeps reads a compare and a load. Single-threaded use (no
// concurrent updates) needs no section. Sections must be short: updates wait for them.
//
// Hit cache: each GuestMemory remembers the last region it used, tagged with the snapshot
// generation; a hit costs one range compare and one generation compare (no search). So a
// GuestMemory belongs to one thread (e.g. one per vCPU); many may share one Memslots.

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <type_traits>

#include "vmmu/core/address.hpp"
#include "vmmu/core/rcu.hpp"
#include "vmmu/core/result.hpp"
#include "vmmu/memory/memslots.hpp"

namespace vmmu {

enum class GuestMemoryErrorKind : std::uint8_t {
  Unbacked,    // no memslot backs the byte
  ReadOnly,    // write to a read-only slot
  Misaligned,  // try_compare_exchange at an address not 8-byte aligned
};

struct GuestMemoryError {
  GuestMemoryErrorKind kind = GuestMemoryErrorKind::Unbacked;
  Gpa gpa;  // the first byte that failed
  friend constexpr bool operator==(const GuestMemoryError&, const GuestMemoryError&) = default;
};

std::string_view to_string(GuestMemoryErrorKind k);
std::string to_string(const GuestMemoryError& e);  // "gpa:0x5000: not backed by any memslot"

template <class T>
concept GuestWord = std::same_as<T, std::uint8_t> || std::same_as<T, std::uint16_t> ||
                    std::same_as<T, std::uint32_t> || std::same_as<T, std::uint64_t>;

class GuestMemory {
 public:
  class Reader;
  class WalkReader;

  explicit GuestMemory(const Memslots& slots) : slots_(&slots) {}

  [[nodiscard]] const Memslots& memslots() const { return *slots_; }

  // A read-side section over this accessor (see the header comment).
  [[nodiscard]] Reader reader();

  // Reads for one table walk (the engine asks for it: pt::walk_reader): the hit cache's
  // region held in registers and its generation checked once, when the walk starts.
  [[nodiscard]] WalkReader walk_reader();

  // Atomic read of a naturally aligned T; an unaligned T is read byte by byte (not atomic).
  // Errors: nullopt when any byte is unbacked.
  template <GuestWord T>
  std::optional<T> read(Gpa gpa) {
    const std::uint64_t off = gpa.raw() - hit_.gpa_begin;
    if (off < hit_.bytes && off % sizeof(T) == 0 && hit_.generation == slots_->generation()) [[likely]] {
      return std::atomic_ref<T>(*host_word<T>(off)).load(std::memory_order_acquire);
    }
    return read_slow<T>(gpa);
  }

  // See the header comment for every outcome. Errors: none (outcomes are values).
  template <GuestWord T>
  bool compare_exchange(Gpa gpa, T& expected, T desired) {
    const std::uint64_t off = gpa.raw() - hit_.gpa_begin;
    if (off < hit_.bytes && off % sizeof(T) == 0 && hit_.writable && hit_.generation == slots_->generation())
        [[likely]] {
      const bool ok = std::atomic_ref<T>(*host_word<T>(off))
                          .compare_exchange_strong(expected, desired, std::memory_order_acq_rel,
                                                   std::memory_order_acquire);
      if (ok && hit_.dirty != nullptr) hit_.dirty->mark(hit_.dirty_first + (off >> kPageShift));
      return ok;
    }
    return compare_exchange_slow<T>(gpa, expected, desired);
  }

  // 8-byte compare-exchange that names why memory could not be updated.
  // Returns true (swapped) or false (`expected` = current value).
  // Errors: Unbacked (expected = 0), ReadOnly (expected = current value), Misaligned.
  Result<bool, GuestMemoryError> try_compare_exchange(Gpa gpa, std::uint64_t& expected, std::uint64_t desired);

  // Atomic store of an aligned T (unaligned: byte by byte). Marks the page dirty.
  // Errors: Unbacked, ReadOnly; nothing is written then.
  template <GuestWord T>
  Status<GuestMemoryError> write(Gpa gpa, T value) {
    const std::uint64_t off = gpa.raw() - hit_.gpa_begin;
    if (off < hit_.bytes && off % sizeof(T) == 0 && hit_.writable && hit_.generation == slots_->generation())
        [[likely]] {
      std::atomic_ref<T>(*host_word<T>(off)).store(value, std::memory_order_release);
      if (hit_.dirty != nullptr) hit_.dirty->mark(hit_.dirty_first + (off >> kPageShift));
      return {};
    }
    return write_slow<T>(gpa, value);
  }

  // Copies guest memory at [gpa, gpa + out.size()) into `out`; may cross pages and slots.
  // Byte copies are not atomic (like a device's DMA): use read<T> / compare_exchange<T> for
  // words other CPUs update concurrently. Takes its own read-side section for the copy.
  // Errors: Unbacked (the first unbacked byte); `out` is not written then.
  Status<GuestMemoryError> read_bytes(Gpa gpa, std::span<std::byte> out);

  // Copies `in` to guest memory at gpa; may cross pages and slots; marks written pages dirty.
  // Every page is checked before any byte is written.
  // Errors: Unbacked, ReadOnly (the first failing byte); nothing is written then.
  Status<GuestMemoryError> write_bytes(Gpa gpa, std::span<const std::byte> in);

  // The region backing `gfn` (through the hit cache), or null. Valid in the caller's section.
  const MemslotRegion* region(Gfn gfn) {
    if (gfn.raw() - (hit_.gpa_begin >> kPageShift) < (hit_.bytes >> kPageShift) &&
        hit_.generation == slots_->generation()) [[likely]] {
      return hit_.region;
    }
    return refill(gfn) ? hit_.region : nullptr;
  }

  // Forgets the hit cache (tests and benchmarks of the slow path).
  void drop_cache() { hit_ = {}; }

 private:
  // The last region used: its hot fields copied so a hit needs no pointer chase.
  struct Hit {
    std::uint64_t gpa_begin = 0;
    std::uint64_t bytes = 0;  // 0: empty, never hits
    std::byte* host = nullptr;
    std::uint64_t generation = 0;
    DirtyBitmap* dirty = nullptr;
    std::uint64_t dirty_first = 0;
    const MemslotRegion* region = nullptr;
    bool writable = false;
  };

  template <class T>
  T* host_word(std::uint64_t off) const {
    // off is a multiple of sizeof(T) and the region's host memory is page-aligned, so the
    // pointer is suitably aligned for T (and for atomic_ref<T>).
    return reinterpret_cast<T*>(hit_.host + off);
  }

  // Looks `gfn` up in the current snapshot and caches its region. False when unbacked.
  bool refill(Gfn gfn);

  template <class T>
  std::optional<T> read_slow(Gpa gpa) {
    if (gpa.aligned_to(sizeof(T))) {
      if (!refill(gfn_of(gpa))) return std::nullopt;
      return std::atomic_ref<T>(*host_word<T>(gpa.raw() - hit_.gpa_begin)).load(std::memory_order_acquire);
    }
    T value{};
    if (!read_bytes(gpa, std::as_writable_bytes(std::span<T, 1>(&value, 1)))) return std::nullopt;
    return value;
  }

  template <class T>
  bool compare_exchange_slow(Gpa gpa, T& expected, T desired) {
    if (!gpa.aligned_to(sizeof(T))) return compare_exchange_unaligned(gpa, &expected, &desired, sizeof(T));
    if (!refill(gfn_of(gpa))) {
      expected = 0;
      return false;
    }
    // Not through the hit path again: the generation counter may lag the snapshot for a moment.
    const std::uint64_t off = gpa.raw() - hit_.gpa_begin;
    std::atomic_ref<T> word(*host_word<T>(off));
    if (!hit_.writable) {
      expected = word.load(std::memory_order_acquire);
      return false;
    }
    const bool ok = word.compare_exchange_strong(expected, desired, std::memory_order_acq_rel, std::memory_order_acquire);
    if (ok && hit_.dirty != nullptr) hit_.dirty->mark(hit_.dirty_first + (off >> kPageShift));
    return ok;
  }

  template <class T>
  Status<GuestMemoryError> write_slow(Gpa gpa, T value) {
    if (!gpa.aligned_to(sizeof(T))) return write_bytes(gpa, std::as_bytes(std::span<const T, 1>(&value, 1)));
    if (!refill(gfn_of(gpa))) return Unexpected{GuestMemoryError{GuestMemoryErrorKind::Unbacked, gpa}};
    if (!hit_.writable) return Unexpected{GuestMemoryError{GuestMemoryErrorKind::ReadOnly, gpa}};
    const std::uint64_t off = gpa.raw() - hit_.gpa_begin;
    std::atomic_ref<T>(*host_word<T>(off)).store(value, std::memory_order_release);
    if (hit_.dirty != nullptr) hit_.dirty->mark(hit_.dirty_first + (off >> kPageShift));
    return {};
  }

  // Not atomic: guests do not keep page-table entries unaligned; kept for completeness.
  bool compare_exchange_unaligned(Gpa gpa, void* expected, const void* desired, std::size_t size);

  const Memslots* slots_;
  Hit hit_;
};

// The reads of one walk. The generation is compared once, at the start: inside a read-side
// section the region it names stays valid until the section ends, so the walk reads the
// snapshot current when it began, as if it had run a moment earlier. Outside the cached
// region a read takes GuestMemory's own path (search, refill) and picks up the new region.
class GuestMemory::WalkReader {
 public:
  explicit WalkReader(GuestMemory& memory) : memory_(&memory) { load(); }

  // As GuestMemory::read. Errors: nullopt when any byte is unbacked.
  template <GuestWord T>
  std::optional<T> read(Gpa gpa) {
    constexpr int kAlignBits = std::countr_zero(sizeof(T));
    const std::uint64_t off = gpa.raw() - begin_;
    // One compare for range and alignment: rotated, a misaligned offset's low bits land on
    // top and make it larger than any region (`bytes_` is a multiple of the page size).
    if (std::rotr(off, kAlignBits) < (bytes_ >> kAlignBits)) [[likely]] {
      // bias_ + gpa, not host + (gpa - begin): one subtraction less between an entry and the
      // load of the next one.
      return std::atomic_ref<T>(*reinterpret_cast<T*>(bias_ + gpa.raw())).load(std::memory_order_acquire);
    }
    const std::optional<T> value = memory_->read<T>(gpa);
    load();
    return value;
  }

 private:
  void load() {
    const Hit& hit = memory_->hit_;
    begin_ = hit.gpa_begin;
    bytes_ = hit.generation == memory_->slots_->generation() ? hit.bytes : 0;
    bias_ = reinterpret_cast<std::uintptr_t>(hit.host) - hit.gpa_begin;
  }

  GuestMemory* memory_;
  std::uint64_t begin_ = 0;
  std::uint64_t bytes_ = 0;  // 0: a stale or empty cache, every read takes the slow path
  std::uintptr_t bias_ = 0;  // host address of gpa 0 (wrapping): host = bias_ + gpa
};

// A read-side section plus the accessors of one GuestMemory: satisfies pt::TableMemory too,
// so `auto r = memory.reader(); walk(paging, r, ...)` is safe against concurrent updates.
class GuestMemory::Reader {
 public:
  explicit Reader(GuestMemory& memory) : memory_(memory) {}

  template <GuestWord T>
  std::optional<T> read(Gpa gpa) {
    return memory_.read<T>(gpa);
  }
  template <GuestWord T>
  bool compare_exchange(Gpa gpa, T& expected, T desired) {
    return memory_.compare_exchange<T>(gpa, expected, desired);
  }
  template <GuestWord T>
  Status<GuestMemoryError> write(Gpa gpa, T value) {
    return memory_.write<T>(gpa, value);
  }
  Status<GuestMemoryError> read_bytes(Gpa gpa, std::span<std::byte> out) { return memory_.read_bytes(gpa, out); }
  Status<GuestMemoryError> write_bytes(Gpa gpa, std::span<const std::byte> in) { return memory_.write_bytes(gpa, in); }
  const MemslotRegion* region(Gfn gfn) { return memory_.region(gfn); }
  WalkReader walk_reader() { return memory_.walk_reader(); }
  GuestMemory& memory() { return memory_; }

 private:
  GuestMemory& memory_;
  rcu::ReadGuard guard_;
};

inline GuestMemory::Reader GuestMemory::reader() { return Reader(*this); }
inline GuestMemory::WalkReader GuestMemory::walk_reader() { return WalkReader(*this); }

}  // namespace vmmu
