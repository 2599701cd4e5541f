#pragma once
// A small owned-table format for the generic layer's tests: 3 levels over 4 KiB pages,
// 16 / 16 / 32 entries (input space 32 MiB), blocks of 64 KiB at level 2 only (the root holds
// no blocks), break-before-make switchable so both policies are exercised.

#include <cstdint>

#include "vmmu/core/bits.hpp"
#include "vmmu/pt/owned_format.hpp"
#include "vmmu/pt/owned_tables.hpp"

namespace vmmu::pt::toy {

using Present = Bit<0>;
using Block = Bit<1>;  // a leaf above level 1
using Read = Bit<2>;
using Write = Bit<3>;
using Exec = Bit<4>;
using Accessed = Bit<5>;
using Device = Bit<6>;
using Frozen = Bit<7>;  // only in a not-present entry
using Address = Field<63, 8>;

static_assert(disjoint({Present::mask, Block::mask, Read::mask, Write::mask, Exec::mask, Accessed::mask,
                        Device::mask, Frozen::mask, Address::mask}));

struct HostToyFormat {
  using Entry = std::uint64_t;
  using Input = Gpa;
  using Output = Hpa;

  Geometry g = Geometry::uniform(3, 12, 4, 5, 8);
  bool break_before_make = true;

  const Geometry& geometry() const { return g; }
  bool present(Entry e, unsigned) const { return Present::get(e); }
  bool leaf(Entry e, unsigned level) const { return level == 1 || Block::get(e); }
  Hpa table_address(Entry e, unsigned) const { return Hpa(Address::bits(e)); }
  Hpa leaf_address(Entry e, unsigned) const { return Hpa(Address::bits(e)); }

  Entry make_leaf(Hpa a, unsigned level, LeafAttrs at) const {
    Entry e = Address::bits(a.raw()) | Present::mask;
    e = Block::set(e, level > 1);
    e = Read::set(e, at.read);
    e = Write::set(e, at.write);
    e = Exec::set(e, at.exec);
    e = Accessed::set(e, at.accessed);
    return Device::set(e, at.device);
  }
  Entry make_table(Hpa a, unsigned) const { return Address::bits(a.raw()) | Present::mask; }
  LeafAttrs leaf_attrs(Entry e, unsigned) const {
    return {Read::get(e), Write::get(e), Exec::get(e), Accessed::get(e), Device::get(e)};
  }
  bool block_allowed(unsigned level) const { return level == 2; }
  bool needs_break_before_make(Entry old, Entry e, unsigned level) const {
    if (!break_before_make || !present(e, level)) return false;
    return leaf(old, level) != leaf(e, level) || Address::bits(old) != Address::bits(e);
  }
  Entry frozen_entry() const { return Frozen::mask; }
};

static_assert(OwnedFormat<HostToyFormat>);

inline constexpr std::uint64_t kBlock = 64 * 1024;  // a level-2 block
inline constexpr std::uint64_t kSpace = 32 * 1024 * 1024;
// Toy tables are 128..256 bytes; the address field starts at bit 8.
inline constexpr std::size_t kToyTableAlign = 256;

inline constexpr LeafAttrs kRw{true, true, false, true, false};
inline constexpr LeafAttrs kRo{true, false, false, true, false};
inline const Hpa kOut(0x4000'0000);  // leaves are never dereferenced by the layer: any aligned value

using Tables = OwnedTables<HostToyFormat>;

// What a toy-table test starts from: the format, its table memory and TLB log.
struct ToyTablesSetup {
  static Range<Gpa> range(std::uint64_t b, std::uint64_t e) { return {Gpa(b), Gpa(e)}; }
  Tables make() { return std::move(Tables::create(f, memory, tlb).value()); }

  HostToyFormat f;
  OwnedTableMemory memory{f.g, ~std::uint64_t{0}, kToyTableAlign};
  TlbLog<Gpa> tlb;
};

}  // namespace vmmu::pt::toy
