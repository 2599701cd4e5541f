// Memslot lookup, guest-memory reads and update costs. Each group carries its own baseline
// measured in the same run (a plain array load), so ratios hold on any machine.
//
//   build/release/bench/memslot_bench --benchmark_min_time=0.2
//
// Targets: lookup among 512 slots <= 10 ns; a cached GuestMemory read<uint64_t> small enough
// that a 4-level walk (4 reads + checks) stays <= 15 ns.

#include <benchmark/benchmark.h>

#include <array>
#include <cstdint>
#include <random>
#include <vector>

#include "memory/support/host_pages.hpp"
#include "vmmu/core/rcu.hpp"
#include "vmmu/memory/guest_memory.hpp"

namespace vmmu {
namespace {

using test::HostPages;

constexpr std::uint64_t kSlotPages = 256;
constexpr std::uint64_t kSlotStride = 1024;  // gaps between slots: misses are possible

HostPages& shared_host() {
  static HostPages host(kSlotPages);
  return host;
}

// `n` slots of 256 pages, all backed by the same host pages (aliasing is allowed).
std::unique_ptr<Memslots> make_slots(std::size_t n) {
  auto slots = std::make_unique<Memslots>();
  for (std::size_t i = 0; i < n; ++i) {
    if (!slots->add({SlotId{static_cast<std::uint32_t>(i)}, Gfn(i * kSlotStride), kSlotPages, shared_host().data(), {}})) {
      std::abort();
    }
  }
  return slots;
}

// Random gfns inside the first `n` slots (a power-of-two table the loop cycles through).
std::vector<Gfn> random_gfns(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<Gfn> out(4096);
  for (Gfn& g : out) g = Gfn((rng() % n) * kSlotStride + rng() % kSlotPages);
  return out;
}

// Baseline: load of a random element of a 512-entry table of 8-byte values (L1 resident).
void BM_Baseline_RandomArrayLoad(benchmark::State& state) {
  std::array<std::uint64_t, 512> table{};
  for (std::size_t i = 0; i < table.size(); ++i) table[i] = i * 3;
  const auto gfns = random_gfns(512, 1);
  std::size_t i = 0;
  std::uint64_t sum = 0;
  for (auto _ : state) {
    sum += table[(gfns[i++ & 4095].raw() / kSlotStride) & 511];
  }
  benchmark::DoNotOptimize(sum);
}
BENCHMARK(BM_Baseline_RandomArrayLoad);

// Lookup of random gfns across all slots: the binary search over the snapshot.
void BM_Lookup_RandomGfn(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  auto slots = make_slots(n);
  const auto gfns = random_gfns(n, 2);
  rcu::ReadGuard guard;  // no writers: one section for the whole run
  const MemslotSnapshot& snap = slots->snapshot();
  std::size_t i = 0;
  for (auto _ : state) {
    const MemslotRegion* r = snap.find(gfns[i++ & 4095]);
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_Lookup_RandomGfn)->Arg(8)->Arg(64)->Arg(512);

// Same, through Memslots::find (loads the current snapshot pointer each time).
void BM_Lookup_RandomGfnViaMemslots(benchmark::State& state) {
  auto slots = make_slots(512);
  const auto gfns = random_gfns(512, 3);
  rcu::ReadGuard guard;
  std::size_t i = 0;
  for (auto _ : state) {
    const MemslotRegion* r = slots->find(gfns[i++ & 4095]);
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_Lookup_RandomGfnViaMemslots);

// Repeated hits on one slot among 512: the GuestMemory hit cache (the fast path).
void BM_Lookup_RepeatedHitCached(benchmark::State& state) {
  auto slots = make_slots(512);
  GuestMemory mem(*slots);
  rcu::ReadGuard guard;
  std::mt19937_64 rng(4);
  std::vector<Gfn> gfns(4096);
  for (Gfn& g : gfns) g = Gfn(300 * kSlotStride + rng() % kSlotPages);
  std::size_t i = 0;
  for (auto _ : state) {
    const MemslotRegion* r = mem.region(gfns[i++ & 4095]);
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_Lookup_RepeatedHitCached);

// Baseline for reads: an atomic acquire load of a random word of one 4 KiB page.
void BM_Baseline_AtomicLoadInPage(benchmark::State& state) {
  std::byte* page = shared_host().data();
  std::mt19937_64 rng(5);
  std::vector<std::uint64_t> offsets(4096);
  for (auto& o : offsets) o = (rng() % 512) * 8;
  std::size_t i = 0;
  std::uint64_t sum = 0;
  for (auto _ : state) {
    sum += std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(page + offsets[i++ & 4095]))
               .load(std::memory_order_acquire);
  }
  benchmark::DoNotOptimize(sum);
}
BENCHMARK(BM_Baseline_AtomicLoadInPage);

// GuestMemory::read<uint64_t> hitting the cached slot (page-table entries of one slot).
void BM_GuestMemory_ReadHit(benchmark::State& state) {
  auto slots = make_slots(512);
  GuestMemory mem(*slots);
  rcu::ReadGuard guard;
  std::mt19937_64 rng(5);
  std::vector<Gpa> gpas(4096);
  for (Gpa& g : gpas) g = gpa_of(Gfn(7 * kSlotStride + rng() % kSlotPages)) + (rng() % 512) * 8;
  std::size_t i = 0;
  std::uint64_t sum = 0;
  for (auto _ : state) {
    sum += *mem.read<std::uint64_t>(gpas[i++ & 4095]);
  }
  benchmark::DoNotOptimize(sum);
}
BENCHMARK(BM_GuestMemory_ReadHit);

// A walk's memory traffic: one Reader section and 4 reads in the same slot.
void BM_GuestMemory_SectionPlusFourReads(benchmark::State& state) {
  auto slots = make_slots(512);
  GuestMemory mem(*slots);
  std::mt19937_64 rng(6);
  std::vector<Gpa> gpas(4096);
  for (Gpa& g : gpas) g = gpa_of(Gfn(7 * kSlotStride + rng() % kSlotPages)) + (rng() % 512) * 8;
  std::size_t i = 0;
  std::uint64_t sum = 0;
  for (auto _ : state) {
    auto r = mem.reader();
    for (int k = 0; k < 4; ++k) sum += *r.read<std::uint64_t>(gpas[i++ & 4095]);
  }
  benchmark::DoNotOptimize(sum);
}
BENCHMARK(BM_GuestMemory_SectionPlusFourReads);

// GuestMemory reads that alternate between slots: every read misses the cache.
void BM_GuestMemory_ReadMissEveryTime(benchmark::State& state) {
  auto slots = make_slots(512);
  GuestMemory mem(*slots);
  rcu::ReadGuard guard;
  const auto gfns = random_gfns(512, 7);
  std::size_t i = 0;
  std::uint64_t sum = 0;
  for (auto _ : state) {
    sum += *mem.read<std::uint64_t>(gpa_of(gfns[i++ & 4095]));
  }
  benchmark::DoNotOptimize(sum);
}
BENCHMARK(BM_GuestMemory_ReadMissEveryTime);

void BM_Rcu_ReadSection(benchmark::State& state) {
  for (auto _ : state) {
    rcu::ReadGuard g;
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_Rcu_ReadSection);

void BM_Rcu_SynchronizeNoReaders(benchmark::State& state) {
  for (auto _ : state) rcu::synchronize();
}
BENCHMARK(BM_Rcu_SynchronizeNoReaders);

// Overlay one page of a slot and remove it again (2 snapshot builds + 2 grace periods).
void BM_Overlay_AddRemoveOnePage(benchmark::State& state) {
  auto slots = make_slots(static_cast<std::size_t>(state.range(0)));
  HostPages page(1);
  for (auto _ : state) {
    auto id = slots->overlay_add(Gfn(3 * kSlotStride + 17), 1, page.data());
    if (!id || !slots->overlay_remove(*id)) state.SkipWithError("overlay failed");
  }
}
BENCHMARK(BM_Overlay_AddRemoveOnePage)->Arg(8)->Arg(512);

// Set-up: one add() into a Memslots that already holds n slots (snapshot rebuild is O(n)).
void BM_Setup_AddOneSlot(benchmark::State& state) {
  auto slots = make_slots(static_cast<std::size_t>(state.range(0)));
  for (auto _ : state) {
    if (!slots->add({SlotId{100000}, Gfn(1u << 30), 1, shared_host().data(), {}})) state.SkipWithError("add");
    state.PauseTiming();
    if (!slots->remove(SlotId{100000})) state.SkipWithError("remove");
    state.ResumeTiming();
  }
  rcu::barrier();
}
BENCHMARK(BM_Setup_AddOneSlot)->Arg(8)->Arg(512);

// Set-up: a whole 512-slot layout from scratch.
void BM_Setup_Build512Slots(benchmark::State& state) {
  for (auto _ : state) {
    auto slots = make_slots(512);
    benchmark::DoNotOptimize(slots.get());
  }
  rcu::barrier();
}
BENCHMARK(BM_Setup_Build512Slots)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace vmmu
