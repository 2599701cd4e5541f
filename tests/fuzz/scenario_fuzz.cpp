// libFuzzer over the scenario reader of `vmmu run` (docs/scenario-format.md): the input is a
// scenario file, optionally followed by NUL-separated --set assignments ("NAME=VALUE"), read
// with load_scenario -- a scenario or one line naming the key, never a crash, a leak or
// undefined behaviour. The scenario is not run (that is the simulator's job, with threads).
//
// A scenario that reads is also written back (scenario_to_json) and read again: it must give
// the same document, as run_scenario_json.hpp promises.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "run_scenario_json.hpp"

namespace {

constexpr std::size_t kMaxSets = 8;

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "scenario_fuzz: %s\n", what.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace vmmu::cli;
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  const std::size_t nul = rest.find('\0');
  const std::string_view text = rest.substr(0, nul);
  std::vector<std::string> sets;
  if (nul != std::string_view::npos) {
    rest.remove_prefix(nul + 1);
    while (sets.size() < kMaxSets) {
      const std::size_t end = rest.find('\0');
      sets.emplace_back(rest.substr(0, end));
      if (end == std::string_view::npos) break;
      rest.remove_prefix(end + 1);
    }
  }

  auto scenario = load_scenario(text, "fuzz.json", sets);
  if (!scenario) return 0;
  const nlohmann::ordered_json written = scenario_to_json(*scenario);
  auto again = read_scenario(nlohmann::json::parse(written.dump()));
  if (!again) fail("a scenario written back does not read: " + again.error().key + ": " + again.error().message);
  if (scenario_to_json(*again) != written) fail("a scenario written back reads as another: " + written.dump());
  return 0;
}
