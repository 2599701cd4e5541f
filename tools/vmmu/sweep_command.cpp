#include "sweep_command.hpp"

#include <fmt/format.h>
#include <spawn.h>
#include <sys/wait.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>

#include "exit_status.hpp"
#include "report_command.hpp"
#include "sweep_file.hpp"

extern char** environ;

namespace vmmu::cli {
namespace {

namespace fs = std::filesystem;

// Runs GNU parallel over the job file; its exit status, or an error when it cannot start.
Result<int, std::string> run_parallel(const std::string& jobs_file, const std::string& joblog, unsigned jobs) {
  std::vector<std::string> args = {"parallel", "--will-cite", "--halt", "now,fail=1", "--joblog", joblog};
  if (jobs != 0) args.insert(args.end(), {"--jobs", std::to_string(jobs)});
  args.insert(args.end(), {"::::", jobs_file});
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  if (const int e = ::posix_spawnp(&pid, "parallel", nullptr, nullptr, argv.data(), environ); e != 0) {
    return Unexpected{fmt::format("cannot run GNU parallel ({}); install it (Debian: parallel), or run the points "
                                  "of `vmmu sweep FILE --list` another way",
                                  std::strerror(e))};
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return Unexpected{fmt::format("waiting for GNU parallel: {}", std::strerror(errno))};
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

int run_sweep(const SweepOptions& o, const std::string& vmmu, std::ostream& out, std::ostream& err) {
  if (o.list && o.slurm) {
    err << "vmmu sweep: --list and --slurm each print the points: choose one\n";
    return kExitBadInput;
  }
  auto sweep = load_sweep(o.file);
  if (!sweep) {
    err << "vmmu sweep: " << sweep.error() << '\n';
    return kExitBadInput;
  }
  for (const std::string& n : sweep->notes) err << "vmmu sweep: note: " << n << '\n';
  if (o.list) {
    for (const SweepPoint& p : sweep->points) out << point_command(vmmu, p) << '\n';
    return kExitOk;
  }
  if (o.slurm) {
    out << slurm_script(vmmu, o.file, *sweep);
    return kExitOk;
  }
  std::error_code ec;
  fs::create_directories(sweep->out, ec);
  const std::string jobs_file = (fs::path(sweep->out) / "jobs.txt").string();
  {
    std::ofstream jobs(jobs_file);
    for (const SweepPoint& p : sweep->points) jobs << point_command(vmmu, p) << '\n';
    if (ec || !jobs) {
      err << "vmmu sweep: cannot write " << jobs_file << '\n';
      return kExitFailed;
    }
  }
  const std::string joblog = (fs::path(sweep->out) / "joblog.txt").string();
  auto status = run_parallel(jobs_file, joblog, o.jobs);
  if (!status || *status != 0) {
    err << "vmmu sweep: "
        << (status ? fmt::format("a point failed (GNU parallel exit status {}; see {})", *status, joblog)
                   : status.error())
        << '\n';
    return kExitFailed;
  }
  std::vector<std::string> reports;
  for (const SweepPoint& p : sweep->points) reports.push_back(p.report);
  const int merged = run_report_merge(reports, o.json, (fs::path(sweep->out) / "plots").string(), out, err);
  return merged == kExitOk ? kExitOk : kExitFailed;
}

void register_sweep_command(CLI::App& app) {
  auto o = std::make_shared<SweepOptions>();
  CLI::App* cmd = app.add_subcommand(
      "sweep",
      "Run a sweep file's grid (vmmu-sweep/1: traces x MMUs x guest pages x TLB sizes x policies) as one `vmmu run` "
      "per point through GNU parallel and merge their reports, or print the points as commands or a Slurm script");
  cmd->add_option("FILE", o->file, "sweep file (docs/sweep-format.md)")->required()->type_name("FILE");
  cmd->add_option("--jobs,-j", o->jobs, "points run at once (default: one per core)")->type_name("N");
  cmd->add_flag("--list", o->list, "print one shell command per point instead of running them");
  cmd->add_flag("--slurm", o->slurm, "print a Slurm array-job script running the points instead");
  cmd->add_flag("--json", o->json, "print the merged table as JSON (vmmu-report-merge/1)");
  cmd->callback([o] {
    std::error_code ec;
    const fs::path self = fs::read_symlink("/proc/self/exe", ec);
    const int status = run_sweep(*o, ec ? std::string("vmmu") : self.string(), std::cout, std::cerr);
    if (status != 0) throw CLI::RuntimeError(status);
  });
}

}  // namespace vmmu::cli
