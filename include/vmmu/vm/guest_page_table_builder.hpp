#pragma once
// GuestPageTableBuilder: writes a guest's own 4- or 5-level page tables into its memory, as a
// guest kernel would at boot, so vCPUs have something to walk (tests, scenarios).
//
//   builder = create(vm, pool = [gpa range for table pages], levels)     root at pool.begin
//   builder.map(gva range -> gpa, 4K / 2M / 1G pages, flags)              tables on demand
//   vcpu.set_registers(long_mode_registers(builder.root(), levels))
//
// Tables are walked with the engine (pt::walk over the guest's x86 format) and every entry is
// read and exchanged through a pt::TableMemory over Vm::read / Vm::write -- the VMM's path, so
// table pages are faulted in and logged dirty like any device write -- or, for a builder made
// over a vCPU, over its guest-physical accesses: the guest kernel's own writes, which a shadow
// MMU emulates or lets go unsync as a guest's (replay's guest kernel model). Non-leaf entries grant
// everything (P|RW|US): the leaf's flags decide. New table pages are zeroed when taken.
// One builder per address space; not thread-safe.

#include <cstdint>
#include <optional>
#include <string_view>

#include "vmmu/core/address.hpp"
#include "vmmu/core/result.hpp"
#include "vmmu/x86/guest_paging.hpp"
#include "vmmu/x86/registers.hpp"

namespace vmmu::vm {

class Vm;
class Vcpu;

struct GuestPageFlags {
  bool writable = true;
  bool user = false;
  bool nx = false;      // XD (needs EFER.NXE to mean anything; reserved otherwise)
  bool global = false;  // G (needs CR4.PGE)
  bool accessed = false;
  bool dirty = false;
  std::uint8_t key = 0;  // protection key (bits 62:59; used with CR4.PKE)
};

enum class BuildError : std::uint8_t {
  BadLevels,      // levels other than 4 or 5
  BadPageSize,    // page size other than 4 KiB, 2 MiB, 1 GiB
  Misaligned,     // gva, gpa or size not a multiple of the page size; pool not page-aligned
  NonCanonical,   // gva range not canonical for the level count
  PoolExhausted,  // no table page left in the pool
  Conflict,       // a huge leaf is where a table is needed, or a table where a huge leaf goes
  Memory,         // Vm::read / Vm::write exited (no memslot behind the pool, ...)
};
std::string_view to_string(BuildError e);

class GuestPageTableBuilder {
 public:
  // Takes the root table from the pool. Errors: BadLevels, Misaligned, PoolExhausted, Memory.
  static Result<GuestPageTableBuilder, BuildError> create(Vm& vm, Range<Gpa> pool, unsigned levels = 4);
  // The same, every table access made by `vcpu` (Vcpu::read_gpa / write_gpa), as its guest would.
  static Result<GuestPageTableBuilder, BuildError> create(Vcpu& vcpu, Range<Gpa> pool, unsigned levels = 4);

  [[nodiscard]] Gpa root() const { return root_; }
  [[nodiscard]] unsigned levels() const { return levels_; }
  [[nodiscard]] std::uint64_t tables_used() const { return tables_; }

  // Maps [gva, gva + bytes) to [gpa, gpa + bytes) with pages of `page_size`, replacing leaves
  // of the same size already there. Errors: BadPageSize, Misaligned, NonCanonical,
  // PoolExhausted, Conflict, Memory (entries written before the error stay).
  Status<BuildError> map(Gva gva, Gpa gpa, std::uint64_t bytes, std::uint64_t page_size, GuestPageFlags flags = {});

  // Clears the leaves of [gva, gva + bytes) (`page_size` as mapped); tables stay.
  // Errors: as map.
  Status<BuildError> unmap(Gva gva, std::uint64_t bytes, std::uint64_t page_size);

  // Guest-physical address of the entry translating `gva` at `level` (tables above created),
  // for tests that set bits by hand. Errors: NonCanonical, PoolExhausted, Conflict, Memory.
  Result<Gpa, BuildError> entry_address(Gva gva, unsigned level);

  // The 64-bit entry a leaf of `level` with `flags` mapping `gpa` would hold.
  static std::uint64_t leaf_entry(Gpa gpa, unsigned level, GuestPageFlags flags);

 private:
  GuestPageTableBuilder(Vm& vm, Vcpu* vcpu, Range<Gpa> pool, unsigned levels)
      : vm_(&vm), vcpu_(vcpu), pool_(pool), next_(pool.begin), levels_(levels) {}
  static Result<GuestPageTableBuilder, BuildError> create(Vm& vm, Vcpu* vcpu, Range<Gpa> pool, unsigned levels);
  Result<Gpa, BuildError> take_table();
  // The registers' view of these tables (format, canonical addresses) for the engine's walk.
  [[nodiscard]] x86::GuestPaging paging() const;
  Status<BuildError> check(Gva gva, std::uint64_t bytes, std::uint64_t page_size) const;
  // Writes the leaves of [gva, gva + bytes): mapping from `gpa`, or empty when nullopt.
  Status<BuildError> set_leaves(Gva gva, std::uint64_t bytes, std::uint64_t page_size, std::optional<Gpa> gpa,
                                GuestPageFlags flags);

  Vm* vm_;
  Vcpu* vcpu_;  // null: tables written through the VMM's path
  Range<Gpa> pool_;
  Gpa next_;
  Gpa root_;
  unsigned levels_;
  std::uint64_t tables_ = 0;
};

// Registers of a long-mode guest with paging on, CR0.WP, EFER.NXE, and `cr3` as its root
// (CR4.LA57 when levels is 5): what a 64-bit kernel runs with.
x86::Registers long_mode_registers(Gpa cr3, unsigned levels = 4);

}  // namespace vmmu::vm
