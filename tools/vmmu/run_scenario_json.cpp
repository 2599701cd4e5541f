#include "run_scenario_json.hpp"

#include "case_json.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <optional>
#include <span>
#include <vector>

#include "json_types.hpp"
#include "run_scenario_keys.hpp"
#include "vmmu/core/page_size.hpp"
#include "vmmu/tdp/policy.hpp"

namespace vmmu::cli {
namespace {

using sim::ScenarioError;
using namespace scenario_keys;

constexpr std::string_view kDefaultScenario = R"({
  "format": "vmmu-scenario/1",
  "name": "default",
  "description": "Every phase once on a small VM: 2 vCPUs, 256 MiB backed by 2 MiB pages, EPT 4-level with A/D bits",
  "seed": 1,
  "vm": {"tdp": "ept", "levels": 4, "ad_bits": true, "pages_1g": true, "dirty_ring_size": 0, "vcpus": 2},
  "policies": {
    "huge-on-dirty-log": "write-protect",
    "split": "eager",
    "recovery": "merge-in-place",
    "roots": "keep",
    "dirty-tracking": "write-protect"
  },
  "memslots": [{"size": "256M", "backing_page_size": "2M"}],
  "phases": [
    "populate",
    {"kind": "random-access", "accesses": 1000000, "write_fraction": 0.5},
    {"kind": "smep-storm", "flips": 10000, "touch_pages": 8},
    {"kind": "migration", "iterations": 3, "write_fraction": 1.0},
    "dirty-log-enable",
    "read-all",
    "dirty-log-disable",
    {"kind": "conversion", "ranges": 16},
    {"kind": "fork", "pages": 256, "write_fraction": 0.5},
    {"kind": "rewrite-tables", "pages": 64, "rounds": 16, "flush": "invlpg"},
    {"kind": "cr3-switch", "processes": 3, "switches": 1000, "touch_pages": 4, "pcid": true}
  ]
}
)";

// The keys a phase of `kind` takes besides "kind" and "name".
std::vector<std::string_view> phase_keys(sim::PhaseKind kind) {
  switch (kind) {
    case sim::PhaseKind::RandomAccess:
      return {"accesses", "write_fraction"};
    case sim::PhaseKind::SmepStorm:
      return {"flips", "touch_pages"};
    case sim::PhaseKind::Migration:
      return {"iterations", "write_fraction", "manual_protect", "harvest_while_writing"};
    case sim::PhaseKind::Conversion:
      return {"ranges"};
    case sim::PhaseKind::Fork:
      return {"pages", "write_fraction"};
    case sim::PhaseKind::RewriteTables:
      return {"pages", "rounds", "flush"};
    case sim::PhaseKind::Cr3Switch:
      return {"processes", "switches", "touch_pages", "pcid"};
    default:
      return {};
  }
}

std::string key_of(std::string_view at, std::string_view key) {
  return at.empty() ? std::string(key) : fmt::format("{}.{}", at, key);
}

// A value as the error message quotes it: compact JSON, cut short.
std::string shown(const Json& v) {
  std::string s = v.dump();
  if (s.size() > 40) s = s.substr(0, 37) + "...";
  return s;
}

// "256M", "2MiB", "4k", "1G", "0x1000", "4096": bytes.
std::optional<std::uint64_t> parse_size(std::string_view s) {
  std::uint64_t n = 0;
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    auto [end, ec] = std::from_chars(s.data() + 2, s.data() + s.size(), n, 16);
    if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
    return n;
  }
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (ec != std::errc() || end == s.data()) return std::nullopt;
  std::string unit(end, s.data() + s.size());
  for (char& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (unit.size() == 3 && unit.substr(1) == "IB") unit.resize(1);
  std::uint64_t scale = 1;
  if (unit == "K")
    scale = KiB;
  else if (unit == "M")
    scale = MiB;
  else if (unit == "G")
    scale = GiB;
  else if (unit == "T")
    scale = TiB;
  else if (!unit.empty())
    return std::nullopt;
  if (n > ~std::uint64_t{0} / scale) return std::nullopt;
  return n * scale;
}

// A JSON integer that is not negative (nlohmann keeps parsed ones unsigned, assigned ones signed).
std::optional<std::uint64_t> as_unsigned(const Json& j) {
  if (j.is_number_unsigned()) return j.get<std::uint64_t>();
  if (j.is_number_integer() && j.get<std::int64_t>() >= 0) return static_cast<std::uint64_t>(j.get<std::int64_t>());
  return std::nullopt;
}

