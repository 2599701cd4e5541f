#pragma once
// The one exit-status rule of every `vmmu` command (README.md, "Exit status"):
//
//   0  done: every case answered, every check passed
//   1  a check failed or the work could not finish (`vmmu run`: a lost dirty page, wrong data,
//      out of memory), after the report
//   2  bad input or usage: an unreadable file, a malformed case, scenario or regs file (even
//      when the other cases of a batch were answered), a bad option, an unknown command

namespace vmmu::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitBadInput = 2;

}  // namespace vmmu::cli
