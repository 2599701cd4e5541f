// `vmmu s2walk FILE...`: answer arm64 stage-2 walk cases (formats/arm64-s2-walk.md), single
// cases or .jsonl batches, with the error protocol of batch.hpp.

#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "batch.hpp"
#include "s2walk_case.hpp"
#include "s2walk_command.hpp"

namespace vmmu::cli {

// Answers one parsed case. Errors: the case's CaseError when it is malformed.
Result<std::string, CaseError> answer_s2walk_case(const Json& doc) {
  auto c = parse_s2_walk_case(doc);
  if (!c) return Unexpected{c.error()};
  const S2WalkRun run = run_s2_walk_case(*c);
  return s2_walk_result_json(*c, run);
}

void register_s2walk_command(CLI::App& app) {
  auto files = std::make_shared<std::vector<std::string>>();
  CLI::App* cmd = app.add_subcommand("s2walk", "Translate IPAs through arm64 stage-2 tables (vmmu-s2-case/1 files)");
  cmd->add_option("files", *files, "case files (.json: one case; .jsonl: one case per line)")->required();
  cmd->callback([files] {
    const AnswerCounts counts = answer_cases(*files, answer_s2walk_case, std::cout, std::cerr, "s2walk");
    if (counts.exit_status() != 0) throw CLI::RuntimeError(counts.exit_status());
  });
}

}  // namespace vmmu::cli