// Reads a document, keeping the first error; later reads of a failed reader return defaults.
class Reader {
 public:
  std::optional<ScenarioError> error;

  void fail(std::string key, std::string message) {
    if (!error) error = ScenarioError{std::move(key), std::move(message)};
  }

  // True when `j` is an object whose keys are all in `allowed`.
  bool object(const Json& j, const std::string& at, Names allowed, std::string_view what) {
    if (!j.is_object()) {
      fail(at.empty() ? "(top level)" : at, fmt::format("expected {} (a JSON object), got {}", what, shown(j)));
      return false;
    }
    for (const auto& [k, v] : j.items()) {
      if (!contains(allowed, k)) {
        fail(key_of(at, k), fmt::format("unknown key (expected one of: {})", join(allowed)));
        return false;
      }
    }
    return true;
  }

  std::uint64_t integer(const Json& j, const std::string& at, std::uint64_t max = ~std::uint64_t{0}) {
    const auto n = as_unsigned(j);
    if (n && *n <= max) return *n;
    if (n)
      fail(at, fmt::format("expected an integer up to {}, got {}", max, shown(j)));
    else
      fail(at, fmt::format("expected a non-negative integer, got {}", shown(j)));
    return 0;
  }

  std::uint64_t size(const Json& j, const std::string& at) {
    if (auto n = as_unsigned(j)) return *n;
    if (j.is_string()) {
      if (auto n = parse_size(j.get_ref<const std::string&>())) return *n;
    }
    fail(at, fmt::format(
                 "expected a size in bytes: an integer or a string like \"256M\", \"2M\", \"1G\", \"0x1000\", got {}",
                 shown(j)));
    return 0;
  }

  std::uint64_t address(const Json& j, const std::string& at) {
    if (auto n = as_unsigned(j)) return *n;
    if (j.is_string()) {
      if (auto n = parse_size(j.get_ref<const std::string&>())) return *n;
    }
    fail(at,
         fmt::format("expected a guest-physical address: an integer or a string like \"0x100000000\" or \"4G\", got {}",
                     shown(j)));
    return 0;
  }

  double fraction(const Json& j, const std::string& at) {
    if (j.is_number()) return j.get<double>();
    fail(at, fmt::format("expected a number from 0 to 1, got {}", shown(j)));
    return 0;
  }

  bool boolean(const Json& j, const std::string& at) {
    if (j.is_boolean()) return j.get<bool>();
    fail(at, fmt::format("expected true or false, got {}", shown(j)));
    return false;
  }

  std::string string(const Json& j, const std::string& at) {
    if (j.is_string()) return j.get<std::string>();
    fail(at, fmt::format("expected a string, got {}", shown(j)));
    return {};
  }
};

// vm.nested: "ept" / "npt", or an object {kind, ept_ad, prefault}; false or null: none.
// ept_ad (EPTP bit 6) with kind npt is refused: NPT has no such switch.
void read_nested(Reader& r, const Json& j, sim::VmParams& vm) {
  if (j.is_null() || (j.is_boolean() && !j.get<bool>())) {
    vm.nested.reset();
    return;
  }
  sim::NestedParams n = vm.nested.value_or(sim::NestedParams{});
  auto kind = [&](const Json& k, const std::string& at) {
    const std::string t = k.is_string() ? k.get<std::string>() : std::string();
    if (t == "ept")
      n.kind = sim::NestedKind::Ept;
    else if (t == "npt")
      n.kind = sim::NestedKind::Npt;
    else
      r.fail(at, fmt::format("expected \"ept\" or \"npt\" (the L1 hypervisor's tables for L2), got {}", shown(k)));
  };
  if (j.is_string()) {
    kind(j, "vm.nested");
  } else if (j.is_boolean()) {
    // true: the defaults
  } else if (r.object(j, "vm.nested", kVmNestedKeys, "the nested guest's settings, \"ept\", or false")) {
    if (auto k = j.find("kind"); k != j.end()) kind(*k, "vm.nested.kind");
    if (auto a = j.find("ept_ad"); a != j.end() && !r.error) {
      if (n.kind == sim::NestedKind::Npt)
        r.fail("vm.nested.ept_ad",
               "EPTP's A/D switch has no meaning under kind \"npt\" (the nested walk always sets A/D): drop the key");
      else
        n.ept_ad = r.boolean(*a, "vm.nested.ept_ad");
    }
    if (auto p = j.find("prefault"); p != j.end()) n.prefault = r.boolean(*p, "vm.nested.prefault");
  }
  if (!r.error) vm.nested = n;
}

