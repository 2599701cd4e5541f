#pragma once
// Compare-exchange of two adjacent 8-byte entries in one locked instruction (x86-64
// CMPXCHG16B). A Shared page-table update pays one locked instruction per changed entry, and on
// this machine class that instruction is the whole cost (about 6 ns: 1.6 ms for a 1 GiB
// write-protect); pairing entries halves it. Semantics are those of two compare-exchanges done
// at once: both entries must still hold what was read, else both current values come back.
//
// Locked instructions on one cache line are totally ordered whatever their width (SDM vol. 3A,
// 9.1.2.2; APM vol. 3 CMPXCHG16B), so the pair is atomic against the 8-byte compare-exchanges
// and fetch_ors of faults and the modelled hardware. Under ThreadSanitizer, which cannot see an
// asm store (VMMU_TSAN), kPairCas is false and callers use 8-byte compare-exchanges.

#include <cstdint>

namespace vmmu::pt::ops {

// VMMU_TSAN: defined by the tsan preset, as for core/rcu.
#if defined(__x86_64__) && !defined(VMMU_TSAN)
inline constexpr bool kPairCas = true;

// `pair` is 16-byte aligned. On failure `lo` / `hi` receive the entries' current values.
inline bool compare_exchange_pair(std::uint64_t* pair, std::uint64_t& lo, std::uint64_t& hi, std::uint64_t new_lo,
                                  std::uint64_t new_hi) {
  bool ok = false;
  asm volatile("lock cmpxchg16b %1"
               : "=@ccz"(ok), "+m"(*reinterpret_cast<std::uint64_t(*)[2]>(pair)), "+a"(lo), "+d"(hi)
               : "b"(new_lo), "c"(new_hi)
               : "memory");
  return ok;
}
#else
inline constexpr bool kPairCas = false;  // compare_exchange_pair does not exist: callers test kPairCas
#endif

}  // namespace vmmu::pt::ops
