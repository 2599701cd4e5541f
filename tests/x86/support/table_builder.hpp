#pragma once
// A tiny builder of page tables in SparseMemory for the x86 tests: tables come from a bump
// allocator, `slot` finds (creating missing tables on the way) the entry for an input address
// at a level, `map` writes a leaf. Entries are 4 or 8 bytes as the geometry says.

#include <cstdint>

#include "vmmu/memory/sparse_memory.hpp"
#include "vmmu/pt/geometry.hpp"

namespace vmmu::x86::test {

template <class A>
class TableBuilder {
 public:
  // `table_flags`: bits of a new non-leaf entry besides the address (x86: P|RW|US, EPT: RWX).
  TableBuilder(SparseMemory<A>& mem, const pt::Geometry& g, A root, std::uint64_t table_flags,
               std::uint64_t next_table = 0x100000)
      : mem_(mem), g_(g), root_(root), table_flags_(table_flags), next_(next_table) {}

  [[nodiscard]] A root() const { return root_; }
  [[nodiscard]] const pt::Geometry& geometry() const { return g_; }

  A alloc() {
    A a(next_);
    next_ += 0x1000;
    return a;
  }
  [[nodiscard]] std::uint64_t read(A where) const {
    if (g_.entry_bytes() == 4) return *mem_.template read<std::uint32_t>(where);
    return *mem_.template read<std::uint64_t>(where);
  }
  void write(A where, std::uint64_t value) {
    if (g_.entry_bytes() == 4) {
      mem_.template write<std::uint32_t>(where, static_cast<std::uint32_t>(value));
    } else {
      mem_.template write<std::uint64_t>(where, value);
    }
  }

  // Address of the entry translating `input` at `level`; tables above it are created (as
  // `table_flags | address`) where the entry is 0, and followed (bits 51:12) where it is not.
  A slot(std::uint64_t input, unsigned level) {
    A table = root_;
    for (unsigned l = g_.root_level();; --l) {
      const A where = table + std::uint64_t{g_.index(input, l)} * g_.entry_bytes();
      if (l == level) return where;
      std::uint64_t e = read(where);
      if (e == 0) {
        e = alloc().raw() | table_flags_;
        write(where, e);
      }
      table = A(e & (g_.entry_bytes() == 4 ? 0xfffff000ULL : 0x000ffffffffff000ULL));
    }
  }
  void map(std::uint64_t input, unsigned level, std::uint64_t entry) { write(slot(input, level), entry); }
  [[nodiscard]] std::uint64_t entry(std::uint64_t input, unsigned level) { return read(slot(input, level)); }

 private:
  SparseMemory<A>& mem_;
  pt::Geometry g_;
  A root_;
  std::uint64_t table_flags_;
  std::uint64_t next_;
};

}  // namespace vmmu::x86::test
