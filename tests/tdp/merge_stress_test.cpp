// Merge in place under a reader: a thread reading every byte of a 2 MiB range while it is
// split and merged back, again and again, never faults (the range is never unmapped) and
// never sees wrong data. With zap-and-refault recovery the same reader does fault.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "tdp/support/tdp_fixture.hpp"

namespace vmmu::tdp {
namespace {

using test::HostMemory;
using test::TdpVm;

using test::k2M;
constexpr std::uint64_t kPagesPer2M = k2M / kPageSize;

std::uint64_t pattern(std::uint64_t word) { return word * 0x9E3779B97F4A7C15ull; }

// What a reader of every byte of a 2 MiB range saw while `recover` ran after each split of
// it (at least 200 rounds, and until the reader made 5 passes).
struct ReaderSaw {
  std::uint64_t bad = 0, exits = 0, faults = 0, rounds = 0, huge_after_recover = 0;
};

template <class Recover>
ReaderSaw read_while_split_and_recovered(TdpVm& vm, Recover&& recover) {
  ReaderSaw saw;
  auto& reader_vcpu = vm.vcpu();
  if (!vm.read64(reader_vcpu, Gpa(0)) || vm.mmu->lookup(Gpa(0))->level != 2) {
    saw.bad = ~std::uint64_t{0};
    return saw;
  }
  const std::uint64_t faults_before = reader_vcpu.stats().faults;
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> bad{0}, exits{0}, passes{0};
  std::thread reader([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      for (std::uint64_t p = 0; p < kPagesPer2M; ++p) {
        auto s = vm.mmu->access(reader_vcpu, gpa_of(Gfn(p)), Access::read(), [&](std::byte* host) {
          const auto* q = reinterpret_cast<const std::uint64_t*>(host);
          for (std::uint64_t i = 0; i < kPageSize / 8; ++i) {
            if (q[i] != pattern(p * 512 + i)) bad.fetch_add(1, std::memory_order_relaxed);
          }
        });
        if (!s) exits.fetch_add(1, std::memory_order_relaxed);
      }
      passes.fetch_add(1, std::memory_order_relaxed);
    }
  });
  for (; saw.rounds < 200 || passes.load() < 5; ++saw.rounds) {
    auto split = vm.mmu->split({Gfn(0), Gfn(kPagesPer2M)});
    if (!split || *split != 1) {
      bad.fetch_add(1);
      break;
    }
    recover();
    // Counted from the tables, not from what the operation says it did.
    if (auto leaf = vm.mmu->lookup(Gpa(0)); leaf && leaf->level == 2) ++saw.huge_after_recover;
  }
  stop.store(true);
  reader.join();
  saw.bad = bad.load();
  saw.exits = exits.load();
  saw.faults = reader_vcpu.stats().faults - faults_before;
  return saw;
}

void fill(HostMemory& mem) {
  auto* w = reinterpret_cast<std::uint64_t*>(mem.data());
  for (std::uint64_t i = 0; i < mem.bytes() / 8; ++i) w[i] = pattern(i);
}

TEST(MergeInPlace, AReaderNeverSeesAMissingPageOrWrongData) {
  TdpVm vm;
  HostMemory mem(2 * k2M);
  fill(mem);
  vm.add_slot(1, Gfn(0), mem, k2M);
  const std::uint64_t merges_before = vm.mmu->stats().merges_in_place;
  const ReaderSaw saw = read_while_split_and_recovered(vm, [&] { (void)vm.mmu->collapse({Gfn(0), Gfn(kPagesPer2M)}); });
  EXPECT_GE(saw.rounds, 200u);
  EXPECT_EQ(saw.huge_after_recover, saw.rounds) << "every merge left one 2 MiB leaf";
  EXPECT_EQ(vm.mmu->stats().merges_in_place - merges_before, saw.rounds);
  EXPECT_EQ(saw.bad, 0u);
  EXPECT_EQ(saw.exits, 0u);
  EXPECT_EQ(saw.faults, 0u) << "the range was unmapped at some point";
  EXPECT_FALSE(vm.mmu->check_invariants().has_value());
}

// The negative control: the same reader under zap-and-refault recovery sees the unmap (it
// faults), so the test above would catch a merge that unmapped the range.
TEST(MergeInPlace, TheSameReaderFaultsUnderZapAndRefault) {
  TdpVm vm([](Policies& p) { p.recovery = RecoveryPolicy::ZapAndRefault; });
  HostMemory mem(2 * k2M);
  fill(mem);
  vm.add_slot(1, Gfn(0), mem, k2M);
  const ReaderSaw saw = read_while_split_and_recovered(vm, [&] {
    (void)vm.mmu->unmap_collapsible({Gfn(0), Gfn(kPagesPer2M)});
    // The reader's next fault maps the range as one 2 MiB leaf again: wait for it, so the
    // next round has a huge leaf to split.
    for (int i = 0; i < 1'000'000; ++i) {
      if (auto leaf = vm.mmu->lookup(Gpa(0)); leaf && leaf->level == 2) break;
      std::this_thread::yield();
    }
  });
  EXPECT_GE(saw.rounds, 200u);
  EXPECT_GT(saw.faults, 0u) << "zap-and-refault unmaps the range: the reader must have faulted";
  EXPECT_EQ(saw.bad, 0u);
  EXPECT_EQ(saw.exits, 0u);
  EXPECT_FALSE(vm.mmu->check_invariants().has_value());
}

TEST(MergeInPlace, ConcurrentWriteFaultsDuringMergesLoseNothing) {
  // Writers relax read-only 4K leaves while the table they live in is merged: the write
  // either lands before the merge (and the merged leaf stays read-only, so the next write
  // faults again) or after it -- data always reaches memory.
  TdpVm vm;
  HostMemory mem(k2M);
  vm.add_slot(1, Gfn(0), mem, k2M);
  auto& setup = vm.vcpu();
  ASSERT_TRUE(vm.read64(setup, Gpa(0)));
  auto& writer_vcpu = vm.vcpu();
  std::atomic<bool> stop{false}, failed{false};
  std::atomic<std::uint64_t> written{0};
  std::thread writer([&] {
    std::uint64_t n = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      const std::uint64_t p = n % kPagesPer2M;
      if (!vm.write64(writer_vcpu, gpa_of(Gfn(p)) + 8, n + 1)) {
        failed.store(true);
        return;
      }
      written.store(++n, std::memory_order_relaxed);
    }
  });
  for (int round = 0; (round < 300 || written.load() < 2000) && !failed.load(); ++round) {
    ASSERT_TRUE(vm.mmu->split({Gfn(0), Gfn(kPagesPer2M)}));
    (void)vm.mmu->write_protect({Gfn(0), Gfn(kPagesPer2M)}, pt::Shared{});
    (void)vm.mmu->collapse({Gfn(0), Gfn(kPagesPer2M)});
  }
  stop.store(true);
  writer.join();
  EXPECT_FALSE(failed.load());
  const std::uint64_t n = written.load();
  ASSERT_GE(n, 2000u);
  std::uint64_t last = 0;
  std::memcpy(&last, mem.data() + ((n - 1) % kPagesPer2M) * kPageSize + 8, 8);
  EXPECT_EQ(last, n);
  EXPECT_FALSE(vm.mmu->check_invariants().has_value());
}

}  // namespace
}  // namespace vmmu::tdp
