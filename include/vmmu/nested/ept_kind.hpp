#pragma once
// Intel EPT as the kind of L1's tables (the nested MMU's policy, see nested_mmu.hpp): the EPTP
// is the root pointer, the EPT walker reads L1's tables, a fault is the EPT violation /
// misconfiguration VM exit, and the shadow tables are EPT format. Role: ept set, access = EPT
// R/W/X, ad_disabled from EPTP bit 6, ept_exec_only from the processor.

#include <cstdint>
#include <string_view>

#include "vmmu/core/access.hpp"
#include "vmmu/core/result.hpp"
#include "vmmu/nested/nested_types.hpp"
#include "vmmu/shadow/role.hpp"
#include "vmmu/tdp/tdp_format.hpp"
#include "vmmu/x86/ept_walk.hpp"

namespace vmmu::nested {

struct EptKind {
  using Pointer = std::uint64_t;  // EPTP
  using Caps = x86::EptCapabilities;
  using Context = x86::EptContext;
  using PointerError = x86::EptpError;
  using Fault = x86::EptFault;
  static constexpr bool kEpt = true;
  static constexpr std::string_view kName = "shadow EPT";
  static constexpr tdp::TdpKind kShadowFormat = tdp::TdpKind::Ept;
  static constexpr std::uint8_t kWriteRight = x86::ept::W::mask;  // in a role's access

  // A shadow leaf allows `op` when (entry & mask) == value.
  static constexpr ShadowNeed need(AccessKind op) {
    namespace ept = x86::ept;
    const std::uint64_t bit = op == AccessKind::Read    ? ept::R::mask
                              : op == AccessKind::Write ? ept::W::mask
                                                        : ept::X::mask;
    return {bit, bit};
  }

  static Result<Context, PointerError> context(Pointer eptp, const Caps& caps) { return Context::from(eptp, caps); }
  static Pointer pointer(const Context& ctx) { return ctx.eptp(); }
  static Gpa root(const Context& ctx) { return ctx.root<Gpa>(); }
  static Fault invalid_pointer() { return {x86::EptFaultKind::InvalidEptp, 0, 0}; }

  static shadow::Role root_role(const Context& ctx, const Caps& caps) {
    shadow::Role r;
    r.set_level(ctx.levels()).set_access(7).set_guest_mode(true).set_ad_disabled(!ctx.accessed_dirty());
    return r.set_ept(true).set_ept_exec_only(caps.execute_only);
  }
  // The context a root shadow page was built for (its L1 table frame and role).
  static Result<Context, PointerError> context_of(Gfn root, shadow::Role role, const Caps& caps) {
    namespace ept = x86::ept;
    const std::uint64_t eptp = ept::eptp::Addr::bits(gpa_of(root).raw()) | ept::kMemTypeWb |
                               ept::eptp::WalkLengthMinus1::set(0, role.level() - 1) |
                               (role.ad_disabled() ? 0 : ept::eptp::AccessedDirty::mask);
    return Context::from(eptp, caps);
  }

  using Path = x86::EptPath<Gpa>;
  // L1's EPT walked for `l2_gpa` (A/D set per options and EPTP bit 6), the entries used in `path`.
  template <class M>
  static Result<L1Walk, Fault> walk(const Context& ctx, M& tables, Gpa l2_gpa, AccessKind op,
                                    x86::WalkOptions options, Path& path) {
    const auto t = x86::walk_ept<Gpa>(ctx, tables, l2_gpa, op, options, path);
    if (!t) return Unexpected{t.error()};
    return L1Walk{t->address, t->page_size, t->level, t->readable, t->writable, t->executable,
                  ctx.accessed_dirty() && !x86::ept::D::get(path[t->level].entry)};
  }
  // What the entry at `level` grants (role access bits), and the table it points to (above the leaf).
  static std::uint8_t rights(const Path& path, unsigned level) {
    return static_cast<std::uint8_t>(x86::ept::Rwx::get(path[level].entry));
  }
  static Gfn table(const Path& path, unsigned level) { return gfn_of(Gpa(x86::ept::Addr::bits(path[level].entry))); }
};

}  // namespace vmmu::nested
