#pragma once
// TableGenerator: random 64-bit (4- or 5-level) page-table trees written into guest RAM, and
// guest-virtual addresses that mostly follow the populated paths, for comparing walkers.
//
// A tree is a handful of table pages with a few populated entries each. Entries mix every
// bit a supervisor read can care about: present or not (non-present entries carry garbage),
// R/W, U/S (SMAP), XD (reserved without EFER.NXE), PS at every level (a leaf at PD, a 1-GiB
// leaf at PDPT, reserved at PML4 / PML5), PAT and reserved bits 13..20 / 13..29 of large
// leaves, bits at or above MAXPHYADDR, ignored and protection-key bits, random A and D.
// Tables are shared between entries and levels (also recursively: an entry may point back to
// its own table or an ancestor), and some point at guest-physical memory no memslot backs.

#include <cstdint>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "kvm/support/kvm_probe.hpp"
#include "kvm/support/ram_table_memory.hpp"
#include "vmmu/core/address.hpp"
#include "vmmu/x86/registers.hpp"

namespace vmmu::test::kvm {

struct GeneratorOptions {
  unsigned levels = 4;           // 4 or 5
  unsigned maxphyaddr = 36;      // guest MAXPHYADDR: addresses stay below, reserved bits above
  unsigned max_tables = 40;      // table pages in one tree
  unsigned min_entries = 2;      // populated entries per table
  unsigned max_entries = 8;
};

// A populated entry, as the generator wrote it (the tables themselves may since have their
// A bits set by a walk).
struct GeneratedEntry {
  unsigned index;
  std::uint64_t value;
  bool has_child;  // points at a table page of this tree
  Gpa child;
};

struct GeneratedTable {
  Gpa page;
  unsigned level;  // the level it was first linked at (shared tables serve others too)
  std::vector<GeneratedEntry> entries;
};

struct GeneratedTree {
  Gpa root;
  std::vector<GeneratedTable> tables;  // root first
  std::vector<Gva> gvas;

  // Every populated entry, one line each: for a mismatch report.
  [[nodiscard]] std::string describe() const;
};

class TableGenerator {
 public:
  // `ram` is where trees are written: table pages come from its regions.
  TableGenerator(RamTableMemory& ram, std::uint64_t seed, GeneratorOptions options);

  // Zeroes the previous tree's pages, writes a new tree and picks `gva_count` addresses.
  // Errors: none.
  GeneratedTree next(unsigned gva_count);

  // Random paging registers for a tree at `root`: long mode (LA57 when options.levels == 5)
  // plus any of CR0.WP, CR4.PGE/SMEP/SMAP/PKE, EFER.NXE/SCE, RFLAGS.AC that `facts` says KVM
  // accepts, and random CR3 PWT/PCD and ignored low bits. Errors: none.
  x86::Registers registers(const KvmPagingFacts& facts, Gpa root);

  std::mt19937_64& rng() { return rng_; }

 private:
  bool chance(unsigned percent);
  std::uint64_t below(std::uint64_t bound);
  Gpa take_page();
  Gpa unbacked_page();
  std::uint64_t leaf_bits(unsigned level);
  std::uint64_t flag_bits();
  Gva pick_gva(const GeneratedTree& tree, const std::unordered_map<std::uint64_t, std::size_t>& by_page);

  RamTableMemory& ram_;
  std::mt19937_64 rng_;
  GeneratorOptions options_;
  std::vector<Gpa> pool_;     // every page of the RAM
  std::vector<Gpa> written_;  // pages of the current tree
};

}  // namespace vmmu::test::kvm
