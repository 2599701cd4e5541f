// Prefetch (issue 12 item 4, KVM's pte_prefetch): a fault maps the accessed neighbours in its
// aligned group of 8 guest entries too -- not the unaccessed, not the invalid, not beyond the
// group -- and a clean neighbour only for reads.

#include <gtest/gtest.h>

#include "shadow/support/sparse_ram.hpp"
#include "vmmu/shadow/shadow_mmu.hpp"

namespace vmmu::shadow::test {
namespace {

namespace gpte = x86::gpte;

constexpr std::uint64_t kTable = gpte::P::mask | gpte::RW::mask | gpte::US::mask;
constexpr std::uint64_t kAccessed = kTable | gpte::A::mask;
constexpr std::uint64_t kReservedBit = std::uint64_t{1} << 51;  // above MAXPHYADDR 40

class Prefetch : public ::testing::Test {
 protected:
  // PML4 0x1000 -> PDPT 0x2000 -> PD 0x3000 -> PT 0x4000; PT entry i maps 0x100000 + i pages.
  // Entries 0-15: accessed and dirty, but 2 (accessed, clean), 3 (not accessed), 5 (reserved
  // bit set) and 6 (not present).
  void SetUp() override {
    mem.write<std::uint64_t>(Gpa(0x1000), 0x2000 | kTable);
    mem.write<std::uint64_t>(Gpa(0x2000), 0x3000 | kTable);
    mem.write<std::uint64_t>(Gpa(0x3000), 0x4000 | kTable);
    for (std::uint64_t i = 0; i < 16; ++i) {
      std::uint64_t e = (0x100000 + (i << 12)) | kAccessed | gpte::D::mask;
      if (i == 2) e &= ~gpte::D::mask;
      if (i == 3) e &= ~gpte::A::mask;
      if (i == 5) e |= kReservedBit;
      if (i == 6) e = 0;
      mem.write<std::uint64_t>(Gpa(0x4000 + i * 8), e);
    }
  }
  x86::GuestPaging paging() {
    namespace cr0 = x86::cr0;
    return x86::GuestPaging::from({.cr0 = cr0::PE::mask | cr0::PG::mask | cr0::WP::mask,
                                   .cr3 = 0x1000,
                                   .cr4 = x86::cr4::PAE::mask,
                                   .efer = x86::efer::LME::mask | x86::efer::LMA::mask | x86::efer::NXE::mask},
                                  {.maxphyaddr = 40});
  }
  std::uint64_t faults_for(ShadowMmu& mmu, std::uint64_t page, Access a) {
    const std::uint64_t before = mmu.stats().faults;
    const Outcome o = mmu.access(paging(), Gva(page << 12), a);
    EXPECT_FALSE(o.exit.has_value());
    return mmu.stats().faults - before;
  }

  SparseMemory<Gpa> mem;
  SparseRam ram{mem};
};

TEST_F(Prefetch, AFaultMapsTheAccessedNeighboursOfItsGroupOfEight) {
  ShadowMmu mmu(ram, {.host_levels = 4});
  EXPECT_EQ(faults_for(mmu, 0, Access::read()), 1u);
  EXPECT_EQ(mmu.stats().prefetched, 4u);  // 1, 2, 4, 7
  for (std::uint64_t page : {1u, 2u, 4u, 7u}) EXPECT_EQ(faults_for(mmu, page, Access::read()), 0u) << page;
  EXPECT_EQ(faults_for(mmu, 3, Access::read()), 1u);  // not accessed: the guest's walk sets A
  EXPECT_EQ(faults_for(mmu, 8, Access::read()), 1u);  // the next group
  const std::optional<std::string> bad = mmu.check_invariants();
  EXPECT_FALSE(bad) << *bad;
}

TEST_F(Prefetch, ACleanNeighbourIsMappedForReadsOnly) {
  ShadowMmu mmu(ram, {.host_levels = 4});
  EXPECT_EQ(faults_for(mmu, 0, Access::read()), 1u);
  EXPECT_EQ(faults_for(mmu, 1, Access::write()), 0u);  // dirty: writable
  EXPECT_EQ(faults_for(mmu, 2, Access::write()), 1u);  // clean: the write faults and sets D
  EXPECT_NE(*mem.read<std::uint64_t>(Gpa(0x4000 + 2 * 8)) & gpte::D::mask, 0u);
}

TEST_F(Prefetch, AnInvalidNeighbourFaultsIntoTheGuestsFault) {
  ShadowMmu mmu(ram, {.host_levels = 4});
  EXPECT_EQ(faults_for(mmu, 0, Access::read()), 1u);
  const Outcome o = mmu.access(paging(), Gva(5 << 12), Access::read());
  ASSERT_FALSE(o.guest.has_value());
  EXPECT_NE(o.guest.error().error_code & x86::pferr::kReserved, 0u);
}

}  // namespace
}  // namespace vmmu::shadow::test
