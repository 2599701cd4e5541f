// Randomized comparison of the EPT walker with the reference EPT walker: random EPTPs (valid and
// not), random capabilities, random EPT tables with random bits (reserved and misconfiguring
// ones included), random accesses; result kind, output address, page size, exit qualification
// and the memory after A/D updates must agree. Fixed seeds; a failure prints the seed.

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "x86/support/ept_generator.hpp"
#include "x86/support/reference_walker.hpp"
#include "vmmu/memory/sparse_memory.hpp"
#include "vmmu/x86/walk.hpp"

namespace vmmu::x86::test {
namespace {

bool same_memory(const SparseMemory<Hpa>& a, const SparseMemory<Hpa>& b) {
  for (std::uint64_t addr = kPool; addr < kPool + kPoolPages * 0x1000; addr += 8) {
    if (*a.read<std::uint64_t>(Hpa(addr)) != *b.read<std::uint64_t>(Hpa(addr))) return false;
  }
  return true;
}

void run(std::uint64_t seed, unsigned cases, unsigned accesses) {
  EptGenerator gen(seed);
  unsigned counts[4] = {};
  for (unsigned n = 0; n < cases; ++n) {
    const EptCapabilities caps = gen.caps();
    const std::uint64_t eptp = gen.eptp(caps);
    SparseMemory<Hpa> mine, theirs;
    for (unsigned page = 0; page < kPoolPages; ++page) {
      for (std::uint64_t index : {0u, 1u, 256u, 511u}) {
        const Hpa where(kPool + page * 0x1000 + index * 8);
        const std::uint64_t e = gen.entry(caps);
        mine.write<std::uint64_t>(where, e);
        theirs.write<std::uint64_t>(where, e);
      }
    }
    auto ctx = EptContext::from(eptp, caps);
    for (unsigned i = 0; i < accesses; ++i) {
      const std::uint64_t gpa = gen.gpa();
      const AccessKind kind = gen.kind();
      const RefEptResult want = reference_ept_walk(eptp, caps, theirs, gpa, kind);
      const std::string where = "seed " + std::to_string(seed) + " case " + std::to_string(n) + " access " +
                                std::to_string(i) + " eptp " + std::to_string(eptp) + " gpa " + std::to_string(gpa) +
                                " kind " + std::to_string(static_cast<int>(kind)) + " maxphy " +
                                std::to_string(caps.maxphyaddr);
      ++counts[want.kind];
      if (want.kind == RefEptResult::InvalidEptp) {
        ASSERT_FALSE(ctx.has_value()) << where;
        continue;
      }
      ASSERT_TRUE(ctx.has_value()) << where;
      const auto got = walk_ept<Hpa>(*ctx, mine, Gpa(gpa), kind);
      switch (want.kind) {
        case RefEptResult::Ok:
          ASSERT_TRUE(got.has_value()) << where;
          ASSERT_EQ(got->address.raw(), want.pa) << where;
          ASSERT_EQ(got->page_size, want.page_size) << where;
          break;
        case RefEptResult::Violation:
          ASSERT_FALSE(got.has_value()) << where;
          ASSERT_EQ(got.error().kind, EptFaultKind::Violation) << where;
          ASSERT_EQ(got.error().exit_qualification, want.exit_qualification) << where;
          break;
        case RefEptResult::Misconfig:
          ASSERT_FALSE(got.has_value()) << where;
          ASSERT_EQ(got.error().kind, EptFaultKind::Misconfig) << where;
          break;
        case RefEptResult::InvalidEptp: break;
      }
      ASSERT_TRUE(same_memory(mine, theirs)) << where;
    }
  }
  std::printf("seed %llu: %u ok, %u violations, %u misconfigs, %u invalid eptp\n",
              static_cast<unsigned long long>(seed), counts[0], counts[1], counts[2], counts[3]);
  for (unsigned k = 0; k < 4; ++k) EXPECT_GT(counts[k], cases * accesses / 100) << "kind " << k << " seed " << seed;
}

TEST(RandomEptWalk, MatchesReferenceEptWalkerSeed1) { run(1, 300, 20); }
TEST(RandomEptWalk, MatchesReferenceEptWalkerSeed2) { run(0xe97'2026, 300, 20); }

}  // namespace
}  // namespace vmmu::x86::test
