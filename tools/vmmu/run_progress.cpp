#include "run_progress.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <ostream>

namespace vmmu::cli {

void ProgressLine::operator()(const sim::Progress& p) {
  if (p.finished) {
    if (shown_) err_ << "\r\x1b[K" << std::flush;
    shown_ = false;
    return;
  }
  if (p.elapsed < delay_) return;
  std::string line = "vmmu run: ";
  if (!p.variant.empty()) line += fmt::format("[{}] ", p.variant);
  line += fmt::format("phase {}/{} {}", p.index + 1, p.phases, p.phase);
  if (!p.step.empty()) line += fmt::format(": {}", p.step);
  if (p.total != 0) line += fmt::format(" {}%", std::min<std::uint64_t>(100, p.done * 100 / p.total));
  line += fmt::format(" ({:.1f} s)", std::chrono::duration<double>(p.elapsed).count());
  err_ << "\r\x1b[K" << line << std::flush;
  shown_ = true;
}

bool stderr_is_terminal() { return ::isatty(STDERR_FILENO) == 1; }

}  // namespace vmmu::cli
