#pragma once
// What every phase gets: the scenario, the VM, progress, its report; and the loop most phases
// are made of -- each vCPU thread going over the pages of its share.
//
// A phase returns an error only for what ends the run (the MMU out of table memory); checks
// that fail (a lost dirty page, wrong data) are failures in its report and the run goes on.

#include <fmt/format.h>

#include <cstdint>
#include <string>
#include <vector>

#include "sim_vm.hpp"
#include "vcpu_access.hpp"
#include "vmmu/sim/report.hpp"
#include "vmmu/sim/scenario.hpp"
#include "workers.hpp"

namespace vmmu::sim {

struct PhaseContext {
  const Scenario& scenario;
  std::size_t index;  // of the phase in the scenario: seeds differ per phase
  SimVm& vm;
  PhaseProgress& progress;
  PhaseReport& report;
  std::vector<VcpuAccess> access;  // one per vCPU

  PhaseContext(const Scenario& s, std::size_t i, SimVm& v, PhaseProgress& p, PhaseReport& r)
      : scenario(s), index(i), vm(v), progress(p), report(r) {
    for (unsigned c = 0; c < v.vcpus(); ++c) access.emplace_back(v.mmu(), v.vcpu_mmu(c), v.l1(), c);
  }

  void result(std::string key, std::string label, std::uint64_t value) {
    report.results.push_back(Metric{std::move(key), std::move(label), value, Unit::Count});
  }
  void fail(std::string what) { report.failures.push_back(std::move(what)); }
  [[nodiscard]] std::uint64_t seed() const { return mix64(scenario.seed ^ (index << 32)); }
};

// Accesses that ended in an exit, per vCPU thread: how many, and the first one.
struct ExitLog {
  std::uint64_t count = 0;
  bool out_of_memory = false;
  std::string first;
  void add(unsigned vcpu, Gpa gpa, bool write, mmu::Exit e) {
    if (e == mmu::Exit::OutOfMemory) out_of_memory = true;
    if (count++ == 0)
      first = fmt::format("vCPU {}: {} at gpa {:#x} ended in a {} exit", vcpu, write ? "write" : "read", gpa.raw(),
                          mmu::to_string(e));
  }
};

// Merges the threads' logs into the report. Error: the MMU ran out of table memory.
Status<std::string> settle_exits(PhaseContext& c, const std::vector<ExitLog>& logs);

// Progress is added in batches of this many pages.
inline constexpr std::uint64_t kProgressBatch = 4096;

// Runs body(vcpu, access, page index, gpa, exit log) for every page of each vCPU's share, one
// thread per vCPU, as one progress step. Returns the threads' exit logs.
template <class Body>
std::vector<ExitLog> share_pass(PhaseContext& c, std::string step, Body&& body) {
  std::vector<ExitLog> logs(c.vm.vcpus());
  c.progress.step(std::move(step), c.vm.pages());
  c.progress.parallel(c.vm.vcpus(), [&](unsigned v) {
    auto [first, end] = c.vm.share(v);
    VcpuAccess& a = c.access[v];
    std::uint64_t pending = 0;
    for (const PageRun& run : c.vm.runs(first, end)) {
      for (std::uint64_t i = 0; i < run.pages; ++i) {
        const Gpa gpa = run.gpa(i);
        body(v, a, run.first_page + i, gpa, logs[v]);
        if (++pending == kProgressBatch) {
          c.progress.add(pending);
          pending = 0;
        }
      }
    }
    c.progress.add(pending);
  });
  return logs;
}

Status<std::string> run_populate(PhaseContext& c);
Status<std::string> run_read_all(PhaseContext& c);
Status<std::string> run_random_access(PhaseContext& c, const RandomAccessPhase& p);
Status<std::string> run_dirty_log_enable(PhaseContext& c);
Status<std::string> run_dirty_log_disable(PhaseContext& c);
Status<std::string> run_migration(PhaseContext& c, const MigrationPhase& p);
Status<std::string> run_conversion(PhaseContext& c, const ConversionPhase& p);
Status<std::string> run_smep_storm(PhaseContext& c, const SmepStormPhase& p);
Status<std::string> run_fork(PhaseContext& c, const ForkPhase& p);
Status<std::string> run_rewrite_tables(PhaseContext& c, const RewriteTablesPhase& p);
Status<std::string> run_cr3_switch(PhaseContext& c, const Cr3SwitchPhase& p);

// Sets or clears LogDirty on every memslot (the MMU reacts: write-protects or splits, or
// recovers huge pages). Error: a memslot update failed.
Status<std::string> set_dirty_logging(SimVm& vm, bool on);
// Harvests and resets every vCPU's dirty ring, dropping the entries (dirty-ring mode).
void drain_dirty_rings(SimVm& vm);

}  // namespace vmmu::sim
