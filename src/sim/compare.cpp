#include "vmmu/sim/compare.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "vmmu/tdp/policy.hpp"

namespace vmmu::sim {

bool CompareRow::all_zero() const {
  bool any = false;
  for (const auto& v : values) {
    if (v && *v != 0) return false;
    any = any || v.has_value();
  }
  return any;
}

bool CompareReport::ok() const {
  for (const RunReport& r : runs) {
    if (!r.ok()) return false;
  }
  return true;
}

void add_to_column(CompareTable& t, std::size_t column, std::string_view phase, const std::vector<Metric>& metrics,
                   std::size_t results) {
  for (std::size_t m = 0; m < metrics.size(); ++m) {
    auto row = std::find_if(t.rows.begin(), t.rows.end(),
                            [&](const CompareRow& r) { return r.phase == phase && r.key == metrics[m].key; });
    if (row == t.rows.end()) {
      // After the phase's last row: a figure only a later column has (--compare nested's
      // nested_*, --compare mmu's shadow keys) stays with its phase.
      auto last = std::find_if(t.rows.rbegin(), t.rows.rend(), [&](const CompareRow& r) { return r.phase == phase; });
      CompareRow fresh{std::string(phase), metrics[m].key, metrics[m].label, metrics[m].unit, m < results, {}};
      fresh.values.resize(t.values.size());
      row = t.rows.insert(last == t.rows.rend() ? t.rows.end() : last.base(), std::move(fresh));
    }
    row->values[column] = metrics[m].value;
  }
}

CompareTable compare_table(std::string policy, std::vector<std::string> values, const std::vector<RunReport>& runs) {
  CompareTable t{std::move(policy), std::move(values), {}};
  // Phases in order of the first run that has them; all runs share the scenario, so one order.
  for (std::size_t r = 0; r < runs.size(); ++r) {
    for (const PhaseReport& p : runs[r].phases) {
      const std::size_t results =
          1 + p.results.size() + (p.migration.empty() ? 0 : migration_metrics(p.migration[0]).size());
      add_to_column(t, r, p.name, all_metrics(p), results);
    }
  }
  return t;
}

std::vector<std::string_view> compare_values(std::string_view dimension) {
  if (dimension == kCompareMmu)
    return {mmu::to_string(mmu::MmuKind::Tdp), mmu::to_string(mmu::MmuKind::Shadow),
            mmu::to_string(mmu::MmuKind::Adaptive)};
  if (dimension == kCompareUnsync) return {"on", "off"};
  if (dimension == kCompareNested) return {"direct", "nested"};
  return tdp::policy_values(dimension);
}

std::string compare_dimensions() {
  std::string known;
  for (std::string_view n : tdp::kPolicyNames) known += (known.empty() ? "" : ", ") + std::string(n);
  return known + ", " + std::string(kCompareMmu) + ", " + std::string(kCompareUnsync) + ", " +
         std::string(kCompareNested);
}

Result<CompareReport, std::string> run_compare(const Scenario& scenario, std::string_view policy,
                                               const RunOptions& options) {
  const std::vector<std::string_view> values = compare_values(policy);
  if (values.empty()) {
    return Unexpected{fmt::format("unknown policy \"{}\" (expected one of {})", policy, compare_dimensions())};
  }
  if (policy == kCompareUnsync && scenario.vm.mmu != mmu::MmuKind::Shadow)
    return Unexpected{std::string("--compare shadow-unsync compares the shadow MMU: set vm.mmu shadow")};
  CompareReport out;
  std::vector<std::string> names;
  for (std::string_view v : values) {
    Scenario s = scenario;
    if (policy == kCompareMmu)
      s.vm.mmu = *mmu::parse_mmu_kind(v);
    else if (policy == kCompareUnsync)
      s.vm.shadow_unsync = v == "on";
    else if (policy == kCompareNested)
      s.vm.nested = v == "nested" ? scenario.vm.nested.value_or(NestedParams{}) : std::optional<NestedParams>();
    else
      tdp::set_policy(s.policies, policy, v);
    RunOptions o = options;
    o.variant = fmt::format("{}={}", policy, v);
    auto r = run(s, o);
    if (!r) return Unexpected{fmt::format("{}: {}", o.variant, r.error())};
    out.runs.push_back(std::move(*r));
    names.emplace_back(v);
  }
  out.table = compare_table(std::string(policy), std::move(names), out.runs);
  return out;
}

}  // namespace vmmu::sim
