#pragma once
// `vmmu trace-from-lackey`: valgrind lackey output to a page trace (vmmu/sim/lackey.hpp).

#include <cstdio>
#include <iosfwd>
#include <string>

namespace vmmu::cli {

// Exit status: 0; 2 for a line that is not lackey's (one line on `err`: NAME:LINE: what);
// 1 when the trace cannot be written.
int run_trace_from_lackey(std::istream& in, const std::string& in_name, std::FILE* out, std::ostream& err);

}  // namespace vmmu::cli
