#include "commands.hpp"

namespace vmmu::cli {

// One line per command; each function is defined in <name>_command.cpp.

void register_commands(CLI::App& app) {
  (void)app;
}

}  // namespace vmmu::cli
