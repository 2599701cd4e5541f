#pragma once
// Test helper: builds x86 guest page tables of any paging mode in GuestPages, from the
// architecture's layouts written out here independently of the library (Intel SDM vol. 3A,
// 4.3-4.5), so tests check the library against a second reading of the manual.

#include <cstdint>

#include "image/support/image_builder.hpp"
#include "vmmu/x86/registers.hpp"

namespace vmmu::image::testing {

namespace bits {
inline constexpr std::uint64_t P = 1, RW = 2, US = 4, PWT = 8, PCD = 0x10, A = 0x20, D = 0x40, PS = 0x80, G = 0x100;
inline constexpr std::uint64_t XD = std::uint64_t{1} << 63;
}  // namespace bits

class X86Tables {
 public:
  // Tables are allocated from `next_free` upwards, one 4 KiB page each. For PAE, `root` is the
  // 32-byte PDPT (CR3[31:5]); otherwise the root table's page.
  X86Tables(GuestPages& pages, x86::PagingMode mode, Gpa root, Gpa next_free);

  // Maps `size` bytes (4K, 2M, 4M or 1G: the leaf level follows) at gva to the frame at gpa.
  // The leaf gets `leaf_flags` (P added, PS added above level 1); missing tables are created
  // with `table_flags` (PAE PDPTEs get only P).
  void map(std::uint64_t gva, std::uint64_t gpa, std::uint64_t size, std::uint64_t leaf_flags,
           std::uint64_t table_flags = bits::P | bits::RW | bits::US);

  // The table a walk of `gva` reaches at `level`, creating missing ones.
  Gpa table(std::uint64_t gva, unsigned level, std::uint64_t table_flags = bits::P | bits::RW | bits::US);
  // Writes entry `index` of the table at `table` (4- or 8-byte entries by mode).
  void set(Gpa table, unsigned index, std::uint64_t value);
  [[nodiscard]] std::uint64_t get(Gpa table, unsigned index) const;

  [[nodiscard]] unsigned levels() const { return levels_; }
  [[nodiscard]] unsigned shift(unsigned level) const;
  [[nodiscard]] unsigned index(std::uint64_t gva, unsigned level) const;
  [[nodiscard]] Gpa root() const { return root_; }
  Gpa allocate();

 private:
  GuestPages& pages_;
  x86::PagingMode mode_;
  Gpa root_;
  Gpa next_;
  unsigned levels_;
  unsigned entry_bytes_;
};

// Registers selecting `mode` with CR3 = root (and NXE on unless `nxe` is false).
x86::Registers registers_for(x86::PagingMode mode, Gpa root, bool nxe = true, bool pse = true);

}  // namespace vmmu::image::testing
