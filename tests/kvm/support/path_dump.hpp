#pragma once
// The entries a 64-bit walk of `gva` meets, printed one per level, for mismatch reports.
// It follows P, PS (at PD and PDPT) and the table address only -- no reserved-bit or
// permission rule -- so it shows the raw path whichever walker is right.

#include <cstdint>
#include <string>

#include <fmt/format.h>

#include "kvm/support/x86_entry.hpp"
#include "vmmu/pt/format.hpp"
#include "vmmu/pt/geometry.hpp"
#include "vmmu/pt/walk.hpp"

namespace vmmu::test::kvm {

struct PathFormat {
  using Entry = std::uint64_t;
  using Input = Gva;
  using Output = Gpa;
  pt::Geometry g;
  explicit PathFormat(unsigned levels) : g(pt::Geometry::uniform(levels, 12, 9, 9, 8)) {}
  [[nodiscard]] const pt::Geometry& geometry() const { return g; }
  [[nodiscard]] bool present(Entry e, unsigned) const { return x86e::Present::get(e); }
  [[nodiscard]] bool leaf(Entry e, unsigned level) const { return level == 1 || (level <= 3 && x86e::PageSize::get(e)); }
  [[nodiscard]] Gpa table_address(Entry e, unsigned) const { return Gpa(x86e::Address::bits(e)); }
  [[nodiscard]] Gpa leaf_address(Entry e, unsigned) const { return Gpa(x86e::Address::bits(e)); }
};
static_assert(pt::Format<PathFormat>);

// Errors: none; an unbacked table ends the dump with a line saying so.
template <class M>
  requires pt::TableMemory<M, Gpa>
std::string dump_path(M& memory, Gpa root, Gva gva, unsigned levels) {
  std::string out;
  const PathFormat format(levels);
  const auto end = pt::walk(format, memory, root, gva.raw(), [&](pt::Step<PathFormat>& s) {
    out += fmt::format("    L{} [{:3}] at gpa:{:#x} = {:#018x}\n", s.level, format.geometry().index(gva.raw(), s.level),
                       s.entry_address.raw(), s.entry);
    return pt::Visit::Continue;
  });
  if (end.end == pt::WalkEnd::Unreadable) {
    out += fmt::format("    L{} table at gpa:{:#x} is not backed\n", end.level, end.entry_address.align_down(kPageSize).raw());
  }
  return out;
}

}  // namespace vmmu::test::kvm
