// dirty-log-enable / dirty-log-disable: the LogDirty flag of every memslot, set through
// Memslots as a VMM would; the MMU reacts to the change (write-protect or split, then recover).

#include "phase.hpp"

namespace vmmu::sim {

Status<std::string> set_dirty_logging(SimVm& vm, bool on) {
  for (const SimSlot& slot : vm.slots()) {
    if (auto s = vm.memslots().set_flags(slot.id, on ? MemslotFlags::log_dirty() : MemslotFlags::none()); !s)
      return Unexpected{fmt::format("cannot {} dirty logging on memslot {}: {}", on ? "enable" : "disable",
                                    slot.id.value, to_string(s.error()))};
  }
  return {};
}

void drain_dirty_rings(SimVm& vm) {
  for (unsigned v = 0; v < vm.vcpus(); ++v) {
    mmu::VcpuContext& h = vm.vcpu_mmu(v);  // without a ring: nothing to harvest
    std::vector<DirtyGfn> dropped;
    vm.mmu().harvest_dirty_ring(h, dropped);
    vm.mmu().reset_dirty_ring(h);
  }
}

Status<std::string> run_dirty_log_enable(PhaseContext& c) {
  c.progress.step("", c.vm.slots().size());
  auto s = set_dirty_logging(c.vm, true);
  c.result("memslots", "memslots", c.vm.slots().size());
  return s;
}

Status<std::string> run_dirty_log_disable(PhaseContext& c) {
  c.progress.step("", c.vm.slots().size());
  // Pages logged since enabling are dropped with the bitmaps; rings keep what they hold, so
  // empty them as a VMM would before it stops tracking.
  drain_dirty_rings(c.vm);
  auto s = set_dirty_logging(c.vm, false);
  c.result("memslots", "memslots", c.vm.slots().size());
  return s;
}

}  // namespace vmmu::sim
