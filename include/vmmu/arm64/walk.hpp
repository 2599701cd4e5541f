#pragma once
// The stage-2 walker: Ipa -> output physical address (Hpa), with the checks and hardware
// updates of Arm ARM D8 as the pseudocode orders them (AArch64.S2Translate, AArch64.S2Walk):
//
//   1. setup: T0SZ / SL0 unusable                      -> translation fault, level 0
//   2. IPA above the IPA size (AArch64.IPAIsOutOfRange) -> translation fault, level 0
//   3. first descriptor address above the output size  -> address-size fault, level 0
//   4. per level: invalid or reserved descriptor       -> translation fault at that level
//                 table address above the output size  -> address-size fault at the table's level
//   5. leaf: output address above the output size      -> address-size fault at the leaf's level
//            AF = 0 and VTCR_EL2.HA = 0                 -> access-flag fault
//            S2AP / XN forbid the access                -> permission fault
//   6. no fault: with HA set AF, with HA+HD and DBM set S2AP[1] on a write, by compare-exchange
//      of the leaf (a lost race re-walks, as AArch64.S2Translate repeats the walk).
//
// Levels are Arm's (-1..3; -1 only for a 4K walk started there with FEAT_LPA2). Faults are
// values; the walk never fails otherwise.

#include <cstdint>
#include <optional>
#include <string_view>

#include "vmmu/arm64/descriptor.hpp"
#include "vmmu/arm64/stage2.hpp"
#include "vmmu/core/access.hpp"
#include "vmmu/core/address.hpp"
#include "vmmu/core/result.hpp"
#include "vmmu/pt/walk.hpp"

namespace vmmu::arm64 {

enum class FaultKind : std::uint8_t {
  Translation,
  AccessFlag,
  Permission,
  AddressSize,
  // A table lies in memory the TableMemory cannot read (synchronous external abort on a
  // translation table walk, DFSC 0b0101LL); never happens with SparseMemory.
  ExternalAbort,
};

// "translation", "access_flag", "permission", "address_size", "external_abort"
std::string_view to_string(FaultKind k);

struct Fault {
  FaultKind kind = FaultKind::Translation;
  int level = 0;  // Arm numbering, -1..3
  friend constexpr bool operator==(const Fault&, const Fault&) = default;
};

// ESR_EL2 DFSC/IFSC for the fault (Arm ARM D19 ESR_ELx, ISS encoding for a Data Abort):
// 0b0000LL address size, 0b0001LL translation, 0b0010LL access flag, 0b0011LL permission,
// 0b0101LL external abort on walk; at level -1: 0x29 address size, 0x2B translation, 0x13
// external abort on walk.
std::uint32_t fault_status_code(Fault f);

struct Translation {
  Hpa pa;                   // output address of the byte
  std::uint64_t block_size; // bytes the leaf maps: page or block
  int level;                // Arm level of the leaf
  bool readable;            // S2AP[0]
  bool writable;            // S2AP[1] as the walk left it (after a hardware dirty update)
  bool executable;          // !XN
  friend constexpr bool operator==(const Translation&, const Translation&) = default;
};

struct WalkOptions {
  // Write AF / dirty state back when HA / HD ask for it (false: leave memory untouched and
  // translate as if the update had happened, e.g. for read-only images).
  bool update_descriptors = true;
};

namespace detail {

inline bool permitted(const Stage2& s2, std::uint64_t leaf, AccessKind access) {
  switch (access) {
    case AccessKind::Read: return desc::S2apRead::get(leaf);
    // With HA and HD, DBM = 1 makes a write-protected ("writable-clean") leaf writable: the
    // walk sets S2AP[1] instead of faulting (Arm ARM D8 "Hardware management of the dirty state").
    case AccessKind::Write: return desc::S2apWrite::get(leaf) || (s2.hardware_dirty() && desc::Dbm::get(leaf));
    // Stage-2 instruction fetches check only XN (execute-only mappings exist at stage 2).
    case AccessKind::Fetch: return !desc::Xn::get(leaf);
  }
  return false;
}

}  // namespace detail

// Translate `ipa` for one `access` through the stage-2 tables in `memory`.
// Errors: a Fault value (kind + Arm level) whenever the architecture would report a stage-2
// abort; nothing else can fail.
template <class M>
  requires pt::TableMemory<M, Hpa>
Result<Translation, Fault> walk(const Stage2& s2, M& memory, Ipa ipa, AccessKind access, WalkOptions options = {}) {
  using Entry = std::uint64_t;
  if (s2.setup_fault() || !s2.input_in_range(ipa)) return Unexpected{Fault{FaultKind::Translation, 0}};
  const Stage2Format& f = s2.format();
  const pt::Geometry& g = f.geometry();
  if (!s2.output_in_range(pt::entry_address<Stage2Format>(s2.root(), g.index(ipa.raw(), g.root_level())))) {
    return Unexpected{Fault{FaultKind::AddressSize, 0}};
  }
  for (;;) {
    std::optional<Fault> fault;
    const pt::WalkResult<Stage2Format> r =
        pt::walk(f, memory, s2.root(), ipa.raw(), [&](const pt::Step<Stage2Format>& step) {
          if (f.type(step.entry, step.level) == desc::Type::Table &&
              !s2.output_in_range(f.table_address(step.entry, step.level))) {
            fault = Fault{FaultKind::AddressSize, arm_level(step.level)};
            return pt::Visit::Stop;
          }
          return pt::Visit::Continue;
        });
    const int level = arm_level(r.level);
    switch (r.end) {
      case pt::WalkEnd::Stopped: return Unexpected{*fault};
      case pt::WalkEnd::NotPresent: return Unexpected{Fault{FaultKind::Translation, level}};
      case pt::WalkEnd::Unreadable: return Unexpected{Fault{FaultKind::ExternalAbort, level}};
      case pt::WalkEnd::Leaf: break;
    }
    const Entry leaf = r.entry;
    const Hpa base = f.leaf_address(leaf, r.level);
    if (!s2.output_in_range(base)) return Unexpected{Fault{FaultKind::AddressSize, level}};
    if (!desc::AccessFlag::get(leaf) && !s2.hardware_access_flag()) {
      return Unexpected{Fault{FaultKind::AccessFlag, level}};
    }
    if (!detail::permitted(s2, leaf, access)) return Unexpected{Fault{FaultKind::Permission, level}};

    Entry updated = leaf;
    if (s2.hardware_access_flag()) updated |= desc::AccessFlag::mask;
    if (access == AccessKind::Write && s2.hardware_dirty() && desc::Dbm::get(leaf)) updated |= desc::S2apWrite::mask;
    if (updated != leaf && options.update_descriptors) {
      Entry expected = leaf;
      // Another agent changed the leaf since we read it: walk again with what is there now.
      if (!memory.template compare_exchange<Entry>(r.entry_address, expected, updated)) continue;
    }
    const std::uint64_t size = g.span(r.level);
    return Translation{base + ipa.offset_in(size), size, level, desc::S2apRead::get(updated),
                       desc::S2apWrite::get(updated), !desc::Xn::get(updated)};
  }
}

}  // namespace vmmu::arm64
