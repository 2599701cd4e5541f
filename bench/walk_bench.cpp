// Guest and EPT walk costs, warm (tables in cache, A bits already set), through GuestMemory
// (one memslot, hit cache) as a vCPU walks, with a pointer-chase baseline in the same run:
// compare the ratio walk / baseline, which holds on any machine.
//
//   build/release/bench/walk_bench            (Google Benchmark flags apply)

#include <benchmark/benchmark.h>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <vector>

#include "vmmu/memory/guest_memory.hpp"
#include "vmmu/memory/memslots.hpp"
#include "vmmu/memory/sparse_memory.hpp"
#include "vmmu/x86/walk.hpp"
#include "qemu_like_softmmu.hpp"

namespace vmmu::x86 {
namespace {

constexpr std::uint64_t kPages = 64;
constexpr std::uint64_t kP = gpte::P::mask | gpte::RW::mask | gpte::US::mask;

// One slot of kPages pages at gpa 0; tables are bump-allocated from page 1.
class Guest {
 public:
  Guest() : host_(static_cast<std::byte*>(std::aligned_alloc(kPageSize, kPages * kPageSize)), &std::free) {
    std::memset(host_.get(), 0, kPages * kPageSize);
    if (!slots_.add(MemslotSpec{SlotId{0}, Gfn(0), kPages, host_.get(), MemslotFlags::none()})) std::abort();
    memory_ = std::make_unique<GuestMemory>(slots_);
  }
  GuestMemory& memory() { return *memory_; }
  std::byte* host() { return host_.get(); }
  std::uint64_t alloc() { return (next_++) * kPageSize; }
  // Map `input` at level 1 through `levels` levels of 9 bits (entry_bytes 8), root at `root`.
  void map(std::uint64_t root, unsigned levels, unsigned top_bits, std::uint64_t input, std::uint64_t leaf,
           std::uint64_t table_flags) {
    std::uint64_t table = root;
    for (unsigned level = levels; level > 1; --level) {
      const unsigned bits = level == levels ? top_bits : 9;
      const std::uint64_t index = (input >> (12 + 9 * (level - 1))) & ((1u << bits) - 1);
      const Gpa where(table + index * 8);
      std::uint64_t e = *memory_->read<std::uint64_t>(where);
      if (e == 0) {
        e = alloc() | table_flags;
        (void)memory_->write<std::uint64_t>(where, e);
      }
      table = e & gpte::Addr::mask;
    }
    (void)memory_->write<std::uint64_t>(Gpa(table + ((input >> 12) & 511) * 8), leaf);
  }

