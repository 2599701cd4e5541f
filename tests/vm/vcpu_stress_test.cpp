// Several vCPU threads writing through one set of guest page tables at once (their A/D
// updates race on the shared upper-level entries), flipping their own CR4/CR0 bits and
// flushing their TLBs, while the dirty log is harvested: every write lands, reads back, and
// is logged -- with the slot bitmap and with per-vCPU dirty rings (RingFull exits handled as
// a VMM would: harvest, reset, run again).

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <cstring>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "vm/support/guest_vm.hpp"

namespace vmmu::vm::test {
namespace {

constexpr unsigned kThreads = 3;
constexpr unsigned kPagesPerThread = 96;
constexpr unsigned kRounds = 10000;
constexpr Gva kData(0x4000'0000);
constexpr Gpa kDataGpa(0x10'0000);

Gva page_gva(unsigned thread, unsigned page) { return kData + (thread * kPagesPerThread + page) * kPageSize; }
std::uint64_t page_gfn(unsigned thread, unsigned page) {
  return gfn_of(kDataGpa).raw() + thread * kPagesPerThread + page;
}

void insert_bits(std::set<std::uint64_t>& out, const std::vector<std::uint64_t>& log) {
  for (std::size_t w = 0; w < log.size(); ++w) {
    for (unsigned b = 0; b < 64; ++b) {
      if ((log[w] >> b) & 1u) out.insert(w * 64 + b);
    }
  }
}

// One vCPU thread: writes a tagged word at offset 0 of random own pages (and a second word at
// a random offset), reads it back, flips SMEP / WP now and then, reloads CR3. `on_ring_full`
// is called on a RingFull exit, then the access is repeated. Returns the last value per page.
template <class OnRingFull>
std::vector<std::uint64_t> run_vcpu(Vcpu& v, unsigned t, OnRingFull&& on_ring_full) {
  std::vector<std::uint64_t> last(kPagesPerThread, 0);
  std::mt19937_64 rng(t + 1);
  auto retry = [&](auto&& op) {
    for (;;) {
      Status<GuestExit> s = op();
      if (s) return true;
      if (s.error().kind != GuestExitKind::RingFull) {
        ADD_FAILURE() << "thread " << t << ": " << to_string(s.error());
        return false;
      }
      on_ring_full();
    }
  };
  for (unsigned round = 0; round < kRounds; ++round) {
    const unsigned page = static_cast<unsigned>(rng() % kPagesPerThread);
    const std::uint64_t value = (std::uint64_t{t} << 56) | (std::uint64_t{round} << 16) | page;
    const Gva at = page_gva(t, page);
    if (!retry([&] { return v.write(at, std::as_bytes(std::span(&value, 1))); })) return last;
    last[page] = value;
    const Gva other = at + 8 + (rng() % 500) * 8;
    if (!retry([&] { return v.write(other, std::as_bytes(std::span(&value, 1))); })) return last;
    std::uint64_t back = 0;
    if (!retry([&] { return v.read(at, std::as_writable_bytes(std::span(&back, 1))); })) return last;
    EXPECT_EQ(back, value);
    switch (rng() % 16) {
      case 0: v.set_cr4(v.registers().cr4 ^ x86::cr4::SMEP::mask); break;
      case 1: v.set_cr0(v.registers().cr0 ^ x86::cr0::WP::mask); break;
      case 2: v.set_cr3(v.registers().cr3); break;
      default: break;
    }
  }
  return last;
}

void check_memory(GuestVm& g, const std::vector<std::vector<std::uint64_t>>& last) {
  for (unsigned t = 0; t < kThreads; ++t) {
    for (unsigned p = 0; p < kPagesPerThread; ++p) {
      if (last[t][p] == 0) continue;
      EXPECT_EQ(g.host_word(gpa_of(Gfn(page_gfn(t, p)))), last[t][p]) << t << "/" << p;
    }
  }
}

TEST(VcpuStress, WritesThroughSharedGuestTablesAreAllLoggedInTheBitmap) {
  GuestVm g;
  g.map(kData, kDataGpa, kThreads * kPagesPerThread * kPageSize);
  std::vector<Vcpu*> vcpus;
  for (unsigned t = 0; t < kThreads; ++t) vcpus.push_back(&g.add_vcpu());
  ASSERT_TRUE(g.vm().memslots().set_flags(GuestVm::kSlot, MemslotFlags::log_dirty()));

  std::atomic<bool> done{false};
  std::set<std::uint64_t> logged;
  std::thread harvester([&] {
    while (!done.load(std::memory_order_acquire)) {
      auto log = g.mmu().get_dirty_log(GuestVm::kSlot);
      ASSERT_TRUE(log);
      insert_bits(logged, *log);
      std::this_thread::yield();
    }
  });
  std::vector<std::vector<std::uint64_t>> last(kThreads);
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] { last[t] = run_vcpu(*vcpus[t], t, [] { FAIL() << "no ring in bitmap mode"; }); });
  }
  for (std::thread& th : threads) th.join();
  done.store(true, std::memory_order_release);
  harvester.join();
  auto log = g.mmu().get_dirty_log(GuestVm::kSlot);
  ASSERT_TRUE(log);
  insert_bits(logged, *log);

