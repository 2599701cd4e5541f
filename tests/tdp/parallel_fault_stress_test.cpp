// Parallel faults: vCPU threads fault and write over the same memory while another thread
// runs every structural operation (zap, write-protect, split, merge, age, invalidations,
// zap-all). Each vCPU owns some words of every page and checks they keep its last value;
// at the end the invariants hold and the table accounting is exact.
#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>

#include "tdp/support/tdp_fixture.hpp"

namespace vmmu::tdp {
namespace {

using test::HostMemory;
using test::TdpVm;

using test::k2M;
constexpr std::uint64_t kFaultPages = 4 * 512;

class ParallelFaults : public ::testing::TestWithParam<TdpKind> {};

TEST_P(ParallelFaults, StructuralOperationsNeverLoseOrMisplaceData) {
  TdpConfig cfg;
  cfg.format.kind = GetParam();
  TdpVm vm(cfg);
  HostMemory mem(kFaultPages * kPageSize);
  vm.add_slot(1, Gfn(0), mem, k2M);
  constexpr unsigned kThreads = 3;
  std::vector<VcpuMmu*> vcpus;
  for (unsigned t = 0; t < kThreads; ++t) vcpus.push_back(&vm.vcpu());
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> wrong{0}, exits{0}, accesses{0};
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(t + 7);
      std::vector<std::uint64_t> last(kFaultPages, 0);
      VcpuMmu& v = *vcpus[t];
      for (std::uint64_t n = 1; !stop.load(std::memory_order_relaxed); ++n) {
        const std::uint64_t p = rng() % kFaultPages;
        const Gpa word = gpa_of(Gfn(p)) + t * 8;
        if (rng() % 2) {
          if (!vm.write64(v, word, n)) exits.fetch_add(1);
          last[p] = n;
        } else {
          auto r = vm.read64(v, word);
          if (!r) {
            exits.fetch_add(1);
          } else if (*r != last[p]) {
            wrong.fetch_add(1);
          }
        }
        accesses.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  std::mt19937_64 rng(99);
  for (int i = 0; i < 400 || accesses.load() < 20000; ++i) {
    const Gfn a(rng() % kFaultPages), b = a + 1 + rng() % 1024;
    switch (rng() % 8) {
      case 0: ASSERT_TRUE(vm.mmu->unmap({a, b})); break;
      case 1:
        if (rng() % 2 == 0) {
          vm.mmu->write_protect({a, b}, pt::Shared{});
        } else {
          vm.mmu->write_protect({a, b}, pt::Exclusive{});
        }
        break;
      case 2: ASSERT_TRUE(vm.mmu->split({a, b})); break;
      case 3: vm.mmu->collapse({Gfn(0), Gfn(kFaultPages)}); break;
      case 4: vm.mmu->age({a, b}); break;
      case 5:
        vm.mmu->invalidate_begin({a, b});
        vm.mmu->invalidate_end({a, b});
        break;
      case 6: vm.mmu->unmap_all(); break;
      default: (void)vm.mmu->test_age({a, b}); break;
    }
  }
  stop.store(true);
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0u);
  EXPECT_EQ(exits.load(), 0u);
  auto bad = vm.mmu->check_invariants();
  EXPECT_FALSE(bad.has_value()) << *bad;
}

INSTANTIATE_TEST_SUITE_P(Formats, ParallelFaults, ::testing::Values(TdpKind::Ept, TdpKind::Npt),
                         [](const ::testing::TestParamInfo<TdpKind>& p) { return std::string(to_string(p.param)); });

TEST(ParallelFaults, TwoThreadsPopulateTheSameTablesOnce) {
  // Racing faults build each table once (the loser frees its copy): the tables in use are
  // exactly the minimum for the memory mapped.
  TdpVm vm;
  HostMemory mem(kFaultPages * kPageSize);
  vm.add_slot(1, Gfn(0), mem);
  std::vector<VcpuMmu*> vcpus{&vm.vcpu(), &vm.vcpu()};
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      for (std::uint64_t p = 0; p < kFaultPages; ++p) {
        if (!vm.write64(*vcpus[t], gpa_of(Gfn(t == 0 ? p : kFaultPages - 1 - p)), p)) std::abort();
      }
    });
  }
  for (auto& t : threads) t.join();
  const TdpStats s = vm.mmu->stats();
  EXPECT_EQ(s.leaves[1], kFaultPages);
  EXPECT_EQ(s.tables_in_use, kFaultPages / 512 + 3);  // page tables + PD + PDPT + root
  EXPECT_EQ(s.faults.mapped[1], kFaultPages);
  EXPECT_FALSE(vm.mmu->check_invariants().has_value());
}

}  // namespace
}  // namespace vmmu::tdp
