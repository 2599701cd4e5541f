// libFuzzer over the arm64 stage-2 case reader (`vmmu-s2-case/1`, arm64-s2-walk.md) and the
// stage-2 walker: any bytes are one case of `vmmu s2walk`, answered through its public entry
// point -- a result or an error naming the field, never a crash, a leak or undefined
// behaviour. Seeds: tests/fuzz/seeds/s2walk_case_fuzz/ (samples/ holds no stage-2 case).

#include <cstddef>
#include <cstdint>

#include "fuzz/case_input.hpp"
#include "s2walk_command.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  vmmu::fuzz::answer_case_bytes(data, size, vmmu::cli::answer_s2walk_case);
  return 0;
}
