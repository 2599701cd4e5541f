#include "walk_command.hpp"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <system_error>

#include <fmt/format.h>

#include "batch.hpp"
#include "walk_case.hpp"
#include "walk_table.hpp"

#ifndef VMMU_SAMPLES_DIR
#define VMMU_SAMPLES_DIR "samples"
#endif

namespace vmmu::cli {

std::string default_samples_dir() {
  if (const char* env = std::getenv("VMMU_SAMPLES"); env != nullptr && *env != '\0') return env;
  return VMMU_SAMPLES_DIR;
}

std::vector<std::string> sample_files(const std::string& dir) {
  std::vector<std::string> files;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const auto& path = it->path();
    const auto ext = path.extension();
    if ((ext == ".json" || ext == ".jsonl") && it->is_regular_file(ec)) files.push_back(path.string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

namespace {

// "long4-basic" for samples/long4-basic.json, "batch:3" for line 3 of batch.jsonl.
std::string case_name(const CaseLocation& where) {
  std::string stem = std::filesystem::path(where.file).stem().string();
  if (where.line == 0) return stem;
  return fmt::format("{}:{}", stem, where.line);
}

int run_table(std::span<const std::string> files, std::ostream& out, std::ostream& err) {
  std::vector<WalkTableRow> rows;
  AnswerCounts counts;
  for (const std::string& path : files) {
    auto contents = read_file(path);
    if (!contents) {
      ++counts.unreadable_files;
      err << "vmmu walk: " << to_string(contents.error()) << '\n';
      continue;
    }
    for_each_case(path, *contents, is_batch_path(path), [&](const CaseLocation& where, std::string_view text) {
      std::vector<WalkTableRow> case_rows;
      const CaseAnswerer answer = [&](const Json& doc) -> Result<std::string, CaseError> {
        auto r = walk_table_rows(doc, case_name(where));
        if (!r) return Unexpected{r.error()};
        case_rows = std::move(*r);
        return std::string();
      };
      auto done = answer_case_text(text, where, answer);
      if (!done) {
        ++counts.malformed;
        err << "vmmu walk: " << done.error() << '\n';
        rows.push_back({case_name(where), "-", "-", "-", "-", "error: " + done.error()});
        return;
      }
      ++counts.answered;
      rows.insert(rows.end(), std::make_move_iterator(case_rows.begin()), std::make_move_iterator(case_rows.end()));
    });
  }
  print_walk_table(out, rows);
  out.flush();
  return counts.exit_status();
}

}  // namespace

int run_walk(const WalkCommandOptions& options, std::ostream& out, std::ostream& err) {
  std::vector<std::string> files = options.files;
  if (files.empty()) {
    const std::string dir = options.samples_dir.empty() ? default_samples_dir() : options.samples_dir;
    files = sample_files(dir);
    if (files.empty()) {
      err << "vmmu walk: no FILE given, and no sample cases (*.json, *.jsonl) in " << dir
          << " (set --samples DIR or VMMU_SAMPLES)\n";
      return 1;
    }
  }
  if (options.table) return run_table(files, out, err);
  return answer_cases(files, answer_walk_case, out, err, "walk").exit_status();
}

void register_walk_command(CLI::App& app) {
  auto options = std::make_shared<WalkCommandOptions>();
  CLI::App* cmd = app.add_subcommand(
      "walk",
      "Walk x86 guest page tables or EPT tables described by case files (vmmu-walk-case/1, vmmu-ept-case/1; "
      "a .jsonl file is a batch, one case per line) and print the results as JSON, one object per case");
  cmd->add_option("FILE", options->files, "case files; none: the sample cases (see --samples)");
  cmd->add_flag("--table", options->table, "print a readable table instead of JSON");
  cmd->add_option("--samples", options->samples_dir,
                  "directory of sample cases walked when no FILE is given (default: $VMMU_SAMPLES, else " +
                      std::string(VMMU_SAMPLES_DIR) + ")");
  cmd->callback([options] {
    const int status = run_walk(*options, std::cout, std::cerr);
    if (status != 0) throw CLI::RuntimeError(status);
  });
}

}  // namespace vmmu::cli
