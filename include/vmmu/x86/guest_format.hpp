#pragma once
// The x86 guest page-table formats as pt::Format types (Input = Gva, Output = Gpa), one class
// template instantiated per paging mode:
//
//   Format32   2 levels x 1024 4-byte entries   (CR4.PSE: 4 MiB leaves at level 2, PSE-36)
//   FormatPae  3 levels, a 4-entry root (the PDPTEs at CR3[31:5]) then 512 8-byte entries
//   Format4    4 levels x 512 8-byte entries    (2 MiB leaves at level 2, 1 GiB at level 3)
//   Format5    5 levels x 512 8-byte entries    (CR4.LA57)
//
// A format object is a view of a GuestFormatConfig that GuestPaging precomputes from the
// registers: the reserved-bit masks per level and PS value, which levels may hold leaves,
// and whether XD and protection keys are in effect. The walker and every range iteration
// (`vmmu maps`) use the same decoders below, so they agree on what is a mapping.

#include <array>
#include <cstdint>

#include "vmmu/core/address.hpp"
#include "vmmu/pt/format.hpp"
#include "vmmu/pt/geometry.hpp"
#include "vmmu/x86/guest_entry.hpp"

namespace vmmu::x86 {

struct GuestFormatConfig {
  // rsvd[level][ps]: bits that must be 0 in a present entry at `level` whose bit 7 is `ps`
  // (KVM's rsvd_bits_mask[bit7][level], level-major so that the walk indexes it with the PS
  // bit shifted in place). A PS bit that is itself reserved at a level (PML4E/PML5E, PDPTE
  // without 1 GiB pages, PAE PDPTE) is part of rsvd[level][1].
  std::array<std::array<std::uint64_t, 2>, pt::kMaxLevels + 1> rsvd{};
  // implied[level]: bits ORed into every entry at `level` (after XD is inverted into an
  // "executable" bit) before the walk ANDs its entries, so that one AND per level yields the
  // rights and the A bits of the path: rights a level cannot deny (PAE PDPTEs have no R/W,
  // U/S, XD or A; without NX, XD never denies execution).
  std::array<std::uint64_t, pt::kMaxLevels + 1> implied{};
  std::uint8_t leaf_levels = 0;   // bit L: PS = 1 at level L maps a page
  std::uint8_t pdpte_levels = 0;  // bit L: level L holds PAE PDPTEs (no R/W, U/S, XD, A bits)
  bool nx = false;                // XD in effect: EFER.NXE in PAE / long mode
  bool protection_keys = false;   // PK field in effect: CR4.PKE in 4/5-level paging
};

template <class E, unsigned Levels, unsigned RootBits, unsigned BitsPerLevel>
class GuestFormat {
 public:
  using Entry = E;
  using Input = Gva;
  using Output = Gpa;
  static constexpr unsigned kLevels = Levels;
  static constexpr pt::Geometry kGeometry = pt::Geometry::uniform(Levels, kPageShift, BitsPerLevel, RootBits, sizeof(E));

  explicit constexpr GuestFormat(const GuestFormatConfig& config) : c_(&config) {}

  [[nodiscard]] constexpr const pt::Geometry& geometry() const { return kGeometry; }
  [[nodiscard]] constexpr const GuestFormatConfig& config() const { return *c_; }

  [[nodiscard]] constexpr bool present(E e, unsigned /*level*/) const { return gpte::P::get(e); }
  // PS=1 maps a page only where the mode allows it (32-bit paging: only with CR4.PSE; PS in a
  // 32-bit PDE without PSE is ignored). Where PS is reserved, `reserved()` says so first.
  [[nodiscard]] constexpr bool leaf(E e, unsigned level) const {
    return level == 1 || (gpte::PS::get(e) && ((c_->leaf_levels >> level) & 1u) != 0);
  }
  [[nodiscard]] constexpr Gpa table_address(E e, unsigned /*level*/) const {
    if constexpr (sizeof(E) == 4) {
      return Gpa(gpte::Addr32::bits(e));
    } else {
      return Gpa(gpte::Addr::bits(e));
    }
  }
  // Base of the frame a present leaf maps (bits of a large page's PAT / reserved field dropped).
  [[nodiscard]] constexpr Gpa leaf_address(E e, unsigned level) const {
    if (level == 1) return table_address(e, level);
    if constexpr (sizeof(E) == 4) {
      // PSE-36 (Intel SDM 4.3): PDE bits 20:13 are PA bits 39:32; bits beyond MAXPHYADDR are reserved.
      return Gpa(gpte::Addr32Large::bits(e) | (gpte::Pse36::get(e) << 32));
    } else {
      return Gpa(gpte::Addr::bits(e) & ~(kGeometry.span(level) - 1));
    }
  }
  [[nodiscard]] constexpr std::uint64_t page_size(unsigned level) const { return kGeometry.span(level); }

