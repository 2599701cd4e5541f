#pragma once
// What the radix-table engine needs to know about a page-table format, as a concept.
//
// A format is a small (often runtime-configured) object: entry width, geometry, and how to
// read an entry -- present? a leaf (maps memory) or a pointer to the next table? which
// address does it hold? Permission rules, reserved bits and A/D policy belong to the users
// of the engine (the x86 walker, the MMUs), not to the engine.

#include <concepts>
#include <cstdint>
#include <optional>

#include "vmmu/pt/geometry.hpp"

namespace vmmu::pt {

template <class F>
concept Format = requires(const F& f, typename F::Entry e, unsigned level) {
  typename F::Entry;     // std::uint32_t or std::uint64_t
  typename F::Input;     // address space translated (Gva, Gpa, Ipa)
  typename F::Output;    // address space of tables and leaves (Gpa, Hpa)
  requires std::same_as<typename F::Entry, std::uint32_t> || std::same_as<typename F::Entry, std::uint64_t>;
  { f.geometry() } -> std::convertible_to<const Geometry&>;
  { f.present(e, level) } -> std::same_as<bool>;
  // Only asked of present entries: does this entry map memory (rather than point to a table)?
  { f.leaf(e, level) } -> std::same_as<bool>;
  // Only asked of present non-leaf entries: the next table's address.
  { f.table_address(e, level) } -> std::same_as<typename F::Output>;
  // Only asked of present leaves: the base of the frame or block it maps.
  { f.leaf_address(e, level) } -> std::same_as<typename F::Output>;
};

// Where tables live: guest memory through memslots, a case file's sparse memory, a memory
// image, or the table pages vmmu owns. Reads of memory that is not backed give nullopt;
// compare_exchange returns false and reloads `expected` when the entry changed (0 if it is
// no longer backed). Entries are read and written atomically: another CPU may be updating them.
template <class M, class A>
concept TableMemory = requires(M& m, A addr, std::uint64_t& e64, std::uint32_t& e32) {
  { m.template read<std::uint64_t>(addr) } -> std::same_as<std::optional<std::uint64_t>>;
  { m.template read<std::uint32_t>(addr) } -> std::same_as<std::optional<std::uint32_t>>;
  { m.template compare_exchange<std::uint64_t>(addr, e64, std::uint64_t{}) } -> std::same_as<bool>;
  { m.template compare_exchange<std::uint32_t>(addr, e32, std::uint32_t{}) } -> std::same_as<bool>;
};

}  // namespace vmmu::pt
