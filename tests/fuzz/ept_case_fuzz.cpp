// libFuzzer over the EPT case reader (`vmmu-ept-case/1`, x86-ept-walk.md) and the EPT walker:
// any bytes are one case, read with parse_ept_walk_case, walked and answered as `vmmu walk`
// answers it -- a result or an error naming the field, never a crash, a leak or undefined
// behaviour. Seeds: samples/ept-*.json and tests/fuzz/seeds/ept_case_fuzz/.

#include <cstddef>
#include <cstdint>
#include <string>

#include "ept_walk_case.hpp"
#include "fuzz/case_input.hpp"

namespace {

vmmu::Result<std::string, vmmu::cli::CaseError> answer_ept_case(const vmmu::cli::Json& doc) {
  auto c = vmmu::cli::parse_ept_walk_case(doc);
  if (!c) return vmmu::Unexpected{c.error()};
  return vmmu::cli::ept_walk_result_json(*c, vmmu::cli::run_ept_walk_case(*c));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  vmmu::fuzz::answer_case_bytes(data, size, answer_ept_case);
  return 0;
}
