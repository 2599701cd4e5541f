// The `vmmu walk` batch path over 100,000 accesses (10,000 long-mode cases of 10 accesses
// each, one per line as in a .jsonl batch), JSON parsing included, through the command's own
// library functions (no process). Baseline in the same run: parsing the same lines with
// nlohmann::json and nothing else. Target: the whole batch in < 1 s.

#include <benchmark/benchmark.h>

#include <string>

#include <fmt/format.h>

#include "batch.hpp"
#include "case_json.hpp"
#include "walk_case.hpp"

namespace {

constexpr int kCases = 10'000;
constexpr int kAccessesPerCase = 10;

// Case i: 4-level tables mapping 16 4K pages at gva 0x400000 + (i % 64) * 2 MiB; accesses
// alternate read and write over them, the last one not present.
std::string make_batch() {
  std::string batch;
  for (int i = 0; i < kCases; ++i) {
    const unsigned pd_index = static_cast<unsigned>(i % 64) + 2;
    std::string ptes;
    for (unsigned k = 0; k < 16; ++k) ptes += fmt::format("{}\"{:#x}\"", k == 0 ? "" : ",", 0x100007u + k * 0x1000u);
    std::string accesses;
    for (int a = 0; a < kAccessesPerCase; ++a) {
      const std::uint64_t gva = (std::uint64_t{pd_index} << 21) + static_cast<std::uint64_t>(a == 9 ? 20 : a) * 0x1000 + 0x10;
      accesses += fmt::format("{}{{\"gva\":\"{:#x}\",\"op\":\"{}\",\"cpl\":3}}", a == 0 ? "" : ",", gva,
                              a % 2 == 0 ? "read" : "write");
    }
    batch += fmt::format(
        R"({{"format":"vmmu-walk-case/1","arch":"x86","maxphyaddr":40,)"
        R"("regs":{{"cr0":"0x80010033","cr3":"0x1000","cr4":"0x20","efer":"0xd00"}},)"
        R"("memory":[{{"gpa":"0x1000","u64":["0x2007"]}},{{"gpa":"0x2000","u64":["0x3007"]}},)"
        R"({{"gpa":"{:#x}","u64":["0x4007"]}},{{"gpa":"0x4000","u64":[{}]}}],)"
        R"("accesses":[{}]}})",
        0x3000 + pd_index * 8, ptes, accesses);
    batch += '\n';
  }
  return batch;
}

const std::string& batch() {
  static const std::string b = make_batch();
  return b;
}

void BM_WalkBatch100kAccesses(benchmark::State& state) {
  std::size_t out_bytes = 0, failures = 0;
  for (auto _ : state) {
    vmmu::cli::for_each_case("bench.jsonl", batch(), true, [&](const vmmu::cli::CaseLocation& where, std::string_view text) {
      auto r = vmmu::cli::answer_case_text(text, where, vmmu::cli::answer_walk_case);
      if (r) {
        out_bytes += r->size() + 1;
      } else {
        ++failures;
      }
    });
  }
  if (failures != 0) state.SkipWithError("a generated case was malformed");
  state.counters["accesses"] = benchmark::Counter(static_cast<double>(kCases * kAccessesPerCase),
                                                  benchmark::Counter::kIsIterationInvariantRate);
  state.counters["out_MB"] = static_cast<double>(out_bytes) / static_cast<double>(state.iterations()) / 1e6;
  state.counters["in_MB"] = static_cast<double>(batch().size()) / 1e6;
}
BENCHMARK(BM_WalkBatch100kAccesses)->Unit(benchmark::kMillisecond)->MinTime(2.0);

void BM_JsonParseOnlyBaseline(benchmark::State& state) {
  for (auto _ : state) {
    vmmu::cli::for_each_case("bench.jsonl", batch(), true, [&](const vmmu::cli::CaseLocation&, std::string_view text) {
      auto doc = vmmu::cli::Json::parse(text.begin(), text.end());
      benchmark::DoNotOptimize(doc);
    });
  }
  state.counters["accesses"] = benchmark::Counter(static_cast<double>(kCases * kAccessesPerCase),
                                                  benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_JsonParseOnlyBaseline)->Unit(benchmark::kMillisecond)->MinTime(2.0);

}  // namespace
