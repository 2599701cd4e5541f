#pragma once
// Every subcommand of the `vmmu` tool registers itself here. Each lives in its own file
// (walk_command.cpp, ...) and uses only the library's public API.

#include <string>
#include <string_view>

#include <CLI/CLI.hpp>

namespace vmmu::cli {

// Adds all subcommands to `app`.
void register_commands(CLI::App& app);

// True when `name` is one of the commands.
bool is_command(std::string_view name);

// "walk, s2walk, maps, translate, run": for the unknown-command error.
std::string command_names();

}  // namespace vmmu::cli
