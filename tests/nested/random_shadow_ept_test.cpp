// Randomized differential test: thousands of random EPT configurations (tests/x86's generator:
// valid and invalid EPTPs, aliasing and self-referencing tables, reserved bits, execute-only,
// A/D), each access made once as an L2 access through the shadow EPT and once by the EPT
// walker directly on a copy of the memory: the same outcome (L1 address, page size, exit
// qualification, misconfiguration, invalid EPTP) and the same memory after A/D updates.
// Fixed seeds; a failure names the seed, case and access.

#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "nested/support/l1_ept.hpp"
#include "x86/support/ept_generator.hpp"

namespace vmmu::nested::test {
namespace {

using x86::test::EptGenerator;
using x86::test::kPool;
using x86::test::kPoolPages;

void run(std::uint64_t seed, unsigned cases, unsigned accesses) {
  EptGenerator gen(seed);
  unsigned ok = 0, violations = 0, misconfigs = 0, invalid = 0;
  std::uint64_t hits = 0;
  for (unsigned n = 0; n < cases; ++n) {
    const x86::EptCapabilities caps = gen.caps();
    const std::uint64_t eptp = gen.eptp(caps);
    SparseMemory<Hpa> direct;
    SparseMemory<Gpa> l1;
    for (unsigned page = 0; page < kPoolPages; ++page) {
      for (std::uint64_t index : {0u, 1u, 256u, 511u}) {
        const std::uint64_t where = kPool + page * 0x1000 + index * 8;
        const std::uint64_t e = gen.entry(caps);
        direct.write<std::uint64_t>(Hpa(where), e);
        l1.write<std::uint64_t>(Gpa(where), e);
      }
    }
    shadow::test::SparseRam ram(l1);
    ShadowEptMmu mmu(ram, caps);
    ShadowEptVcpu vcpu;
    (void)mmu.load_eptp(vcpu, eptp);
    const auto ctx = x86::EptContext::from(eptp, caps);
    std::vector<std::uint64_t> reached;
    for (unsigned i = 0; i < accesses; ++i) {
      // 40% go back to a page an earlier access reached: hits of the shadow tables, and
      // other access kinds on leaves installed without W (clean, or over an L1 EPT table).
      const bool again = !reached.empty() && gen.chance(40);
      const std::uint64_t gpa = again ? (reached[gen.below(reached.size())] & ~std::uint64_t{0xfff}) | gen.below(0x1000)
                                      : gen.gpa();
      const AccessKind kind = gen.kind();
      const std::string where = "seed " + std::to_string(seed) + " case " + std::to_string(n) + " access " +
                                std::to_string(i) + " eptp " + std::to_string(eptp) + " gpa " + std::to_string(gpa) +
                                " kind " + std::to_string(static_cast<int>(kind));
      const L2Access got = mmu.access(vcpu, Gpa(gpa), kind);
      if (!ctx) {
        ASSERT_FALSE(got) << where;
        ASSERT_EQ(got.error().fault.kind, x86::EptFaultKind::InvalidEptp) << where;
        ++invalid;
        continue;
      }
      const auto want = x86::walk_ept<Hpa>(*ctx, direct, Gpa(gpa), kind);
      if (want) {
        ASSERT_TRUE(got) << where << ": " << to_string(got.error().fault.kind);
        ASSERT_EQ(got->l1_gpa.raw(), want->address.raw()) << where;
        ASSERT_EQ(got->page_size, want->page_size) << where;
        ASSERT_EQ(got->host.raw(), reinterpret_cast<std::uintptr_t>(ram.page(gfn_of(got->l1_gpa))) + (gpa & 0xfff))
            << where;
        ++ok;
        reached.push_back(gpa);
      } else {
        ASSERT_FALSE(got) << where;
        ASSERT_EQ(got.error().kind, ExitKind::ToL1) << where;
        ASSERT_EQ(got.error().fault, want.error()) << where;
        ++(want.error().kind == x86::EptFaultKind::Violation ? violations : misconfigs);
      }
      for (std::uint64_t a = kPool; a < kPool + kPoolPages * 0x1000; a += 8) {
        ASSERT_EQ(*l1.read<std::uint64_t>(Gpa(a)), *direct.read<std::uint64_t>(Hpa(a))) << where << " word " << a;
      }
    }
    ASSERT_EQ(mmu.check_invariants(), std::nullopt) << "seed " << seed << " case " << n;
    hits += mmu.stats().hits;
  }
  std::printf("seed %llu: %u ok (%llu from the shadow tables alone), %u violations, %u misconfigs, %u invalid eptp\n",
              static_cast<unsigned long long>(seed), ok, static_cast<unsigned long long>(hits), violations, misconfigs,
              invalid);
  EXPECT_GT(hits, 0u);
  const unsigned floor = cases * accesses / 100;
  EXPECT_GT(ok, floor);
  EXPECT_GT(violations, floor);
  EXPECT_GT(misconfigs, floor);
  EXPECT_GT(invalid, floor);
}

TEST(RandomShadowEpt, MatchesTheEptWalkerSeed1) { run(1, 1500, 24); }
TEST(RandomShadowEpt, MatchesTheEptWalkerSeed2) { run(0x4e57'2026, 1500, 24); }

}  // namespace
}  // namespace vmmu::nested::test
