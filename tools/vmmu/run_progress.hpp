#pragma once
// The progress line `vmmu run` keeps on a terminal's stderr while a long phase runs:
//
//   vmmu run: phase 4/8 migration: dirty memory (iteration 2/3) 45% (1.2 s)
//
// rewritten in place ("\r" + erase line), shown only once a phase has run for a while, and
// erased when the phase ends, so the report on stdout is never interleaved with it.

#include <chrono>
#include <iosfwd>

#include "vmmu/sim/runner.hpp"

namespace vmmu::cli {

class ProgressLine {
 public:
  explicit ProgressLine(std::ostream& err, std::chrono::milliseconds delay = std::chrono::milliseconds(300))
      : err_(err), delay_(delay) {}
  void operator()(const sim::Progress& p);

 private:
  std::ostream& err_;
  std::chrono::milliseconds delay_;
  bool shown_ = false;
};

// True when file descriptor 2 is a terminal.
bool stderr_is_terminal();

}  // namespace vmmu::cli
