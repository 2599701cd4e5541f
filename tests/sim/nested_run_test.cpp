// vm.nested: the scenario's phases in an L2 guest of the modelled L1 hypervisor on EPT and on
// NPT -- the same check results as direct, L2's writes in L1's dirty log through a migration,
// exact exit and flush counts for a small known scenario, and what validate() refuses.

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>

#include "support/sim_test_support.hpp"
#include "vmmu/sim/compare.hpp"

namespace vmmu::sim::test {
namespace {

// Debug builds check the nested MMU's invariants after every operation, each check over every
// shadow leaf: there the scenarios are 256 KiB, not 4 MiB, to stay well under a second.
#ifdef VMMU_CHECK_INVARIANTS
constexpr std::uint64_t kNestedTestBytes = 256 * KiB;
constexpr std::uint64_t kNestedTestAccesses = 1'000;
#else
constexpr std::uint64_t kNestedTestBytes = 4 * MiB;
constexpr std::uint64_t kNestedTestAccesses = 20'000;
#endif
constexpr std::uint64_t kNestedTestPages = kNestedTestBytes / (4 * KiB);
// The entries L1 writes to map them (EPT or NPT alike): a leaf each, one PDE per 2 MiB, one
// PDPTE, one PML4E.
constexpr std::uint64_t kNestedTestEptWrites = kNestedTestPages + (kNestedTestBytes + 2 * MiB - 1) / (2 * MiB) + 2;

// kNestedTestBytes at gpa 0 in 4 KiB pages, 2 vCPUs, L1 on `kind`'s tables.
Scenario nested_small(std::vector<PhaseParams> phases, NestedKind kind, bool ept_ad = true) {
  Scenario s = tiny(std::move(phases), kNestedTestBytes, 4 * KiB, 2);
  s.vm.nested = NestedParams{kind, ept_ad, false};
  return s;
}

std::string nested_kind_name(const ::testing::TestParamInfo<NestedKind>& info) {
  return info.param == NestedKind::Npt ? "Npt" : "Ept";
}

// The label a phase's report gives `key`.
std::string nested_label(const RunReport& r, std::string_view phase_name, std::string_view key) {
  for (const Metric& m : phase(r, phase_name).stats) {
    if (m.key == key) return m.label;
  }
  ADD_FAILURE() << "no " << key << " in " << phase_name;
  return {};
}

class NestedRun : public ::testing::TestWithParam<NestedKind> {};
INSTANTIATE_TEST_SUITE_P(L1Tables, NestedRun, ::testing::Values(NestedKind::Ept, NestedKind::Npt), nested_kind_name);

TEST_P(NestedRun, PhasesGiveTheSameCheckResultsAsDirect) {
  const Scenario s = nested_small({PopulatePhase{}, RandomAccessPhase{kNestedTestAccesses, 0.5}, ReadAllPhase{},
                                   MigrationPhase{2, 0.5, true, false}},
                                  GetParam());
  auto cmp = run_compare(s, kCompareNested);
  ASSERT_TRUE(cmp.has_value()) << cmp.error();
  ASSERT_EQ(cmp->runs.size(), 2u);
  EXPECT_EQ(cmp->table.values, (std::vector<std::string>{"direct", "nested"}));
  const RunReport& direct = cmp->runs[0];
  const RunReport& nested = cmp->runs[1];
  EXPECT_FALSE(direct.scenario.vm.nested.has_value());
  ASSERT_TRUE(nested.scenario.vm.nested.has_value());
  EXPECT_EQ(nested.scenario.vm.nested->kind, GetParam());
  for (const std::string& f : direct.failures()) ADD_FAILURE() << "direct: " << f;
  for (const std::string& f : nested.failures()) ADD_FAILURE() << "nested: " << f;
  ASSERT_EQ(direct.phases.size(), nested.phases.size());
  for (std::size_t i = 0; i < direct.phases.size(); ++i) {
    const PhaseReport& d = direct.phases[i];
    const PhaseReport& n = nested.phases[i];
    ASSERT_EQ(d.results.size(), n.results.size()) << d.name;
    for (std::size_t k = 0; k < d.results.size(); ++k) EXPECT_EQ(d.results[k].value, n.results[k].value) << d.name;
    ASSERT_EQ(d.migration.size(), n.migration.size());
    for (std::size_t m = 0; m < d.migration.size(); ++m) {
      ASSERT_EQ(d.migration[m].iterations.size(), n.migration[m].iterations.size());
      for (std::size_t it = 0; it < d.migration[m].iterations.size(); ++it) {
        const MigrationIteration& a = d.migration[m].iterations[it];
        const MigrationIteration& b = n.migration[m].iterations[it];
        EXPECT_EQ(a.pages_written, b.pages_written);
        EXPECT_EQ(a.pages_dirty, b.pages_dirty);
        EXPECT_EQ(b.pages_lost, 0u);
      }
    }
    EXPECT_FALSE(find_metric(d, "nested_exits_to_l1").has_value()) << d.name;
  }
  EXPECT_EQ(metric(nested, "populate", "nested_exits_to_l1"), kNestedTestPages);
  // Side by side: the nested column has the nested figures, the direct one none; they stay
  // with their phase, before the next phase's rows.
  const auto& rows = cmp->table.rows;
  auto exits = std::find_if(rows.begin(), rows.end(),
                            [](const CompareRow& r) { return r.phase == "populate" && r.key == "nested_exits_to_l1"; });
  ASSERT_NE(exits, rows.end());
  EXPECT_FALSE(exits->values[0].has_value());
  EXPECT_EQ(exits->values[1], kNestedTestPages);
  EXPECT_EQ((exits + 1)->phase, "populate");  // nested_l1_ept_writes follows
  auto next = std::find_if(rows.begin(), rows.end(), [](const CompareRow& r) { return r.phase == "random-access"; });
  EXPECT_LT(exits - rows.begin(), next - rows.begin());
}

TEST_P(NestedRun, L2WritesAppearInL1sDirtyLogWithTheMigrationCheckPassing) {
  // EPTP's A/D switch both ways; NPT has none.
  const std::vector<bool> ads =
      GetParam() == NestedKind::Ept ? std::vector<bool>{false, true} : std::vector<bool>{true};
  for (const bool ad : ads) {
    SCOPED_TRACE(ad ? "A/D on" : "EPT A/D off");
    const RunReport r = run_ok(nested_small({MigrationPhase{2, 0.5, true, false}}, GetParam(), ad));
    ASSERT_EQ(r.phases.size(), 1u);
    ASSERT_EQ(r.phases[0].migration.size(), 1u);
    std::uint64_t written = 0;
    for (const MigrationIteration& it : r.phases[0].migration[0].iterations) {
      EXPECT_GT(it.pages_written, 0u);
      EXPECT_EQ(it.pages_lost, 0u);
      // Only L2's writes reach the scenario's slots: L1's table pages are in a pool never logged.
      EXPECT_EQ(it.pages_dirty, it.pages_written);
      written += it.pages_written;
    }
    EXPECT_GE(metric(r, "migration", "nested_logged"), written);
    EXPECT_TRUE(r.ok());
  }
}

TEST_P(NestedRun, ExitsToL1AndInveptsAreExactForASmallScenario) {
  const RunReport r = run_ok(nested_small({PopulatePhase{}, ReadAllPhase{}}, GetParam()));
  // Every L2 page's first write is an EPT violation (a not-present #NPF) L1 fixes with one
  // leaf; the tables above come with the first pages.
  EXPECT_EQ(metric(r, "populate", "nested_exits_to_l1"), kNestedTestPages);
  EXPECT_EQ(metric(r, "populate", "nested_l1_ept_writes"), kNestedTestEptWrites);
  EXPECT_EQ(metric(r, "populate", "nested_invepts"), 1u);  // before the first VM entry only
  // Under NPT the flush is VMRUN's TLB_CONTROL, not an INVEPT: the report says which.
  const std::string flushes = nested_label(r, "populate", "nested_invepts");
  EXPECT_EQ(flushes.find("INVEPT") == std::string::npos, GetParam() == NestedKind::Npt) << flushes;
  EXPECT_EQ(metric(r, "populate", "nested_roots_built"), 1u);
  EXPECT_EQ(metric(r, "read-all", "nested_exits_to_l1"), 0u);
  EXPECT_EQ(metric(r, "read-all", "nested_l1_ept_writes"), 0u);
  EXPECT_EQ(metric(r, "read-all", "nested_invepts"), 0u);
  EXPECT_EQ(metric(r, "read-all", "nested_faults"), 0u);  // the shadow EPT answers every read
  EXPECT_GT(metric(r, "read-all", "nested_shadow_pages"), 0u);
  const std::vector<Metric> totals = nested_totals(r);
  auto total = [&](std::string_view key) {
    for (const Metric& m : totals) {
      if (m.key == key) return m.value;
    }
    ADD_FAILURE() << "no total " << key;
    return std::uint64_t{0};
  };
  EXPECT_EQ(total("nested_exits_to_l1"), kNestedTestPages);
  EXPECT_EQ(total("nested_invepts"), 1u);
  EXPECT_EQ(total("nested_shadow_pages"), metric(r, "read-all", "nested_shadow_pages"));

  Scenario prefaulted = nested_small({PopulatePhase{}}, GetParam());
  prefaulted.vm.nested->prefault = true;
  const RunReport p = run_ok(prefaulted);
  EXPECT_EQ(metric(p, "populate", "nested_exits_to_l1"), 0u);
  EXPECT_EQ(metric(p, "populate", "nested_l1_ept_writes"), 0u);  // all made before the phase
  EXPECT_EQ(metric(p, "populate", "nested_invepts"), 1u);
}

struct NestedRefusal {
  std::function<void(Scenario&)> change;
  const char* key;
  const char* message;
};

class NestedScenario : public ::testing::TestWithParam<NestedKind> {};
INSTANTIATE_TEST_SUITE_P(L1Tables, NestedScenario, ::testing::Values(NestedKind::Ept, NestedKind::Npt),
                         nested_kind_name);

TEST_P(NestedScenario, RefusesWhatAnL2GuestCannotRunWithOneLineNamingTheKey) {
  const std::vector<NestedRefusal> cases = {
      {[](Scenario& s) { s.vm.dirty_ring_size = 64; }, "vm.dirty_ring_size", "dirty bitmaps"},
      {[](Scenario& s) { s.phases[0].params = SmepStormPhase{}; }, "phases[0]", "smep-storm"},
      {[](Scenario& s) { s.phases[0].params = ForkPhase{16, 0.5}; }, "phases[0]", "fork"},
      {[](Scenario& s) { s.phases[0].params = RewriteTablesPhase{}; }, "phases[0]", "rewrite-tables"},
      {[](Scenario& s) { s.phases[0].params = Cr3SwitchPhase{}; }, "phases[0]", "cr3-switch"},
      {[](Scenario& s) { s.phases[0].params = ConversionPhase{1}; }, "phases[0]", "conversion"},
      {[](Scenario& s) { s.phases[0].params = MigrationPhase{1, 1.0, true, true}; }, "phases[0].harvest_while_writing",
       "lock"},
      {[](Scenario& s) {
         s.vm.levels = 5;
         s.memslots[0].gpa = kNestedMemoryLimit;
       },
       "memslots[0].gpa", GetParam() == NestedKind::Npt ? "4-level nested page tables" : "4-level EPT"},
  };
  for (const NestedRefusal& c : cases) {
    Scenario s = nested_small({PopulatePhase{}}, GetParam());
    ASSERT_FALSE(validate(s).has_value());
    c.change(s);
    const auto e = validate(s);
    if (!e) {
      ADD_FAILURE() << c.key << " (" << c.message << ") was accepted";
      continue;
    }
    EXPECT_EQ(e->key, c.key) << e->message;
    EXPECT_NE(e->message.find(c.message), std::string::npos) << e->key << ": " << e->message;
    EXPECT_EQ(e->message.find('\n'), std::string::npos);
  }
}

}  // namespace
}  // namespace vmmu::sim::test
