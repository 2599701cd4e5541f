#pragma once
// Bit layout of Intel EPT paging-structure entries and of the EPT pointer (Intel SDM vol. 3C,
// 29.3.2 and tables 29-1..29-6; EPTP: 25.6.11), and the misconfiguration rules (29.3.3.1).
// Defined once here: the nested EPT walker and the TDP MMU's own EPT tables both use it.

#include <array>
#include <cstdint>
#include <initializer_list>  // vmmu/core/bits.hpp uses it without including it

#include "vmmu/core/bits.hpp"
#include "vmmu/pt/geometry.hpp"

namespace vmmu::x86::ept {

using R = Bit<0>;
using W = Bit<1>;
using X = Bit<2>;             // supervisor-mode execute (all execute without MBEC)
using Rwx = Field<2, 0>;      // 000b: not present
using MemType = Field<5, 3>;  // leaves: EPT memory type; reserved in the top-level entry
using IgnorePat = Bit<6>;     // leaves
using PS = Bit<7>;            // PDE / PDPTE: maps a 2 MiB / 1 GiB page
using A = Bit<8>;             // accessed, with EPTP bit 6
using D = Bit<9>;             // dirty (leaves), with EPTP bit 6
using XUser = Bit<10>;        // user-mode execute with MBEC (not modelled)
using Addr = Field<51, 12>;   // bits 51:N reserved
using SuppressVe = Bit<63>;

// Reserved fields that depend on the entry's place (29.3.2; x86-ept-walk.md).
using TopReserved = Field<7, 3>;     // the top-level entry (PML4E, PML5E)
using TableReserved = Field<6, 3>;   // a non-leaf entry below the top level
using Leaf2mReserved = Field<20, 12>;
using Leaf1gReserved = Field<29, 12>;

// Memory types (SDM 11.3): 2, 3 and 7 are reserved in a leaf's MemType.
inline constexpr std::uint64_t kMemTypeUc = 0;
inline constexpr std::uint64_t kMemTypeWb = 6;
constexpr bool memory_type_reserved(std::uint64_t type) { return type == 2 || type == 3 || type == 7; }

constexpr bool present(std::uint64_t e) { return Rwx::get(e) != 0; }
// Bits 2:0 = 010b or 110b: write without read is always a misconfiguration.
constexpr bool write_without_read(std::uint64_t e) { return W::get(e) && !R::get(e); }
// Bits 2:0 = 100b: a misconfiguration unless the processor supports execute-only translations.
constexpr bool execute_only(std::uint64_t e) { return Rwx::get(e) == 4; }

// Exit qualification of an EPT violation (SDM 28.2.1, table 28-7).
namespace exit_qual {
using DataRead = Bit<0>;
using DataWrite = Bit<1>;
using Fetch = Bit<2>;
using Readable = Bit<3>;    // AND of R over the walk
using Writable = Bit<4>;    // AND of W
using Executable = Bit<5>;  // AND of X
using LinearValid = Bit<7>;       // a guest linear address was being translated
using LinearTranslation = Bit<8>;  // ... and this is its translation, not a page-walk access
}  // namespace exit_qual

// The EPT pointer (SDM 25.6.11).
namespace eptp {
using MemType = Field<2, 0>;          // paging-structure memory type: UC (0) or WB (6)
using WalkLengthMinus1 = Field<5, 3>;  // 3: 4-level, 4: 5-level
using AccessedDirty = Bit<6>;
using Reserved = Field<11, 7>;
using Addr = Field<51, 12>;
}  // namespace eptp

// Misconfiguration checks for one EPT configuration (walk length, N, capabilities), as masks
// per level and PS value so a check is one AND. rsvd[ps][level]: bits that must be 0.
struct EntryChecks {
  std::array<std::array<std::uint64_t, pt::kMaxLevels + 1>, 2> rsvd{};
  std::uint8_t leaf_levels = 0;  // bit L: PS = 1 at level L maps a page
  bool execute_only_ok = false;

  // Build the masks for a `levels`-level EPT with physical-address width `maxphyaddr`.
  static constexpr EntryChecks make(unsigned levels, unsigned maxphyaddr, bool exec_only, bool pages_2m,
                                    bool pages_1g) {
    EntryChecks c;
    c.execute_only_ok = exec_only;
    const std::uint64_t high = maxphyaddr >= 52 ? 0 : bit_range(51, maxphyaddr);
    for (unsigned level = 1; level <= levels; ++level) {
      std::uint64_t table = high;
      std::uint64_t large = high | PS::mask;  // PS where no leaf may be: reserved
      if (level == levels) {
        table |= TopReserved::mask;
        large |= TopReserved::mask;
      } else if (level > 1) {
        table |= TableReserved::mask;
        large |= TableReserved::mask;
      }
      if (level == 1) large = table;  // bit 7 of a PTE is ignored
      const bool may_be_leaf = level != levels && ((level == 2 && pages_2m) || (level == 3 && pages_1g));
      if (may_be_leaf) {
        large = high | (level == 2 ? Leaf2mReserved::mask : Leaf1gReserved::mask);
        c.leaf_levels = static_cast<std::uint8_t>(c.leaf_levels | (1u << level));
      }
      c.rsvd[0][level] = table;
      c.rsvd[1][level] = large;
    }
    return c;
  }

  [[nodiscard]] constexpr bool leaf(std::uint64_t e, unsigned level) const {
    return level == 1 || (PS::get(e) && ((leaf_levels >> level) & 1u) != 0);
  }
  // A present entry that is an EPT misconfiguration (SDM 29.3.3.1).
  [[nodiscard]] constexpr bool misconfigured(std::uint64_t e, unsigned level) const {
    if (write_without_read(e)) return true;
    if (execute_only(e) && !execute_only_ok) return true;
    if ((e & rsvd[PS::get(e) ? 1 : 0][level]) != 0) return true;
    return leaf(e, level) && memory_type_reserved(MemType::get(e));
  }
};

static_assert(disjoint({R::mask, W::mask, X::mask, MemType::mask, IgnorePat::mask, PS::mask, A::mask, D::mask,
                        XUser::mask, Addr::mask, SuppressVe::mask}));
static_assert(disjoint({eptp::MemType::mask, eptp::WalkLengthMinus1::mask, eptp::AccessedDirty::mask,
                        eptp::Reserved::mask, eptp::Addr::mask}));
static_assert(TopReserved::mask == (MemType::mask | IgnorePat::mask | PS::mask));
static_assert(EntryChecks::make(4, 40, true, true, true).leaf_levels == 0b01100);
static_assert(EntryChecks::make(4, 40, true, true, false).leaf_levels == 0b00100);
static_assert(EntryChecks::make(5, 52, true, true, true).rsvd[1][5] == TopReserved::mask);

}  // namespace vmmu::x86::ept
