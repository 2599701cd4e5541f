// libFuzzer over the case reader and the walkers: any bytes are one case of `vmmu walk` (an
// x86 walk case or an EPT case) and are answered -- a result or a named error, never a crash,
// a leak or undefined behaviour. Seed corpus: samples/ (scripts/run-fuzz.sh).

#include <cstddef>
#include <cstdint>

#include "fuzz/case_input.hpp"
#include "walk_case.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  vmmu::fuzz::answer_case_bytes(data, size, vmmu::cli::answer_walk_case);
  return 0;
}
