#pragma once
// Scenario files for `vmmu run` (docs/scenario-format.md, "format": "vmmu-scenario/1"):
// reading them into sim::Scenario, --set NAME=VALUE overrides, writing a scenario back out,
// and the built-in default.
//
//   text ──parse──► JSON document ──--set...──► document ──read + sim::validate──► Scenario
//
// Every error names the key it is at, as the file spells it ("memslots[0].size",
// "phases[2].flips"), and what was expected there.

#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vmmu/core/result.hpp"
#include "vmmu/sim/scenario.hpp"

namespace vmmu::cli {

inline constexpr std::string_view kScenarioFormat = "vmmu-scenario/1";

// The scenario `vmmu run` runs without a file (the same as samples/scenarios/default.json).
std::string_view default_scenario_text();

// Parses the text as JSON. Errors: key "" and the parser's reason.
Result<nlohmann::json, sim::ScenarioError> parse_scenario_text(std::string_view text);

// Applies `assignment` ("NAME=VALUE") to the document. NAME is a key path as errors spell it
// ("vm.vcpus", "memslots[0].size", "phases[2].flips"), or a shorthand: a policy name
// ("split"), a vm key ("vcpus"), a top-level key ("seed"), or KIND.PARAM for every phase of
// that kind ("migration.iterations"). VALUE is JSON when it parses as JSON, else a string.
// Errors: a malformed assignment, an unknown shorthand, an index past an array's end, a phase
// kind the scenario lacks. `placed`, when given, receives the key path of every value placed
// ("policies.split", "phases[3].iterations"), so a later error at that key can name the option.
Status<sim::ScenarioError> apply_set(nlohmann::json& doc, std::string_view assignment,
                                     std::vector<std::string>* placed = nullptr);

// The document as a scenario. Errors: a missing or wrong "format", an unknown key, a value of
// the wrong type or an unknown name, then whatever sim::validate() finds.
Result<sim::Scenario, sim::ScenarioError> read_scenario(const nlohmann::json& doc);

// Text + overrides -> scenario, errors as one line "ORIGIN: KEY: MESSAGE" (ORIGIN: the file, or
// "built-in default scenario"), or "--set A=B: KEY: MESSAGE" when the override is what is
// wrong: a malformed one, or a value it placed at KEY (or below it) that the scenario rejects.
Result<sim::Scenario, std::string> load_scenario(std::string_view text, std::string_view origin,
                                                 std::span<const std::string> sets);

// The scenario as a document with every key written out; read_scenario() gives it back.
nlohmann::ordered_json scenario_to_json(const sim::Scenario& s);

}  // namespace vmmu::cli