void read_vm(Reader& r, const Json& j, sim::VmParams& vm) {
  if (!r.object(j, "vm", kVmKeys, "the VM's settings")) return;
  if (auto it = j.find("mmu"); it != j.end()) {
    const std::string m = r.string(*it, "vm.mmu");
    if (const std::optional<mmu::MmuKind> k = mmu::parse_mmu_kind(m))
      vm.mmu = *k;
    else if (!r.error)
      r.fail("vm.mmu", fmt::format("expected \"tdp\", \"shadow\" or \"adaptive\", got {}", shown(*it)));
  }
  if (auto it = j.find("tdp"); it != j.end()) {
    const std::string t = r.string(*it, "vm.tdp");
    if (t == "ept")
      vm.tdp = tdp::TdpKind::Ept;
    else if (t == "npt")
      vm.tdp = tdp::TdpKind::Npt;
    else if (!r.error)
      r.fail("vm.tdp", fmt::format("expected \"ept\" or \"npt\", got {}", shown(*it)));
  }
  if (auto it = j.find("levels"); it != j.end()) vm.levels = static_cast<unsigned>(r.integer(*it, "vm.levels", 255));
  if (auto it = j.find("ad_bits"); it != j.end()) vm.ad_bits = r.boolean(*it, "vm.ad_bits");
  if (auto it = j.find("pages_1g"); it != j.end()) vm.pages_1g = r.boolean(*it, "vm.pages_1g");
  if (auto it = j.find("dirty_ring_size"); it != j.end())
    vm.dirty_ring_size = static_cast<std::uint32_t>(r.integer(*it, "vm.dirty_ring_size", 0xffff'ffff));
  if (auto it = j.find("vcpus"); it != j.end())
    vm.vcpus = static_cast<unsigned>(r.integer(*it, "vm.vcpus", 0xffff'ffff));
  if (auto it = j.find("shadow"); it != j.end() && r.object(*it, "vm.shadow", kVmShadowKeys, "the shadow MMU's settings")) {
    if (auto u = it->find("unsync"); u != it->end()) vm.shadow_unsync = r.boolean(*u, "vm.shadow.unsync");
  }
  if (auto it = j.find("nested"); it != j.end() && !r.error) read_nested(r, *it, vm);
}

void read_policies(Reader& r, const Json& j, tdp::Policies& p) {
  if (!r.object(j, "policies", tdp::kPolicyNames, "policies")) return;
  for (const auto& [name, value] : j.items()) {
    const std::string at = "policies." + name;
    const std::string v = r.string(value, at);
    if (r.error) return;
    if (!tdp::set_policy(p, name, v)) {
      std::string expected;
      for (std::string_view x : tdp::policy_values(name)) expected += (expected.empty() ? "" : ", ") + std::string(x);
      r.fail(at, fmt::format("expected one of: {}; got {}", expected, shown(value)));
    }
  }
}

void read_memslots(Reader& r, const Json& j, std::vector<sim::MemslotParams>& out) {
  if (!j.is_array()) {
    r.fail("memslots", fmt::format("expected an array of memslots, got {}", shown(j)));
    return;
  }
  for (std::size_t i = 0; i < j.size() && !r.error; ++i) {
    const std::string at = fmt::format("memslots[{}]", i);
    const Json& m = j[i];
    if (!r.object(m, at, kMemslotKeys, "a memslot")) return;
    sim::MemslotParams p;
    if (auto it = m.find("size"); it != m.end())
      p.size = r.size(*it, at + ".size");
    else
      r.fail(at + ".size", "missing (expected the slot's size, e.g. \"256M\")");
    if (auto it = m.find("backing_page_size"); it != m.end())
      p.backing_page_size = r.size(*it, at + ".backing_page_size");
    if (auto it = m.find("gpa"); it != m.end()) p.gpa = r.address(*it, at + ".gpa");
    if (auto it = m.find("host_huge_pages"); it != m.end()) p.host_huge_pages = r.boolean(*it, at + ".host_huge_pages");
    out.push_back(p);
  }
}

sim::PhaseParams read_phase_params(Reader& r, const Json& j, const std::string& at, sim::PhaseKind kind) {
  sim::PhaseParams params = sim::default_params(kind);
  auto get = [&](std::string_view key) -> const Json* {
    auto it = j.find(key);
    return it == j.end() ? nullptr : &*it;
  };
  std::visit(
      [&](auto& p) {
        using T = std::decay_t<decltype(p)>;
        if constexpr (std::is_same_v<T, sim::RandomAccessPhase>) {
          if (auto* v = get("accesses")) p.accesses = r.integer(*v, at + ".accesses");
          if (auto* v = get("write_fraction")) p.write_fraction = r.fraction(*v, at + ".write_fraction");
        } else if constexpr (std::is_same_v<T, sim::SmepStormPhase>) {
          if (auto* v = get("flips")) p.flips = r.integer(*v, at + ".flips");
          if (auto* v = get("touch_pages")) p.touch_pages = r.integer(*v, at + ".touch_pages");
        } else if constexpr (std::is_same_v<T, sim::MigrationPhase>) {
          if (auto* v = get("iterations"))
            p.iterations = static_cast<std::uint32_t>(r.integer(*v, at + ".iterations", 0xffff'ffff));
          if (auto* v = get("write_fraction")) p.write_fraction = r.fraction(*v, at + ".write_fraction");
          if (auto* v = get("manual_protect")) p.manual_protect = r.boolean(*v, at + ".manual_protect");
          if (auto* v = get("harvest_while_writing"))
            p.harvest_while_writing = r.boolean(*v, at + ".harvest_while_writing");
        } else if constexpr (std::is_same_v<T, sim::ConversionPhase>) {
          if (auto* v = get("ranges")) p.ranges = r.integer(*v, at + ".ranges");
        } else if constexpr (std::is_same_v<T, sim::ForkPhase>) {
          if (auto* v = get("pages")) p.pages = r.integer(*v, at + ".pages");
          if (auto* v = get("write_fraction")) p.write_fraction = r.fraction(*v, at + ".write_fraction");
        } else if constexpr (std::is_same_v<T, sim::RewriteTablesPhase>) {
          if (auto* v = get("pages")) p.pages = r.integer(*v, at + ".pages");
          if (auto* v = get("rounds")) p.rounds = static_cast<std::uint32_t>(r.integer(*v, at + ".rounds", 0xffff'ffff));
          if (auto* v = get("flush")) {
            const std::string f = r.string(*v, at + ".flush");
            if (f == "invlpg")
              p.flush = sim::RewriteFlush::Invlpg;
            else if (f == "cr3")
              p.flush = sim::RewriteFlush::Cr3;
            else if (!r.error)
              r.fail(at + ".flush", fmt::format("expected \"invlpg\" or \"cr3\", got {}", shown(*v)));
          }
        } else if constexpr (std::is_same_v<T, sim::Cr3SwitchPhase>) {
          if (auto* v = get("processes"))
            p.processes = static_cast<std::uint32_t>(r.integer(*v, at + ".processes", 0xffff'ffff));
          if (auto* v = get("switches")) p.switches = r.integer(*v, at + ".switches");
          if (auto* v = get("touch_pages")) p.touch_pages = r.integer(*v, at + ".touch_pages");
          if (auto* v = get("pcid")) p.pcid = r.boolean(*v, at + ".pcid");
        }
      },
      params);
  return params;
}

std::string kinds() {
  std::string out;
  for (sim::PhaseKind k : sim::all_phase_kinds()) out += (out.empty() ? "" : ", ") + std::string(sim::to_string(k));
  return out;
}

void read_phases(Reader& r, const Json& j, std::vector<sim::Phase>& out) {
  if (!j.is_array()) {
    r.fail("phases", fmt::format("expected an array of phases, got {}", shown(j)));
    return;
  }
  for (std::size_t i = 0; i < j.size() && !r.error; ++i) {
    const std::string at = fmt::format("phases[{}]", i);
    const Json& p = j[i];
    const Json* kind_json = nullptr;
    if (p.is_string())
      kind_json = &p;
    else if (p.is_object()) {
      auto it = p.find("kind");
      if (it == p.end()) {
        r.fail(at + ".kind", fmt::format("missing (expected one of: {})", kinds()));
        return;
      }
      kind_json = &*it;
    } else {
      r.fail(at, fmt::format("expected a phase: a kind (\"populate\") or an object with \"kind\", got {}", shown(p)));
      return;
    }
    const std::string kind_at = p.is_string() ? at : at + ".kind";
    const std::string name = r.string(*kind_json, kind_at);
    if (r.error) return;
    const auto kind = sim::parse_phase_kind(name);
    if (!kind) {
      r.fail(kind_at, fmt::format("unknown phase {} (expected one of: {})", shown(*kind_json), kinds()));
      return;
    }
    sim::Phase phase{"", sim::default_params(*kind)};
    if (p.is_object()) {
      std::vector<std::string_view> allowed = {"kind", "name"};
      for (std::string_view k : phase_keys(*kind)) allowed.push_back(k);
      for (const auto& [k, v] : p.items()) {
        if (!contains(allowed, k)) {
          r.fail(key_of(at, k), fmt::format("unknown key for a {} phase (expected one of: {})", name, join(allowed)));
          return;
        }
      }
      if (auto it = p.find("name"); it != p.end()) phase.name = r.string(*it, at + ".name");
      phase.params = read_phase_params(r, p, at, *kind);
    }
    out.push_back(std::move(phase));
  }
}

}  // namespace

std::string_view default_scenario_text() { return kDefaultScenario; }

Result<Json, ScenarioError> parse_scenario_text(std::string_view text) {
  try {
    return Json::parse(text);
  } catch (const Json::exception& e) {  // nlohmann reports position and reason only this way:
    // a syntax error (parse_error) or a number too large for a double (out_of_range)
    return Unexpected{ScenarioError{"", fmt::format("not JSON: {}", json_error_text(e))}};
  }
}

Result<sim::Scenario, ScenarioError> read_scenario(const Json& doc) {
  Reader r;
  sim::Scenario s;
  if (!r.object(doc, "", kTopKeys, "a scenario")) return Unexpected{*r.error};
  auto format = doc.find("format");
  if (format == doc.end())
    return Unexpected{ScenarioError{"format", fmt::format("missing (expected \"{}\")", kScenarioFormat)}};
  if (!format->is_string() || format->get<std::string>() != kScenarioFormat)
    return Unexpected{ScenarioError{"format", fmt::format("expected \"{}\", got {}", kScenarioFormat, shown(*format))}};
  if (auto it = doc.find("name"); it != doc.end()) s.name = r.string(*it, "name");
  if (auto it = doc.find("description"); it != doc.end()) s.description = r.string(*it, "description");
  if (auto it = doc.find("seed"); it != doc.end()) s.seed = r.integer(*it, "seed");
  if (auto it = doc.find("vm"); it != doc.end() && !r.error) read_vm(r, *it, s.vm);
  if (auto it = doc.find("policies"); it != doc.end() && !r.error) read_policies(r, *it, s.policies);
  if (auto it = doc.find("memslots"); it != doc.end()) {
    if (!r.error) read_memslots(r, *it, s.memslots);
  } else {
    r.fail("memslots", "missing (expected an array of memslots, e.g. [{\"size\": \"256M\"}])");
  }
  if (auto it = doc.find("phases"); it != doc.end()) {
    if (!r.error) read_phases(r, *it, s.phases);
  } else {
    r.fail("phases", fmt::format("missing (expected an array of phases: {})", kinds()));
  }
  if (r.error) return Unexpected{*r.error};
  if (auto e = sim::validate(s)) return Unexpected{*e};
  return s;
}

Result<sim::Scenario, std::string> load_scenario(std::string_view text, std::string_view origin,
                                                 std::span<const std::string> sets) {
  auto line = [&](const ScenarioError& e) {
    return e.key.empty() ? fmt::format("{}: {}", origin, e.message)
                         : fmt::format("{}: {}: {}", origin, e.key, e.message);
  };
  auto set_line = [](std::string_view set, const ScenarioError& e) {
    return e.key.empty() ? fmt::format("--set {}: {}", set, e.message)
                         : fmt::format("--set {}: {}: {}", set, e.key, e.message);
  };
  auto doc = parse_scenario_text(text);
  if (!doc) return Unexpected{line(doc.error())};
  std::vector<std::vector<std::string>> placed(sets.size());
  for (std::size_t i = 0; i < sets.size(); ++i) {
    if (auto s = apply_set(*doc, sets[i], &placed[i]); !s) return Unexpected{set_line(sets[i], s.error())};
  }
  auto s = read_scenario(*doc);
  if (s) return std::move(*s);
  // The last override that placed a value at the failing key, or above it, is what to blame.
  const std::string& key = s.error().key;
  auto under = [&](const std::string& at) {
    return key.compare(0, at.size(), at) == 0 && (key.size() == at.size() || key[at.size()] == '.' || key[at.size()] == '[');
  };
  for (std::size_t i = sets.size(); i-- > 0;) {
    for (const std::string& at : placed[i]) {
      if (under(at)) return Unexpected{set_line(sets[i], s.error())};
    }
  }
  return Unexpected{line(s.error())};
}

nlohmann::ordered_json scenario_to_json(const sim::Scenario& s) {
  auto size_text = [](std::uint64_t bytes) -> OJson {
    if (bytes != 0 && bytes % KiB == 0) return size_name(bytes);
    return bytes;
  };
  OJson out;
  out["format"] = kScenarioFormat;
  out["name"] = s.name;
  out["description"] = s.description;
  out["seed"] = s.seed;
  out["vm"] = {{"mmu", std::string(mmu::to_string(s.vm.mmu))},
               {"tdp", s.vm.tdp == tdp::TdpKind::Ept ? "ept" : "npt"},
               {"levels", s.vm.levels},
               {"ad_bits", s.vm.ad_bits},
               {"pages_1g", s.vm.pages_1g},
               {"dirty_ring_size", s.vm.dirty_ring_size},
               {"vcpus", s.vm.vcpus},
               {"shadow", {{"unsync", s.vm.shadow_unsync}}}};
  if (s.vm.nested && s.vm.nested->kind == sim::NestedKind::Npt)
    out["vm"]["nested"] = {{"kind", "npt"}, {"prefault", s.vm.nested->prefault}};  // no ept_ad: refused
  else if (s.vm.nested)
    out["vm"]["nested"] = {{"kind", "ept"}, {"ept_ad", s.vm.nested->ept_ad}, {"prefault", s.vm.nested->prefault}};
  OJson policies = OJson::object();
  for (std::string_view name : tdp::kPolicyNames) policies[std::string(name)] = tdp::policy_value(s.policies, name);
  out["policies"] = policies;
  OJson slots = OJson::array();
  for (const sim::MemslotParams& m : s.memslots) {
    OJson slot = {{"size", size_text(m.size)}, {"backing_page_size", size_text(m.backing_page_size)}};
    if (m.gpa) slot["gpa"] = fmt::format("{:#x}", *m.gpa);
    slot["host_huge_pages"] = m.host_huge_pages;
    slots.push_back(slot);
  }
  out["memslots"] = slots;
  OJson phases = OJson::array();
  for (const sim::Phase& p : s.phases) {
    OJson j = {{"kind", sim::to_string(p.kind())}};
    if (!p.name.empty()) j["name"] = p.name;
    std::visit(
        [&](const auto& q) {
          using T = std::decay_t<decltype(q)>;
          if constexpr (std::is_same_v<T, sim::RandomAccessPhase>) {
            j["accesses"] = q.accesses;
            j["write_fraction"] = q.write_fraction;
          } else if constexpr (std::is_same_v<T, sim::SmepStormPhase>) {
            j["flips"] = q.flips;
            j["touch_pages"] = q.touch_pages;
          } else if constexpr (std::is_same_v<T, sim::MigrationPhase>) {
            j["iterations"] = q.iterations;
            j["write_fraction"] = q.write_fraction;
            j["manual_protect"] = q.manual_protect;
            j["harvest_while_writing"] = q.harvest_while_writing;
          } else if constexpr (std::is_same_v<T, sim::ConversionPhase>) {
            j["ranges"] = q.ranges;
          } else if constexpr (std::is_same_v<T, sim::ForkPhase>) {
            j["pages"] = q.pages;
            j["write_fraction"] = q.write_fraction;
          } else if constexpr (std::is_same_v<T, sim::RewriteTablesPhase>) {
            j["pages"] = q.pages;
            j["rounds"] = q.rounds;
            j["flush"] = q.flush == sim::RewriteFlush::Invlpg ? "invlpg" : "cr3";
          } else if constexpr (std::is_same_v<T, sim::Cr3SwitchPhase>) {
            j["processes"] = q.processes;
            j["switches"] = q.switches;
            j["touch_pages"] = q.touch_pages;
            j["pcid"] = q.pcid;
          }
        },
        p.params);
    phases.push_back(j);
  }
  out["phases"] = phases;
  return out;
}

}  // namespace vmmu::cli
