#pragma once
// Every mapping a guest's page tables hold: each leaf reachable from the root, in ascending
// gva order, with the permissions a walk to it would check. What `vmmu maps` prints, what
// QEMU's `info tlb` shows, and what memory-forensics tools rebuild from a dump.
//
// One loop over pt::TableIterator with the x86 guest formats (x86/guest_format.hpp), so the
// listing and the walker agree on what is present, a leaf, reserved, and which rights an
// entry grants. The iterator keeps the path; this loop keeps beside it, per level, the AND of
// the rights of the entries above (acc[L] = rights of the path's entries at levels >= L):
//
//     level 4   PML4E  acc[4] = access(PML4E)
//     level 3   PDPTE  acc[3] = acc[4] & access(PDPTE)
//     level 2   PDE    leaf: effective = acc[3] & access(PDE)       (a 2M page)
//
// Tables reached from many entries (Linux's espfix area: 65,536 leaves through shared
// tables) and tables that point back to themselves are entries like any other: the
// iterator's depth is bounded by the number of levels, so nothing recurses or loops.

#include <array>
#include <cstdint>
#include <type_traits>

#include "vmmu/core/address.hpp"
#include "vmmu/pt/format.hpp"
#include "vmmu/pt/table_iterator.hpp"
#include "vmmu/x86/guest_entry.hpp"
#include "vmmu/x86/guest_format.hpp"
#include "vmmu/x86/guest_paging.hpp"

namespace vmmu::image {

struct GuestMapping {
  Gva gva;                     // first byte mapped (canonical: sign-extended in long mode)
  Gpa gpa;                     // base of the leaf's frame
  std::uint64_t page_size = 0;  // 4K, 2M, 4M or 1G
  unsigned level = 0;           // level of the leaf (1 = 4K)
  // Effective over the whole path (x86-maps.md): AND of U/S and R/W, OR of XD with EFER.NXE.
  bool user = false;
  bool write = false;
  bool nx = false;
  // The leaf's own bits.
  bool accessed = false;
  bool dirty = false;
  bool global = false;
  bool pwt = false;
  bool pcd = false;
  bool pat = false;
  std::uint8_t protection_key = 0;  // 0 unless CR4.PKE in 4/5-level paging
};

struct MappingCounts {
  std::uint64_t mappings = 0;
  // Paths ended by a present entry with a reserved bit set (a walk there faults with RSVD):
  // one per such entry, whatever lies below it; none of them is listed.
  std::uint64_t reserved_paths = 0;
};

// The canonical form of a linear address: sign-extended from bit linear_bits-1 in long mode.
[[nodiscard]] constexpr Gva canonical_gva(std::uint64_t linear, unsigned linear_bits) {
  if (linear_bits >= 64 || linear_bits <= 32) return Gva(linear);
  const std::uint64_t sign = std::uint64_t{1} << (linear_bits - 1);
  return Gva((linear & sign) != 0 ? (linear | ~((sign << 1) - 1)) : linear);
}

namespace detail {

template <class F, class M, class Sink>
void list_format(const F& format, M& memory, Gpa root, unsigned linear_bits, MappingCounts& counts, Sink& sink) {
  using Entry = typename F::Entry;
  const pt::Geometry& g = format.geometry();
  std::array<std::uint8_t, pt::kMaxLevels + 2> acc{};
  acc[g.root_level() + 1] = x86::gpte::kAccAll;
  for (pt::TableIterator it(format, memory, root, 0, g.input_limit()); it.valid();) {
    const unsigned level = it.level();
    const Entry e = it.entry();
    if (!it.readable() || !format.present(e, level)) {
      it.next_sibling();
      continue;
    }
    if (format.reserved(e, level)) {
      ++counts.reserved_paths;
      it.next_sibling();
      continue;
    }
    const auto rights = static_cast<std::uint8_t>(acc[level + 1] & format.access(e, level));
    if (!format.leaf(e, level)) {
      acc[level] = rights;
      it.next();
      continue;
    }
    GuestMapping m;
    m.gva = canonical_gva(it.address(), linear_bits);
    m.gpa = format.leaf_address(e, level);
    m.page_size = format.page_size(level);
    m.level = level;
    m.user = (rights & x86::gpte::kAccUser) != 0;
    m.write = (rights & x86::gpte::kAccWrite) != 0;
    m.nx = (rights & x86::gpte::kAccExec) == 0;
    m.accessed = F::accessed(e);
    m.dirty = F::dirty(e);
    m.global = F::global(e);
    m.pwt = x86::gpte::PWT::get(e);
    m.pcd = x86::gpte::PCD::get(e);
    // PAT is bit 7 of a 4K PTE and bit 12 of a large leaf (Intel SDM vol. 3A, 4.9.2).
    m.pat = level == 1 ? x86::gpte::PS::get(e) : x86::gpte::PatLarge::get(e);
    m.protection_key = static_cast<std::uint8_t>(format.protection_key(e));
    ++counts.mappings;
    // A sink returning bool stops the listing with false (tables that point back at themselves
    // hold 512^4 leaves: the caller decides when it has seen enough).
    if constexpr (std::is_same_v<std::invoke_result_t<Sink&, const GuestMapping&>, bool>) {
      if (!sink(static_cast<const GuestMapping&>(m))) return;
    } else {
      sink(static_cast<const GuestMapping&>(m));
    }
    it.next_sibling();
  }
}

}  // namespace detail

// Calls sink(const GuestMapping&) for every leaf reachable from the root of `paging`, in
// ascending linear-address order (in long mode: the lower half, then the upper half, each
// gva canonical), until a sink that returns bool returns false. With paging off there are no
// tables and nothing is listed.
//
// Errors: none. Entries with reserved bits are not errors but paths that map nothing; they
// are counted in the result. Memory the source cannot read ends that path silently.
template <class M, class Sink>
  requires pt::TableMemory<M, Gpa>
MappingCounts for_each_mapping(const x86::GuestPaging& paging, M& memory, Sink&& sink) {
  MappingCounts counts;
  paging.with_format([&](const auto& format, Gpa root) {
    detail::list_format(format, memory, root, paging.linear_bits(), counts, sink);
  });
  return counts;
}

}  // namespace vmmu::image
