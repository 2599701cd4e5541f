#include "commands.hpp"

#include <array>

namespace vmmu::cli {

// Each function is defined in <name>_command.cpp.
void register_walk_command(CLI::App& app);
void register_s2walk_command(CLI::App& app);
void register_maps_command(CLI::App& app);
void register_translate_command(CLI::App& app);
void register_run_command(CLI::App& app);
void register_trace_command(CLI::App& app);
void register_sweep_command(CLI::App& app);
void register_report_command(CLI::App& app);

namespace {

struct Command {
  std::string_view name;
  void (*add)(CLI::App&);
};

constexpr std::array<Command, 8> kCommands{{{"walk", register_walk_command},
                                            {"s2walk", register_s2walk_command},
                                            {"maps", register_maps_command},
                                            {"translate", register_translate_command},
                                            {"run", register_run_command},
                                            {"trace-from-lackey", register_trace_command},
                                            {"sweep", register_sweep_command},
                                            {"report", register_report_command}}};

}  // namespace

void register_commands(CLI::App& app) {
  for (const Command& c : kCommands) c.add(app);
}

bool is_command(std::string_view name) {
  for (const Command& c : kCommands) {
    if (c.name == name) return true;
  }
  return false;
}

std::string command_names() {
  std::string out;
  for (const Command& c : kCommands) out += (out.empty() ? "" : ", ") + std::string(c.name);
  return out;
}

}  // namespace vmmu::cli
