#pragma once
// Page traces generated for replay tests: accesses in clusters over a sparse address space,
// written as trace files, and the counts a replay must reach on them.

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "vmmu/sim/replay.hpp"
#include "vmmu/sim/trace.hpp"

namespace vmmu::sim::test {

inline constexpr std::uint64_t k2M = std::uint64_t{2} << 20;

struct Access {
  TraceKind kind;
  std::uint64_t vpn;
};

// Debug builds check the shadow MMU's invariants after every fault, a pass over all its
// pages: replaying a tenth of each trace keeps a test to seconds there (the full trace took
// up to ten minutes under ASan); release builds replay every access.
#ifdef VMMU_CHECK_INVARIANTS
inline constexpr std::size_t kTraceDivisor = 10;
#else
inline constexpr std::size_t kTraceDivisor = 1;
#endif

// Clusters of pages across a sparse address space (code low, heap, a stack near the top of
// the user half), each access a few times: several tables at every level. `n` accesses in
// release builds, n / kTraceDivisor in debug builds.
inline std::vector<Access> generated(std::uint32_t seed, std::size_t n) {
  n /= kTraceDivisor;
  std::mt19937_64 rng(seed);
  const std::uint64_t bases[] = {0x400, 0x10000, 0x5555'5000, 0x7fff'f000'0 + 0x1234, 0x2'0000'0000};
  std::vector<Access> out;
  while (out.size() < n) {
    const std::uint64_t base = bases[rng() % 5];
    const std::uint64_t vpn = base + rng() % 3000;
    const TraceKind kind = static_cast<TraceKind>(rng() % 4);
    for (std::uint64_t i = rng() % 3 + 1; i > 0 && out.size() < n; --i) out.push_back({kind, vpn});
  }
  return out;
}

// Writes accesses as records (adjacent equal ones merged, as the format requires).
inline std::string write_trace(const std::string& name, const std::vector<Access>& accesses) {
  const std::string p =
      (std::filesystem::temp_directory_path() / ("vmmu-replay-test-" + std::to_string(::getpid()) + "-" + name)).string();
  std::FILE* f = std::fopen(p.c_str(), "w");
  {
    TraceWriter w(f);
    for (const Access& a : accesses) w.add(a.kind, a.vpn);
  }
  std::fclose(f);
  return p;
}

inline bool is_write(TraceKind k) { return k == TraceKind::Write || k == TraceKind::Modify; }

// Distinct pages written by accesses [begin, end).
inline std::set<std::uint64_t> pages_written(const std::vector<Access>& accesses, std::size_t begin, std::size_t end) {
  std::set<std::uint64_t> out;
  for (std::size_t i = begin; i < end; ++i) {
    if (is_write(accesses[i].kind)) out.insert(accesses[i].vpn);
  }
  return out;
}

// The fewest table pages mapping `vpns` with leaves at `leaf_level` under `levels` levels.
inline std::uint64_t minimum_tables(const std::set<std::uint64_t>& vpns, unsigned levels, unsigned leaf_level) {
  std::uint64_t n = 1;  // the root
  for (unsigned l = leaf_level; l < levels; ++l) {
    std::set<std::uint64_t> tables;
    for (std::uint64_t v : vpns) tables.insert(v >> (9 * l));
    n += tables.size();
  }
  return n;
}

inline ReplayConfig small_config() {
  ReplayConfig c;
  c.guest_memory = std::uint64_t{1} << 30;
  return c;
}

}  // namespace vmmu::sim::test
