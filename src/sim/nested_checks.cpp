// vm.nested's refusals: what an L2 guest of the modelled L1 cannot do (docs/scenario-format.md).

#include "nested_checks.hpp"

#include <fmt/format.h>

namespace vmmu::sim {

std::optional<ScenarioError> check_nested(const Scenario& s) {
  if (!s.vm.nested) return std::nullopt;
  if (s.vm.dirty_ring_size != 0)
    return ScenarioError{"vm.dirty_ring_size",
                         "under vm.nested L2's writes are logged in L1's dirty bitmaps (the nested MMU has no "
                         "rings): expected 0"};
  const char* tables = s.vm.nested->kind == NestedKind::Npt ? "nested page tables" : "EPT";
  const std::vector<std::uint64_t> bases = memslot_bases(s);
  for (std::size_t i = 0; i < s.memslots.size(); ++i) {
    if (bases[i] + s.memslots[i].size > kNestedMemoryLimit)
      return ScenarioError{fmt::format("memslots[{}].gpa", i),
                           fmt::format("under vm.nested L2's memory is mapped by L1's 4-level {}: the slot must end by "
                                       "{:#x}, not {:#x}",
                                       tables, kNestedMemoryLimit, bases[i] + s.memslots[i].size)};
  }
  for (std::size_t i = 0; i < s.phases.size(); ++i) {
    const std::string at = fmt::format("phases[{}]", i);
    switch (s.phases[i].kind()) {
      case PhaseKind::SmepStorm:
      case PhaseKind::Fork:
      case PhaseKind::RewriteTables:
      case PhaseKind::Cr3Switch:
        return ScenarioError{at, fmt::format("{} runs a guest kernel on its own page tables, which vm.nested does not "
                                             "model in L2 (L2 runs with paging off): drop the phase or vm.nested",
                                             to_string(s.phases[i].kind()))};
      case PhaseKind::Conversion:
        return ScenarioError{at, "conversion is a verb of L0's TDP MMU, which L2's memory (shadowed EPT) does not "
                                 "have: drop the phase or vm.nested"};
      case PhaseKind::Migration:
        if (std::get<MigrationPhase>(s.phases[i].params).harvest_while_writing)
          return ScenarioError{at + ".harvest_while_writing",
                               "under vm.nested L2's vCPUs store through host pointers after the nested MMU's lock "
                               "is released, so a harvest while they write could miss a store: expected false"};
        break;
      default:
        break;
    }
  }
  return std::nullopt;
}

}  // namespace vmmu::sim
