// The path a walk hands back (x86::WalkPath): each level's entry address, value as read and
// own rights -- what the shadow MMU builds its pages from instead of walking a second time.

#include <gtest/gtest.h>

#include "x86/support/guest_fixture.hpp"

namespace vmmu::x86::test {
namespace {

constexpr std::uint64_t kPathGva = 0x40201000;

class WalkPathTest : public GuestTest {};

TEST_F(WalkPathTest, NamesEveryEntryTheWalkUsedWithItsRights) {
  use(PagingMode::Long4);
  map(kPathGva, 1, 0x5000 | kP | kUS);  // read-only user page
  const auto paging = this->paging();
  WalkPath path;
  const auto t = x86::walk(paging, mem, Gva(kPathGva), kRead, {}, path);
  ASSERT_TRUE(t.has_value());
  for (unsigned level = 4; level >= 1; --level) {
    EXPECT_EQ(path[level].address, tables->slot(kPathGva, level)) << level;
    // The value as read: before the walk set its A bit.
    EXPECT_EQ(path[level].entry | kA, entry(kPathGva, level)) << level;
  }
  EXPECT_EQ(path[1].rights, gpte::kAccUser | gpte::kAccExec);
  EXPECT_EQ(path[2].rights, gpte::kAccAll);
}

TEST_F(WalkPathTest, StopsAtAHugeLeaf) {
  use(PagingMode::Long4);
  map(0x80000000, 2, 0x800000 | kUserRw | kPS | kA | kD);
  WalkPath path;
  const auto t = x86::walk(paging(), mem, Gva(0x80000000), kWrite, {}, path);
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->level, 2u);
  EXPECT_EQ(path[2].address, tables->slot(0x80000000, 2));
  EXPECT_EQ(path[2].entry, entry(0x80000000, 2));
  EXPECT_EQ(path[1].address, Gpa(0));  // below the leaf: untouched
}

TEST_F(WalkPathTest, PaeNamesThePdpte) {
  use(PagingMode::Pae);
  map(kPathGva, 1, 0x5000 | kUserRw);
  WalkPath path;
  ASSERT_TRUE(x86::walk(paging(), mem, Gva(kPathGva), kRead, {}, path).has_value());
  EXPECT_EQ(path[3].address, tables->slot(kPathGva, 3));
  EXPECT_EQ(path[3].rights, gpte::kAccAll);  // PDPTEs deny nothing
  EXPECT_EQ(path[1].address, tables->slot(kPathGva, 1));
}

}  // namespace
}  // namespace vmmu::x86::test
