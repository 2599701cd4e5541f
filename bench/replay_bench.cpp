// Trace replay speed when the TLB hits (issue 14: >= 20 million accesses per second per
// thread): a trace cycling over fewer pages than the TLB holds, one access per record (no
// run-length help), so every access is a parsed line and a TLB lookup. The figure includes
// reading the file, the guest's first touches and the VM's setup.

#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <random>
#include <string>

#include "vmmu/sim/replay.hpp"
#include "vmmu/sim/trace.hpp"

namespace {

using namespace vmmu;

std::string hit_trace(std::uint64_t accesses, std::uint64_t pages) {
  const std::string p =
      (std::filesystem::temp_directory_path() / ("vmmu-replay-bench-" + std::to_string(::getpid()))).string();
  std::FILE* f = std::fopen(p.c_str(), "w");
  std::mt19937_64 rng(1);
  {
    sim::TraceWriter w(f);
    std::uint64_t last = ~std::uint64_t{0};
    for (std::uint64_t i = 0; i < accesses; ++i) {
      std::uint64_t vpn = 0x7f000 + rng() % pages;
      if (vpn == last) vpn = 0x7f000 + (vpn - 0x7f000 + 1) % pages;  // one access per record
      last = vpn;
      w.add(i % 4 == 0 ? sim::TraceKind::Write : sim::TraceKind::Read, vpn);
    }
  }
  std::fclose(f);
  return p;
}

void BM_ReplayTlbHits(benchmark::State& state) {
  const std::uint64_t accesses = 4'000'000;
  const std::string path = hit_trace(accesses, static_cast<std::uint64_t>(state.range(0)));
  sim::ReplayConfig c;
  c.mmu = state.range(1) == 0 ? sim::MmuKind::Tdp : sim::MmuKind::Shadow;
  c.guest_memory = std::uint64_t{1} << 30;
  std::uint64_t misses = 0;
  for (auto _ : state) {
    auto r = sim::replay({path}, c);
    if (!r) {
      state.SkipWithError(r.error().message.c_str());
      break;
    }
    misses = r->tlb.misses;
    benchmark::DoNotOptimize(r->accesses);
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(accesses));
  state.counters["tlb_misses"] = static_cast<double>(misses);
  std::filesystem::remove(path);
}
// Args: pages cycled over, MMU (0: tdp, 1: shadow).
BENCHMARK(BM_ReplayTlbHits)->Args({32, 0})->Args({32, 1})->Unit(benchmark::kMillisecond);

}  // namespace
