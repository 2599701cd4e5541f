// GuestPageTableBuilder: the tables it writes are what the x86 walker (reading guest memory
// directly, not through any TDP table) translates, for 4K / 2M / 1G pages, 4 and 5 levels;
// its errors.

#include <gtest/gtest.h>

#include <random>

#include "vm/support/guest_vm.hpp"
#include "vmmu/memory/guest_memory.hpp"
#include "vmmu/x86/walk.hpp"

namespace vmmu::vm::test {
namespace {

namespace gpte = x86::gpte;

// Walks `gva` with the reference walker over the memslots (no TDP tables involved).
Result<x86::Translation, x86::WalkFault> reference_walk(GuestVm& g, unsigned levels, Gva gva, Access a) {
  GuestMemory memory(g.vm().memslots());
  auto r = memory.reader();
  const x86::GuestPaging paging = x86::GuestPaging::from(long_mode_registers(g.tables().root(), levels));
  return x86::walk(paging, r, gva, a, {.update_accessed_dirty = false});
}

class Builder : public ::testing::TestWithParam<unsigned> {};

TEST_P(Builder, RandomMappingsWalkToTheirTargets) {
  const unsigned levels = GetParam();
  GuestVmOptions o;
  o.guest_levels = levels;
  o.table_pool = 4 * MiB;
  GuestVm g(o);
  std::mt19937_64 rng(levels);
  struct Mapped {
    Gva gva;
    Gpa gpa;
    std::uint64_t size;
    GuestPageFlags flags;
  };
  std::vector<Mapped> mapped;
  const std::uint64_t sizes[] = {kPageSize, 2 * MiB, GiB};
  const unsigned va_bits = levels == 5 ? 56 : 47;  // lower half
  for (int i = 0; i < 60; ++i) {
    const std::uint64_t size = sizes[rng() % 3];
    const Gva gva((rng() % (std::uint64_t{1} << va_bits)) & ~(size - 1));
    const Gpa gpa((rng() % (std::uint64_t{1} << 40)) & ~(size - 1));
    const GuestPageFlags flags{.writable = rng() % 2 == 0, .user = rng() % 2 == 0, .nx = rng() % 2 == 0};
    const Status<BuildError> s = g.tables().map(gva, gpa, size, size, flags);
    if (!s) {
      // Only a collision with an earlier mapping of another size may refuse it.
      EXPECT_EQ(s.error(), BuildError::Conflict);
      continue;
    }
    std::erase_if(mapped, [&](const Mapped& m) { return m.gva == gva; });  // replaced
    mapped.push_back({gva, gpa, size, flags});
  }
  ASSERT_GT(mapped.size(), 30u);
  for (const Mapped& m : mapped) {
    const std::uint64_t off = rng() % m.size;
    auto t = reference_walk(g, levels, m.gva + off, Access::read());
    // Mappings of other sizes in the way were refused (Conflict), so every accepted one holds.
    ASSERT_TRUE(t) << std::hex << m.gva.raw();
    EXPECT_EQ(t->page_size, m.size);
    EXPECT_EQ(t->gpa, m.gpa + off);
    EXPECT_EQ(t->writable, m.flags.writable);
    EXPECT_EQ(t->user, m.flags.user);
    EXPECT_EQ(t->nx, m.flags.nx);
  }
}

INSTANTIATE_TEST_SUITE_P(Levels, Builder, ::testing::Values(4u, 5u));

TEST(BuilderErrors, ReportWhatIsWrong) {
  GuestVm g;
  GuestPageTableBuilder& b = g.tables();
  EXPECT_EQ(b.map(Gva(0x1000), Gpa(0), kPageSize, 8 * KiB).error(), BuildError::BadPageSize);
  EXPECT_EQ(b.map(Gva(0x1000), Gpa(0), 2 * MiB, 2 * MiB).error(), BuildError::Misaligned);
  EXPECT_EQ(b.map(Gva(0x20'0000), Gpa(0x1000), 2 * MiB, 2 * MiB).error(), BuildError::Misaligned);
  EXPECT_EQ(b.map(Gva(0x0000'8000'0000'0000), Gpa(0), kPageSize, kPageSize).error(), BuildError::NonCanonical);
  EXPECT_EQ(b.map(Gva(0x0000'7fff'ffff'f000), Gpa(0), 2 * kPageSize, kPageSize).error(), BuildError::NonCanonical);
  ASSERT_TRUE(b.map(Gva(0x4000'0000), Gpa(0), 2 * MiB, 2 * MiB));
  EXPECT_EQ(b.map(Gva(0x4000'0000), Gpa(0), kPageSize, kPageSize).error(), BuildError::Conflict);  // huge leaf
  ASSERT_TRUE(b.map(Gva(0x8000'0000), Gpa(0), kPageSize, kPageSize));
  EXPECT_EQ(b.map(Gva(0x8000'0000), Gpa(0), 2 * MiB, 2 * MiB).error(), BuildError::Conflict);  // a table
  ASSERT_TRUE(b.unmap(Gva(0x4000'0000), 2 * MiB, 2 * MiB));
  EXPECT_TRUE(b.map(Gva(0x4000'0000), Gpa(0), kPageSize, kPageSize));

  auto small = GuestPageTableBuilder::create(g.vm(), {Gpa(0x10'0000), Gpa(0x10'3000)});
  ASSERT_TRUE(small);
  EXPECT_EQ(small->map(Gva(0x4000'0000), Gpa(0), kPageSize, kPageSize).error(), BuildError::PoolExhausted);
  EXPECT_EQ(GuestPageTableBuilder::create(g.vm(), {Gpa(0x10'0000), Gpa(0x20'0000)}, 3).error(), BuildError::BadLevels);
  EXPECT_EQ(GuestPageTableBuilder::create(g.vm(), {Gpa(0x10'0800), Gpa(0x20'0000)}).error(), BuildError::Misaligned);
  EXPECT_EQ(GuestPageTableBuilder::create(g.vm(), {Gpa(0x1'0000'0000), Gpa(0x1'0010'0000)}).error(),
            BuildError::Memory);  // no memslot behind the pool
}

TEST(BuilderEntries, LeafBitsAreTheArchitecturesBits) {
  const GuestPageFlags all{
      .writable = true, .user = true, .nx = true, .global = true, .accessed = true, .dirty = true, .key = 5};
  const std::uint64_t e = GuestPageTableBuilder::leaf_entry(Gpa(0x1234'5000), 1, all);
  EXPECT_EQ(e, gpte::P::mask | gpte::RW::mask | gpte::US::mask | gpte::A::mask | gpte::D::mask | gpte::G::mask |
                   gpte::XD::mask | (5ULL << 59) | 0x1234'5000);
  EXPECT_EQ(GuestPageTableBuilder::leaf_entry(Gpa(0x4000'0000), 3, {.writable = false}),
            gpte::P::mask | gpte::PS::mask | 0x4000'0000);
}

}  // namespace
}  // namespace vmmu::vm::test
