// `vmmu walk --mmu shadow` on EPT cases: the case's tables become L1's EPT, each access an L2
// guest-physical access through vmmu's shadow EPT (src/nested).

#include <fmt/format.h>

#include "ept_walk_case.hpp"
#include "vmmu/nested/shadow_ept_mmu.hpp"

namespace vmmu::cli {
namespace {

// The case's memory as L1's: its "pa" addresses are L1 guest-physical addresses here. Every
// frame is backed (memory no chunk covers reads as 0, as in the direct walk).
class L1CaseRam final : public shadow::GuestRam {
 public:
  explicit L1CaseRam(SparseMemory<Hpa>& memory) : memory_(memory) {}
  std::byte* page(Gfn gfn) override { return memory_.backing(Hpa(gpa_of(gfn).raw())); }

 private:
  SparseMemory<Hpa>& memory_;
};

}  // namespace

Result<EptWalkRun, CaseError> run_ept_walk_case_shadow(const EptWalkCase& c) {
  EptWalkRun run;
  store(c.memory, run.memory);
  x86::EptCapabilities caps;
  caps.maxphyaddr = c.maxphyaddr;
  caps.five_level = c.five_level;
  L1CaseRam ram(run.memory);
  nested::ShadowEptMmu mmu(ram, caps);
  nested::ShadowEptVcpu vcpu;
  (void)mmu.load_eptp(vcpu, c.eptp);  // an invalid EPTP: every access answers invalid_eptp
  run.outcomes.reserve(c.accesses.size());
  for (std::size_t i = 0; i < c.accesses.size(); ++i) {
    const EptAccess& a = c.accesses[i];
    const nested::L2Access o = mmu.access(vcpu, a.gpa, a.op);
    if (o) {
      // Answered in the case's terms: L1's guest-physical address is the case's "pa".
      run.outcomes.push_back(x86::EptTranslation<Hpa>{Hpa(o->l1_gpa.raw()), o->page_size, 0, false, false, false});
    } else if (o.error().kind == nested::ExitKind::ToL1) {
      run.outcomes.push_back(Unexpected{o.error().fault});
    } else {
      return Unexpected{CaseError{CaseErrorKind::BadValue, element_path("accesses", i),
                                  fmt::format("shadow EPT: {}", nested::to_string(o.error().kind))}};
    }
  }
  return run;
}

}  // namespace vmmu::cli
