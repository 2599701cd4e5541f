// cr3-switch: each vCPU runs `processes` guest processes -- the same user gvas, frames of
// their own -- and switches CR3 between them round robin, reading each touched page (its
// process's tag) and writing a counter the next visit checks. With `pcid` every process has
// its PCID and the CR3 writes set bit 63 (no flush), as Linux does with PCIDs.
//
// The first round warms up; the figures are of the switches after it. Under shadow the
// vCPU's cache of previous roots should answer every switch then: no root built, and with
// PCIDs no root synced (nothing was flushed).

#include <algorithm>

#include "kernel_phase.hpp"
#include "vmmu/shadow/shadow_mmu.hpp"
#include "vmmu/shadow/shadow_vcpu.hpp"
#include "vmmu/vm/register_effects.hpp"

namespace vmmu::sim {
namespace {

static_assert(kShadowCachedRoots == shadow::ShadowVcpu::kPrevRoots + 1);

enum Written : std::uint64_t { kTag = 8, kCounter = 9 };

class Switcher {
 public:
  Switcher(PhaseContext& c, const Cr3SwitchPhase& p, unsigned v, KernelVcpu& k) : c_(c), p_(p), v_(v), k_(k) {}

  // The address spaces, each process's pages written with its tags, PCIDs on.
  bool start() {
    for (std::uint32_t q = 0; q < p_.processes; ++q) {
      auto root = q == 0 ? Result<Gpa, std::string>(k_.mm.first_root()) : k_.mm.new_address_space();
      if (!root) return fail(root.error());
      roots_.push_back(*root);
      for (std::uint64_t t = 0; t < p_.touch_pages; ++t) {
        auto at = k_.mm.leaf_address(*root, user_page(t));
        if (!at) return fail(at.error());
        if (auto s = k_.mm.write_phys(*at, GuestMm::user_leaf(frame(q, t), true)); !s) return fail(s.error());
        if (auto s = k_.mm.write_phys(frame(q, t), tag(q, t)); !s) return fail(s.error());
        if (auto s = k_.mm.write_phys(frame(q, t) + 8, 0); !s) return fail(s.error());
      }
    }
    counter_.assign(p_.processes * p_.touch_pages, 0);
    if (p_.pcid) {
      vm::Vcpu& vcpu = k_.mm.vcpu();
      vcpu.set_cr4(vcpu.registers().cr4 | vm::regbits::Cr4Pcide::mask);  // CR3's PCID is 0 now
    }
    return true;
  }

  // Switches [first, end) of the run. False: give up.
  bool run(std::uint64_t first, std::uint64_t end) {
    vm::Vcpu& vcpu = k_.mm.vcpu();
    for (std::uint64_t s = first; s < end; ++s) {
      const auto q = static_cast<std::uint32_t>(s % p_.processes);
      std::uint64_t cr3 = roots_[q].raw();
      if (p_.pcid) cr3 |= vm::regbits::Cr3Pcid::bits(q + 1) | vm::regbits::Cr3NoFlush::mask;
      vcpu.set_cr3(cr3);
      for (std::uint64_t t = 0; t < p_.touch_pages; ++t) {
        if (!touch(s, q, t)) return false;
      }
    }
    return true;
  }

 private:
  [[nodiscard]] Gpa frame(std::uint32_t q, std::uint64_t t) const { return k_.frames[q * p_.touch_pages + t]; }
  [[nodiscard]] std::uint64_t tag(std::uint32_t q, std::uint64_t t) const {
    return kernel_value(c_, kTag, v_, (std::uint64_t{q} << 32) | t);
  }
  bool fail(std::string what) {
    k_.log.fail(std::move(what));
    return false;
  }

  // Process q's page t: its tag, the counter it wrote last, then the next counter.
  bool touch(std::uint64_t s, std::uint32_t q, std::uint64_t t) {
    std::uint64_t& counter = counter_[q * p_.touch_pages + t];
    for (auto [offset, want] : {std::pair{std::uint64_t{0}, tag(q, t)}, std::pair{std::uint64_t{8}, counter}}) {
      auto got = k_.mm.read_user(user_page(t) + offset);
      if (!got) return fail(fmt::format("switch {}: process {} reading page {}: {}", s, q, t, vm::to_string(got.error())));
      if (*got != want) {
        k_.log.fail(fmt::format("switch {}: process {} page {} word {}: {:#x}, expected {:#x} (another process's?)", s,
                                q, t, offset / 8, *got, want));
      }
    }
    counter = s + 1;
    if (auto w = k_.mm.write_user(user_page(t) + 8, counter); !w)
      return fail(fmt::format("switch {}: process {} writing page {}: {}", s, q, t, vm::to_string(w.error())));
    return true;
  }

