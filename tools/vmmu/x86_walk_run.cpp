#include "x86_walk_case.hpp"

namespace vmmu::cli {

X86WalkRun run_x86_walk_case(const X86WalkCase& c) {
  X86WalkRun run;
  store(c.memory, run.memory);
  const auto paging = x86::GuestPaging::from(c.regs, x86::CpuModel{.maxphyaddr = c.maxphyaddr});
  run.mode = paging.mode();
  run.outcomes.reserve(c.accesses.size());
  for (const X86Access& a : c.accesses) {
    run.outcomes.push_back(x86::walk(paging, run.memory, a.gva, Access{a.op, a.cpl == 3, false}));
  }
  return run;
}

}  // namespace vmmu::cli
