#include "ept_walk_case.hpp"

namespace vmmu::cli {

EptWalkRun run_ept_walk_case(const EptWalkCase& c) {
  EptWalkRun run;
  store(c.memory, run.memory);
  x86::EptCapabilities caps;
  caps.maxphyaddr = c.maxphyaddr;
  caps.five_level = c.five_level;
  run.outcomes.reserve(c.accesses.size());
  auto ctx = x86::EptContext::from(c.eptp, caps);
  for (const EptAccess& a : c.accesses) {
    if (!ctx) {
      run.outcomes.push_back(Unexpected{x86::EptFault{x86::EptFaultKind::InvalidEptp, 0, 0}});
      continue;
    }
    run.outcomes.push_back(x86::walk_ept<Hpa>(*ctx, run.memory, a.gpa, a.op));
  }
  return run;
}

}  // namespace vmmu::cli
