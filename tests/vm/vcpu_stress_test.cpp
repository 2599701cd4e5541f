// Several vCPU threads writing through one set of guest page tables at once (their A/D
// updates race on the shared upper-level entries), flipping their own CR4/CR0 bits and
// flushing their TLBs, while the dirty log is harvested: every write lands, reads back, and
// is logged -- with the slot bitmap and with per-vCPU dirty rings (RingFull exits handled as
// a VMM would: harvest, reset, run again).
//
// Logged means: the last write to each page is in a harvest that ran during or right after it.
// Harvests are numbered; a vCPU notes how many had finished before its last write to a page and
// how many had started after it, and the page must be in one of the harvests in between or the
// next one -- an earlier harvest that caught an earlier write does not count.

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

Gva page_gva(unsigned thread, unsigned page) { return kData + (thread * kPagesPerThread + page) * kPageSize; }
std::uint64_t page_gfn(unsigned thread, unsigned page) {
  return gfn_of(kDataGpa).raw() + thread * kPagesPerThread + page;
}

bool bit_set(const std::vector<std::uint64_t>& log, std::uint64_t gfn) {
  return gfn / 64 < log.size() && ((log[gfn / 64] >> (gfn % 64)) & 1u) != 0;
}

// The last write to a page: its value, harvests finished before it began, harvests started by
// the time it ended (harvests are numbered from 1).
struct LastWrite {
  std::uint64_t value = 0;
  std::uint64_t finished_before = 0, started_after = 0;
};

// Harvest numbers, counted by the one thread that harvests.
struct HarvestClock {
  std::atomic<std::uint64_t> started{0}, finished{0};
};

