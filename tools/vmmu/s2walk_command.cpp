// `vmmu s2walk`: answer arm64 stage-2 walk cases (formats/arm64-s2-walk.md), single cases or
// .jsonl batches, with the error protocol of batch.hpp.

#include "s2walk_command.hpp"

#include <iostream>
#include <memory>

#include <fmt/format.h>

#include "batch.hpp"
#include "exit_status.hpp"
#include "s2walk_case.hpp"
#include "vmmu/core/page_size.hpp"
#include "walk_command.hpp"

namespace vmmu::cli {

Result<std::string, CaseError> answer_s2walk_case(const Json& doc) {
  auto c = parse_s2_walk_case(doc);
  if (!c) return Unexpected{c.error()};
  const S2WalkRun run = run_s2_walk_case(*c);
  return s2_walk_result_json(*c, run);
}

Result<std::vector<WalkTableRow>, CaseError> s2walk_table_rows(const Json& doc, std::string_view case_name) {
  auto c = parse_s2_walk_case(doc);
  if (!c) return Unexpected{c.error()};
  const S2WalkRun run = run_s2_walk_case(*c);
  const std::string mode = fmt::format("s2-{}", arm64::to_string(c->stage2.granule()));
  std::vector<WalkTableRow> rows;
  for (std::size_t i = 0; i < c->accesses.size(); ++i) {
    const S2Outcome& o = run.outcomes[i];
    std::string result =
        o ? fmt::format("pa {} ({})", hex(o->pa.raw()), size_name(o->block_size))
          : fmt::format("{} fault, level {}", arm64::to_string(o.error().kind), static_cast<unsigned>(o.error().level));
    rows.push_back({std::string(case_name), mode, hex(c->accesses[i].ipa.raw()), std::string(to_string(c->accesses[i].op)),
                    "-", std::move(result)});
  }
  return rows;
}

int run_s2walk(const S2walkCommandOptions& options, std::ostream& out, std::ostream& err) {
  const std::string dir = options.samples_dir.empty() ? default_samples_dir() + "/s2walk" : options.samples_dir;
  return answer_case_files(options.files, dir, "s2walk", "set --samples DIR", options.table, answer_s2walk_case,
                           s2walk_table_rows, out, err);
}

void register_s2walk_command(CLI::App& app) {
  auto options = std::make_shared<S2walkCommandOptions>();
  CLI::App* cmd = app.add_subcommand(
      "s2walk",
      "Translate IPAs through arm64 stage-2 tables described by case files (vmmu-s2-case/1; a .jsonl file is a "
      "batch, one case per line) and print the results as JSON, one object per case");
  cmd->add_option("FILE", options->files,
                  "case files (- reads one case from standard input); none: the sample cases (see --samples)");
  cmd->add_flag("--table", options->table, "print a readable table instead of JSON");
  cmd->add_option("--samples", options->samples_dir,
                  "directory of sample cases walked when no FILE is given (default: the walk samples' s2walk/)");
  cmd->callback([options] {
    const int status = run_s2walk(*options, std::cout, std::cerr);
    if (status != 0) throw CLI::RuntimeError(status);
  });
}

}  // namespace vmmu::cli
