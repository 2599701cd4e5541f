// Accessed/Dirty write-back: A in every entry a successful walk used, D in the leaf for writes,
// compare-exchange with a restart when the guest changed an entry, dropped on read-only memory.

#include <gtest/gtest.h>

#include "x86/support/guest_fixture.hpp"

namespace vmmu::x86::test {
namespace {

constexpr std::uint64_t kGva = 0x40201000;

class AccessedDirty : public GuestTest {
 protected:
  void SetUp() override {
    use(PagingMode::Long4);
    map(kGva, 1, 0x5000 | kUserRw);
  }
  bool all_accessed(unsigned top = 4) {
    for (unsigned level = 1; level <= top; ++level) {
      if ((entry(kGva, level) & kA) == 0) return false;
    }
    return true;
  }
};

TEST_F(AccessedDirty, ReadSetsAccessedInEveryEntryUsed) {
  ASSERT_TRUE(walk(kGva, kRead).has_value());
  EXPECT_TRUE(all_accessed());
  EXPECT_EQ(entry(kGva, 1) & kD, 0u);
}

TEST_F(AccessedDirty, WriteSetsDirtyOnlyInTheLeaf) {
  ASSERT_TRUE(walk(kGva, kWrite).has_value());
  EXPECT_TRUE(all_accessed());
  EXPECT_NE(entry(kGva, 1) & kD, 0u);
  for (unsigned level = 2; level <= 4; ++level) EXPECT_EQ(entry(kGva, level) & kD, 0u) << level;
}

TEST_F(AccessedDirty, WriteToLargePageSetsDirtyInTheLargeLeaf) {
  map(0x80000000, 2, 0x800000 | kUserRw | kPS);
  ASSERT_TRUE(walk(0x80000000, kWrite).has_value());
  EXPECT_EQ(entry(0x80000000, 2) & (kA | kD), kA | kD);
}

TEST_F(AccessedDirty, FetchSetsAccessedButNotDirty) {
  ASSERT_TRUE(walk(kGva, kFetch).has_value());
  EXPECT_EQ(entry(kGva, 1) & (kA | kD), kA);
}

TEST_F(AccessedDirty, FaultingWalkSetsNothing) {
  set(kGva, 1, 0x5000 | kP | kUS);  // read-only
  ASSERT_FALSE(walk(kGva, kUserWrite).has_value());
  for (unsigned level = 1; level <= 4; ++level) EXPECT_EQ(entry(kGva, level) & kA, 0u) << level;
}

TEST_F(AccessedDirty, DisabledUpdateNeverWrites) {
  ASSERT_TRUE(walk(kGva, kWrite, WalkOptions{.update_accessed_dirty = false}).has_value());
  for (unsigned level = 1; level <= 4; ++level) EXPECT_EQ(entry(kGva, level) & (kA | kD), 0u) << level;
}

TEST_F(AccessedDirty, TranslationIsTheSameWithBitsAlreadySet) {
  ASSERT_TRUE(walk(kGva, kWrite).has_value());
  const std::uint64_t before = entry(kGva, 1);
  auto r = walk(kGva + 0x10, kWrite);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->gpa, Gpa(0x5010));
  EXPECT_EQ(entry(kGva, 1), before);
}

TEST_F(AccessedDirty, TranslationCarriesTheLeafAsTheWalkLeftIt) {
  auto w = walk(kGva, kWrite);
  ASSERT_TRUE(w.has_value());
  EXPECT_EQ(w->entry, 0x5000 | kUserRw | kA | kD);  // the bits the walk set included
  EXPECT_EQ(w->entry, entry(kGva, 1));
  map(0x80000000, 2, 0x800000 | kUserRw | kPS);
  auto r = walk(0x80000000, kRead);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->entry, 0x800000 | kUserRw | kPS | kA);  // a large leaf, read: A only
  auto warm = walk(0x80000000, kRead);                  // nothing left to set
  ASSERT_TRUE(warm.has_value());
  EXPECT_EQ(warm->entry, r->entry);
}

TEST_F(AccessedDirty, PaePdpteGetsNoAccessedBit) {
  mem = SparseMemory<Gpa>();
  use(PagingMode::Pae);
  map(0x1000, 1, 0x5000 | kUserRw);
  ASSERT_TRUE(walk(0x1000, kWrite).has_value());
  EXPECT_EQ(entry(0x1000, 3) & kA, 0u);  // bit 5 of a PDPTE is reserved
  EXPECT_NE(entry(0x1000, 2) & kA, 0u);
  EXPECT_EQ(entry(0x1000, 1) & (kA | kD), kA | kD);
  EXPECT_TRUE(walk(0x1000, kRead).has_value());  // and the next walk still works
}

