// Shadow EPT and shadow NPT (issue 13), L1's memory a flat buffer: an L2 fault into existing
// shadow pages (L1's tables walked, the leaf installed; targets <= 250 ns), a hit, and an
// EPTP / nCR3 switch to a root in the vCPU's cache (<= 50 ns). The same EPT fault with L1 on
// memslots, plain and dirty-logged (item 5: each write fault logs its L1 frame).

#include <benchmark/benchmark.h>

#include <cstring>
#include <memory>
#include <vector>

#include "nested/support/l1_ept.hpp"
#include "nested/support/l1_npt.hpp"
#include "tdp/support/tdp_fixture.hpp"

namespace vmmu::nested::test {
namespace {

constexpr std::uint64_t kTables = 16, kPages = kTables * 512;  // 32 MiB of L2 in 4 KiB pages
constexpr std::uint64_t kPtBase = 0x100000, kData = 0x2000000, kRamBytes = kData + kPages * 0x1000;

// L1's memory as one touched buffer: the fault is timed, not a sparse map's page allocation.
class FlatRam final : public shadow::GuestRam {
 public:
  FlatRam() : bytes_(kRamBytes) {}
  std::byte* page(Gfn gfn) override {
    return gfn.raw() < kRamBytes / kPageSize ? bytes_.data() + gfn.raw() * kPageSize : nullptr;
  }
  void poke(std::uint64_t gpa, std::uint64_t value) { std::memcpy(bytes_.data() + gpa, &value, sizeof value); }

