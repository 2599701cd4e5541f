#pragma once
// The nested EPT walker (gpa -> output address), Intel SDM vol. 3C 29.3, following the
// contract of ../shared/formats/x86-ept-walk.md. Same walker loop as the guest walker
// (detail::walk_core), with EPT rules:
//   - bits 2:0 = 0: not present -> EPT violation;
//   - a present entry that is misconfigured (ept::EntryChecks) -> EPT misconfiguration,
//     checked level by level from the top, so nothing below a not-present entry is seen;
//   - otherwise R / W / X ANDed over the walk decide; a denied access -> EPT violation;
//   - with EPTP bit 6, a successful access sets A in every entry used and D in the leaf on a write.

#include <array>
#include <cstdint>
#include <string_view>
#include <type_traits>

#include "vmmu/core/access.hpp"
#include "vmmu/core/address.hpp"
#include "vmmu/core/result.hpp"
#include "vmmu/x86/detail/walk_core.hpp"
#include "vmmu/x86/ept_entry.hpp"
#include "vmmu/x86/ept_format.hpp"
#include "vmmu/x86/walk_options.hpp"

namespace vmmu::x86 {

// What the modelled processor supports (IA32_VMX_EPT_VPID_CAP), passed in, never assumed.
struct EptCapabilities {
  unsigned maxphyaddr = 52;
  bool execute_only = true;
  bool pages_2m = true;
  bool pages_1g = true;
  bool accessed_dirty = true;
  bool four_level = true;
  bool five_level = false;
};

// Why an EPTP is invalid (VM entry would fail, SDM 27.2.1.1 / 25.6.11).
enum class EptpError : std::uint8_t {
  MemoryType,              // bits 2:0 neither 0 (UC) nor 6 (WB)
  WalkLength,              // bits 5:3 not a supported walk length minus 1
  ReservedBits,            // bits 11:7 set
  AddressBits,             // a bit at or above MAXPHYADDR set
  AccessedDirtyUnsupported,  // bit 6 set without the A/D capability
};
std::string_view to_string(EptpError e);

enum class EptFaultKind : std::uint8_t { Violation, Misconfig, InvalidEptp, TableUnreadable };
std::string_view to_string(EptFaultKind k);

struct EptFault {
  EptFaultKind kind = EptFaultKind::Violation;
  std::uint64_t exit_qualification = 0;  // Violation only
  unsigned level = 0;                    // level of the entry that faulted
  friend constexpr bool operator==(const EptFault&, const EptFault&) = default;
};

template <class Out>
struct EptTranslation {
  Out address;              // output address of the byte
  std::uint64_t page_size;  // 4K, 2M, 1G
  unsigned level;           // level of the leaf (1 = 4K)
  bool readable, writable, executable;  // AND over the path
};

// One EPT entry a walk used: where it is (addressed as the walk's Out) and its value -- as
// read for the levels above the leaf, and as the walk left it (A/D bits set) for the leaf.
template <class Out>
struct EptStep {
  Out address{};
  std::uint64_t entry = 0;
};
// The entries a walk used, by level (index 0 unused; levels below the leaf untouched): what
// the shadow EPT MMU builds its pages from, so it need not read L1's tables twice.
template <class Out>
using EptPath = std::array<EptStep<Out>, pt::kMaxLevels + 1>;

// A validated EPTP plus the capabilities: the EPT "root role".
class EptContext {
 public:
  // Errors: EptpError naming the first invalid field of `eptp` (memory type, walk length,
  // bits 11:7, bits at or above caps.maxphyaddr, A/D enable without the capability).
  static Result<EptContext, EptpError> from(std::uint64_t eptp, EptCapabilities caps);

