// `vmmu walk --mmu tdp`: each x86 case inside a VM under the TDP MMU.

#include <fmt/format.h>

#include "vmmu/vm/vcpu.hpp"
#include "vmmu/vm/vm.hpp"
#include "x86_walk_case.hpp"

namespace vmmu::cli {
namespace {

// Guest-physical bits a TDP table of `levels` levels translates.
constexpr unsigned gpa_bits(unsigned levels) { return levels == 5 ? 57 : 48; }

// Frames an access may back before it must have completed: every level's table, the data page,
// with room to spare. Backing the same frame twice is impossible (the memslot would overlap).
constexpr unsigned kMaxBackedPerAccess = 16;

// Memory no chunk covers reads as zero: the frame an access met without a memslot gets a
// one-page memslot backed by the case's memory (zeroed if new), and the access runs again.
Status<std::string> back_frame(vm::Vm& vm, SparseMemory<Gpa>& memory, Gfn gfn, std::uint32_t& next_slot) {
  MemslotSpec spec;
  spec.id = SlotId{next_slot++};
  spec.base = gfn;
  spec.pages = 1;
  spec.host = memory.backing(gpa_of(gfn));
  if (Status<MemslotError> added = vm.memslots().add(spec); !added) {
    return Unexpected{fmt::format("TDP MMU: cannot back gpa {:#x}: {}", gpa_of(gfn).raw(), to_string(added.error()))};
  }
  return {};
}

}  // namespace

Result<X86WalkRun, CaseError> run_x86_walk_case_tdp(const X86WalkCase& c, unsigned host_levels) {
  X86WalkRun run;
  store(c.memory, run.memory);
  const x86::CpuModel cpu{.maxphyaddr = c.maxphyaddr};
  run.mode = x86::GuestPaging::from(c.regs, cpu).mode();
  const unsigned levels = host_levels != 0 ? host_levels : (c.maxphyaddr > gpa_bits(4) ? 5 : 4);
  if (c.maxphyaddr > gpa_bits(levels)) {
    return Unexpected{CaseError{CaseErrorKind::BadValue, "maxphyaddr",
                                fmt::format("{} bits do not fit {}-level TDP tables ({} bits): use --host-levels 5",
                                            c.maxphyaddr, levels, gpa_bits(levels))}};
  }
  vm::VmConfig config;
  config.mmu = mmu::MmuKind::Tdp;
  config.tdp.format.levels = levels;
  config.cpu = cpu;
  Result<std::unique_ptr<vm::Vm>, vm::VmError> made = vm::Vm::create(config);
  if (!made) return Unexpected{CaseError{CaseErrorKind::BadValue, "regs", std::string(vm::to_string(made.error()))}};
  vm::Vm& vm = **made;
  vm::Vcpu& vcpu = vm.add_vcpu();
  vcpu.set_registers(c.regs);
  std::uint32_t next_slot = 0;

  run.outcomes.reserve(c.accesses.size());
  for (std::size_t i = 0; i < c.accesses.size(); ++i) {
    const X86Access& a = c.accesses[i];
    const Access access{a.op, a.cpl == 3, false};
    for (unsigned backed = 0;; ++backed) {
      // The access reaches memory but moves no data: the result file is the walk's.
      const Result<vm::GvaTranslation, vm::GuestExit> r = vcpu.access(a.gva, access, [](std::byte*) {});
      if (r) {
        run.outcomes.push_back(x86::Translation{r->gpa, r->page_size, 0, false, false, false, 0, 0});
        break;
      }
      const vm::GuestExit& e = r.error();
      if (e.kind == vm::GuestExitKind::PageFault) {
        run.outcomes.push_back(Unexpected{x86::WalkFault{x86::WalkFaultKind::PageFault, e.error_code, 0}});
        break;
      }
      if (e.kind == vm::GuestExitKind::GeneralProtection) {
        run.outcomes.push_back(Unexpected{x86::WalkFault{x86::WalkFaultKind::GeneralProtection, 0, 0}});
        break;
      }
      if (e.kind != vm::GuestExitKind::Mmio || backed == kMaxBackedPerAccess) {
        return Unexpected{CaseError{CaseErrorKind::BadValue, element_path("accesses", i),
                                    fmt::format("TDP MMU: {}", vm::to_string(e))}};
      }
      if (Status<std::string> b = back_frame(vm, run.memory, gfn_of(e.gpa), next_slot); !b) {
        return Unexpected{CaseError{CaseErrorKind::BadValue, element_path("accesses", i), b.error()}};
      }
    }
  }
  return run;
}

}  // namespace vmmu::cli