// One vCPU thread: writes a tagged word at offset 0 of random own pages (and a second word at
// a random offset), reads it back, flips SMEP / WP now and then, reloads CR3. `on_ring_full`
// is called on a RingFull exit, then the access is repeated. Half-way, waits until
// `harvests_midway` more harvests have finished, so that on a loaded machine harvests still run
// while the vCPUs write. Returns the last write per page.
template <class OnRingFull>
std::vector<LastWrite> run_vcpu(Vcpu& v, unsigned t, const HarvestClock& clock, OnRingFull&& on_ring_full,
                                std::uint64_t harvests_midway = 0) {
  std::vector<LastWrite> last(kPagesPerThread);
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
  const std::uint64_t harvests_at_start = clock.finished.load();
  for (unsigned round = 0; round < kRounds; ++round) {
    if (round == kRounds / 2)
      while (clock.finished.load() < harvests_at_start + harvests_midway) std::this_thread::yield();
    const unsigned page = static_cast<unsigned>(rng() % kPagesPerThread);
    const std::uint64_t value = (std::uint64_t{t} << 56) | (std::uint64_t{round} << 16) | page;
    const Gva at = page_gva(t, page);
    const std::uint64_t finished_before = clock.finished.load();
    if (!retry([&] { return v.write(at, std::as_bytes(std::span(&value, 1))); })) return last;
    const Gva other = at + 8 + (rng() % 500) * 8;
    if (!retry([&] { return v.write(other, std::as_bytes(std::span(&value, 1))); })) return last;
    last[page] = LastWrite{value, finished_before, clock.started.load()};
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

void check_memory(GuestVm& g, const std::vector<std::vector<LastWrite>>& last) {
  for (unsigned t = 0; t < kThreads; ++t) {
    for (unsigned p = 0; p < kPagesPerThread; ++p) {
      if (last[t][p].value == 0) continue;
      EXPECT_EQ(g.host_word(gpa_of(Gfn(page_gfn(t, p)))), last[t][p].value) << t << "/" << p;
    }
  }
}

// Every page's last write is in harvest finished_before + 1 .. started_after + 1 (`in(j, gfn)`:
// harvest j holds the page); `harvests` were taken in all, the last after the writers stopped.
template <class In>
void check_last_writes(const std::vector<LastWrite>& last, unsigned t, std::uint64_t harvests, In&& in) {
  for (unsigned p = 0; p < kPagesPerThread; ++p) {
    const LastWrite& w = last[p];
    if (w.value == 0) continue;
    ASSERT_LT(w.started_after, harvests);
    bool found = false;
    for (std::uint64_t j = w.finished_before + 1; j <= w.started_after + 1 && !found; ++j) found = in(j, page_gfn(t, p));
    EXPECT_TRUE(found) << "last write to page " << t << "/" << p << " is in none of harvests " << w.finished_before + 1
                       << ".." << w.started_after + 1 << " of " << harvests;
  }
}

TEST(VcpuStress, WritesThroughSharedGuestTablesAreAllLoggedInTheBitmap) {
  GuestVm g;
  g.map(kData, kDataGpa, kThreads * kPagesPerThread * kPageSize);
  std::vector<Vcpu*> vcpus;
  for (unsigned t = 0; t < kThreads; ++t) vcpus.push_back(&g.add_vcpu());
  ASSERT_TRUE(g.vm().memslots().set_flags(GuestVm::kSlot, MemslotFlags::log_dirty()));

  std::atomic<bool> done{false};
  HarvestClock clock;
  std::vector<std::vector<std::uint64_t>> harvests;  // harvest j at j - 1
  auto harvest = [&] {
    clock.started.fetch_add(1);
    auto log = g.tdp().get_dirty_log(GuestVm::kSlot);
    clock.finished.fetch_add(1);
    ASSERT_TRUE(log);
    harvests.push_back(std::move(*log));
  };
  std::thread harvester([&] {
    while (!done.load(std::memory_order_acquire)) {
      harvest();
      std::this_thread::yield();
    }
  });
  std::vector<std::vector<LastWrite>> last(kThreads);
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < kThreads; ++t) {
    threads.emplace_back(
        [&, t] { last[t] = run_vcpu(*vcpus[t], t, clock, [] { FAIL() << "no ring in bitmap mode"; }, 2); });
  }
  for (std::thread& th : threads) th.join();
  done.store(true, std::memory_order_release);
  harvester.join();
  harvest();

  check_memory(g, last);
  EXPECT_GT(harvests.size(), 2u) << "no harvest ran while the vCPUs wrote";
  for (unsigned t = 0; t < kThreads; ++t)
    check_last_writes(last[t], t, harvests.size(),
                      [&](std::uint64_t j, std::uint64_t gfn) { return bit_set(harvests[j - 1], gfn); });
  if (auto bad = g.tdp().check_invariants()) ADD_FAILURE() << *bad;
}

TEST(VcpuStress, DirtyRingsFillAndAreHarvestedByTheirVcpus) {
  GuestVmOptions o;
  o.config.tdp.dirty_ring_size = 64;  // small: RingFull exits happen often
  GuestVm g(o);
  g.map(kData, kDataGpa, kThreads * kPagesPerThread * kPageSize);
  std::vector<Vcpu*> vcpus;
  for (unsigned t = 0; t < kThreads; ++t) vcpus.push_back(&g.add_vcpu());
  ASSERT_TRUE(g.vm().memslots().set_flags(GuestVm::kSlot, MemslotFlags::log_dirty()));

  // Each vCPU harvests its own ring, so its drains are numbered by its own clock.
  std::vector<std::vector<std::set<std::uint64_t>>> drains(kThreads);  // drain j at j - 1
  std::vector<HarvestClock> clocks(kThreads);
  std::vector<std::uint64_t> ring_fulls(kThreads, 0);
  std::vector<std::vector<LastWrite>> last(kThreads);
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Vcpu& v = *vcpus[t];
      auto drain = [&] {
        clocks[t].started.fetch_add(1);
        std::vector<DirtyGfn> out;
        g.tdp().harvest_dirty_ring(*v.tdp_mmu(), out);
        std::set<std::uint64_t>& pages = drains[t].emplace_back();
        for (const DirtyGfn& d : out) pages.insert(d.page);  // slot 1 starts at gfn 0
        g.tdp().reset_dirty_ring(*v.tdp_mmu());
        clocks[t].finished.fetch_add(1);
      };
      last[t] = run_vcpu(v, t, clocks[t], [&] {
        ++ring_fulls[t];
        drain();
      });
      drain();
    });
  }
  for (std::thread& th : threads) th.join();

  check_memory(g, last);
  for (unsigned t = 0; t < kThreads; ++t) {
    EXPECT_GT(ring_fulls[t], 0u) << "the ring never filled: the test did not exercise RingFull";
    check_last_writes(last[t], t, drains[t].size(),
                      [&](std::uint64_t j, std::uint64_t gfn) { return drains[t][j - 1].count(gfn) != 0; });
  }
  if (auto bad = g.tdp().check_invariants()) ADD_FAILURE() << *bad;
}

}  // namespace
}  // namespace vmmu::vm::test