  check_memory(g, last);
  for (unsigned t = 0; t < kThreads; ++t) {
    for (unsigned p = 0; p < kPagesPerThread; ++p) {
      if (last[t][p] == 0) continue;
      EXPECT_TRUE(logged.count(page_gfn(t, p))) << "page written, never logged: " << t << "/" << p;
    }
  }
  if (auto bad = g.mmu().check_invariants()) ADD_FAILURE() << *bad;
}

TEST(VcpuStress, DirtyRingsFillAndAreHarvestedByTheirVcpus) {
  GuestVmOptions o;
  o.config.tdp.dirty_ring_size = 64;  // small: RingFull exits happen often
  GuestVm g(o);
  g.map(kData, kDataGpa, kThreads * kPagesPerThread * kPageSize);
  std::vector<Vcpu*> vcpus;
  for (unsigned t = 0; t < kThreads; ++t) vcpus.push_back(&g.add_vcpu());
  ASSERT_TRUE(g.vm().memslots().set_flags(GuestVm::kSlot, MemslotFlags::log_dirty()));

  std::vector<std::set<std::uint64_t>> harvested(kThreads);
  std::vector<std::uint64_t> ring_fulls(kThreads, 0);
  std::vector<std::vector<std::uint64_t>> last(kThreads);
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Vcpu& v = *vcpus[t];
      auto drain = [&] {
        std::vector<DirtyGfn> out;
        g.mmu().harvest_dirty_ring(v.mmu(), out);
        for (const DirtyGfn& d : out) harvested[t].insert(d.page);  // slot 1 starts at gfn 0
        g.mmu().reset_dirty_ring(v.mmu());
      };
      last[t] = run_vcpu(v, t, [&] {
        ++ring_fulls[t];
        drain();
      });
      drain();
    });
  }
  for (std::thread& th : threads) th.join();

  check_memory(g, last);
  std::set<std::uint64_t> all;
  for (const auto& h : harvested) all.insert(h.begin(), h.end());
  for (unsigned t = 0; t < kThreads; ++t) {
    EXPECT_GT(ring_fulls[t], 0u) << "the ring never filled: the test did not exercise RingFull";
    for (unsigned p = 0; p < kPagesPerThread; ++p) {
      if (last[t][p] == 0) continue;
      EXPECT_TRUE(all.count(page_gfn(t, p))) << "page written, never harvested: " << t << "/" << p;
    }
  }
  if (auto bad = g.mmu().check_invariants()) ADD_FAILURE() << *bad;
}

}  // namespace
}  // namespace vmmu::vm::test
