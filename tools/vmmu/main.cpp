// vmmu: the command-line front end of the library.

#include <exception>
#include <iostream>
#include <string_view>

#include <CLI/CLI.hpp>

#include "commands.hpp"
#include "exit_status.hpp"

#ifndef VMMU_VERSION
#define VMMU_VERSION "unknown"
#endif

int main(int argc, char** argv) {
  using namespace vmmu::cli;
  CLI::App app{"vmmu: a hypervisor memory-virtualization unit in user space"};
  app.set_version_flag("--version", "vmmu " VMMU_VERSION);
  app.require_subcommand(1);
  register_commands(app);
  // CLI11 would call "vmmu foo" a missing subcommand: name the word instead.
  if (argc > 1 && argv[1][0] != '-' && !is_command(argv[1])) {
    std::cerr << "vmmu: unknown command '" << argv[1] << "' (commands: " << command_names()
              << "; see vmmu --help)\n";
    return kExitBadInput;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::RuntimeError& e) {  // a command's own non-zero status, its message already printed
    return e.get_exit_code();
  } catch (const CLI::Error& e) {
    const int status = app.exit(e);  // prints help, the version, or the parse error
    return status == 0 ? kExitOk : kExitBadInput;
  } catch (const std::exception& e) {
    std::cerr << "vmmu: " << e.what() << '\n';
    return kExitFailed;
  }
  return kExitOk;
}