  // Reserved bits set in a present entry (nonzero: a walk through it faults with RSVD).
  [[nodiscard]] constexpr std::uint64_t reserved_bits(E e, unsigned level) const {
    return std::uint64_t{e} & c_->rsvd[level][(std::uint64_t{e} >> gpte::PS::position) & 1u];
  }
  [[nodiscard]] constexpr bool reserved(E e, unsigned level) const { return reserved_bits(e, level) != 0; }
  // The same for an entry whose PS bit the caller has already read as `ps`.
  [[nodiscard]] constexpr bool reserved_with_ps(E e, unsigned level, unsigned ps) const {
    return (std::uint64_t{e} & c_->rsvd[level][ps]) != 0;
  }

  // An entry's share of the walk's path word: the walk ANDs these over the entries it uses;
  // rights() of the result is the walk's rights and its A bit says whether all A bits are set.
  [[nodiscard]] constexpr std::uint64_t path_word(E e, unsigned level) const {
    return (std::uint64_t{e} ^ gpte::XD::mask) | c_->implied[level];
  }
  // Rights (gpte::kAcc* bits) a path word grants: R/W and U/S in place, executable from ~XD.
  [[nodiscard]] static constexpr std::uint8_t rights(std::uint64_t path) {
    static_assert(gpte::RW::mask == gpte::kAccWrite && gpte::US::mask == gpte::kAccUser && gpte::XD::position == 63);
    return static_cast<std::uint8_t>((path & (gpte::RW::mask | gpte::US::mask)) | (path >> 63));
  }
  // Rights this entry grants (gpte::kAcc* bits); the walk's rights are the AND over its path.
  [[nodiscard]] constexpr std::uint8_t access(E e, unsigned level) const { return rights(path_word(e, level)); }
  [[nodiscard]] constexpr bool has_accessed_bit(unsigned level) const { return ((c_->pdpte_levels >> level) & 1u) == 0; }

  // Single-bit decoders.
  [[nodiscard]] static constexpr bool user(E e) { return gpte::US::get(e); }
  [[nodiscard]] static constexpr bool writable(E e) { return gpte::RW::get(e); }
  [[nodiscard]] static constexpr bool ps(E e) { return gpte::PS::get(e); }
  [[nodiscard]] static constexpr bool accessed(E e) { return gpte::A::get(e); }
  [[nodiscard]] static constexpr bool dirty(E e) { return gpte::D::get(e); }
  [[nodiscard]] static constexpr bool global(E e) { return gpte::G::get(e); }
  // XD as the walk sees it: false when NX is not in effect (then a set XD is reserved).
  [[nodiscard]] constexpr bool xd(E e) const { return c_->nx && gpte::XD::get(e); }
  // Protection key of a leaf (0 unless CR4.PKE in 4/5-level paging).
  [[nodiscard]] constexpr unsigned protection_key(E e) const {
    return c_->protection_keys ? static_cast<unsigned>(gpte::ProtKey::get(e)) : 0u;
  }

 private:
  const GuestFormatConfig* c_;
};

using Format32 = GuestFormat<std::uint32_t, 2, 10, 10>;
using FormatPae = GuestFormat<std::uint64_t, 3, 2, 9>;
using Format4 = GuestFormat<std::uint64_t, 4, 9, 9>;
using Format5 = GuestFormat<std::uint64_t, 5, 9, 9>;

static_assert(pt::Format<Format32> && pt::Format<FormatPae> && pt::Format<Format4> && pt::Format<Format5>);
static_assert(Format32::kGeometry.input_bits() == 32 && FormatPae::kGeometry.input_bits() == 32);
static_assert(Format4::kGeometry.input_bits() == 48 && Format5::kGeometry.input_bits() == 57);
static_assert(Format32::kGeometry.span(2) == 4 * 1024 * 1024 && Format4::kGeometry.span(3) == 1024 * 1024 * 1024);
static_assert(FormatPae::kGeometry.entries(3) == 4 && FormatPae::kGeometry.table_bytes(3) == 32);

}  // namespace vmmu::x86