  [[nodiscard]] std::uint64_t eptp() const { return eptp_; }
  [[nodiscard]] const EptCapabilities& capabilities() const { return caps_; }
  [[nodiscard]] unsigned levels() const { return levels_; }
  [[nodiscard]] bool accessed_dirty() const { return ept::eptp::AccessedDirty::get(eptp_); }
  template <class Out>
  [[nodiscard]] Out root() const {
    return Out(ept::eptp::Addr::bits(eptp_));
  }
  [[nodiscard]] const ept::EntryChecks& checks() const { return checks_; }

  // Calls fn(format, root) with EptFormat<Out, 4> or EptFormat<Out, 5> for range iteration.
  template <class Out, class Fn>
  void with_format(Fn&& fn) const {
    if (levels_ == 5) {
      fn(EptFormat<Out, 5>(checks_), root<Out>());
    } else {
      fn(EptFormat<Out, 4>(checks_), root<Out>());
    }
  }

 private:
  std::uint64_t eptp_ = 0;
  EptCapabilities caps_{};
  unsigned levels_ = 4;
  ept::EntryChecks checks_{};
};

namespace detail {

struct NoEptPath {};

template <class F, class Path = NoEptPath>
struct EptRules {
  using Entry = std::uint64_t;
  F format;  // by value, copyable: see GuestRules
  std::uint64_t need;  // the R/W/X bit the access needs
  std::uint64_t ad_leaf;
  bool ad;
  std::uint64_t rwx = 7;
  EptFaultKind fault = EptFaultKind::Violation;
  Entry seen = ~Entry{0};  // AND of the entries used
  [[no_unique_address]] Path out{};  // EptPath* when the walk records its path

  void record(const pt::Step<F>& s)
    requires(!std::is_same_v<Path, NoEptPath>)
  {
    (*out)[s.level] = {s.entry_address, s.entry};
  }

