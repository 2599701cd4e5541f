#pragma once
// Memory references of a page walk, in closed form (no caches).
//
// A native walk reads one entry per level from the root down to the leaf: g references.
// A two-dimensional walk (guest tables through EPT / NPT) translates every guest table
// address and the final guest-physical address through the nested tables, n references each:
//
//   guest entry reads:   g                      +-----------+ x (g + 1) nested walks
//   nested walks:        (g + 1) * n            | CR3 -> L4 -> ... -> leaf -> gpa
//   total:               (g + 1) * (n + 1) - 1  +-----------+
//
// 4-level guest over 4-level EPT, 4 KiB pages both: 24. Guest 2 MiB pages (g = 3): 19; both
// 2 MiB: 15; guest 1 GiB pages (g = 2): 14; 5-level over 5-level: 35 (Bhargava et al.,
// ASPLOS 2008; Gandhi et al., MICRO 2014).

namespace vmmu::tlb {

// Entries a walk reads with `levels` levels when the leaf is at `leaf_level` (1: 4 KiB).
constexpr unsigned walk_entries(unsigned levels, unsigned leaf_level) { return levels - leaf_level + 1; }

// References of a two-dimensional walk reading `guest` guest entries and `nested` entries per
// nested walk; `nested` = 0 is a native (or shadow) walk.
constexpr unsigned two_dimensional_refs(unsigned guest, unsigned nested) { return (guest + 1) * (nested + 1) - 1; }

static_assert(two_dimensional_refs(walk_entries(4, 1), walk_entries(4, 1)) == 24);
static_assert(two_dimensional_refs(walk_entries(4, 2), walk_entries(4, 1)) == 19);
static_assert(two_dimensional_refs(walk_entries(4, 2), walk_entries(4, 2)) == 15);
static_assert(two_dimensional_refs(walk_entries(4, 3), walk_entries(4, 1)) == 14);
static_assert(two_dimensional_refs(walk_entries(5, 1), walk_entries(5, 1)) == 35);
static_assert(two_dimensional_refs(walk_entries(4, 1), 0) == 4);

}  // namespace vmmu::tlb
