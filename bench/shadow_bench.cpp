// Shadow MMU (issue 12): an access the shadow tables answer (the modelled hardware's walk plus
// the guest's view of the leaf), and a shadow fault whose upper shadow pages all exist (the
// guest walk, the chain found by (gfn, role), one leaf installed). Over memslots: populating
// 1 GiB of 4 KiB guest pages (shadow-page memory against the guest's own table memory, as
// counters), and reading 1 GiB of 2 MiB guest pages after dirty logging starts, with huge
// shadow leaves write-protected or dropped (ShadowConfig::huge_on_dirty_log). A CR3 switch to
// a cached root, in the MMU alone and through a vCPU (register write, TLB flush, cpu role,
// root), under shadow and, for comparison, TDP.
//
// Guest: 4-level, 64 page tables of 512 4 KiB pages each (128 MiB), data at 0x1000000+, all
// backed before timing. Guest RAM answers a frame's host page from an array, as a memslot does
// with base + offset (SparseMemory's std::map look-up was a fifth of a fault's time).

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "tdp/support/tdp_fixture.hpp"
#include "vmmu/memory/memslots.hpp"
#include "vmmu/memory/sparse_memory.hpp"
#include "vmmu/shadow/shadow_mmu.hpp"
#include "vmmu/vm/guest_page_table_builder.hpp"
#include "vmmu/vm/vcpu.hpp"
#include "vmmu/vm/vm.hpp"
#include "x86/support/table_builder.hpp"

namespace {

using namespace vmmu;
namespace gpte = x86::gpte;

constexpr std::uint64_t kPages = 64 * 512;
constexpr std::uint64_t kDataBase = 0x1000000;

// Every frame below `frames` looked up once, then answered from an array.
class ArrayRam final : public shadow::GuestRam {
 public:
  ArrayRam(SparseMemory<Gpa>& mem, std::uint64_t frames) {
    for (std::uint64_t f = 0; f < frames; ++f) pages_.push_back(mem.backing(gpa_of(Gfn(f))));
  }
  std::byte* page(Gfn gfn) override { return gfn.raw() < pages_.size() ? pages_[gfn.raw()] : nullptr; }

 private:
  std::vector<std::byte*> pages_;
};

struct Guest {
  // `leaf_accessed`: the guest's 4 KiB entries come with A set (a fault prefetches its group
  // of 8), or clear (nothing to prefetch: each fault installs its own leaf alone).
  explicit Guest(bool leaf_accessed = true) {
    x86::test::TableBuilder<Gpa> b = builder();
    const std::uint64_t a = leaf_accessed ? gpte::A::mask : 0;
    for (std::uint64_t i = 0; i < kPages; ++i) {
      b.map(i << 12, 1, (kDataBase + (i << 12)) | gpte::P::mask | gpte::RW::mask | a | gpte::D::mask);
    }
  }
  // Clears the A bits the guest walks of faults set (untimed, between rounds).
  void clear_accessed() {
    x86::test::TableBuilder<Gpa> b = builder();
    for (std::uint64_t i = 0; i < kPages; ++i) {
      const Gpa slot = b.slot(i << 12, 1);
      b.write(slot, b.read(slot) & ~gpte::A::mask);
    }
  }
  x86::test::TableBuilder<Gpa> builder() {
    return {mem, x86::Format4::kGeometry, Gpa(0x1000), gpte::P::mask | gpte::RW::mask | gpte::US::mask, 0x2000};
  }

  SparseMemory<Gpa> mem;
  x86::GuestPaging paging = x86::GuestPaging::from(
      x86::Registers{.cr0 = x86::cr0::PE::mask | x86::cr0::PG::mask | x86::cr0::WP::mask,
                     .cr3 = 0x1000,
                     .cr4 = x86::cr4::PAE::mask,
                     .efer = x86::efer::LME::mask | x86::efer::LMA::mask | x86::efer::NXE::mask},
      {});
  ArrayRam ram{mem, (kDataBase >> 12) + kPages};  // guest RAM exists before the guest runs
};

void BM_ShadowHit(benchmark::State& state) {
  Guest g;
  shadow::ShadowMmu mmu(g.ram, {.host_levels = 4});
  for (std::uint64_t i = 0; i < 512; ++i) (void)mmu.access(g.paging, Gva(i << 12), Access::read());
  std::uint64_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(mmu.access(g.paging, Gva((i++ & 511) << 12), Access::read()));
  }
}
BENCHMARK(BM_ShadowHit);

