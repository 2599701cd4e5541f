#pragma once
// `vmmu run` in-process: its exit status and what it printed.

#include <algorithm>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>

#include "run_command.hpp"

namespace vmmu::cli {

struct Ran {
  int status = 0;
  std::string out, err;
};

inline Ran run_with(const RunCommandOptions& o) {
  std::ostringstream out, err;
  Ran r;
  r.status = run_run(o, out, err);
  r.out = out.str();
  r.err = err.str();
  return r;
}

inline std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline std::size_t lines(std::string_view s) { return static_cast<std::size_t>(std::count(s.begin(), s.end(), '\n')); }

}  // namespace vmmu::cli
