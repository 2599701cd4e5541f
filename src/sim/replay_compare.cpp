// Replay policies side by side: one axis, one run per value, one table (replay_compare.hpp).

#include "vmmu/sim/replay_compare.hpp"

#include <fmt/format.h>

#include <charconv>

namespace vmmu::sim {
namespace {

constexpr std::uint64_t k2M = std::uint64_t{2} << 20;

std::optional<std::uint32_t> parse_u32(std::string_view s) {
  std::uint32_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

Status<std::string> set_mmu(ReplayConfig& c, std::string_view v) {
  const std::optional<MmuKind> k = mmu_kind(v);
  if (!k) {
    std::string names;
    for (const MmuKindName& m : kMmuKinds) names += (names.empty() ? "" : ", ") + std::string(m.name);
    return Unexpected{fmt::format("expected one of {}", names)};
  }
  c.mmu = *k;
  return {};
}

Status<std::string> set_guest_pages(ReplayConfig& c, std::string_view v) {
  if (v != "4k" && v != "2m") return Unexpected{std::string("expected 4k or 2m")};
  c.guest_page_size = v == "4k" ? kPageSize : k2M;
  return {};
}

Status<std::string> set_tlb(ReplayConfig& c, std::string_view v) {
  const std::size_t colon = v.find(':');
  const auto entries = parse_u32(v.substr(0, colon));
  const auto ways = colon == std::string_view::npos ? std::optional<std::uint32_t>(0) : parse_u32(v.substr(colon + 1));
  if (!entries || !ways || *entries == 0 || (colon != std::string_view::npos && *ways == 0))
    return Unexpected{std::string("expected ENTRIES or ENTRIES:WAYS (numbers of at least 1)")};
  if (*ways != 0 && (*ways > *entries || *entries % *ways != 0))
    return Unexpected{std::string("the ways must divide the entries")};
  c.tlb = {*entries, *ways};
  return {};
}

struct Axis {
  std::string_view name;
  std::vector<std::string_view> values;
  Status<std::string> (*set)(ReplayConfig&, std::string_view);
};

const std::vector<Axis>& axes() {
  static const std::vector<Axis> kAxes = [] {
    std::vector<std::string_view> kinds;
    for (const MmuKindName& m : kMmuKinds) kinds.push_back(m.name);
    return std::vector<Axis>{{"mmu", kinds, set_mmu},
                             {"guest-pages", {"4k", "2m"}, set_guest_pages},
                             {"tlb", {"16", "64", "256", "1536"}, set_tlb}};
  }();
  return kAxes;
}

const Axis* find_axis(std::string_view name) {
  for (const Axis& a : axes()) {
    if (a.name == name) return &a;
  }
  return nullptr;
}

}  // namespace

std::string replay_axis_names() {
  std::string out;
  for (const Axis& a : axes()) out += (out.empty() ? "" : ", ") + std::string(a.name);
  for (std::string_view p : tdp::kPolicyNames) out += ", " + std::string(p);
  return out;
}

std::vector<std::string> replay_axis_values(std::string_view axis) {
  std::vector<std::string> out;
  if (const Axis* a = find_axis(axis)) {
    out.assign(a->values.begin(), a->values.end());
  } else {
    for (std::string_view v : tdp::policy_values(axis)) out.emplace_back(v);
  }
  return out;
}

Status<std::string> set_replay_axis(ReplayConfig& c, std::string_view axis, std::string_view value) {
  if (const Axis* a = find_axis(axis)) return a->set(c, value);
  if (tdp::policy_values(axis).empty())
    return Unexpected{fmt::format("unknown axis \"{}\" (expected one of {})", axis, replay_axis_names())};
  if (!tdp::set_policy(c.policies, axis, value)) {
    std::string known;
    for (std::string_view v : tdp::policy_values(axis)) known += (known.empty() ? "" : ", ") + std::string(v);
    return Unexpected{fmt::format("expected one of {}", known)};
  }
  return {};
}

Result<ReplayCompareReport, ReplayError> run_replay_compare(const std::vector<std::string>& traces,
                                                            const ReplayConfig& config, std::string_view axis,
                                                            std::vector<std::string> values) {
  if (replay_axis_values(axis).empty())
    return Unexpected{ReplayError{true, fmt::format("--compare: unknown axis \"{}\" (expected one of {})", axis,
                                                    replay_axis_names())}};
  if (values.empty()) values = replay_axis_values(axis);
  std::vector<ReplayConfig> configs;
  for (const std::string& v : values) {
    ReplayConfig c = config;
    if (auto s = set_replay_axis(c, axis, v); !s)
      return Unexpected{ReplayError{true, fmt::format("--compare {}={}: {}", axis, v, s.error())}};
    configs.push_back(c);
  }
  ReplayCompareReport out;
  out.table.policy = std::string(axis);
  out.table.values = values;
  for (std::size_t i = 0; i < configs.size(); ++i) {
    if (auto why = replay_lacks(configs[i].mmu)) {
      out.notes.push_back(fmt::format("{}: not run: {}", values[i], *why));
      out.runs.emplace_back();
      continue;
    }
    auto r = replay(traces, configs[i]);
    if (!r) return Unexpected{ReplayError{r.error().bad_input, fmt::format("{}={}: {}", axis, values[i], r.error().message)}};
    const std::vector<Metric> metrics = replay_metrics(*r);
    std::size_t results = 0;
    while (results < metrics.size() && !metrics[results].key.starts_with("stats.")) ++results;
    add_to_column(out.table, i, "replay", metrics, results);
    out.runs.emplace_back(std::move(*r));
  }
  return out;
}

}  // namespace vmmu::sim