// Every access faults: one page in 8, since a fault also maps its group of 8 neighbours
// (prefetch, the guest's entries are accessed). Per page touched in order: an eighth of this
// plus seven eighths of a hit.
void BM_ShadowFaultIntoExistingPages(benchmark::State& state) {
  Guest g;
  std::unique_ptr<shadow::ShadowMmu> mmu;
  std::uint64_t next = kPages;
  for (auto _ : state) {
    if (next >= kPages) {
      state.PauseTiming();
      mmu = std::make_unique<shadow::ShadowMmu>(g.ram, shadow::ShadowConfig{.host_levels = 4});
      for (std::uint64_t t = 0; t < 64; ++t) (void)mmu->access(g.paging, Gva(t << 21), Access::read());
      next = 0;
      state.ResumeTiming();
    }
    if ((next & 511) == 0) next += 8;  // group 0 of each table was faulted while warming
    benchmark::DoNotOptimize(mmu->access(g.paging, Gva(next << 12), Access::read()));
    next += 8;
  }
}
BENCHMARK(BM_ShadowFaultIntoExistingPages);

// Every access faults and installs one leaf, as KVM's selftests count a fault into existing
// shadow pages: the guest's entries are not accessed yet (the fault's guest walk sets A), so
// prefetch finds no neighbour to map. Counter: leaves per fault (1 when nothing prefetched).
void BM_ShadowFaultSingleLeaf(benchmark::State& state) {
  Guest g(false);
  std::unique_ptr<shadow::ShadowMmu> mmu;
  std::uint64_t next = kPages;
  std::uint64_t prefetched = 0;
  for (auto _ : state) {
    if (next >= kPages) {
      state.PauseTiming();
      if (mmu) prefetched += mmu->stats().prefetched;
      g.clear_accessed();
      mmu = std::make_unique<shadow::ShadowMmu>(g.ram, shadow::ShadowConfig{.host_levels = 4});
      for (std::uint64_t t = 0; t < 64; ++t) (void)mmu->access(g.paging, Gva(t << 21), Access::read());
      next = 0;
      state.ResumeTiming();
    }
    if ((next & 511) == 0) ++next;  // entry 0 of each table was faulted while warming
    benchmark::DoNotOptimize(mmu->access(g.paging, Gva(next << 12), Access::read()));
    ++next;
  }
  prefetched += mmu != nullptr ? mmu->stats().prefetched : 0;
  state.counters["leaves_per_fault"] =
      1.0 + static_cast<double>(prefetched) / static_cast<double>(std::max<std::int64_t>(state.iterations(), 1));
}
BENCHMARK(BM_ShadowFaultSingleLeaf);

// Switching between two processes whose roots are both cached (the vCPU's previous roots):
// arg 0: CR3 bit 63 set under PCIDs (no flush, no sync); arg 1: a flushing write (sync).
void BM_ShadowCr3SwitchCached(benchmark::State& state) {
  Guest g;
  // Process b: a copy of process a's PML4 (same lower tables), in a frame of its own.
  constexpr Gpa kPml4b(0x800000);
  std::memcpy(g.mem.backing(kPml4b), g.mem.backing(Gpa(0x1000)), kPageSize);
  x86::Registers rb = g.paging.registers();
  rb.cr3 = kPml4b.raw();
  const x86::GuestPaging pb = x86::GuestPaging::from(rb, {});
  shadow::ShadowMmu mmu(g.ram, {.host_levels = 4});
  shadow::ShadowVcpu v(mmu);
  const bool flush = state.range(0) != 0;
  (void)mmu.load_cr3(v, g.paging, true, 1);
  (void)mmu.load_cr3(v, pb, true, 2);
  bool to_a = true;
  for (auto _ : state) {
    benchmark::DoNotOptimize(to_a ? mmu.load_cr3(v, g.paging, flush, 1) : mmu.load_cr3(v, pb, flush, 2));
    to_a = !to_a;
  }
  const shadow::ShadowStats s = mmu.stats();
  state.counters["roots_built"] = static_cast<double>(s.roots_built);
  state.counters["cache_hit_share"] =
      static_cast<double>(s.root_cache_hits) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_ShadowCr3SwitchCached)->Arg(0)->Arg(1);

