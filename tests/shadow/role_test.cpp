// The shadow-page role word: packing, and child-role derivation over every role a root can
// reach (a property test: each rule checked on every reachable parent and every child input).

#include <set>
#include <vector>

#include <gtest/gtest.h>

#include "vmmu/shadow/role.hpp"
#include "vmmu/x86/guest_entry.hpp"
#include "vmmu/x86/registers.hpp"

namespace vmmu::shadow {
namespace {

namespace cr0 = x86::cr0;
namespace cr4 = x86::cr4;
namespace efer = x86::efer;

TEST(ShadowRole, EveryFieldRoundTripsAndChangesTheWord) {
  Role r;
  r.set_level(5).set_gpte4(true).set_quadrant(3).set_direct(true).set_access(5).set_cr0_wp(true)
      .set_smep_andnot_wp(true).set_smap_andnot_wp(true).set_efer_nx(true).set_ad_disabled(true)
      .set_guest_mode(true).set_passthrough(true).set_invalid(true).set_pke_andnot_wp(true);
  EXPECT_EQ(r.level(), 5u);
  EXPECT_EQ(r.quadrant(), 3u);
  EXPECT_EQ(r.access(), 5u);
  EXPECT_TRUE(r.gpte4() && r.direct() && r.cr0_wp() && r.smep_andnot_wp() && r.smap_andnot_wp() && r.efer_nx() &&
              r.ad_disabled() && r.guest_mode() && r.passthrough() && r.invalid() && r.pke_andnot_wp());
  // Each field flipped alone gives a different word (so a lookup can tell them apart).
  const std::vector<Role> one_off = {
      Role(r).set_level(4),          Role(r).set_gpte4(false),         Role(r).set_quadrant(2),
      Role(r).set_direct(false),     Role(r).set_access(4),            Role(r).set_cr0_wp(false),
      Role(r).set_smep_andnot_wp(false), Role(r).set_smap_andnot_wp(false), Role(r).set_efer_nx(false),
      Role(r).set_ad_disabled(false), Role(r).set_guest_mode(false),  Role(r).set_passthrough(false),
      Role(r).set_invalid(false),    Role(r).set_pke_andnot_wp(false)};
  std::set<std::uint32_t> words{r.word()};
  for (const Role& o : one_off) EXPECT_TRUE(words.insert(o.word()).second) << to_string(o);
}

struct Item {
  Role role;
  unsigned guest_levels;
};

// Every root role: each paging mode under each host depth it runs under, every CPU-mode bit.
std::vector<Item> all_root_roles() {
  struct Mode {
    std::uint64_t cr0, cr4, efer;
  };
  const std::uint64_t pg = cr0::PG::mask | cr0::PE::mask;
  const std::uint64_t lm = efer::LME::mask | efer::LMA::mask;
  const std::vector<Mode> modes = {{cr0::PE::mask, 0, 0},
                                   {pg, cr4::PSE::mask, 0},
                                   {pg, cr4::PAE::mask, 0},
                                   {pg, cr4::PAE::mask, lm},
                                   {pg, cr4::PAE::mask | cr4::LA57::mask, lm}};
  std::vector<Item> roots;
  for (const Mode& m : modes) {
    for (unsigned bits = 0; bits < 64; ++bits) {
      x86::Registers regs{.cr0 = m.cr0 | ((bits & 1) ? cr0::WP::mask : 0),
                          .cr3 = 0x1000,
                          .cr4 = m.cr4 | ((bits & 2) ? cr4::SMEP::mask : 0) | ((bits & 4) ? cr4::SMAP::mask : 0),
                          .efer = m.efer | ((bits & 8) ? efer::NXE::mask : 0)};
      const auto paging = x86::GuestPaging::from(regs, {});
      for (unsigned host = 4; host <= 5; ++host) {
        const unsigned levels = guest_levels(paging.mode());
        if (levels > host) continue;
        roots.push_back({root_role(paging, host, (bits & 16) != 0, (bits & 32) != 0), levels});
      }
    }
  }
  return roots;
}

TEST(ShadowRole, ChildRoleRulesHoldForEveryReachableParent) {
  std::set<std::uint32_t> seen;
  std::vector<Item> todo = all_root_roles();
  std::size_t parents = 0, children = 0;
  while (!todo.empty()) {
    const Item it = todo.back();
    todo.pop_back();
    const Role p = it.role;
    if (!seen.insert(p.word() ^ (it.guest_levels << 24)).second || p.level() <= 1) continue;
    ++parents;
    for (unsigned index : {0u, 1u, 2u, 3u, 256u, 511u}) {
      for (std::uint8_t access = 0; access <= x86::gpte::kAccAll; ++access) {
        for (bool direct : {false, true}) {
          const Role c = child_role(p, {index, access, direct, it.guest_levels});
          ++children;
          SCOPED_TRACE(to_string(p) + " -> " + to_string(c));
          // One level down; the CPU-mode bits are the parent's.
          EXPECT_EQ(c.level(), p.level() - 1);
          EXPECT_EQ(c.gpte4(), p.gpte4());
          EXPECT_EQ(c.cr0_wp(), p.cr0_wp());
          EXPECT_EQ(c.smep_andnot_wp(), p.smep_andnot_wp());
          EXPECT_EQ(c.smap_andnot_wp(), p.smap_andnot_wp());
          EXPECT_EQ(c.pke_andnot_wp(), p.pke_andnot_wp());
          EXPECT_EQ(c.efer_nx(), p.efer_nx());
          EXPECT_EQ(c.ad_disabled(), p.ad_disabled());
          EXPECT_EQ(c.guest_mode(), p.guest_mode());
          EXPECT_FALSE(c.invalid());
          // SMEP/SMAP-and-not-WP are never set with WP.
          EXPECT_FALSE(c.cr0_wp() && (c.smep_andnot_wp() || c.smap_andnot_wp() || c.pke_andnot_wp()));
          if (p.passthrough()) {
            // Above the guest's root: no guest rights yet, never direct; passthrough exactly
            // while the child is still above the guest's root level.
            EXPECT_EQ(c.access(), x86::gpte::kAccAll);
            EXPECT_FALSE(c.direct());
            EXPECT_EQ(c.passthrough(), c.level() > it.guest_levels);
            const unsigned half = index >= 256 ? 1u : 0u;
            EXPECT_EQ(c.quadrant(), c.level() != it.guest_levels ? 0u : c.gpte4() ? index & 3u : half);
          } else {
            // Rights only ever narrow; direct is sticky; no passthrough below a guest table.
            EXPECT_EQ(c.access(), p.access() & access);
            EXPECT_EQ(c.direct(), p.direct() || direct);
            EXPECT_FALSE(c.passthrough());
            EXPECT_EQ(c.quadrant(), c.gpte4() && !c.direct() && c.level() == 1 ? index & 1u : 0u);
          }
          todo.push_back({c, it.guest_levels});
        }
      }
    }
  }
  EXPECT_GT(parents, 100u);
  EXPECT_GT(children, 1000u);
}

TEST(ShadowRole, RootRoleFollowsTheRegisters) {
  const std::uint64_t pg = cr0::PG::mask | cr0::PE::mask;
  x86::Registers regs{.cr0 = pg | cr0::WP::mask, .cr3 = 0x1000, .cr4 = cr4::PAE::mask | cr4::SMEP::mask,
                      .efer = efer::LME::mask | efer::LMA::mask | efer::NXE::mask};
  const Role wp = root_role(x86::GuestPaging::from(regs, {}), 4);
  EXPECT_EQ(wp.level(), 4u);
  EXPECT_FALSE(wp.passthrough());
  EXPECT_TRUE(wp.cr0_wp() && wp.efer_nx() && !wp.smep_andnot_wp());
  regs.cr0 = pg;
  const Role nowp = root_role(x86::GuestPaging::from(regs, {}), 4);
  EXPECT_NE(wp, nowp);  // a CR0.WP flip gives a distinct shadow page
  EXPECT_TRUE(nowp.smep_andnot_wp() && !nowp.smap_andnot_wp());
  const Role under5 = root_role(x86::GuestPaging::from(regs, {}), 5);
  EXPECT_TRUE(under5.passthrough());
  EXPECT_EQ(under5.level(), 5u);
  regs.cr0 = cr0::PE::mask;
  EXPECT_TRUE(root_role(x86::GuestPaging::from(regs, {}), 4).direct());
}

}  // namespace
}  // namespace vmmu::shadow