  void start() {
    rwx = 7;
    fault = EptFaultKind::Violation;
    seen = ~Entry{0};
  }
  pt::Visit visit(unsigned level, Entry e) {
    rwx &= ept::Rwx::get(e);  // a not-present entry makes it 0, as the exit qualification wants
    seen &= e;
    if (!ept::present(e)) return pt::Visit::Continue;
    if (format.misconfigured(e, level)) {
      fault = EptFaultKind::Misconfig;
      return pt::Visit::Stop;
    }
    return pt::Visit::Continue;
  }
  void not_present(unsigned, Entry) {}
  bool permit(unsigned, Entry) { return (rwx & need) != 0; }
  bool ad_pending(Entry leaf) const { return ad && ((seen & ept::A::mask) == 0 || (leaf & ad_leaf) != ad_leaf); }
  Entry ad_bits(unsigned, Entry, bool leaf) const {
    if (!ad) return 0;
    return leaf ? ad_leaf : ept::A::mask;
  }
};

template <class F, class Path>
inline EptRules<F, Path> ept_rules(const F& format, const EptContext& ctx, AccessKind kind, Path path) {
  const std::uint64_t need = kind == AccessKind::Read ? ept::R::mask : kind == AccessKind::Write ? ept::W::mask : ept::X::mask;
  EptRules<F, Path> rules{format, need, ept::A::mask | (kind == AccessKind::Write ? ept::D::mask : 0), ctx.accessed_dirty()};
  rules.out = path;
  return rules;
}

// The answer of a walk that ended as `r` (never AdPending) with `rules` as it left them.
template <class F, class Path>
inline Result<EptTranslation<typename F::Output>, EptFault> ept_answer(const F& format,
                                                                      const CoreResult<std::uint64_t>& r,
                                                                      const EptRules<F, Path>& rules, Gpa gpa,
                                                                      Path path) {
  if constexpr (!std::is_same_v<Path, NoEptPath>) {
    if (r.end == CoreEnd::Leaf) (*path)[r.level].entry = r.entry;  // with the A/D bits the walk set
  }
  switch (r.end) {
    case CoreEnd::Unreadable: return Unexpected<EptFault>{EptFault{EptFaultKind::TableUnreadable, 0, r.level}};
    case CoreEnd::Fault:
      if (rules.fault == EptFaultKind::Misconfig) return Unexpected<EptFault>{EptFault{EptFaultKind::Misconfig, 0, r.level}};
      return Unexpected<EptFault>{EptFault{EptFaultKind::Violation,
                                 rules.need | (rules.rwx << ept::exit_qual::Readable::position) |
                                     ept::exit_qual::LinearValid::mask | ept::exit_qual::LinearTranslation::mask,
                                 r.level}};
    case CoreEnd::Leaf:
    case CoreEnd::AdPending: break;
  }
  const std::uint64_t size = format.page_size(r.level);
  return EptTranslation<typename F::Output>{format.leaf_address(r.entry, r.level) + (gpa.raw() & (size - 1)), size,
                                            r.level, (rules.rwx & 1) != 0, (rules.rwx & 2) != 0, (rules.rwx & 4) != 0};
}

// The walk that sets A/D bits, with rules of its own (see detail/walk_core.hpp). Out of line:
// the warm walk never comes here.
template <class F, class M, class Path>
[[gnu::noinline]] Result<EptTranslation<typename F::Output>, EptFault> walk_ept_update_ad(F format, const EptContext& ctx,
                                                                                        M& memory, Gpa gpa,
                                                                                        AccessKind kind, Path path) {
  EptRules<F, Path> rules = ept_rules(format, ctx, kind, path);
  const auto r = walk_core_update_ad(format, memory, ctx.root<typename F::Output>(), gpa.raw(), rules);
  return ept_answer(format, r, rules, gpa, path);
}

template <class F, class M, class Path = NoEptPath>
inline Result<EptTranslation<typename F::Output>, EptFault> walk_ept_in(const F& format, const EptContext& ctx,
                                                                     M& memory, Gpa gpa, AccessKind kind,
                                                                     WalkOptions options, Path path = {}) {
  EptRules<F, Path> rules = ept_rules(format, ctx, kind, path);
  const auto r = walk_core(format, memory, ctx.root<typename F::Output>(), gpa.raw(),
                           options.update_accessed_dirty, rules);
  if (r.end == CoreEnd::AdPending) [[unlikely]] return walk_ept_update_ad(format, ctx, memory, gpa, kind, path);
  return ept_answer(format, r, rules, gpa, path);
}

}  // namespace detail

// Translate `gpa` through the EPT tables of `ctx` in `memory` (tables addressed as Out).
// Bits of gpa above the walk's 48 (57) input bits are ignored (they cannot exist below
// MAXPHYADDR). An EPTP is validated once, by EptContext::from.
// Errors (EptFault): Violation with its exit qualification, Misconfig, TableUnreadable when a
// table lies in memory that is not backed. Never InvalidEptp (that is EptContext::from's).
template <class Out, class M>
  requires pt::TableMemory<M, Out>
inline Result<EptTranslation<Out>, EptFault> walk_ept(const EptContext& ctx, M& memory, Gpa gpa, AccessKind kind,
                                                      WalkOptions options = {}) {
  if (ctx.levels() == 5) return detail::walk_ept_in(EptFormat<Out, 5>(ctx.checks()), ctx, memory, gpa, kind, options);
  return detail::walk_ept_in(EptFormat<Out, 4>(ctx.checks()), ctx, memory, gpa, kind, options);
}

// The same walk, recording in `path` the entries it used (see EptPath).
template <class Out, class M>
  requires pt::TableMemory<M, Out>
inline Result<EptTranslation<Out>, EptFault> walk_ept(const EptContext& ctx, M& memory, Gpa gpa, AccessKind kind,
                                                      WalkOptions options, EptPath<Out>& path) {
  if (ctx.levels() == 5) {
    return detail::walk_ept_in(EptFormat<Out, 5>(ctx.checks()), ctx, memory, gpa, kind, options, &path);
  }
  return detail::walk_ept_in(EptFormat<Out, 4>(ctx.checks()), ctx, memory, gpa, kind, options, &path);
}

}  // namespace vmmu::x86
