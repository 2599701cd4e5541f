#pragma once
// Every subcommand of the `vmmu` tool registers itself here. Each lives in its own file
// (walk_command.cpp, ...) and uses only the library's public API.

#include <CLI/CLI.hpp>

namespace vmmu::cli {

// Adds all subcommands to `app`.
void register_commands(CLI::App& app);

}  // namespace vmmu::cli
