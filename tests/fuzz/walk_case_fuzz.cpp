// libFuzzer over the case reader and the walkers: any bytes are one case of `vmmu walk` (an
// x86 walk case or an EPT case) and are answered -- a result or a named error, never a crash,
// a leak or undefined behaviour. Seed corpus: samples/ (scripts/run-fuzz.sh).

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "batch.hpp"
#include "walk_case.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // Memory chunks far apart cost one 4 KiB page each; the input's size bounds them.
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto answer = vmmu::cli::answer_case_text(text, vmmu::cli::CaseLocation{"fuzz.json", 0}, vmmu::cli::answer_walk_case);
  (void)answer;
  return 0;
}
