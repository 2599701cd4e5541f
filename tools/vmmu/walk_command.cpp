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

int answer_case_files(const std::vector<std::string>& files, const std::string& samples_dir, std::string_view command,
                      std::string_view hint, bool table, const CaseAnswerer& answer, CaseTableRows rows_of,
                      std::ostream& out, std::ostream& err) {
  const std::vector<std::string> paths = files.empty() ? sample_files(samples_dir) : files;
  if (paths.empty()) {
    err << "vmmu " << command << ": no FILE given, and no sample cases (*.json, *.jsonl) in " << samples_dir << " ("
        << hint << ")\n";
    return kExitBadInput;
  }
  if (table) return print_case_table(paths, rows_of, out, err, command);
  return answer_cases(paths, answer, out, err, command).exit_status();
}

int run_walk(const WalkCommandOptions& options, std::ostream& out, std::ostream& err) {
  const std::string dir = options.samples_dir.empty() ? default_samples_dir() : options.samples_dir;
  const WalkThrough through{mmu::parse_mmu_kind(options.mmu), options.host_levels};
  return answer_case_files(options.files, dir, "walk", "set --samples DIR or VMMU_SAMPLES", options.table,
                           [through](const Json& doc) { return answer_walk_case_through(doc, through); },
                           walk_table_rows, out, err);
}

void register_walk_command(CLI::App& app) {
  auto options = std::make_shared<WalkCommandOptions>();
  CLI::App* cmd = app.add_subcommand(
      "walk",
      "Walk x86 guest page tables or EPT tables described by case files (vmmu-walk-case/1, vmmu-ept-case/1; "
      "a .jsonl file is a batch, one case per line) and print the results as JSON, one object per case");
  cmd->add_option("FILE", options->files, "case files (- reads one case from standard input); none: the sample cases");
  cmd->add_flag("--table", options->table, "print a readable table instead of JSON");
  cmd->add_option("--samples", options->samples_dir,
                  "directory of sample cases walked when no FILE is given (default: $VMMU_SAMPLES, else " +
                      std::string(VMMU_SAMPLES_DIR) + ")");
  cmd->add_option("--mmu", options->mmu,
                  "run each x86 case inside a VM under this MMU (tdp or shadow), and with shadow each EPT case as an "
                  "L1's EPT under vmmu's shadow EPT; either must give the direct walk's result")
      ->check(CLI::IsMember({"tdp", "shadow"}));
  cmd->add_option("--host-levels", options->host_levels, "levels of the MMU's own tables: 4 (default) or 5")
      ->check(CLI::IsMember({4u, 5u}));
  cmd->callback([options] {
    if (options->host_levels != 0 && options->mmu.empty()) throw CLI::ValidationError("--host-levels", "needs --mmu");
    if (options->table && !options->mmu.empty()) throw CLI::ValidationError("--mmu", "gives JSON results, not --table");
    const int status = run_walk(*options, std::cout, std::cerr);
    if (status != 0) throw CLI::RuntimeError(status);
  });
}

}  // namespace vmmu::cli
