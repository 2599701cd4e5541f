// vmmu: the command-line front end of the library.

#include <exception>
#include <iostream>

#include <CLI/CLI.hpp>

#include "commands.hpp"

int main(int argc, char** argv) {
  CLI::App app{"vmmu: a hypervisor memory-virtualization unit in user space"};
  app.require_subcommand(1);
  vmmu::cli::register_commands(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::Error& e) {  // parse errors, and a command's non-zero exit status
    return app.exit(e);
  } catch (const std::exception& e) {
    std::cerr << "vmmu: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