  PhaseContext& c_;
  const Cr3SwitchPhase& p_;
  unsigned v_;
  KernelVcpu& k_;
  std::vector<Gpa> roots_;
  std::vector<std::uint64_t> counter_;  // per (process, page): the last counter written
};

}  // namespace

Status<std::string> run_cr3_switch(PhaseContext& c, const Cr3SwitchPhase& p) {
  const unsigned n = c.vm.vcpus();
  auto kernels = boot_kernels(c, std::uint64_t{p.processes} * p.touch_pages, p.processes, p.touch_pages);
  if (!kernels) return Unexpected{kernels.error()};
  std::vector<Switcher> switchers;
  switchers.reserve(n);
  for (unsigned v = 0; v < n; ++v) switchers.emplace_back(c, p, v, (*kernels)[v]);
  std::vector<std::uint8_t> going(n, 0);  // per thread: set up and warmed up
  const std::uint64_t warm = std::min<std::uint64_t>(p.processes, p.switches);
  c.progress.step("warm up", 0);
  c.progress.parallel(n, [&](unsigned v) { going[v] = switchers[v].start() && switchers[v].run(0, warm) ? 1 : 0; });

  shadow::ShadowMmu* sh = c.vm.mmu().shadow();
  const shadow::ShadowStats sb = sh != nullptr ? sh->stats() : shadow::ShadowStats{};
  const mmu::MmuStats mb = c.vm.mmu().stats();
  std::vector<vm::VcpuStats> vb(n);
  for (unsigned v = 0; v < n; ++v) vb[v] = c.vm.vcpu(v).stats();
  const std::uint64_t ns = timed([&] {
    on_every_vcpu(c, *kernels, [&](unsigned v, KernelVcpu&) {
      if (going[v] != 0) switchers[v].run(warm, p.switches);
    });
  });
  std::uint64_t flushes = 0, walks = 0;
  for (unsigned v = 0; v < n; ++v) {
    const vm::VcpuStats a = c.vm.vcpu(v).stats();
    flushes += a.tlb_flushes - vb[v].tlb_flushes;
    walks += a.walks - vb[v].walks;
  }
  const std::uint64_t measured = (p.switches - warm) * n;
  c.result("switches", "CR3 switches after the first round", measured);
  c.report.results.push_back(Metric{"switch_ns", "switches and accesses time", ns, Unit::Nanoseconds});
  c.result("guest_tlb_flushes", "guest TLB flushes", flushes);
  c.result("guest_walks", "guest page walks", walks);
  settle_kernels(c, *kernels);
  if (flushes != (p.pcid ? 0 : measured))
    c.fail(fmt::format("{} guest TLB flushes on {} CR3 switches, expected {}", flushes, measured,
                       p.pcid ? "none (PCIDs, no-flush CR3 writes)" : "one each"));
  if (sh != nullptr) {
    const shadow::ShadowStats sa = sh->stats();
    const std::uint64_t built = sa.roots_built - sb.roots_built;
    const std::uint64_t synced = sa.root_syncs - sb.root_syncs;
    c.result("roots_built", "shadow roots built", built);
    c.result("root_cache_hits", "switches to a cached root", sa.root_cache_hits - sb.root_cache_hits);
    c.result("root_syncs", "roots synced", synced);
    // Under adaptive a process moving to TDP or back meanwhile lets its shadow root go or
    // builds it again: the root cache is judged only when none moved.
    const mmu::MmuStats ma = c.vm.mmu().stats();
    const bool moved = ma.switched != mb.switched || ma.switched_back != mb.switched_back;
    if (!moved && p.processes <= kShadowCachedRoots && built != 0)
      c.fail(fmt::format("{} shadow roots built after the first round: {} processes fit the vCPU's cached roots",
                         built, p.processes));
    if (!moved && p.pcid && synced != 0)
      c.fail(fmt::format("{} roots synced on no-flush CR3 switches with PCIDs, expected none", synced));
  }
  return {};
}

}  // namespace vmmu::sim
