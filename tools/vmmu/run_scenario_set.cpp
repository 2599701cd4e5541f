// --set NAME=VALUE for `vmmu run`: resolving NAME (a key path or a shorthand) and placing
// VALUE in the scenario document before it is read (docs/scenario-format.md).

#include <fmt/format.h>

#include <charconv>
#include <optional>
#include <string>
#include <vector>

#include "json_types.hpp"
#include "run_scenario_json.hpp"
#include "run_scenario_keys.hpp"
#include "vmmu/tdp/policy.hpp"

namespace vmmu::cli {
namespace {

using sim::ScenarioError;
using namespace scenario_keys;

// One segment of a --set path: an object key or an array index.
struct Segment {
  std::string key;
  std::optional<std::size_t> index;
};

// "phases[2].flips" or "phases.2.flips" -> phases, [2], flips. Empty on a malformed path.
std::vector<Segment> split_path(std::string_view path) {
  std::vector<Segment> out;
  std::size_t i = 0;
  while (i < path.size()) {
    if (path[i] == '[') {
      const std::size_t close = path.find(']', i);
      std::size_t n = 0;
      if (close == std::string_view::npos) return {};
      auto [end, ec] = std::from_chars(path.data() + i + 1, path.data() + close, n);
      if (ec != std::errc() || end != path.data() + close) return {};
      out.push_back({"", n});
      i = close + 1;
      if (i < path.size() && path[i] == '.') ++i;
      continue;
    }
    std::size_t end = path.find_first_of(".[", i);
    if (end == std::string_view::npos) end = path.size();
    const std::string_view word = path.substr(i, end - i);
    if (word.empty()) return {};
    std::size_t n = 0;
    auto [stop, ec] = std::from_chars(word.data(), word.data() + word.size(), n);
    if (ec == std::errc() && stop == word.data() + word.size())
      out.push_back({"", n});
    else
      out.push_back({std::string(word), std::nullopt});
    i = end;
    if (i < path.size() && path[i] == '.') {
      ++i;
      if (i == path.size()) return {};
    }
  }
  return out;
}

std::string path_text(const std::vector<Segment>& path, std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < n && i < path.size(); ++i) {
    if (path[i].index)
      out += fmt::format("[{}]", *path[i].index);
    else
      out += (out.empty() ? "" : ".") + path[i].key;
  }
  return out;
}

// Sets `value` at `path` inside `doc`, creating objects on the way; a phase given as a string
// becomes {"kind": ...} so it can take parameters.
Status<ScenarioError> set_at(Json& doc, const std::vector<Segment>& path, const Json& value) {
  Json* at = &doc;
  for (std::size_t i = 0; i < path.size(); ++i) {
    const Segment& s = path[i];
    if (s.index) {
      if (!at->is_array() || *s.index >= at->size()) {
        const std::string where = path_text(path, i);
        return Unexpected{
            ScenarioError{path_text(path, i + 1), at->is_array() ? fmt::format("{} has {} elements", where, at->size())
                                                                 : fmt::format("{} is not an array", where)}};
      }
      at = &(*at)[*s.index];
      if (i == 1 && path[0].key == "phases" && at->is_string() && i + 1 < path.size()) *at = Json{{"kind", *at}};
      continue;
    }
    if (at->is_null()) *at = Json::object();
    if (!at->is_object())
      return Unexpected{ScenarioError{path_text(path, i + 1), fmt::format("{} is not an object", path_text(path, i))}};
    at = &(*at)[s.key];
  }
  *at = value;
  return {};
}

}  // namespace

Status<ScenarioError> apply_set(Json& doc, std::string_view assignment, std::vector<std::string>* placed) {
  const std::size_t eq = assignment.find('=');
  if (eq == std::string_view::npos || eq == 0) return Unexpected{ScenarioError{"", "expected NAME=VALUE"}};
  const std::string_view name = assignment.substr(0, eq);
  const std::string_view text = assignment.substr(eq + 1);
  Json value = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) {
    value = std::string(text);
    // Strings end up in error messages and reports written as JSON, which throws on bytes that
    // are not UTF-8: refuse them here (dropping and replacing bad bytes differ only then).
    using Handler = Json::error_handler_t;
    if (value.dump(-1, ' ', false, Handler::ignore) != value.dump(-1, ' ', false, Handler::replace))
      return Unexpected{ScenarioError{std::string(name), "the value is neither JSON nor UTF-8 text"}};
  }
  auto put = [&](const std::vector<Segment>& at) {
    if (placed != nullptr) placed->push_back(path_text(at, at.size()));
    return set_at(doc, at, value);
  };
  std::vector<Segment> path = split_path(name);
  if (path.empty() || path[0].index)
    return Unexpected{
        ScenarioError{std::string(name), "expected a key path such as vm.vcpus, memslots[0].size, phases[2].flips"}};

  if (path.size() == 1) {
    const std::string& n = path[0].key;
    if (contains(tdp::kPolicyNames, n))
      path.insert(path.begin(), Segment{"policies", std::nullopt});
    else if (contains(kVmKeys, n))
      path.insert(path.begin(), Segment{"vm", std::nullopt});
    else if (!contains(kTopKeys, n))
      return Unexpected{ScenarioError{
          std::string(name), "unknown parameter (expected a top-level key, a vm key, a policy name, or KIND.PARAM)"}};
    return put(path);
  }
  if (!contains(kTopKeys, path[0].key)) {
    const auto kind = sim::parse_phase_kind(path[0].key);
    if (!kind)
      return Unexpected{ScenarioError{
          std::string(name),
          fmt::format("unknown key \"{}\" (expected one of: {}, or a phase kind)", path[0].key, join(kTopKeys))}};
    auto phases = doc.find("phases");
    std::size_t hits = 0;
    if (phases != doc.end() && phases->is_array()) {
      for (std::size_t i = 0; i < phases->size(); ++i) {
        const Json& p = (*phases)[i];
        const Json* k = p.is_string() ? &p : (p.is_object() && p.contains("kind") ? &p["kind"] : nullptr);
        if (k == nullptr || !k->is_string() || k->get<std::string>() != path[0].key) continue;
        std::vector<Segment> full = {Segment{"phases", std::nullopt}, Segment{"", i}};
        full.insert(full.end(), path.begin() + 1, path.end());
        if (auto s = put(full); !s) return s;
        ++hits;
      }
    }
    if (hits == 0)
      return Unexpected{ScenarioError{std::string(name), fmt::format("the scenario has no {} phase", path[0].key)}};
    return {};
  }
  return put(path);
}

}  // namespace vmmu::cli
