#pragma once
// Valgrind lackey's `--trace-mem=yes` output to page-trace records.
//
//   "I  04010173,3"   instruction fetch   -> F
//   " L 1ffefffd40,8" load                -> R
//   " S 1ffefffd38,8" store               -> W
//   " M 0421f8a0,4"   modify              -> M
//   "==1234== ..."    valgrind's own messages: skipped
//
// An access crossing a page boundary touches both pages: one record each.

#include <cstdint>
#include <string>
#include <string_view>

#include "vmmu/core/result.hpp"
#include "vmmu/sim/trace.hpp"

namespace vmmu::sim {

class LackeyConverter {
 public:
  explicit LackeyConverter(TraceWriter& out) : out_(out) {}
  // One line of lackey's output (without its newline). Errors: what is wrong with it.
  Status<std::string> line(std::string_view text);
  [[nodiscard]] std::uint64_t accesses() const { return accesses_; }

 private:
  TraceWriter& out_;
  std::uint64_t accesses_ = 0;
};

}  // namespace vmmu::sim
