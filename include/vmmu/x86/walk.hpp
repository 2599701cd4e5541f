#pragma once
// The x86 guest page-table walker (gva -> gpa) for every paging mode, and the nested EPT
// walker (gpa -> output address) -- one walker loop (detail::walk_core) over the shared
// radix-table engine, instantiated per format.
//
// Public API (the contract the CLI, the images and the MMUs code against):
//
//   auto paging = GuestPaging::from(regs, {.maxphyaddr = 40});   // the "cpu role"
//   Result<Translation, WalkFault> r = walk(paging, memory, Gva(...), access);
//
//   auto ept = EptContext::from(eptp, {.maxphyaddr = 40});       // fails: invalid EPTP
//   Result<EptTranslation<Hpa>, EptFault> t = walk_ept<Hpa>(*ept, memory, Gpa(...), AccessKind::Read);
//
// Architecture choices (Intel SDM vol. 3A ch. 4, AMD APM vol. 2 ch. 5; where they differ):
//   - PAE: the four PDPTEs are read from memory at CR3[31:5] on every walk (AMD, QEMU), not
//     from PDPTE registers loaded at MOV CR3 (Intel); a present PDPTE with a reserved bit faults
//     with RSVD. PDPTEs have no R/W, U/S, XD (bits reserved) and no A bit: none is set in them.
//   - Reserved bits follow Intel (PML4E/PML5E bit 7 reserved; AMD also reserves bit 8 there).
//     PAE PDEs/PTEs reserve bits 62:M (Intel table 4-10/4-11); 4/5-level reserve only 51:M.
//   - I/D in the error code: set for a fetch when SMEP is on or NX is in effect (EFER.NXE in PAE
//     or long mode), Intel SDM 4.7; KVM does the same. NXE in 32-bit paging has no effect.
//   - PK in the error code: set whenever PKRU denies the access, also when the access faults for
//     another reason too (as KVM's permission_fault does). PKS (CR4.PKS, keys on supervisor
//     pages) is not modelled: supervisor pages are never denied by a key.
//   - Accessed/Dirty bits are set only when the walk succeeds (format pages: implementation-
//     specific for faulting walks).
//   - Outside long mode a linear address has 32 bits: the gva is truncated to bits 31:0 (with
//     paging off too: gpa = gva mod 2^32). The CLI rejects wider gvas as input errors first.

#include <array>
#include <cstdint>
#include <string_view>
#include <type_traits>

#include "vmmu/core/access.hpp"
#include "vmmu/core/address.hpp"
#include "vmmu/core/result.hpp"
#include "vmmu/pt/format.hpp"
#include "vmmu/x86/detail/walk_core.hpp"
#include "vmmu/x86/ept_walk.hpp"
#include "vmmu/x86/guest_format.hpp"
#include "vmmu/x86/guest_paging.hpp"
#include "vmmu/x86/registers.hpp"
#include "vmmu/x86/walk_options.hpp"

namespace vmmu::x86 {

// Page-fault error code bits (Intel SDM vol. 3A, 4.7).
namespace pferr {
inline constexpr std::uint32_t kPresent = 1u << 0;
inline constexpr std::uint32_t kWrite = 1u << 1;
inline constexpr std::uint32_t kUser = 1u << 2;
inline constexpr std::uint32_t kReserved = 1u << 3;
inline constexpr std::uint32_t kFetch = 1u << 4;
inline constexpr std::uint32_t kProtectionKey = 1u << 5;
}  // namespace pferr

enum class WalkFaultKind : std::uint8_t {
  PageFault,          // #PF with error_code
  GeneralProtection,  // non-canonical address in long mode
  TableUnreadable,    // a paging structure lies in memory that is not backed (no memslot)
};
std::string_view to_string(WalkFaultKind k);

struct WalkFault {
  WalkFaultKind kind = WalkFaultKind::PageFault;
  std::uint32_t error_code = 0;  // page-fault error code (PageFault only)
  unsigned level = 0;            // level of the entry that faulted (0: none, e.g. #GP)
  friend constexpr bool operator==(const WalkFault&, const WalkFault&) = default;
};

struct Translation {
  Gpa gpa;                  // the byte's guest-physical address
  std::uint64_t page_size;  // bytes mapped by the leaf: 4K, 2M, 4M, 1G
  unsigned level;           // level of the leaf (1 = 4K); 0 with paging off
  bool user;                // AND of U/S over the path
  bool writable;            // AND of R/W over the path
  bool nx;                  // OR of XD over the path (EFER.NXE only)
  std::uint8_t protection_key;
  std::uint64_t entry;      // the leaf entry as the walk left it (with the A/D bits it set); 0 with paging off
};

// One guest entry a walk used: where it is, its value as read (before the walk set A/D bits in
// it), the rights it grants alone (gpte::kAcc* bits).
struct WalkStep {
  Gpa address;
  std::uint64_t entry = 0;
  std::uint8_t rights = 0;
};
// The entries a walk used, by level (index 0 unused; levels below the leaf untouched): what
// the shadow MMU builds its pages from, so it need not walk the guest's tables twice.
using WalkPath = std::array<WalkStep, pt::kMaxLevels + 1>;

namespace detail {

// No path recorded: the plain walk.
struct NoPath {};

// Held by value (the format is one pointer) and copyable: walk_core keeps it from escaping,
// so on the warm walk its state lives in registers (see detail/walk_core.hpp).
template <class F, class Path = NoPath>
struct GuestRules {
  using Entry = typename F::Entry;
  F format;
  std::uint8_t faults;          // permission bitmap of this access class
  std::uint16_t key_denials;    // protection keys that deny this access class
  Entry leaf_ad;                // A, plus D for a write
  std::uint64_t path = ~std::uint64_t{0};  // AND of format.path_word() over the entries used
  std::uint32_t extra = 0;      // P / RSVD / PK bits of the fault found
  [[no_unique_address]] Path out{};  // WalkPath* when the walk records its path