TEST_F(AccessedDirty, Bits32EntriesGetAccessedAndDirty) {
  mem = SparseMemory<Gpa>();
  use(PagingMode::Bits32);
  map(0x1000, 1, 0x5000 | kUserRw);
  ASSERT_TRUE(walk(0x1000, kWrite).has_value());
  EXPECT_EQ(entry(0x1000, 2) & (kA | kD), kA);
  EXPECT_EQ(entry(0x1000, 1) & (kA | kD), kA | kD);
}

// Memory whose first compare-exchange at `target` finds the entry rewritten by "another vCPU".
struct RacingMemory {
  SparseMemory<Gpa>& mem;
  Gpa target;
  std::uint64_t replacement;
  int cmpxchg_calls = 0;
  bool raced = false;

  template <class T>
  std::optional<T> read(Gpa a) const { return mem.read<T>(a); }
  template <class T>
  bool compare_exchange(Gpa a, T& expected, T desired) {
    ++cmpxchg_calls;
    if (!raced && a == target) {
      raced = true;
      mem.write<T>(a, static_cast<T>(replacement));
    }
    return mem.compare_exchange<T>(a, expected, desired);
  }
};

TEST_F(AccessedDirty, EntryChangedDuringUpdateRestartsTheWalk) {
  const Gpa leaf = tables->slot(kGva, 1);
  RacingMemory racing{mem, leaf, 0x9000 | kUserRw};  // the guest remaps the page meanwhile
  auto r = x86::walk(paging(), racing, Gva(kGva), Access::write());
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(racing.raced);
  EXPECT_EQ(r->gpa, Gpa(0x9000));  // the restarted walk sees the new entry
  EXPECT_EQ(entry(kGva, 1), 0x9000 | kUserRw | kA | kD);
}

TEST_F(AccessedDirty, EntryMadeNotPresentDuringUpdateFaultsAfterRestart) {
  const Gpa pde = tables->slot(kGva, 2);
  RacingMemory racing{mem, pde, 0};
  auto r = x86::walk(paging(), racing, Gva(kGva), Access::read());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().error_code, 0u);
  EXPECT_EQ(r.error().level, 2u);
}

// Memory in which "another vCPU" rewrites `target` right after the walk first reads it.
struct RewrittenAfterReadMemory {
  SparseMemory<Gpa>& mem;
  Gpa target;
  std::uint64_t replacement;
  bool rewritten = false;

  template <class T>
  std::optional<T> read(Gpa a) {
    std::optional<T> v = mem.read<T>(a);
    if (!rewritten && a == target) {
      rewritten = true;
      mem.write<T>(a, static_cast<T>(replacement));
    }
    return v;
  }
  template <class T>
  bool compare_exchange(Gpa a, T& expected, T desired) {
    return mem.compare_exchange<T>(a, expected, desired);
  }
};

TEST_F(AccessedDirty, LeafRewrittenBeforeTheUpdateIsTheOneTranslatedAndMarked) {
  // The first walk finds A/D bits to set; the one that sets them reads the new leaf.
  RewrittenAfterReadMemory rewriting{mem, tables->slot(kGva, 1), 0x9000 | kUserRw};
  auto r = x86::walk(paging(), rewriting, Gva(kGva), Access::write());
  ASSERT_TRUE(rewriting.rewritten);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->gpa, Gpa(0x9000));
  EXPECT_EQ(r->entry, 0x9000 | kUserRw | kA | kD);
  EXPECT_EQ(entry(kGva, 1), 0x9000 | kUserRw | kA | kD);
}

// Memory that refuses every write (a read-only memslot, an image): cmpxchg fails, value unchanged.
struct ReadOnlyMemory {
  SparseMemory<Gpa>& mem;
  template <class T>
  std::optional<T> read(Gpa a) const { return mem.read<T>(a); }
  template <class T>
  bool compare_exchange(Gpa a, T& expected, T) {
    expected = *mem.read<T>(a);
    return false;
  }
};

TEST_F(AccessedDirty, ReadOnlyMemoryDropsTheUpdateAndTheWalkSucceeds) {
  ReadOnlyMemory ro{mem};
  auto r = x86::walk(paging(), ro, Gva(kGva), Access::write());
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->gpa, Gpa(0x5000));
  EXPECT_EQ(r->entry, 0x5000 | kUserRw);  // the leaf as it stays
  EXPECT_EQ(entry(kGva, 1) & (kA | kD), 0u);
}

}  // namespace
}  // namespace vmmu::x86::test
