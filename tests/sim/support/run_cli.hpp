#pragma once
// `vmmu run` in-process: its exit status and what it printed.

#include <sstream>
#include <string>

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

}  // namespace vmmu::cli
