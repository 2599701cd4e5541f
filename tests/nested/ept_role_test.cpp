// The role bits shadow EPT pages add (shadow/role.hpp): each changes the word, so a shadow EPT
// page is never found for an x86 shadow page's key, nor an execute-only or huge-leaf variant
// for another.

#include <gtest/gtest.h>

#include <set>

#include "vmmu/shadow/role.hpp"

namespace vmmu::shadow::test {
namespace {

TEST(EptRole, EptBitsRoundTripAndChangeTheWord) {
  Role r;
  r.set_level(1).set_access(7).set_guest_mode(true).set_direct(true);
  r.set_ept(true).set_ept_exec_only(true).set_ept_huge_level(3);
  EXPECT_TRUE(r.ept());
  EXPECT_TRUE(r.ept_exec_only());
  EXPECT_EQ(r.ept_huge_level(), 3u);
  EXPECT_EQ(r.level(), 1u);
  EXPECT_EQ(r.access(), 7u);
  std::set<std::uint32_t> words{r.word(), Role(r).set_ept(false).word(), Role(r).set_ept_exec_only(false).word(),
                                Role(r).set_ept_huge_level(2).word(), Role(r).set_ept_huge_level(0).word()};
  EXPECT_EQ(words.size(), 5u);
  EXPECT_EQ(to_string(Role(r).set_direct(false)), "level=1 access=7 guest_mode ept ept_exec_only ept_huge_level=3");
}

}  // namespace
}  // namespace vmmu::shadow::test
