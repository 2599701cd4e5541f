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

#include "x86/support/reference_walker.hpp"
#include "vmmu/memory/sparse_memory.hpp"
#include "vmmu/x86/walk.hpp"

namespace vmmu::x86::test {
namespace {

constexpr std::uint64_t kPool = 0x200000;
constexpr unsigned kPoolPages = 6;

class EptGenerator {
 public:
  explicit EptGenerator(std::uint64_t seed) : rng_(seed) {}
  bool chance(unsigned percent) { return std::uniform_int_distribution<unsigned>(0, 99)(rng_) < percent; }
  std::uint64_t below(std::uint64_t n) { return std::uniform_int_distribution<std::uint64_t>(0, n - 1)(rng_); }

  EptCapabilities caps() {
    static constexpr std::array<unsigned, 5> kMaxphy{36, 39, 40, 46, 52};
    EptCapabilities c;
    c.maxphyaddr = kMaxphy[below(kMaxphy.size())];
    c.execute_only = chance(70);
    c.pages_2m = chance(85);
    c.pages_1g = chance(70);
    c.accessed_dirty = chance(85);
    c.five_level = chance(40);
    return c;
  }
  std::uint64_t eptp(const EptCapabilities& c) {
    std::uint64_t e = kPool + below(kPoolPages) * 0x1000;
    e |= chance(95) ? (chance(50) ? 6u : 0u) : below(8);
    e |= (chance(95) ? (c.five_level && chance(50) ? 4u : 3u) : below(8)) << 3;
    if (chance(60)) e |= ept::eptp::AccessedDirty::mask;
    if (chance(5)) e |= std::uint64_t{1} << (7 + below(5));
    if (chance(5)) e |= std::uint64_t{1} << (c.maxphyaddr + below(64 - c.maxphyaddr));
    return e;
  }
  std::uint64_t entry(const EptCapabilities& c) {
    if (chance(10)) return 0;
    std::uint64_t e = chance(75) ? kPool + below(kPoolPages) * 0x1000 : (rng_() & 0x000f'ffff'c000'0000ULL);
    if (chance(85) && c.maxphyaddr < 52) e &= (std::uint64_t{1} << c.maxphyaddr) - 1;
    static constexpr std::array<std::uint64_t, 8> kRwx{7, 7, 7, 7, 1, 3, 5, 4};
    e |= chance(96) ? kRwx[below(kRwx.size())] : (chance(50) ? 2u : 6u);
    if (chance(8)) e |= (chance(60) ? 6u : below(8)) << 3;  // memory type (reserved in tables)
    if (chance(15)) e |= ept::IgnorePat::mask;
    if (chance(15)) e |= ept::PS::mask;
    if (chance(20)) e |= ept::A::mask;
    if (chance(10)) e |= ept::D::mask;
    if (chance(3)) e |= std::uint64_t{1} << (12 + below(18));
    if (chance(3)) e |= std::uint64_t{1} << (c.maxphyaddr + below(52 - std::min(52u, c.maxphyaddr) + 1));
    if (chance(20)) e |= std::uint64_t{1} << (52 + below(12));  // ignored bits, suppress-#VE
    return e;
  }
  std::uint64_t gpa() {
    std::uint64_t g = below(0x1000);
    for (unsigned level = 1; level <= 5; ++level) {
      static constexpr std::array<std::uint64_t, 4> kIndex{0, 1, 256, 511};
      g |= kIndex[below(4)] << (12 + 9 * (level - 1));
    }
    return g;
  }
  AccessKind kind() { return static_cast<AccessKind>(below(3)); }

 private:
  std::mt19937_64 rng_;
};

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
