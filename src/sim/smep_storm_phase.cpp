// smep-storm: every vCPU, in long mode on guest page tables, flips CR4.SMEP again and again
// and reads memory through its page tables after each flip -- what a hardened guest kernel
// toggling SMEP around user accesses does. The TDP tables must not care: with RootPolicy::Keep
// a flip only refreshes the guest-walk rules (and flushes the guest TLB where the
// architecture says so); with Rebuild each flip drops the vCPU's root, as KVM before 6.4 did.
//
//   gva  kGvaBase + v * 2 MiB + k * 4 KiB  ──guest tables──►  page k of vCPU v's share
//        (one guest page table per vCPU)                       (spread over the share)

#include <array>

#include "phase.hpp"
#include "vmmu/core/page_size.hpp"
#include "vmmu/vm/guest_page_table_builder.hpp"

namespace vmmu::sim {
namespace {

constexpr std::uint64_t kGvaBase = std::uint64_t{1} << 30;
constexpr unsigned kGuestLevels = 4;
constexpr std::uint64_t kProgressFlips = 256;

Gva touch_gva(unsigned vcpu, std::uint64_t k) { return Gva(kGvaBase + vcpu * 2 * MiB + k * kPageSize); }

// The share page vCPU v touches k-th: evenly spread over its share.
std::uint64_t touch_page(const SimVm& vm, unsigned v, std::uint64_t k, std::uint64_t n) {
  auto [first, end] = vm.share(v);
  return first + k * ((end - first) / n);
}

struct StormLog {
  std::uint64_t exits = 0;
  std::string first;
  bool out_of_memory = false;
  void add(unsigned v, const vm::GuestExit& e) {
    out_of_memory = out_of_memory || e.kind == vm::GuestExitKind::OutOfMemory;
    if (exits++ == 0) first = fmt::format("vCPU {}: {}", v, vm::to_string(e));
  }
};

Status<std::string> settle(PhaseContext& c, const std::vector<StormLog>& logs) {
  std::uint64_t exits = 0;
  std::string first;
  for (const StormLog& l : logs) {
    if (l.out_of_memory) return Unexpected{"the MMU ran out of table memory (" + l.first + ")"};
    exits += l.exits;
    if (first.empty()) first = l.first;
  }
  if (exits != 0) c.fail(fmt::format("{} guest accesses ended in an exit; first: {}", exits, first));
  return {};
}

// Maps every vCPU's touched pages and puts the vCPUs in long mode on those tables.
Status<std::string> build_guest_tables(PhaseContext& c, const SmepStormPhase& p) {
  const unsigned n = c.vm.vcpus();
  // Root, one PDPT, one PD, one page table per vCPU (each vCPU's gvas are one 2 MiB block).
  auto pool = c.vm.add_table_pool(n + 3);
  if (!pool) return Unexpected{pool.error()};
  auto builder = vm::GuestPageTableBuilder::create(c.vm.vm(), *pool, kGuestLevels);
  if (!builder) return Unexpected{fmt::format("guest page tables: {}", vm::to_string(builder.error()))};
  for (unsigned v = 0; v < n; ++v) {
    for (std::uint64_t k = 0; k < p.touch_pages; ++k) {
      const Gpa gpa = c.vm.gpa_of_page(touch_page(c.vm, v, k, p.touch_pages));
      if (auto s = builder->map(touch_gva(v, k), gpa, kPageSize, kPageSize); !s)
        return Unexpected{fmt::format("guest page tables: mapping gpa {:#x}: {}", gpa.raw(), vm::to_string(s.error()))};
    }
  }
  const x86::Registers regs = vm::long_mode_registers(builder->root(), kGuestLevels);
  for (unsigned v = 0; v < n; ++v) c.vm.vcpu(v).set_registers(regs);
  return {};
}

// Reads every touched page once through the guest tables.
void touch(vm::Vcpu& vcpu, unsigned v, std::uint64_t pages, StormLog& log) {
  std::array<std::byte, 8> buf{};
  for (std::uint64_t k = 0; k < pages; ++k) {
    if (auto s = vcpu.read(touch_gva(v, k), buf); !s) log.add(v, s.error());
  }
}

}  // namespace

Status<std::string> run_smep_storm(PhaseContext& c, const SmepStormPhase& p) {
  const unsigned n = c.vm.vcpus();
  if (auto s = build_guest_tables(c, p); !s) return s;
  std::vector<StormLog> logs(n);
  c.progress.step("warm up", 0);
  for (unsigned v = 0; v < n; ++v) touch(c.vm.vcpu(v), v, p.touch_pages, logs[v]);

  // What the flips alone cost, apart from building and warming up.
  std::vector<vm::VcpuStats> vb(n), va(n);
  for (unsigned v = 0; v < n; ++v) vb[v] = c.vm.vcpu(v).stats();
  const StatsSnapshot before = c.vm.snapshot();
  std::uint64_t storm_ns = 0;
  c.progress.step("flips", p.flips * n);
  storm_ns = timed([&] {
    c.progress.parallel(n, [&](unsigned v) {
      vm::Vcpu& vcpu = c.vm.vcpu(v);
      std::uint64_t cr4 = vcpu.registers().cr4;
      for (std::uint64_t f = 1; f <= p.flips; ++f) {
        cr4 ^= x86::cr4::SMEP::mask;
        vcpu.set_cr4(cr4);
        touch(vcpu, v, p.touch_pages, logs[v]);
        if (f % kProgressFlips == 0) c.progress.add(kProgressFlips);
      }
    });
  });
  const StatsSnapshot after = c.vm.snapshot();
  for (unsigned v = 0; v < n; ++v) va[v] = c.vm.vcpu(v).stats();

  std::uint64_t flushes = 0, refreshes = 0, unloads = 0, walks = 0, hits = 0;
  for (unsigned v = 0; v < n; ++v) {
    flushes += va[v].tlb_flushes - vb[v].tlb_flushes;
    refreshes += va[v].role_refreshes - vb[v].role_refreshes;
    unloads += va[v].root_unloads - vb[v].root_unloads;
    walks += va[v].walks - vb[v].walks;
    hits += va[v].tlb_hits - vb[v].tlb_hits;
  }
  c.result("flips", "CR4.SMEP flips", p.flips * n);
  c.result("touches", "guest reads", p.flips * n * p.touch_pages);
  c.report.results.push_back(Metric{"storm_ns", "flips and reads time", storm_ns, Unit::Nanoseconds});
  c.result("storm_faults", "MMU faults during the flips", after.mmu.faults - before.mmu.faults);
  // TDP: zap operations; shadow: shadow pages zapped (a role change must zap none).
  const std::uint64_t zaps = after.kind == mmu::MmuKind::Shadow ? after.mmu.zapped - before.mmu.zapped
                                                                  : after.tdp.zaps - before.tdp.zaps;
  c.result("storm_zaps", "zaps during the flips", zaps);
  c.result("storm_roots_created", "roots created during the flips", after.mmu.roots_created - before.mmu.roots_created);
  c.result("role_refreshes", "cpu role refreshes", refreshes);
  c.result("root_unloads", "root unloads", unloads);
  c.result("guest_tlb_flushes", "guest TLB flushes", flushes);
  c.result("guest_walks", "guest page walks", walks);
  c.result("guest_tlb_hits", "guest TLB hits", hits);
  return settle(c, logs);
}

}  // namespace vmmu::sim
