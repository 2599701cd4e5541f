#include "kvm/support/table_generator.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <deque>

#include "kvm/support/x86_entry.hpp"

namespace vmmu::test::kvm {
namespace {

using namespace x86e;

constexpr unsigned kIndexBits = 9;
constexpr unsigned kEntries = 1u << kIndexBits;

constexpr unsigned shift_of(unsigned level) { return kPageShift + kIndexBits * (level - 1); }

}  // namespace

std::string GeneratedTree::describe() const {
  std::string out;
  for (const GeneratedTable& t : tables) {
    out += fmt::format("  table gpa:{:#x} (linked at level {})\n", t.page.raw(), t.level);
    for (const GeneratedEntry& e : t.entries) {
      out += fmt::format("    [{:3}] {:#018x}{}\n", e.index, e.value,
                         e.has_child ? fmt::format(" -> table gpa:{:#x}", e.child.raw()) : std::string());
    }
  }
  return out;
}

TableGenerator::TableGenerator(RamTableMemory& ram, std::uint64_t seed, GeneratorOptions options)
    : ram_(ram), rng_(seed), options_(options) {
  for (const RamRegion& r : ram_.regions()) {
    for (std::uint64_t off = 0; off < r.bytes.size(); off += kPageSize) pool_.push_back(r.base + off);
  }
}

bool TableGenerator::chance(unsigned percent) { return below(100) < percent; }

std::uint64_t TableGenerator::below(std::uint64_t bound) {
  return std::uniform_int_distribution<std::uint64_t>(0, bound - 1)(rng_);
}

Gpa TableGenerator::take_page() {
  // Swap-remove from the unused tail of the pool: written_ pages are kept at the front.
  const std::size_t used = written_.size();
  const std::size_t pick = used + below(pool_.size() - used);
  std::swap(pool_[used], pool_[pick]);
  written_.push_back(pool_[used]);
  ram_.zero_page(pool_[used]);
  return pool_[used];
}

Gpa TableGenerator::unbacked_page() {
  for (;;) {
    const Gpa page(below(std::uint64_t{1} << (options_.maxphyaddr - kPageShift)) << kPageShift);
    if (!ram_.backed(page)) return page;
  }
}

// Bits common to tables and leaves, except P, PS and the address. Ignored bits (52..58, AVL,
// and in tables D, G and the protection key) are set freely: a walker must not read them.
std::uint64_t TableGenerator::flag_bits() {
  std::uint64_t e = Present::mask;
  e = Writable::set(e, chance(70));
  e = User::set(e, chance(75));
  e = Pwt::set(e, chance(20));
  e = Pcd::set(e, chance(20));
  e = Accessed::set(e, chance(50));
  e = Dirty::set(e, chance(40));
  e = Global::set(e, chance(30));
  if (chance(40)) e = Avl::set(e, below(8));
  if (chance(25)) e = Ignored::set(e, below(std::uint64_t{1} << Ignored::width));
  if (chance(25)) e = ProtectionKey::set(e, below(16));
  e = ExecuteDisable::set(e, chance(12));
  if (chance(2)) e |= std::uint64_t{1} << (options_.maxphyaddr + below(52 - options_.maxphyaddr));
  return e;
}

// A leaf's address bits at `level`: a random frame below MAXPHYADDR aligned to the page size;
// large leaves may set PAT (bit 12) and, rarely, a reserved bit of 13..20 (2 MiB) or 13..29
// (1 GiB) (SDM vol. 3A, Tables 4-17 and 4-15).
std::uint64_t TableGenerator::leaf_bits(unsigned level) {
  const unsigned size_shift = shift_of(level);
  const std::uint64_t frames = std::uint64_t{1} << (options_.maxphyaddr - size_shift);
  std::uint64_t bits = below(frames) << size_shift;
  if (level > 1) {
    bits = LargePat::set(bits, chance(30));
    if (chance(4)) bits |= std::uint64_t{1} << (13 + below(size_shift - 13));
  }
  return bits;
}

GeneratedTree TableGenerator::next(unsigned gva_count) {
  for (Gpa page : written_) ram_.zero_page(page);
  written_.clear();

  GeneratedTree tree;
  std::unordered_map<std::uint64_t, std::size_t> by_page;  // table page -> index in tree.tables
  std::deque<std::size_t> todo;
  auto add_table = [&](Gpa page, unsigned level) {
    by_page[page.raw()] = tree.tables.size();
    tree.tables.push_back({page, level, {}});
    todo.push_back(tree.tables.size() - 1);
  };
  tree.root = take_page();
  add_table(tree.root, options_.levels);

  while (!todo.empty()) {
    const std::size_t t = todo.front();
    todo.pop_front();
    const Gpa page = tree.tables[t].page;
    const unsigned level = tree.tables[t].level;
    const unsigned count = options_.min_entries + static_cast<unsigned>(below(options_.max_entries - options_.min_entries + 1));
    for (unsigned n = 0; n < count; ++n) {
      // Favour the edges (index 0, 511, 256: the upper half's first PML4 entry).
      const unsigned pick = static_cast<unsigned>(below(10));
      const unsigned index = pick == 0 ? 0u : pick == 1 ? kEntries - 1 : pick == 2 ? kEntries / 2
                                                                                    : static_cast<unsigned>(below(kEntries));
      const auto& have = tree.tables[t].entries;
      if (std::any_of(have.begin(), have.end(), [&](const GeneratedEntry& e) { return e.index == index; })) continue;

      GeneratedEntry entry{index, 0, false, Gpa()};
      if (!chance(94)) {
        entry.value = rng_() & ~Present::mask;  // not present: every other bit is the OS's
      } else {
        std::uint64_t e = flag_bits();
        const unsigned ps_percent = level == 1 ? 30 : level == 2 ? 40 : level == 3 ? 12 : 2;
        const bool ps = chance(ps_percent);
        e = PageSize::set(e, ps);
        if (level == 1 || (ps && level <= 3)) {
          e |= leaf_bits(level);
        } else {
          // A table (or, at PML4 / PML5 with PS, a reserved-bit fault over a table address).
          Gpa child;
          const unsigned where = static_cast<unsigned>(below(100));
          if (where < 60 && written_.size() < options_.max_tables && level > 1) {
            child = take_page();
            entry.has_child = true;
            add_table(child, level - 1);
          } else if (where < 95 || level == 1) {
            child = tree.tables[below(tree.tables.size())].page;  // shared, maybe recursive
            entry.has_child = true;
          } else {
            child = unbacked_page();
          }
          entry.child = child;
          e |= Address::bits(child.raw());
        }
        entry.value = e;
      }
      ram_.write<std::uint64_t>(page + std::uint64_t{index} * 8, entry.value);
      tree.tables[t].entries.push_back(entry);
    }
  }
  for (unsigned i = 0; i < gva_count; ++i) tree.gvas.push_back(pick_gva(tree, by_page));
  return tree;
}

// Follows populated entries (96% of the time at each level) so most addresses reach deep;
// the rest pick any index. Canonical, except 3% with a bit of 63:48 (63:57) flipped.
Gva TableGenerator::pick_gva(const GeneratedTree& tree, const std::unordered_map<std::uint64_t, std::size_t>& by_page) {
  std::uint64_t gva = 0;
  const GeneratedTable* table = &tree.tables.front();
  for (unsigned level = options_.levels; level >= 1; --level) {
    unsigned index = static_cast<unsigned>(below(kEntries));
    const GeneratedEntry* entry = nullptr;
    if (table != nullptr && !table->entries.empty() && chance(96)) {
      entry = &table->entries[below(table->entries.size())];
      index = entry->index;
    }
    gva |= std::uint64_t{index} << shift_of(level);
    const GeneratedTable* next = nullptr;
    if (entry != nullptr && entry->has_child) {
      auto it = by_page.find(entry->child.raw());
      if (it != by_page.end()) next = &tree.tables[it->second];
    }
    table = next;
  }
  const unsigned pick = static_cast<unsigned>(below(8));
  gva |= pick == 0 ? 0 : pick == 1 ? kPageSize - 1 : below(kPageSize);
  const unsigned top = shift_of(options_.levels) + kIndexBits;  // 48 or 57
  if ((gva >> (top - 1)) & 1) gva |= ~std::uint64_t{0} << top;  // sign-extend
  if (chance(3)) gva ^= std::uint64_t{1} << (top + below(64 - top));
  return Gva(gva);
}

x86::Registers TableGenerator::registers(const KvmPagingFacts& facts, Gpa root) {
  x86::Registers r;
  r.cr0 = cr0::Pg::mask | cr0::Pe::mask | cr0::Et::mask;
  if (facts.wp && chance(50)) r.cr0 |= cr0::Wp::mask;
  r.cr4 = cr4::Pae::mask;
  if (options_.levels == 5) r.cr4 |= cr4::La57::mask;
  if (facts.pge && chance(50)) r.cr4 |= cr4::Pge::mask;
  if (facts.smep && chance(50)) r.cr4 |= cr4::Smep::mask;
  if (facts.smap && chance(50)) r.cr4 |= cr4::Smap::mask;
  if (facts.pke && chance(50)) r.cr4 |= cr4::Pke::mask;
  r.efer = efer::Lme::mask | efer::Lma::mask;
  if (facts.nxe && chance(50)) r.efer |= efer::Nxe::mask;
  if (chance(30)) r.efer |= efer::Sce::mask;
  r.rflags = rflags::Fixed1::mask | (chance(50) ? rflags::Ac::mask : 0);
  r.cr3 = root.raw() | (chance(20) ? cr3::Pwt::mask : 0) | (chance(20) ? cr3::Pcd::mask : 0);
  // Without CR4.PCIDE, CR3 bits 2:0 and 11:5 are ignored (SDM vol. 3A, Table 4-12).
  if (chance(15)) r.cr3 |= below(kPageSize) & ~(cr3::Pwt::mask | cr3::Pcd::mask);
  r.pkru = 0;
  return r;
}

}  // namespace vmmu::test::kvm