 private:
  std::vector<std::byte> bytes_;
};

// L1 whose EPT (or NPT: `table` and `leaf` bits) maps L2 [0, 32 MiB) to L1 [32 MiB, 64 MiB).
struct BigL1 {
  FlatRam ram;
  explicit BigL1(std::uint64_t table = kTable, std::uint64_t leaf = kRwx | kWb) {
    ram.poke(kPml4, kPdpt | table);
    ram.poke(kPdpt, kPd | table);
    for (std::uint64_t t = 0; t < kTables; ++t) {
      ram.poke(kPd + t * 8, (kPtBase + t * 0x1000) | table);
      for (std::uint64_t i = 0; i < 512; ++i) {
        ram.poke(kPtBase + t * 0x1000 + i * 8, (kData + (t * 512 + i) * 0x1000) | leaf);
      }
    }
  }
};

void load_ept(ShadowEptMmu& mmu, ShadowEptVcpu& vcpu) { (void)mmu.load_eptp(vcpu, eptp_for(kPml4, false)); }
void load_npt(ShadowNptMmu& mmu, ShadowNptVcpu& vcpu) { (void)mmu.load_ncr3(vcpu, npt_test::root_at(kPml4)); }

// Faults into existing shadow EPT pages, one per L2 page of [0, 32 MiB): `make()` gives a new
// MMU each time every page is mapped, warmed with one access per L1 page table.
template <class Mmu, class Make>
void fault_each_page(benchmark::State& state, Make&& make, void (*load)(Mmu&, typename Mmu::Vcpu&), AccessKind op) {
  std::unique_ptr<Mmu> mmu;
  std::unique_ptr<typename Mmu::Vcpu> vcpu;
  std::uint64_t next = kPages;
  for (auto _ : state) {
    if (next >= kPages) {
      state.PauseTiming();
      vcpu.reset();
      mmu.reset();
      mmu = make();
      vcpu = std::make_unique<typename Mmu::Vcpu>();
      load(*mmu, *vcpu);
      for (std::uint64_t t = 0; t < kTables; ++t) (void)mmu->access(*vcpu, Gpa(t << 21), op);
      next = 0;
      state.ResumeTiming();
    }
    if ((next & 511) == 0) ++next;  // page 0 of each table was faulted while warming
    benchmark::DoNotOptimize(mmu->access(*vcpu, Gpa(next << 12), op));
    ++next;
  }
  vcpu.reset();
}

void BM_NestedFaultIntoExistingPages(benchmark::State& state) {
  BigL1 l1;
  fault_each_page(
      state, [&] { return std::make_unique<ShadowEptMmu>(l1.ram, x86::EptCapabilities{.maxphyaddr = 46}); }, load_ept,
      AccessKind::Read);
}
BENCHMARK(BM_NestedFaultIntoExistingPages);

void BM_NestedNptFaultIntoExistingPages(benchmark::State& state) {
  BigL1 l1(npt_test::kUrw, npt_test::kUrw);
  fault_each_page(
      state, [&] { return std::make_unique<ShadowNptMmu>(l1.ram, npt_test::kCpu); }, load_npt, AccessKind::Read);
}
BENCHMARK(BM_NestedNptFaultIntoExistingPages);

void BM_NestedHit(benchmark::State& state) {
  BigL1 l1;
  ShadowEptMmu mmu(l1.ram, x86::EptCapabilities{.maxphyaddr = 46});
  ShadowEptVcpu vcpu;
  (void)mmu.load_eptp(vcpu, eptp_for(kPml4, false));
  for (std::uint64_t i = 0; i < 512; ++i) (void)mmu.access(vcpu, Gpa(i << 12), AccessKind::Read);
  std::uint64_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(mmu.access(vcpu, Gpa((i++ & 511) << 12), AccessKind::Read));
}
BENCHMARK(BM_NestedHit);

void BM_NestedEptpSwitchToCachedRoot(benchmark::State& state) {
  L1 l1;
  constexpr std::uint64_t kOther = 0x20000;
  l1.poke(kOther, kPdpt | kTable);
  const std::uint64_t a = eptp_for(kPml4, false), b = eptp_for(kOther, false);
  (void)l1.mmu.load_eptp(l1.vcpu, a);
  (void)l1.mmu.load_eptp(l1.vcpu, b);
  bool flip = false;
  for (auto _ : state) {
    benchmark::DoNotOptimize(l1.mmu.load_eptp(l1.vcpu, flip ? b : a));
    flip = !flip;
  }
  if (l1.mmu.stats().roots_built != 2) state.SkipWithError("an EPTP switch rebuilt a root");
}
BENCHMARK(BM_NestedEptpSwitchToCachedRoot);

void BM_NestedNcr3SwitchToCachedRoot(benchmark::State& state) {
  npt_test::L1Npt l1;
  constexpr std::uint64_t kOther = 0x30000;
  l1.poke(kOther, npt_test::kPdpt | npt_test::kUrw);
  const NptRoot a = npt_test::root_at(npt_test::kPml4), b = npt_test::root_at(kOther);
  (void)l1.mmu.load_ncr3(l1.vcpu, a);
  (void)l1.mmu.load_ncr3(l1.vcpu, b);
  bool flip = false;
  for (auto _ : state) {
    benchmark::DoNotOptimize(l1.mmu.load_ncr3(l1.vcpu, flip ? b : a));
    flip = !flip;
  }
  if (l1.mmu.stats().roots_built != 2) state.SkipWithError("an nCR3 switch rebuilt a root");
}
BENCHMARK(BM_NestedNcr3SwitchToCachedRoot);

// The same L1 on one memslot. Arg: 0 read faults; 1 write faults with the slot dirty-logged.
// Registered last: in one process after it, the hit and EPTP-switch figures (process CPU time)
// read ~8 ns higher in a shared sitting, cause not yet found; time it with its own filter.
void BM_NestedFaultOnMemslots(benchmark::State& state) {
  const bool logged = state.range(0) != 0;
  BigL1 l1;
  vmmu::test::HostMemory host(kRamBytes);
  std::memcpy(host.data(), l1.ram.page(Gfn(0)), kRamBytes);
  Memslots slots;
  if (!slots.add({SlotId{1}, Gfn(0), host.pages(), host.data(), MemslotFlags::none()}) ||
      (logged && !slots.set_flags(SlotId{1}, MemslotFlags::log_dirty()))) {
    state.SkipWithError("memslot setup failed");
    return;
  }
  fault_each_page(
      state, [&] { return ShadowEptMmu::create(slots, x86::EptCapabilities{.maxphyaddr = 46}); }, load_ept,
      logged ? AccessKind::Write : AccessKind::Read);
}
BENCHMARK(BM_NestedFaultOnMemslots)->Arg(0)->Arg(1);

}  // namespace
}  // namespace vmmu::nested::test