  void record(const pt::Step<F>& s)
    requires std::is_same_v<Path, WalkPath*>
  {
    (*out)[s.level] = WalkStep{s.entry_address, std::uint64_t{s.entry}, format.access(s.entry, s.level)};
  }

  void start() {
    path = ~std::uint64_t{0};
    extra = 0;
  }
  pt::Visit visit(unsigned level, Entry e) {
    if (!format.present(e, level)) return pt::Visit::Continue;
    // Branch on PS first: each arm then tests one mask at a fixed place (no index from the
    // entry on the path to the next load), and PS is clear in every table entry.
    const bool reserved = (std::uint64_t{e} & gpte::PS::mask) != 0 ? format.reserved_with_ps(e, level, 1)
                                                                     : format.reserved_with_ps(e, level, 0);
    if (reserved) {
      extra = pferr::kPresent | pferr::kReserved;
      return pt::Visit::Stop;
    }
    path &= format.path_word(e, level);
    return pt::Visit::Continue;
  }
  [[nodiscard]] std::uint8_t rights() const { return F::rights(path); }
  bool ad_pending(Entry leaf) const { return (path & gpte::A::mask) == 0 || (leaf & leaf_ad) != leaf_ad; }
  void not_present(unsigned, Entry) {}
  bool permit(unsigned, Entry leaf) {
    const std::uint8_t acc = rights();
    bool fault = ((static_cast<unsigned>(faults) >> acc) & 1u) != 0;
    if ((acc & gpte::kAccUser) != 0 && ((unsigned{key_denials} >> gpte::ProtKey::get(leaf)) & 1u) != 0) {
      extra = pferr::kProtectionKey;
      fault = true;
    }
    if (fault) extra |= pferr::kPresent;
    return !fault;
  }
  Entry ad_bits(unsigned level, Entry, bool leaf) const {
    if (!format.has_accessed_bit(level)) return 0;
    return leaf ? leaf_ad : static_cast<Entry>(gpte::A::mask);
  }
};

template <class F, class Path>
inline GuestRules<F, Path> guest_rules(const F& format, const GuestPaging& paging, const Access& access, Path out) {
  using Entry = typename F::Entry;
  const Entry leaf_ad = static_cast<Entry>(gpte::A::mask | (access.is_write() ? gpte::D::mask : 0));
  const unsigned index = paging.permission_index(access);
  GuestRules<F, Path> rules{format, paging.permission_faults(index), paging.key_denials(index), leaf_ad};
  rules.out = out;
  return rules;
}

// The answer of a walk that ended as `r` (never AdPending) with `rules` as it left them.
template <class F, class Path>
inline Result<Translation, WalkFault> guest_answer(const F& format, const GuestPaging& paging,
                                                   const CoreResult<typename F::Entry>& r,
                                                   const GuestRules<F, Path>& rules, std::uint64_t input,
                                                   const Access& access) {
  switch (r.end) {
    case CoreEnd::Unreadable: return Unexpected<WalkFault>{WalkFault{WalkFaultKind::TableUnreadable, 0, r.level}};
    case CoreEnd::Fault:
      return Unexpected<WalkFault>{WalkFault{WalkFaultKind::PageFault, rules.extra | paging.access_error_code(access), r.level}};
    case CoreEnd::Leaf:
    case CoreEnd::AdPending: break;
  }
  const std::uint64_t size = format.page_size(r.level);
  const std::uint8_t acc = rules.rights();
  return Translation{format.leaf_address(r.entry, r.level) + (input & (size - 1)),
                     size,
                     r.level,
                     (acc & gpte::kAccUser) != 0,
                     (acc & gpte::kAccWrite) != 0,
                     (acc & gpte::kAccExec) == 0,
                     static_cast<std::uint8_t>(format.protection_key(r.entry)),
                     r.entry};
}

// The walk that sets A/D bits, with rules of its own (see detail/walk_core.hpp). Out of line:
// the warm walk never comes here.
template <class F, class M, class Path>
[[gnu::noinline]] Result<Translation, WalkFault> walk_guest_update_ad(F format, const GuestPaging& paging, M& memory,
                                                                     std::uint64_t input, const Access& access,
                                                                     Path out) {
  GuestRules<F, Path> rules = guest_rules(format, paging, access, out);
  const auto r = walk_core_update_ad(format, memory, paging.root(), input, rules);
  return guest_answer(format, paging, r, rules, input, access);
}

template <class F, class M, class Path>
inline Result<Translation, WalkFault> walk_guest(const F& format, const GuestPaging& paging, M& memory,
                                                 std::uint64_t input, const Access& access, WalkOptions options,
                                                 Path out) {
  GuestRules<F, Path> rules = guest_rules(format, paging, access, out);
  const auto r = walk_core(format, memory, paging.root(), input, options.update_accessed_dirty, rules);
  if (r.end == CoreEnd::AdPending) [[unlikely]] {
    return walk_guest_update_ad(format, paging, memory, input, access, out);
  }
  return guest_answer(format, paging, r, rules, input, access);
}

}  // namespace detail

namespace detail {

template <class M, class Path>
inline Result<Translation, WalkFault> walk_mode(const GuestPaging& paging, M& memory, Gva gva, Access access,
                                                WalkOptions options, Path out) {
  constexpr std::uint64_t k32 = 0xffff'ffffULL;
  const GuestFormatConfig& config = paging.format_config();
  switch (paging.mode()) {
    case PagingMode::Off: return Translation{Gpa(gva.raw() & k32), kPageSize, 0, true, true, false, 0, 0};
    case PagingMode::Bits32: return walk_guest(Format32(config), paging, memory, gva.raw() & k32, access, options, out);
    case PagingMode::Pae: return walk_guest(FormatPae(config), paging, memory, gva.raw() & k32, access, options, out);
    case PagingMode::Long4:
    case PagingMode::Long5: break;
  }
  if (!paging.canonical(gva)) return Unexpected<WalkFault>{WalkFault{WalkFaultKind::GeneralProtection, 0, 0}};
  if (paging.mode() == PagingMode::Long5) return walk_guest(Format5(config), paging, memory, gva.raw(), access, options, out);
  return walk_guest(Format4(config), paging, memory, gva.raw(), access, options, out);
}

}  // namespace detail

// Translate `gva` for `access` through the guest's tables in `memory`, checking every
// permission, reserved-bit and canonical-address rule of the mode, and (unless
// options.update_accessed_dirty is false) setting A/D bits with compare-exchange.
// Errors (WalkFault): PageFault with the exact error code; GeneralProtection for a
// non-canonical gva in long mode; TableUnreadable when a table is in memory that is not backed.
template <class M>
  requires pt::TableMemory<M, Gpa>
inline Result<Translation, WalkFault> walk(const GuestPaging& paging, M& memory, Gva gva, Access access,
                                           WalkOptions options = {}) {
  return detail::walk_mode(paging, memory, gva, access, options, detail::NoPath{});
}

// The same walk, also handing back the entries it used (`path`, valid for the levels from the
// root down to the leaf of a successful walk; nothing with paging off).
template <class M>
  requires pt::TableMemory<M, Gpa>
inline Result<Translation, WalkFault> walk(const GuestPaging& paging, M& memory, Gva gva, Access access,
                                           WalkOptions options, WalkPath& path) {
  return detail::walk_mode(paging, memory, gva, access, options, &path);
}

}  // namespace vmmu::x86
