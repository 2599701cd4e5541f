// Host memory: what the host can give is checked before anything is mapped, and the memory a
// VM gets is faulted in and touched at setup, so phases pay no host page faults.

#include <gtest/gtest.h>

#include "support/sim_test_support.hpp"
#include "vmmu/sim/host_buffer.hpp"
#include "vmmu/sim/host_capacity.hpp"

namespace vmmu::sim::test {
namespace {

TEST(HostCapacity, ReadsMemAvailableInKibibytes) {
  EXPECT_EQ(parse_mem_available("MemTotal:       24576000 kB\nMemFree:  100 kB\nMemAvailable:   22413520 kB\n"),
            std::uint64_t{22413520} * KiB);
  EXPECT_EQ(parse_mem_available("MemTotal: 1 kB\n"), std::nullopt);
  EXPECT_EQ(parse_mem_available("MemAvailable: lots\n"), std::nullopt);
  EXPECT_EQ(parse_mem_available("MemAvailable: 12 MB\n"), std::nullopt);
  EXPECT_TRUE(host_capacity().has_value()) << "/proc/meminfo has no MemAvailable line";
}

TEST(HostCapacity, NamesTheFirstSlotBeyondWhatTheHostHas) {
  const HostCapacity host{8 * GiB, "test figure"};
  Scenario s = tiny({PopulatePhase{}}, 4 * GiB);
  s.memslots.push_back(MemslotParams{4 * GiB, 2 * MiB, std::nullopt});
  EXPECT_EQ(check_host_memory(s, host), std::nullopt);  // exactly what the host has
  s.memslots.push_back(MemslotParams{2 * MiB, 2 * MiB, std::nullopt});
  const auto e = check_host_memory(s, host);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->key, "memslots[2].size");
  EXPECT_NE(e->message.find("8.0 GiB"), std::string::npos) << e->message;
  EXPECT_NE(e->message.find("test figure"), std::string::npos) << e->message;
}

// 1 TiB passes validate() (the format's limit) but no host this runs on has it: the run must
// stop before mapping or touching anything -- a handful of host page faults, not millions.
TEST(HostCapacity, RunRefusesMoreMemoryThanTheHostHasBeforeTouchingAny) {
  const auto host = host_capacity();
  ASSERT_TRUE(host.has_value());
  if (host->available >= TiB) GTEST_SKIP() << "this host has 1 TiB available";
  const Scenario s = tiny({PopulatePhase{}}, TiB);
  ASSERT_EQ(validate(s), std::nullopt);
  const std::uint64_t faults_before = host_page_faults();
  const auto r = run(s);
  const std::uint64_t faults = host_page_faults() - faults_before;
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().rfind("memslots[0].size: ", 0), 0u) << r.error();
  EXPECT_NE(r.error().find("MemAvailable"), std::string::npos) << r.error();
  EXPECT_LT(faults, 1000u);
}

TEST(HostBuffer, PopulateTouchesEveryPageOnce) {
  auto b = HostBuffer::allocate(8 * MiB, 2 * MiB);
  ASSERT_TRUE(b) << b.error();
  EXPECT_EQ(b->pages_touched(), 8 * MiB / kPageSize);
  auto lazy = HostBuffer::allocate(8 * MiB, 2 * MiB, HostMemoryOptions{false, false});
  ASSERT_TRUE(lazy) << lazy.error();
  EXPECT_EQ(lazy->pages_touched(), 0u);
  EXPECT_EQ(lazy->touch_ns(), 0u);
}

// Two identical populate phases: the first pays only the MMU's own work (its table pages), no
// host first touch -- checked by the process's page faults, which count exactly where a
// timing would be noise. Setup reports the first touch it paid instead.
TEST(HostBuffer, TwoIdenticalPopulatesPayNoHostFirstTouch) {
  constexpr std::uint64_t kPages = 64 * MiB / kPageSize;
  const RunReport r = run_ok(tiny({PopulatePhase{}, PopulatePhase{}}, 64 * MiB, 4 * KiB));
  EXPECT_EQ(r.host_pages_touched, kPages);
  EXPECT_GT(r.host_touch_ns, 0u);
  EXPECT_LE(r.host_touch_ns, r.setup_ns);
  const std::uint64_t first = metric(r, "populate", "host_page_faults");
  const std::uint64_t second = metric(r, "populate#2", "host_page_faults");
  // The first populate allocates the 4K tables (32 page tables and the levels above);
  // threads' stacks and the allocator add a few pages. Untouched memory would add 16,384.
  EXPECT_LT(first, metric(r, "populate", "tables_in_use") + 256) << "host pages faulted during the first populate";
  EXPECT_LT(second, 256u);
}

}  // namespace
}  // namespace vmmu::sim::test
