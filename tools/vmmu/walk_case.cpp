#include "walk_case.hpp"

#include <fmt/format.h>

#include "ept_walk_case.hpp"
#include "x86_walk_case.hpp"

namespace vmmu::cli {

Result<WalkCaseKind, CaseError> walk_case_kind(const Json& doc) {
  auto format = read_string(doc, "", "format");
  if (!format) return Unexpected{format.error()};
  if (*format == kX86CaseFormat) return WalkCaseKind::X86;
  if (*format == kEptCaseFormat) return WalkCaseKind::Ept;
  return Unexpected{CaseError{CaseErrorKind::BadValue, "format",
                              fmt::format("{} is not a format vmmu walk reads (\"{}\" or \"{}\")",
                                          quoted(*format),
                                          kX86CaseFormat, kEptCaseFormat)}};
}

Result<std::string, CaseError> answer_walk_case_through(const Json& doc, const WalkThrough& through) {
  auto kind = walk_case_kind(doc);
  if (!kind) return Unexpected{kind.error()};
  if (*kind == WalkCaseKind::X86) {
    auto c = parse_x86_walk_case(doc);
    if (!c) return Unexpected{c.error()};
    if (!through.mmu) return x86_walk_result_json(*c, run_x86_walk_case(*c));
    Result<X86WalkRun, CaseError> run = *through.mmu == mmu::MmuKind::Tdp
                                            ? run_x86_walk_case_tdp(*c, through.host_levels)
                                            : run_x86_walk_case_shadow(*c, through.host_levels);
    if (!run) return Unexpected{run.error()};
    return x86_walk_result_json(*c, *run);
  }
  auto c = parse_ept_walk_case(doc);
  if (!c) return Unexpected{c.error()};
  if (through.mmu && *through.mmu == mmu::MmuKind::Shadow) {
    Result<EptWalkRun, CaseError> run = run_ept_walk_case_shadow(*c);
    if (!run) return Unexpected{run.error()};
    return ept_walk_result_json(*c, *run);
  }
  return ept_walk_result_json(*c, run_ept_walk_case(*c));
}

Result<std::string, CaseError> answer_walk_case(const Json& doc) { return answer_walk_case_through(doc, WalkThrough{}); }

}  // namespace vmmu::cli
