#pragma once
// The entry formats of vmmu's own two-dimensional-paging tables (GPA -> host memory), as one
// pt::OwnedFormat configured per VM:
//
//   Intel EPT (SDM vol. 3C, 29.3.2): R/W/X in bits 2:0, memory type 5:3 (WB), ignore-PAT 6,
//     PS 7, A 8 / D 9 when the EPTP enables A/D, suppress-#VE 63 in MMIO markers (an access
//     to emulated MMIO exits to the VMM even when the guest enabled #VE). Bit layout:
//     vmmu/x86/ept_entry.hpp. Empty entries are 0 in both formats.
//   AMD NPT (APM vol. 2, 15.25.5): ordinary x86-64 entries; the U/S bit is set in every entry
//     (nested walks are user accesses), NX 63 for non-executable leaves, A 5 / D 6 always
//     maintained by the hardware. Bit layout: vmmu/x86/guest_entry.hpp.
//
// Both are 4- or 5-level with 512 entries of 8 bytes, 2M leaves at level 2 and 1G leaves at
// level 3 (when the host supports them). A format is a set of masks built once, so every
// operation is the same few ANDs and ORs whichever format the VM chose.
//
// vmmu's software bits (vmmu/tdp/spte_bits.hpp) live in bits both formats ignore.

#include <cstdint>
#include <string_view>

#include "vmmu/core/address.hpp"
#include "vmmu/pt/geometry.hpp"
#include "vmmu/pt/owned_format.hpp"
#include "vmmu/tdp/spte_bits.hpp"
#include "vmmu/x86/ept_entry.hpp"
#include "vmmu/x86/guest_entry.hpp"

namespace vmmu::tdp {

enum class TdpKind : std::uint8_t { Ept, Npt };
std::string_view to_string(TdpKind k);

struct TdpFormatOptions {
  TdpKind kind = TdpKind::Ept;
  unsigned levels = 4;     // 4 or 5
  bool ad_bits = true;     // EPT: EPTP[6] (NPT always has them)
  bool pages_1g = true;    // host supports 1 GiB leaves
};

class TdpFormat {
 public:
  using Entry = std::uint64_t;
  using Input = Gpa;
  using Output = Hpa;

  TdpFormat() : TdpFormat(TdpFormatOptions{}) {}
  explicit TdpFormat(const TdpFormatOptions& o);

  [[nodiscard]] const TdpFormatOptions& options() const { return o_; }
  [[nodiscard]] TdpKind kind() const { return o_.kind; }
  [[nodiscard]] bool ad_bits() const { return o_.ad_bits; }

  // ---- pt::Format ----
  [[nodiscard]] const pt::Geometry& geometry() const { return geometry_; }
  [[nodiscard]] bool present(Entry e, unsigned) const { return (e & present_) != 0; }
  [[nodiscard]] bool leaf(Entry e, unsigned level) const { return level == 1 || (e & kPs) != 0; }
  [[nodiscard]] Hpa table_address(Entry e, unsigned) const { return Hpa(e & kAddr); }
  [[nodiscard]] Hpa leaf_address(Entry e, unsigned level) const {
    return Hpa(e & kAddr & ~(geometry_.span(level) - 1));
  }

  // ---- pt::OwnedFormat ----
  [[nodiscard]] Entry make_leaf(Hpa a, unsigned level, pt::LeafAttrs at) const {
    Entry e = (a.raw() & kAddr) | leaf_fixed_ | (level > 1 ? kPs : 0);
    if (at.read) e |= read_;
    if (at.write) e |= write_;
    e |= at.exec ? exec_ : no_exec_;
    if (at.accessed) e |= accessed_;
    if (at.dirty) e |= dirty_;
    return e;
  }
  [[nodiscard]] Entry make_table(Hpa a, unsigned) const { return (a.raw() & kAddr) | table_fixed_; }
  [[nodiscard]] pt::LeafAttrs leaf_attrs(Entry e, unsigned) const {
    pt::LeafAttrs at;
    at.read = (e & read_) != 0;
    at.write = (e & write_) != 0;
    at.exec = exec_ != 0 ? (e & exec_) != 0 : (e & no_exec_) == 0;
    // Without A/D bits every mapping counts as accessed: aging then zaps (see TdpMmu::age).
    at.accessed = accessed_ == 0 || (e & accessed_) != 0;
    at.dirty = (e & dirty_) != 0;
    at.device = false;
    return at;
  }
  [[nodiscard]] bool block_allowed(unsigned level) const { return level == 2 || (level == 3 && o_.pages_1g); }
  // x86 needs no break-before-make: a present entry may be replaced by another in one store
  // and the TLB flushed after (SDM vol. 3A, 4.10.4.3; KVM's TDP MMU does the same).
  [[nodiscard]] bool needs_break_before_make(Entry, Entry, unsigned) const { return false; }
  [[nodiscard]] Entry frozen_entry() const { return spte::kFrozen; }

  // ---- what vmmu needs beyond the engine ----
  [[nodiscard]] Entry write_bit() const { return write_; }
  [[nodiscard]] Entry accessed_bit() const { return accessed_; }  // 0 without A/D
  [[nodiscard]] Entry dirty_bit() const { return dirty_; }        // 0 without A/D
  // An MMIO marker: a not-present entry remembering that `gpa` had no memslot in memslot
  // generation `generation` (KVM's MMIO SPTE). The fault path answers a repeated access from
  // it without a memslot lookup while the generation still matches.
  [[nodiscard]] Entry make_mmio(std::uint64_t generation) const {
    return mmio_fixed_ | spte::kMmioTag | spte::MmioGeneration::set(0, generation & spte::kMmioGenerationMask);
  }
  [[nodiscard]] static bool is_mmio(Entry e) { return (e & spte::kMmioTag) != 0; }
  [[nodiscard]] static bool mmio_current(Entry e, std::uint64_t generation) {
    return is_mmio(e) && spte::MmioGeneration::get(e) == (generation & spte::kMmioGenerationMask);
  }

  // The root-table pointer the (modelled) hardware would be given: EPTP or nCR3.
  [[nodiscard]] std::uint64_t root_pointer(Hpa root) const;

 private:
  static constexpr Entry kPs = x86::ept::PS::mask;  // bit 7 in both formats
  static constexpr Entry kAddr = x86::ept::Addr::mask;
  static_assert(x86::ept::PS::mask == x86::gpte::PS::mask && x86::ept::Addr::mask == x86::gpte::Addr::mask);

  TdpFormatOptions o_;
  pt::Geometry geometry_;
  Entry present_ = 0, read_ = 0, write_ = 0, exec_ = 0, no_exec_ = 0, accessed_ = 0, dirty_ = 0;
  Entry leaf_fixed_ = 0, table_fixed_ = 0, mmio_fixed_ = 0;
};

static_assert(pt::OwnedFormat<TdpFormat>);

}  // namespace vmmu::tdp
