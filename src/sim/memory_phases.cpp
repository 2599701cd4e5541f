// populate, read-all, random-access: vCPU threads touching memory through the TDP tables.

#include "phase.hpp"

namespace vmmu::sim {
namespace {

// Salt of the word populate writes at the start of every page.
constexpr std::uint64_t kPopulateSalt = 0x706f70;

// A uniform double in [0, 1) from 53 random bits.
double unit(std::uint64_t r) { return static_cast<double>(r >> 11) * 0x1.0p-53; }

}  // namespace

Status<std::string> settle_exits(PhaseContext& c, const std::vector<ExitLog>& logs) {
  std::uint64_t exits = 0;
  std::string first;
  bool oom = false;
  for (const ExitLog& l : logs) {
    exits += l.count;
    if (first.empty()) first = l.first;
    oom = oom || l.out_of_memory;
  }
  if (oom) return Unexpected{"the MMU ran out of table memory (" + first + ")"};
  if (exits != 0) c.fail(fmt::format("{} accesses ended in an exit; first: {}", exits, first));
  return {};
}

Status<std::string> run_populate(PhaseContext& c) {
  auto logs = share_pass(c, "", [](unsigned v, VcpuAccess& a, std::uint64_t, Gpa gpa, ExitLog& log) {
    if (auto s = a.write64(gpa, pattern_word(gfn_of(gpa), 0, kPopulateSalt)); !s) log.add(v, gpa, true, s.error());
  });
  c.result("pages", "pages written", c.vm.pages());
  return settle_exits(c, logs);
}

Status<std::string> run_read_all(PhaseContext& c) {
  auto logs = share_pass(c, "", [](unsigned v, VcpuAccess& a, std::uint64_t, Gpa gpa, ExitLog& log) {
    if (auto r = a.read64(gpa); !r) log.add(v, gpa, false, r.error());
  });
  c.result("pages", "pages read", c.vm.pages());
  return settle_exits(c, logs);
}

Status<std::string> run_random_access(PhaseContext& c, const RandomAccessPhase& p) {
  const unsigned n = c.vm.vcpus();
  const std::uint64_t pages = c.vm.pages();
  std::vector<ExitLog> logs(n);
  std::vector<std::uint64_t> writes(n, 0);
  c.progress.step("", p.accesses);
  c.progress.parallel(n, [&](unsigned v) {
    const std::uint64_t mine = p.accesses / n + (v < p.accesses % n ? 1 : 0);
    VcpuAccess& a = c.access[v];
    std::uint64_t state = c.seed() ^ mix64(v + 1);
    std::uint64_t pending = 0;
    for (std::uint64_t i = 0; i < mine; ++i) {
      state = mix64(state);
      const std::uint64_t page = state % pages;
      const std::uint64_t word = (state >> 52) & 511;  // which 8 bytes of the page
      const Gpa gpa = c.vm.gpa_of_page(page) + word * 8;
      state = mix64(state);
      if (unit(state) < p.write_fraction) {
        ++writes[v];
        if (auto s = a.write64(gpa, state); !s) logs[v].add(v, gpa, true, s.error());
      } else if (auto r = a.read64(gpa); !r) {
        logs[v].add(v, gpa, false, r.error());
      }
      if (++pending == kProgressBatch) {
        c.progress.add(pending);
        pending = 0;
      }
    }
    c.progress.add(pending);
  });
  std::uint64_t w = 0;
  for (std::uint64_t x : writes) w += x;
  c.result("accesses", "accesses", p.accesses);
  c.result("reads", "reads", p.accesses - w);
  c.result("writes", "writes", w);
  return settle_exits(c, logs);
}

}  // namespace vmmu::sim
