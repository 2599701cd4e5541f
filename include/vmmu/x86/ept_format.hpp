#pragma once
// EPT tables as a pt::Format (Input = Gpa, Output = the space the tables live in: Gpa for a
// nested guest's EPT in L1 memory, Hpa for vmmu's own tables). A view of ept::EntryChecks.
//
//   EptFormat<Out, 4>  PML4 -> PDPT (1 GiB leaves) -> PD (2 MiB leaves) -> PT, 512 entries each
//   EptFormat<Out, 5>  PML5 on top

#include <cstdint>

#include "vmmu/core/address.hpp"
#include "vmmu/pt/format.hpp"
#include "vmmu/x86/ept_entry.hpp"

namespace vmmu::x86 {

template <class Out, unsigned Levels>
class EptFormat {
 public:
  using Entry = std::uint64_t;
  using Input = Gpa;
  using Output = Out;
  static constexpr unsigned kLevels = Levels;
  static constexpr pt::Geometry kGeometry = pt::Geometry::uniform(Levels, kPageShift, 9, 9, 8);

  explicit constexpr EptFormat(const ept::EntryChecks& checks) : c_(&checks) {}

  [[nodiscard]] constexpr const pt::Geometry& geometry() const { return kGeometry; }
  [[nodiscard]] constexpr const ept::EntryChecks& checks() const { return *c_; }
  [[nodiscard]] constexpr bool present(Entry e, unsigned /*level*/) const { return ept::present(e); }
  [[nodiscard]] constexpr bool leaf(Entry e, unsigned level) const { return c_->leaf(e, level); }
  [[nodiscard]] constexpr Out table_address(Entry e, unsigned /*level*/) const { return Out(ept::Addr::bits(e)); }
  [[nodiscard]] constexpr Out leaf_address(Entry e, unsigned level) const {
    return Out(ept::Addr::bits(e) & ~(kGeometry.span(level) - 1));
  }
  [[nodiscard]] constexpr std::uint64_t page_size(unsigned level) const { return kGeometry.span(level); }
  [[nodiscard]] constexpr bool misconfigured(Entry e, unsigned level) const { return c_->misconfigured(e, level); }

 private:
  const ept::EntryChecks* c_;
};

static_assert(pt::Format<EptFormat<Gpa, 4>> && pt::Format<EptFormat<Hpa, 5>>);
static_assert(EptFormat<Hpa, 4>::kGeometry.input_bits() == 48 && EptFormat<Hpa, 5>::kGeometry.input_bits() == 57);

}  // namespace vmmu::x86
