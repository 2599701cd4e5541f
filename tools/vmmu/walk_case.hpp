#pragma once
// One case of `vmmu walk`: an x86 guest walk case or an EPT case, told apart by "format".

#include <string>
#include <string_view>

#include "case_json.hpp"

namespace vmmu::cli {

enum class WalkCaseKind : std::uint8_t { X86, Ept };

// The kind of case `doc` is, by its "format".
// Errors: Missing, WrongType, BadValue (a format `vmmu walk` does not read).
Result<WalkCaseKind, CaseError> walk_case_kind(const Json& doc);

// Reads, walks and answers one case: its vmmu-walk-result/1 or vmmu-ept-result/1 object as one
// compact line (no newline).
// Errors: the case is malformed (see parse_x86_walk_case, parse_ept_walk_case).
Result<std::string, CaseError> answer_walk_case(const Json& doc);

}  // namespace vmmu::cli
