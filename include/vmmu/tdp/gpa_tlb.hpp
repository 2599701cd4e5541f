#pragma once
// GpaTlb: the modelled hardware's TLB for guest-physical translations -- what a CPU caches
// from its EPT / NPT walks, so that an access to a page it has used needs no table walk.
//
//   lookup(gpa, access) ── hit: host pointer, no walk ── miss: the walk (TdpMmu::translate)
//                                                          fills it
//
// One small direct-mapped array per leaf size (4K, 2M, 1G): a huge leaf is one entry, as in
// hardware, which is what makes huge pages cheap to use. Entries are only ever as permissive
// as the leaf was when filled; a write permission is cached only once the leaf's D bit is
// set (with A/D bits), so the first write still walks and sets it. The whole TLB is dropped
// when the MMU issues any TLB flush (its flush generation moves) and when the vCPU changes
// root. Clearing A bits (aging) does not flush, as KVM and the hardware do: a cached entry
// keeps the page looking idle until the next flush.

#include <array>
#include <cstddef>
#include <cstdint>

#include "vmmu/core/access.hpp"
#include "vmmu/core/address.hpp"
#include "vmmu/pt/geometry.hpp"

namespace vmmu::tdp {

class GpaTlb {
 public:
  static constexpr std::uint8_t kRead = 1, kWrite = 2, kExec = 4;

  // The host address of `gpa` if a valid entry allows `a`; null otherwise.
  [[nodiscard]] std::byte* lookup(Gpa gpa, Access a, std::uint64_t generation) {
    if (generation != generation_) {
      clear();
      generation_ = generation;
      return nullptr;
    }
    const std::uint8_t need = a.is_write() ? kWrite : a.is_fetch() ? kExec : kRead;
    for (unsigned level = 1; level <= 3; ++level) {
      const unsigned shift = kLeafSizes.shift(level);
      const std::uint64_t tag = gpa.raw() >> shift;
      const Entry& e = sets_[level - 1][tag & (kWays - 1)];
      if (e.tag == tag && (e.rights & need) != 0) return e.host + (gpa.raw() & ((std::uint64_t{1} << shift) - 1));
    }
    return nullptr;
  }

  // Remembers the leaf at `level` mapping `gpa` to `leaf_host` (the leaf's first byte).
  void fill(Gpa gpa, unsigned level, std::byte* leaf_host, std::uint8_t rights, std::uint64_t generation) {
    if (generation != generation_) {
      clear();
      generation_ = generation;
    }
    const std::uint64_t tag = gpa.raw() >> kLeafSizes.shift(level);
    sets_[level - 1][tag & (kWays - 1)] = {tag, leaf_host, rights};
  }

  void clear() {
    for (auto& set : sets_) set.fill({});
  }

 private:
  static constexpr unsigned kWays = 64;
  // EPT's and NPT's leaf sizes, levels 1-3 (the same in 4- and 5-level tables).
  static constexpr pt::Geometry kLeafSizes = pt::Geometry::uniform(4, kPageShift, 9, 9, 8);
  struct Entry {
    std::uint64_t tag = ~std::uint64_t{0};
    std::byte* host = nullptr;
    std::uint8_t rights = 0;
  };
  std::array<std::array<Entry, kWays>, 3> sets_{};
  std::uint64_t generation_ = 0;
};

}  // namespace vmmu::tdp
