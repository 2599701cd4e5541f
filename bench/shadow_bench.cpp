// Shadow MMU (issue 12): an access the shadow tables answer (the modelled hardware's walk plus
// the guest's view of the leaf), and a shadow fault whose upper shadow pages all exist (the
// guest walk, the chain found by (gfn, role), one leaf installed).
//
// Guest: 4-level, 64 page tables of 512 4 KiB pages each (128 MiB), data at 0x1000000+, all
// backed before timing. Guest RAM answers a frame's host page from an array, as a memslot does
// with base + offset (SparseMemory's std::map look-up was a fifth of a fault's time).

#include <benchmark/benchmark.h>

#include <memory>
#include <vector>

#include "vmmu/memory/sparse_memory.hpp"
#include "vmmu/shadow/shadow_mmu.hpp"
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
  SparseMemory<Gpa> mem;
  x86::GuestPaging paging = x86::GuestPaging::from(
      x86::Registers{.cr0 = x86::cr0::PE::mask | x86::cr0::PG::mask | x86::cr0::WP::mask,
                     .cr3 = 0x1000,
                     .cr4 = x86::cr4::PAE::mask,
                     .efer = x86::efer::LME::mask | x86::efer::LMA::mask | x86::efer::NXE::mask},
      {});
  Guest() {
    x86::test::TableBuilder<Gpa> b(mem, x86::Format4::kGeometry, Gpa(0x1000), gpte::P::mask | gpte::RW::mask | gpte::US::mask,
                                   0x2000);
    for (std::uint64_t i = 0; i < kPages; ++i) {
      b.map(i << 12, 1, (kDataBase + (i << 12)) | gpte::P::mask | gpte::RW::mask | gpte::A::mask | gpte::D::mask);
    }
  }
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

}  // namespace
