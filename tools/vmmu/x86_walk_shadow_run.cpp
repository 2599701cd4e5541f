// `vmmu walk --mmu shadow`: each x86 case inside a VM under the shadow MMU.

#include <fmt/format.h>

#include "vmmu/shadow/shadow_mmu.hpp"
#include "x86_walk_case.hpp"

namespace vmmu::cli {
namespace {

// The case's memory as guest RAM: every frame is backed (memory no chunk covers reads as 0,
// as in the direct walk), so the shadow MMU can map any frame the guest's tables name.
class CaseRam final : public shadow::GuestRam {
 public:
  explicit CaseRam(SparseMemory<Gpa>& memory) : memory_(memory) {}
  std::byte* page(Gfn gfn) override { return memory_.backing(gpa_of(gfn)); }

 private:
  SparseMemory<Gpa>& memory_;
};

}  // namespace

Result<X86WalkRun, CaseError> run_x86_walk_case_shadow(const X86WalkCase& c, unsigned host_levels) {
  X86WalkRun run;
  store(c.memory, run.memory);
  const auto paging = x86::GuestPaging::from(c.regs, x86::CpuModel{.maxphyaddr = c.maxphyaddr});
  run.mode = paging.mode();
  const unsigned levels = run.mode == x86::PagingMode::Long5 ? 5 : (host_levels == 0 ? 4 : host_levels);
  CaseRam ram(run.memory);
  shadow::ShadowMmu mmu(ram, {.host_levels = levels});
  run.outcomes.reserve(c.accesses.size());
  for (std::size_t i = 0; i < c.accesses.size(); ++i) {
    const X86Access& a = c.accesses[i];
    shadow::Outcome o = mmu.access(paging, a.gva, Access{a.op, a.cpl == 3, false});
    if (o.exit) {
      return Unexpected{CaseError{CaseErrorKind::BadValue, element_path("accesses", i),
                                  fmt::format("shadow MMU: {}", shadow::to_string(*o.exit))}};
    }
    run.outcomes.push_back(std::move(o.guest));
  }
  return run;
}

}  // namespace vmmu::cli
