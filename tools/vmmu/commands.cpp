#include "commands.hpp"

namespace vmmu::cli {

// One line per command; each function is defined in <name>_command.cpp.
void register_walk_command(CLI::App& app);
void register_s2walk_command(CLI::App& app);
void register_maps_command(CLI::App& app);
void register_translate_command(CLI::App& app);
void register_run_command(CLI::App& app);

void register_commands(CLI::App& app) {
  register_walk_command(app);
  register_s2walk_command(app);
  register_maps_command(app);
  register_translate_command(app);
  register_run_command(app);
}

}  // namespace vmmu::cli