// The whole vCPU's CR3 write between two processes: args {mmu: 0 tdp, 1 shadow} x {0: NOFLUSH
// with PCIDs, 1: flushing}. Under TDP the root stays; the software TLB and cpu role do the work.
void BM_VcpuCr3Switch(benchmark::State& state) {
  vm::VmConfig config;
  config.mmu = state.range(0) != 0 ? mmu::MmuKind::Shadow : mmu::MmuKind::Tdp;
  auto made = vm::Vm::create(config);
  if (!made) {
    state.SkipWithError("Vm::create");
    return;
  }
  vm::Vm& vm = **made;
  vmmu::test::HostMemory host(16 << 20, 2 << 20);
  if (!vm.memslots().add(MemslotSpec{SlotId{1}, Gfn(0), (16 << 20) / kPageSize, host.data(), MemslotFlags::none()})) {
    state.SkipWithError("memslot");
    return;
  }
  // Two PML4s (empty: the switch alone is timed), PCIDs 1 and 2.
  constexpr std::uint64_t kPcide = std::uint64_t{1} << 17;
  vm::Vcpu& v = vm.add_vcpu();
  x86::Registers r = vm::long_mode_registers(Gpa(0x1000));
  r.cr4 |= kPcide;
  v.set_registers(r);
  const std::uint64_t no_flush = state.range(1) != 0 ? 0 : std::uint64_t{1} << 63;
  const std::uint64_t a = 0x1000 | 1 | no_flush;
  const std::uint64_t b = 0x2000 | 2 | no_flush;
  v.set_cr3(b);
  v.set_cr3(a);
  bool to_b = true;
  for (auto _ : state) {
    benchmark::DoNotOptimize(v.set_cr3(to_b ? b : a));
    to_b = !to_b;
  }
}
BENCHMARK(BM_VcpuCr3Switch)->ArgsProduct({{0, 1}, {0, 1}});

