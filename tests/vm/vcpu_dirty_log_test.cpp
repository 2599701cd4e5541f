// The guest walk's A/D updates are writes through the TDP tables: with dirty logging on they
// mark the guest page-table pages dirty, exactly those, next to the data pages written.

#include <gtest/gtest.h>

#include <array>
#include <set>

#include "vm/support/guest_vm.hpp"

namespace vmmu::vm::test {
namespace {


std::set<std::uint64_t> dirty_gfns(GuestVm& g) {
  auto log = g.tdp().get_dirty_log(GuestVm::kSlot);
  EXPECT_TRUE(log);
  std::set<std::uint64_t> out;
  if (!log) return out;
  for (std::size_t w = 0; w < log->size(); ++w) {
    for (unsigned b = 0; b < 64; ++b) {
      if (((*log)[w] >> b) & 1u) out.insert(w * 64 + b);  // the slot starts at gfn 0
    }
  }
  return out;
}

std::uint64_t table_gfn(GuestVm& g, Gva gva, unsigned level) {
  auto where = g.tables().entry_address(gva, level);
  EXPECT_TRUE(where);
  return where ? gfn_of(*where).raw() : ~0ULL;
}

TEST(VcpuDirtyLog, WalkAccessedAndDirtyUpdatesDirtyTheTablePages) {
  GuestVm g;
  g.map(kData, kDataGpa, 16 * kPageSize);
  Vcpu& v = g.add_vcpu();
  ASSERT_TRUE(g.vm().memslots().set_flags(GuestVm::kSlot, MemslotFlags::log_dirty()));
  EXPECT_TRUE(dirty_gfns(g).empty());

  // A read walks four levels and sets A in each entry: four table pages written, no data.
  std::array<std::byte, 8> buf{};
  const Gva gva = kData + 3 * kPageSize;
  ASSERT_TRUE(v.read(gva, buf));
  const std::set<std::uint64_t> tables{table_gfn(g, gva, 1), table_gfn(g, gva, 2), table_gfn(g, gva, 3),
                                       table_gfn(g, gva, 4)};
  ASSERT_EQ(tables.size(), 4u);
  EXPECT_EQ(dirty_gfns(g), tables);

  // A write sets D in the PTE (the page table again) and writes the data page.
  ASSERT_TRUE(v.write(gva, buf));
  const std::uint64_t data = gfn_of(kDataGpa).raw() + 3;
  EXPECT_EQ(dirty_gfns(g), (std::set<std::uint64_t>{table_gfn(g, gva, 1), data}));

  // Now A and D are set and the TLB holds the page: only the data page.
  ASSERT_TRUE(v.write(gva, buf));
  EXPECT_EQ(dirty_gfns(g), (std::set<std::uint64_t>{data}));

  // Even with the TLB flushed, a walk that finds every A/D bit set writes no table.
  v.set_cr3(v.registers().cr3);
  ASSERT_TRUE(v.write(gva, buf));
  EXPECT_EQ(dirty_gfns(g), (std::set<std::uint64_t>{data}));
}

TEST(VcpuDirtyLog, EveryPageWrittenThroughTheGuestIsLogged) {
  GuestVm g;
  g.map(kData, kDataGpa, 256 * kPageSize);
  Vcpu& v = g.add_vcpu();
  std::array<std::byte, 16> buf{};
  for (unsigned p = 0; p < 256; ++p) ASSERT_TRUE(v.write(kData + p * kPageSize, buf));  // A/D all set
  ASSERT_TRUE(g.vm().memslots().set_flags(GuestVm::kSlot, MemslotFlags::log_dirty()));
  for (unsigned round = 0; round < 4; ++round) {
    std::set<std::uint64_t> written;
    for (unsigned i = 0; i < 40; ++i) {
      const unsigned p = (round * 97 + i * 13) % 255;  // page p + 1 is mapped too
      // Crossing into the next page: both pages count.
      ASSERT_TRUE(v.write(kData + p * kPageSize + kPageSize - 8, buf)) << p;
      written.insert(gfn_of(kDataGpa).raw() + p);
      written.insert(gfn_of(kDataGpa).raw() + p + 1);
    }
    EXPECT_EQ(dirty_gfns(g), written) << "round " << round;
  }
}

}  // namespace
}  // namespace vmmu::vm::test
