#pragma once
// Running `vmmu walk` in-process for tests: its library function with string streams, and case
// files written to a per-test temporary directory.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "walk_command.hpp"

namespace vmmu::cli::test {

struct CliRun {
  int status = 0;
  std::string out;
  std::string err;
};

inline CliRun walk_with(const WalkCommandOptions& options) {
  std::ostringstream out, err;
  CliRun run;
  run.status = run_walk(options, out, err);
  run.out = out.str();
  run.err = err.str();
  return run;
}

inline CliRun walk_files(std::vector<std::string> files, bool table = false) {
  WalkCommandOptions options;
  options.files = std::move(files);
  options.table = table;
  return walk_with(options);
}

// `vmmu walk --mmu MMU [--host-levels N] FILE` ("" / 0: the direct walk, the default depth).
inline CliRun walk_through(const std::string& file, const std::string& mmu, unsigned host_levels = 0) {
  WalkCommandOptions options;
  options.files = {file};
  options.mmu = mmu;
  options.host_levels = host_levels;
  return walk_with(options);
}

inline std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Writes `contents` to a file called `name` in a directory of its own for the running test.
inline std::string write_case(std::string_view name, std::string_view contents) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string dir_name = std::string("vmmu-cli-") + info->test_suite_name() + "-" + info->name();
  for (char& c : dir_name) {
    if (c == '/') c = '_';
  }
  const std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) / dir_name;
  std::filesystem::create_directories(dir);
  const std::filesystem::path path = dir / name;
  std::ofstream(path, std::ios::binary) << contents;
  return path.string();
}

// A case's text with `from` replaced by `to` (a misspelt or unknown key): the error must name `field`.
struct Misspelt {
  const char* name;
  const char* from;
  const char* to;
  const char* field;
};

inline std::string misspelt_name(const ::testing::TestParamInfo<Misspelt>& p) { return p.param.name; }

inline std::string with_misspelt(std::string text, const Misspelt& m) {
  text.replace(text.find(m.from), std::string_view(m.from).size(), m.to);
  return text;
}

inline std::size_t count_lines(std::string_view s) {
  std::size_t n = 0;
  for (char c : s) n += c == '\n' ? 1 : 0;
  return n;
}

}  // namespace vmmu::cli::test