// A 1 GiB guest over one memslot: gva [0, 1 GiB) -> gpa 4 MiB + gva, in 4 KiB pages (512 page
// tables at 16 KiB+) or 2 MiB pages, backed with pages of `backing`.
struct MemslotGuest {
  static constexpr std::uint64_t kGiB = std::uint64_t{1} << 30, kData = std::uint64_t{4} << 20;
  test::HostMemory mem{kGiB + kData, std::uint64_t{1} << 21};
  Memslots slots;
  std::uint64_t guest_table_pages = 3;  // PML4, PDPT, PD
  x86::GuestPaging paging = x86::GuestPaging::from(
      x86::Registers{.cr0 = x86::cr0::PE::mask | x86::cr0::PG::mask | x86::cr0::WP::mask,
                     .cr3 = 0x1000,
                     .cr4 = x86::cr4::PAE::mask,
                     .efer = x86::efer::LME::mask | x86::efer::LMA::mask | x86::efer::NXE::mask},
      {});
  MemslotGuest(bool huge, std::uint64_t backing) {
    const std::uint64_t table = gpte::P::mask | gpte::RW::mask | gpte::US::mask;
    const std::uint64_t leaf = table | gpte::A::mask | gpte::D::mask;
    put(0x1000, 0x2000 | table);
    put(0x2000, 0x3000 | table);
    for (std::uint64_t d = 0; d < 512; ++d) {
      if (huge) {
        put(0x3000 + d * 8, (kData + (d << 21)) | leaf | gpte::PS::mask);
        continue;
      }
      const std::uint64_t pt = 0x4000 + d * 0x1000;
      put(0x3000 + d * 8, pt | table);
      for (std::uint64_t i = 0; i < 512; ++i) put(pt + i * 8, (kData + (d << 21) + (i << 12)) | leaf);
      ++guest_table_pages;
    }
    MemslotSpec s{SlotId{1}, Gfn(0), mem.pages(), mem.data(), MemslotFlags::none()};
    s.backing_page_size = backing;
    if (!slots.add(s)) std::abort();
  }
  void put(std::uint64_t gpa, std::uint64_t v) { std::memcpy(mem.data() + gpa, &v, sizeof v); }
  std::unique_ptr<shadow::ShadowMmu> mmu(shadow::ShadowConfig c) {
    auto m = shadow::ShadowMmu::create(c, slots);
    if (!m) std::abort();
    return std::move(*m);
  }
  // Reads one word of every 4 KiB page of the GiB through the vCPU.
  static void read_all(shadow::ShadowMmu& mmu, shadow::ShadowVcpu& v, const x86::GuestPaging& p) {
    std::uint64_t sum = 0;
    for (std::uint64_t gva = 0; gva < kGiB; gva += kPageSize) {
      (void)mmu.access(v, p, Gva(gva), Access::read(), [&](std::byte* b) { sum += static_cast<std::uint64_t>(*b); });
    }
    benchmark::DoNotOptimize(sum);
  }
};

// Populating 1 GiB of 4 KiB pages: time per GiB, and shadow-page memory against the guest's
// own table memory (target <= 2.1x).
void BM_ShadowPopulate1GiB(benchmark::State& state) {
  MemslotGuest g(false, kPageSize);
  double ratio = 0, rmap_ratio = 0, pages = 0;
  for (auto _ : state) {
    state.PauseTiming();
    std::unique_ptr<shadow::ShadowMmu> mmu = g.mmu({.host_levels = 4});
    state.ResumeTiming();
    {
      shadow::ShadowVcpu v(*mmu);
      MemslotGuest::read_all(*mmu, v, g.paging);
      state.PauseTiming();
      const double guest_bytes = static_cast<double>(g.guest_table_pages * kPageSize);
      ratio = static_cast<double>(mmu->shadow_page_bytes()) / guest_bytes;
      rmap_ratio = static_cast<double>(mmu->rmap_bytes()) / guest_bytes;
      pages = static_cast<double>(mmu->stats().shadow_pages);
    }
    mmu.reset();
    state.ResumeTiming();
  }
  state.counters["shadow_pages"] = pages;
  state.counters["guest_table_pages"] = static_cast<double>(g.guest_table_pages);
  state.counters["shadow_mem_x"] = ratio;  // shadow pages' tables + ShadowPage / guest tables
  state.counters["rmap_mem_x"] = rmap_ratio;
}
BENCHMARK(BM_ShadowPopulate1GiB)->Unit(benchmark::kMillisecond)->Iterations(1);

// Reading 1 GiB of 2 MiB guest pages (backed by 2 MiB pages) right after dirty logging starts:
// huge leaves write-protected (arg 0: reads keep them) or dropped (arg 1: every 4 KiB page
// faults back in).
void BM_ShadowReadAfterDirtyLog(benchmark::State& state) {
  MemslotGuest g(true, std::uint64_t{1} << 21);
  const auto policy = state.range(0) == 0 ? tdp::HugeOnDirtyLog::WriteProtect : tdp::HugeOnDirtyLog::Drop;
  for (auto _ : state) {
    state.PauseTiming();
    std::unique_ptr<shadow::ShadowMmu> mmu = g.mmu({.host_levels = 4, .huge_on_dirty_log = policy});
    {
      shadow::ShadowVcpu v(*mmu);
      MemslotGuest::read_all(*mmu, v, g.paging);
      if (!g.slots.set_flags(SlotId{1}, MemslotFlags::log_dirty())) std::abort();
      state.ResumeTiming();
      MemslotGuest::read_all(*mmu, v, g.paging);
      state.PauseTiming();
      state.counters["faults"] = static_cast<double>(mmu->stats().faults);
      if (!g.slots.set_flags(SlotId{1}, MemslotFlags::none())) std::abort();
    }
    mmu.reset();
    state.ResumeTiming();
  }
}
BENCHMARK(BM_ShadowReadAfterDirtyLog)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->Iterations(1);

}  // namespace

