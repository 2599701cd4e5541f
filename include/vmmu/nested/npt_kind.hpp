#pragma once
// AMD NPT as the kind of L1's tables (the nested MMU's policy, see nested_mmu.hpp), AMD APM
// vol. 2, 15.25, and KVM's kvm_init_shadow_npt_mmu / nested_svm_inject_npf_exit:
//   - nCR3 is the root pointer; L1's nested tables are ordinary long-mode tables (4-level, or
//     5-level when L1's own mode has CR4.LA57), walked by the x86 walker;
//   - every nested access is a user access (U/S must be 1 at every level), R/W and NX apply
//     (NX only with L1's EFER.NXE, reserved otherwise), reserved bits as in long mode, and the
//     walk sets A (and D on a write) in L1's tables -- there is no enable bit;
//   - a fault is #VMEXIT(NPF): EXITINFO1 = the page-fault error code (P, W, U, RSV, I/D) plus
//     bit 32 (the final translation of the gpa) or bit 33 (the gpa of one of L2's own tables),
//     EXITINFO2 = the L2 guest-physical address.
// Bits of an L2 gpa above the nested tables' 48 (57) input bits are ignored, as by the EPT
// walker (they cannot exist below MAXPHYADDR). Shadow tables are NPT format; role: npt and
// guest_mode set, access = x86::gpte::kAcc* bits, efer_nx from L1's EFER.NXE.

#include <cstdint>
#include <string_view>

#include "vmmu/core/access.hpp"
#include "vmmu/core/result.hpp"
#include "vmmu/nested/nested_types.hpp"
#include "vmmu/shadow/role.hpp"
#include "vmmu/tdp/tdp_format.hpp"
#include "vmmu/x86/walk.hpp"

namespace vmmu::nested {

// What L1 gives VMRUN for its guest: nCR3 and the parts of its own mode the nested walk uses.
struct NptRoot {
  std::uint64_t ncr3 = 0;
  bool la57 = false;  // L1's CR4.LA57: 5-level nested tables
  bool nxe = true;    // L1's EFER.NXE: NX honoured (else bit 63 is reserved)
  friend constexpr bool operator==(const NptRoot&, const NptRoot&) = default;
};

enum class NptRootError : std::uint8_t {
  AddressBits,  // nCR3 has a bit at or above MAXPHYADDR (VMRUN fails: VMEXIT_INVALID)
};
std::string_view to_string(NptRootError e);

enum class NptFaultKind : std::uint8_t {
  Npf,              // #VMEXIT(NPF) with exit_info1 / exit_info2
  InvalidNcr3,      // no valid nCR3 loaded (VMRUN failed)
  TableUnreadable,  // one of L1's nested tables lies in memory that is not backed
};
std::string_view to_string(NptFaultKind k);

// EXITINFO1 bits above the error code (APM vol. 2, 15.25.6).
namespace npf {
inline constexpr std::uint64_t kFinal = std::uint64_t{1} << 32;   // fault on the final gpa translation
inline constexpr std::uint64_t kTables = std::uint64_t{1} << 33;  // fault on a guest page-table access
}  // namespace npf

struct NptFault {
  NptFaultKind kind = NptFaultKind::Npf;
  std::uint64_t exit_info1 = 0;  // Npf: error code | npf::kFinal or npf::kTables
  Gpa exit_info2{};              // Npf: the faulting L2 guest-physical address
  unsigned level = 0;            // level of the entry that faulted
  friend constexpr bool operator==(const NptFault&, const NptFault&) = default;
};

// A validated nCR3: the nested walk's "cpu role" (long mode, a user access every time).
class NptContext {
 public:
  // Errors: AddressBits when nCR3 has a bit at or above cpu.maxphyaddr.
  static Result<NptContext, NptRootError> from(NptRoot root, x86::CpuModel cpu);
  [[nodiscard]] const NptRoot& pointer() const { return root_; }
  [[nodiscard]] Gpa root() const { return paging_.root(); }
  [[nodiscard]] unsigned levels() const { return root_.la57 ? 5 : 4; }
  [[nodiscard]] const x86::GuestPaging& paging() const { return paging_; }

 private:
  NptRoot root_;
  x86::GuestPaging paging_;
};

struct NptKind {
  using Pointer = NptRoot;
  using Caps = x86::CpuModel;
  using Context = NptContext;
  using PointerError = NptRootError;
  using Fault = NptFault;
  static constexpr bool kEpt = false;
  static constexpr std::string_view kName = "shadow NPT";
  static constexpr tdp::TdpKind kShadowFormat = tdp::TdpKind::Npt;
  static constexpr std::uint8_t kWriteRight = x86::gpte::kAccWrite;  // in a role's access

  // A shadow leaf (NPT format: x86-64 entries) allows `op` when (entry & mask) == value.
  static constexpr ShadowNeed need(AccessKind op) {
    namespace gpte = x86::gpte;
    if (op == AccessKind::Fetch) return {gpte::XD::mask, 0};
    const std::uint64_t bit = op == AccessKind::Read ? gpte::P::mask : gpte::RW::mask;
    return {bit, bit};
  }

  static Result<Context, PointerError> context(Pointer p, const Caps& caps) { return Context::from(p, caps); }
  static Pointer pointer(const Context& ctx) { return ctx.pointer(); }
  static Gpa root(const Context& ctx) { return ctx.root(); }
  static Fault invalid_pointer() { return {NptFaultKind::InvalidNcr3, 0, {}, 0}; }

  static shadow::Role root_role(const Context& ctx, const Caps&) {
    shadow::Role r;
    r.set_level(ctx.levels()).set_access(x86::gpte::kAccAll).set_guest_mode(true).set_efer_nx(ctx.pointer().nxe);
    return r.set_npt(true);
  }
  static Result<Context, PointerError> context_of(Gfn root, shadow::Role role, const Caps& caps) {
    return Context::from({gpa_of(root).raw(), role.level() == 5, role.efer_nx()}, caps);
  }

  using Path = x86::WalkPath;
  // L1's nested tables walked for `l2_gpa` as a user access (A/D set per options), the entries
  // used in `path`.
  template <class M>
  static Result<L1Walk, Fault> walk(const Context& ctx, M& tables, Gpa l2_gpa, AccessKind op,
                                    x86::WalkOptions options, Path& path) {
    // The walker translates canonical linear addresses: the gpa's top input bit sign-extended.
    const unsigned bits = ctx.levels() == 5 ? 57 : 48;
    const unsigned unused = 64 - bits;
    const auto input = static_cast<std::uint64_t>(static_cast<std::int64_t>(l2_gpa.raw() << unused) >> unused);
    const auto t = x86::walk(ctx.paging(), tables, Gva(input), Access{op, true, false}, options, path);
    if (!t) {
      // Never GeneralProtection: the input is canonical.
      const bool unreadable = t.error().kind == x86::WalkFaultKind::TableUnreadable;
      return Unexpected{NptFault{unreadable ? NptFaultKind::TableUnreadable : NptFaultKind::Npf,
                                 unreadable ? 0 : t.error().error_code | npf::kFinal, l2_gpa, t.error().level}};
    }
    return L1Walk{t->gpa, t->page_size, t->level, true, t->writable, !t->nx, !x86::gpte::D::get(t->entry)};
  }
  // What the entry at `level` grants (role access bits), and the table it points to (above the
  // leaf: where the walk read the next level's entry).
  static std::uint8_t rights(const Path& path, unsigned level) { return path[level].rights; }
  static Gfn table(const Path& path, unsigned level) { return gfn_of(path[level - 1].address); }
};

}  // namespace vmmu::nested
