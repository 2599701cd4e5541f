#pragma once
// `vmmu s2walk FILE...` (s2walk_command.cpp).

#include <string>

#include <CLI/CLI.hpp>

#include "case_json.hpp"

namespace vmmu::cli {

// Registers the s2walk subcommand on `app`.
void register_s2walk_command(CLI::App& app);

// Answers one parsed vmmu-s2-case/1: the compact result line (no newline).
// Errors: the CaseError naming the field when the case is malformed.
Result<std::string, CaseError> answer_s2walk_case(const Json& doc);

}  // namespace vmmu::cli