// A guest rewriting a page table it uses: the 1 GiB 4 KiB-page guest, its PT 0 (gva [0, 2 MiB),
// every one of its 512 leaves shadowed) also mapped at the GiB's last page (the window). Each
// write of PTE 5 through the window alternates its frame.
struct RewritingGuest {
  static constexpr std::uint64_t kWindow = MemslotGuest::kGiB - kPageSize;
  static constexpr std::uint64_t kLeaf = gpte::P::mask | gpte::RW::mask | gpte::US::mask | gpte::A::mask | gpte::D::mask;
  MemslotGuest g{false, kPageSize};
  std::unique_ptr<shadow::ShadowMmu> mmu;
  std::unique_ptr<shadow::ShadowVcpu> v;
  std::uint64_t n = 0;
  explicit RewritingGuest(shadow::ShadowConfig c) {
    g.put(0x4000 + 511 * 0x1000 + 511 * 8, 0x4000 | kLeaf);
    mmu = g.mmu(c);
    v = std::make_unique<shadow::ShadowVcpu>(*mmu);
    (void)mmu->load_cr3(*v, g.paging);
    for (std::uint64_t i = 0; i < 512; ++i) touch(i << 12);
  }
  void touch(std::uint64_t gva) { (void)mmu->access(*v, g.paging, Gva(gva), Access::read(), [](std::byte*) {}); }
  void write_pte5() {
    const std::uint64_t value = (MemslotGuest::kData + ((5 + (++n & 1)) << 12)) | kLeaf;
    (void)mmu->access(
        *v, g.paging, Gva(kWindow + 5 * 8), Access::write(), [&](std::byte* b) { std::memcpy(b, &value, 8); }, 8);
  }
};

// Syncing an unsync 512-entry page (target <= 5 us): the guest's write fault unsyncs PT 0's
// shadow page (untimed), its TLB flush syncs it -- 512 guest entries re-read, one leaf moved,
// the frame write-protected again.
void BM_ShadowSyncUnsyncPage(benchmark::State& state) {
  RewritingGuest r({});
  for (auto _ : state) {
    state.PauseTiming();
    r.write_pte5();
    state.ResumeTiming();
    r.mmu->flush_tlb(*r.v);
  }
  const shadow::ShadowStats s = r.mmu->stats();
  state.counters["syncs_per_iter"] = static_cast<double>(s.syncs) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_ShadowSyncUnsyncPage);

// An emulated write of one guest PTE (unsync off): the hardware's refusal, the fault path, the
// write, the shadow leaf updated from the new entry. A fault through PT 0 between every two
// writes (untimed) keeps write flooding from unshadowing it.
void BM_ShadowEmulatedWrite(benchmark::State& state) {
  RewritingGuest r({.unsync = false});
  for (auto _ : state) {
    if ((r.n & 1) == 0) {
      state.PauseTiming();
      r.mmu->invlpg(*r.v, Gva(0));
      r.touch(0);
      state.ResumeTiming();
    }
    r.write_pte5();
  }
  const shadow::ShadowStats s = r.mmu->stats();
  state.counters["emulated_per_iter"] = static_cast<double>(s.emulated) / static_cast<double>(state.iterations());
  state.counters["flooded"] = static_cast<double>(s.write_flooded);
}
BENCHMARK(BM_ShadowEmulatedWrite);
