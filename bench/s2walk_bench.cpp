// A warm 3-level stage-2 walk (4K granule, 39-bit IPA, start level 1) and, in the same run,
// its floor: three dependent loads through the same tables.
//
// Table memory: OwnedTables, a flat host buffer standing in for physical memory (Hpa = offset
// into it), read with one bounds check and an acquire load per entry -- the shape a VMM's
// guest-memory accessor has, without SparseMemory's page-map lookups.
//
//   build/release/bench/s2walk_bench   (target s2walk_bench)

#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>

#include "vmmu/arm64/walk.hpp"

namespace {

using vmmu::Hpa;

class OwnedTables {
 public:
  explicit OwnedTables(std::size_t bytes) : words_(bytes / 8), data_(new std::uint64_t[bytes / 8]()) {}

  template <class T>
  std::optional<T> read(Hpa at) const {
    static_assert(sizeof(T) == 8 || sizeof(T) == 4);
    if (at.raw() + sizeof(T) > words_ * 8) return std::nullopt;
    // Entries are naturally aligned; the buffer is 8-byte aligned.
    const T* p = reinterpret_cast<const T*>(reinterpret_cast<const char*>(data_.get()) + at.raw());
    return std::atomic_ref<const T>(*p).load(std::memory_order_acquire);
  }
  template <class T>
  bool compare_exchange(Hpa at, T& expected, T desired) {
    if (at.raw() + sizeof(T) > words_ * 8) {
      expected = 0;
      return false;
    }
    T* p = reinterpret_cast<T*>(reinterpret_cast<char*>(data_.get()) + at.raw());
    return std::atomic_ref<T>(*p).compare_exchange_strong(expected, desired, std::memory_order_acq_rel);
  }
  void write(Hpa at, std::uint64_t v) { data_[at.raw() / 8] = v; }
  [[nodiscard]] const std::uint64_t* words() const { return data_.get(); }

 private:
  std::size_t words_;
  std::unique_ptr<std::uint64_t[]> data_;
};
static_assert(vmmu::pt::TableMemory<OwnedTables, Hpa>);

// VTCR_EL2: T0SZ = 25 (39-bit IPA), SL0 = 1 (level 1), TG0 = 4K, PS = 48 bits, HA = 0.
constexpr std::uint64_t kVtcr = (1ULL << 31) | 25 | (1ULL << 6) | (5ULL << 16);
constexpr std::uint64_t kIpa = 0x12'3456'7abc;  // L1 index 72, L2 index 0x11a, L3 index 0x167

struct Setup {
  OwnedTables mem{0x4000};
  vmmu::arm64::Stage2 s2;
  Setup() : s2(*vmmu::arm64::Stage2::from({kVtcr, 0x0}, {48})) {
    constexpr std::uint64_t kLeaf = (1ULL << 10) | (3ULL << 6) | 3;  // AF, S2AP RW, page
    mem.write(Hpa(0x0000 + 8 * ((kIpa >> 30) & 511)), 0x1000 | 3);
    mem.write(Hpa(0x1000 + 8 * ((kIpa >> 21) & 511)), 0x2000 | 3);
    mem.write(Hpa(0x2000 + 8 * ((kIpa >> 12) & 511)), 0x7654'3000 | kLeaf);
  }
};

void BM_S2Walk4K3Level(benchmark::State& state) {
  Setup s;
  std::uint64_t ipa = kIpa;
  for (auto _ : state) {
    auto t = vmmu::arm64::walk(s.s2, s.mem, vmmu::Ipa(ipa), vmmu::AccessKind::Read);
    benchmark::DoNotOptimize(t);
    benchmark::ClobberMemory();
  }
  if (!vmmu::arm64::walk(s.s2, s.mem, vmmu::Ipa(ipa), vmmu::AccessKind::Read)) state.SkipWithError("walk faulted");
}
BENCHMARK(BM_S2Walk4K3Level);

// The floor: three dependent loads, each index computed from the IPA and each table address
// from the previous entry, as the walk does, with no checks.
void BM_ThreeDependentLoads(benchmark::State& state) {
  Setup s;
  const std::uint64_t* w = s.mem.words();
  std::uint64_t ipa = kIpa;
  for (auto _ : state) {
    benchmark::DoNotOptimize(ipa);
    std::uint64_t e = w[(ipa >> 30) & 511];
    e = w[((e & 0xffff'ffff'f000) + 8 * ((ipa >> 21) & 511)) / 8];
    e = w[((e & 0xffff'ffff'f000) + 8 * ((ipa >> 12) & 511)) / 8];
    benchmark::DoNotOptimize(e);
  }
}
BENCHMARK(BM_ThreeDependentLoads);

}  // namespace