 private:
  std::unique_ptr<std::byte, decltype(&std::free)> host_;
  Memslots slots_;
  std::unique_ptr<GuestMemory> memory_;
  std::uint64_t next_ = 1;
};

Registers long_regs(bool la57) {
  Registers r;
  r.cr0 = cr0::PG::mask | cr0::PE::mask | cr0::WP::mask;
  r.cr4 = cr4::PAE::mask | cr4::SMEP::mask | cr4::SMAP::mask | cr4::PKE::mask | (la57 ? cr4::LA57::mask : 0);
  r.efer = efer::LME::mask | efer::LMA::mask | efer::NXE::mask;
  return r;
}

void BM_Baseline_FourDependentLoads(benchmark::State& state) {
  // Four loads, each address depending on the previous one (a ring of four cache lines, so
  // each iteration also depends on the last): the floor of any 4-level walk.
  alignas(64) static std::uint64_t ring[4 * 8];
  for (int i = 0; i < 4; ++i) ring[i * 8] = reinterpret_cast<std::uintptr_t>(&ring[((i + 1) % 4) * 8]);
  std::uint64_t p = reinterpret_cast<std::uintptr_t>(&ring[0]);
  for (auto _ : state) {
    for (int i = 0; i < 4; ++i) p = *reinterpret_cast<const std::uint64_t*>(p);
    benchmark::DoNotOptimize(p);
  }
}
BENCHMARK(BM_Baseline_FourDependentLoads);

constexpr std::uint64_t kLongGva = 0x7f12'3456'7000;

// The floor of a walk of real tables: the same four tables as BM_Walk4Level_GuestMemory, each
// entry read with a plain dependent load at host + (entry & address mask) + index * 8 -- no
// memslot, no checks. The next iteration's root depends on the leaf (an AND with an opaque
// zero), so, like the ring above, it times the four loads' latency, not their throughput.
void BM_Floor_Walk4Level_Tables(benchmark::State& state) {
  Guest g;
  const std::uint64_t root = g.alloc();
  g.map(root, 4, 9, kLongGva, 0x5000 | kP | gpte::XD::mask, kP);
  std::array<std::uint64_t, 5> offset{};
  for (unsigned level = 1; level <= 4; ++level) offset[level] = ((kLongGva >> (12 + 9 * (level - 1))) & 511) * 8;
  const std::byte* host = g.host();
  const auto walk_tables = [&](std::uint64_t table) {
    std::uint64_t e = 0;
    for (unsigned level = 4; level >= 1; --level) {
      e = *reinterpret_cast<const std::uint64_t*>(host + table + offset[level]);
      table = e & gpte::Addr::mask;
    }
    return e;
  };
  if ((walk_tables(root) & gpte::Addr::mask) != 0x5000) state.SkipWithError("floor walk did not reach the leaf");
  std::uint64_t zero = 0;
  benchmark::DoNotOptimize(zero);
  std::uint64_t table = root;
  for (auto _ : state) {
    const std::uint64_t leaf = walk_tables(table);
    benchmark::DoNotOptimize(leaf);
    table = root + (leaf & zero);
  }
}
BENCHMARK(BM_Floor_Walk4Level_Tables);

// QEMU's TCG on the same tables (a re-implementation of its path, see qemu_like_softmmu.hpp):
// the page is flushed from the softmmu TLB, then a user load misses, walks and refills.
void BM_QemuLike_SoftmmuMissWalk4Level(benchmark::State& state) {
  Guest g;
  const std::uint64_t root = g.alloc();
  g.map(root, 4, 9, kLongGva, 0x5000 | kP | gpte::XD::mask, kP);
  const Registers r = long_regs(false);
  const std::vector<std::uint8_t> dirty(kPages, 1);
  bench::qemu_like::Cpu cpu({0, kPages * kPageSize, g.host(), dirty.data()}, r.cr0, root, r.cr4, r.efer, 46);
  if (!cpu.load(kLongGva)) state.SkipWithError("walk failed");
  for (auto _ : state) {
    cpu.flush_page(kLongGva);
    auto v = cpu.load(kLongGva + 0x120);
    benchmark::DoNotOptimize(v);
  }
}
BENCHMARK(BM_QemuLike_SoftmmuMissWalk4Level);

template <bool kLa57>
void BM_WalkLong(benchmark::State& state) {
  Guest g;
  const std::uint64_t root = g.alloc();
  const std::uint64_t gva = kLongGva;
  g.map(root, kLa57 ? 5 : 4, 9, gva, 0x5000 | kP | gpte::XD::mask, kP);
  Registers r = long_regs(kLa57);
  r.cr3 = root;
  const GuestPaging paging = GuestPaging::from(r, CpuModel{.maxphyaddr = 46});
  const Access access = Access::read(true);
  if (!walk(paging, g.memory(), Gva(gva), access)) state.SkipWithError("walk failed");
  for (auto _ : state) {
    auto t = walk(paging, g.memory(), Gva(gva + 0x123), access);
    benchmark::DoNotOptimize(t);
  }
}
BENCHMARK(BM_WalkLong<false>)->Name("BM_Walk4Level_GuestMemory");
BENCHMARK(BM_WalkLong<true>)->Name("BM_Walk5Level_GuestMemory");

void BM_Walk4Level_Write(benchmark::State& state) {
  Guest g;
  const std::uint64_t root = g.alloc();
  const std::uint64_t gva = 0x7f12'3456'7000;
  g.map(root, 4, 9, gva, 0x5000 | kP, kP);
  Registers r = long_regs(false);
  r.cr3 = root;
  const GuestPaging paging = GuestPaging::from(r, CpuModel{.maxphyaddr = 46});
  if (!walk(paging, g.memory(), Gva(gva), Access::write(true))) state.SkipWithError("walk failed");
  for (auto _ : state) {
    auto t = walk(paging, g.memory(), Gva(gva), Access::write(true));
    benchmark::DoNotOptimize(t);
  }
}
BENCHMARK(BM_Walk4Level_Write);

void BM_WalkPae_GuestMemory(benchmark::State& state) {
  Guest g;
  const std::uint64_t root = g.alloc();
  const std::uint64_t gva = 0xc0201000;
  // The PDPTEs carry only P; lower tables P|RW|US.
  const std::uint64_t pd = g.alloc(), pt = g.alloc();
  (void)g.memory().write<std::uint64_t>(Gpa(root + 3 * 8), pd | gpte::P::mask);
  (void)g.memory().write<std::uint64_t>(Gpa(pd + 1 * 8), pt | kP);
  (void)g.memory().write<std::uint64_t>(Gpa(pt + 1 * 8), 0x5000 | kP);
  Registers r;
  r.cr0 = cr0::PG::mask | cr0::PE::mask | cr0::WP::mask;
  r.cr4 = cr4::PAE::mask;
  r.efer = efer::NXE::mask;
  r.cr3 = root;
  const GuestPaging paging = GuestPaging::from(r, CpuModel{.maxphyaddr = 36});
  if (!walk(paging, g.memory(), Gva(gva), Access::read())) state.SkipWithError("walk failed");
  for (auto _ : state) {
    auto t = walk(paging, g.memory(), Gva(gva), Access::read());
    benchmark::DoNotOptimize(t);
  }
}
BENCHMARK(BM_WalkPae_GuestMemory);

void BM_WalkEpt4Level_GuestMemory(benchmark::State& state) {
  Guest g;
  const std::uint64_t root = g.alloc();
  const std::uint64_t gpa = 0x1'2345'6000;
  g.map(root, 4, 9, gpa, 0x5000 | 7 | (6u << 3), 7);
  auto ctx = EptContext::from(root | 0x5e, EptCapabilities{.maxphyaddr = 46});
  if (!ctx || !walk_ept<Gpa>(*ctx, g.memory(), Gpa(gpa), AccessKind::Read)) state.SkipWithError("walk failed");
  for (auto _ : state) {
    auto t = walk_ept<Gpa>(*ctx, g.memory(), Gpa(gpa + 0x123), AccessKind::Read);
    benchmark::DoNotOptimize(t);
  }
}
BENCHMARK(BM_WalkEpt4Level_GuestMemory);

void BM_Walk4Level_SparseMemory(benchmark::State& state) {
  // The case-file memory (a std::map of pages): shows what the memslot hit cache buys.
  SparseMemory<Gpa> mem;
  const std::uint64_t gva = 0x7f12'3456'7000;
  std::uint64_t table = 0x1000, next = 0x2000;
  for (unsigned level = 4; level > 1; --level) {
    mem.write<std::uint64_t>(Gpa(table + ((gva >> (12 + 9 * (level - 1))) & 511) * 8), next | kP);
    table = next;
    next += 0x1000;
  }
  mem.write<std::uint64_t>(Gpa(table + ((gva >> 12) & 511) * 8), 0x5000 | kP);
  Registers r = long_regs(false);
  r.cr3 = 0x1000;
  const GuestPaging paging = GuestPaging::from(r);
  if (!walk(paging, mem, Gva(gva), Access::read(true))) state.SkipWithError("walk failed");
  for (auto _ : state) {
    auto t = walk(paging, mem, Gva(gva), Access::read(true));
    benchmark::DoNotOptimize(t);
  }
}
BENCHMARK(BM_Walk4Level_SparseMemory);

}  // namespace
}  // namespace vmmu::x86
