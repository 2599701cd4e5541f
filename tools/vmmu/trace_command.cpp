// `vmmu trace-from-lackey [LOG] [-o TRACE]`: valgrind lackey's --trace-mem=yes output (a file,
// or standard input) to a page trace (standard output, or TRACE).

#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "exit_status.hpp"
#include "trace_command.hpp"
#include "vmmu/sim/lackey.hpp"

namespace vmmu::cli {

int run_trace_from_lackey(std::istream& in, const std::string& in_name, std::FILE* out, std::ostream& err) {
  sim::TraceWriter writer(out);
  sim::LackeyConverter conv(writer);
  std::string line;
  for (std::uint64_t n = 1; std::getline(in, line); ++n) {
    if (auto s = conv.line(line); !s) {
      err << "vmmu trace-from-lackey: " << in_name << ':' << n << ": " << s.error() << '\n';
      return kExitBadInput;
    }
  }
  writer.flush();
  if (in.bad()) {
    err << "vmmu trace-from-lackey: " << in_name << ": read error\n";
    return kExitBadInput;
  }
  if (std::fflush(out) != 0 || std::ferror(out)) {
    err << "vmmu trace-from-lackey: cannot write the trace\n";
    return kExitFailed;
  }
  return kExitOk;
}

void register_trace_command(CLI::App& app) {
  struct Options {
    std::string in, out;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "trace-from-lackey",
      "Convert valgrind --tool=lackey --trace-mem=yes output to a page trace (../shared/formats/page-trace.md)");
  cmd->add_option("LOG", o->in, "lackey's output (valgrind --log-file); none: standard input")->type_name("FILE");
  cmd->add_option("-o,--output", o->out, "the trace; none: standard output")->type_name("FILE");
  cmd->callback([o] {
    std::ifstream file;
    if (!o->in.empty()) {
      file.open(o->in);
      if (!file) {
        std::cerr << "vmmu trace-from-lackey: " << o->in << ": cannot open\n";
        throw CLI::RuntimeError(kExitBadInput);
      }
    }
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> out(nullptr, std::fclose);
    if (!o->out.empty()) {
      out.reset(std::fopen(o->out.c_str(), "w"));
      if (!out) {
        std::cerr << "vmmu trace-from-lackey: " << o->out << ": cannot create\n";
        throw CLI::RuntimeError(kExitBadInput);
      }
    }
    const int status = run_trace_from_lackey(o->in.empty() ? std::cin : file, o->in.empty() ? "<stdin>" : o->in,
                                             out ? out.get() : stdout, std::cerr);
    if (status != 0) throw CLI::RuntimeError(status);
  });
}

}  // namespace vmmu::cli
