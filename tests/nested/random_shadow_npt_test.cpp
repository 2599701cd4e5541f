// Randomized differential test for shadow NPT: random nested page tables in a pool of L1
// frames (tables pointing into the pool, missing U/S or R/W, NX, reserved bits, 2 MiB and 1 GiB
// leaves, aliasing and self-references), L1 with and without EFER.NXE; each access made once as
// an L2 access through the shadow NPT and once by the x86 walker directly (a user access of a
// long-mode guest whose CR3 is nCR3) on a copy of the memory: the same L1 address and page
// size, or the #NPF whose EXITINFO1 is the walker's error code plus bit 32, and the same memory
// after A/D updates. Fixed seeds; a failure names the seed, case and access. Fewer cases in
// debug builds (invariants are checked after every operation there).

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "nested/support/l1_npt.hpp"
#include "vmmu/x86/walk.hpp"

namespace vmmu::nested::npt_test {
namespace {

#ifdef VMMU_CHECK_INVARIANTS
constexpr unsigned kNptCases = 30;
#else
constexpr unsigned kNptCases = 600;
#endif
constexpr unsigned kNptAccesses = 24;
constexpr std::uint64_t kNptPool = 0x40000, kNptPoolPages = 8;  // the tables: L1 frames 0x40..0x47
// The entries written in each pool page: the only ones present, so the only ones A/D can touch.
constexpr std::uint64_t kNptIndexes[] = {0, 1, 511};

struct NptGenerator {
  std::mt19937_64 rng;
  std::uint64_t below(std::uint64_t n) { return rng() % n; }
  bool chance(unsigned percent) { return below(100) < percent; }
  std::uint64_t pool_page() { return kNptPool + below(kNptPoolPages) * 0x1000; }
  std::uint64_t entry() {
    if (chance(10)) return 0;
    std::uint64_t e = (chance(70) ? pool_page() : 0x200000 + below(64) * 0x1000) | kUrw;
    if (chance(8)) e &= ~gpte::US::mask;
    if (chance(15)) e &= ~gpte::RW::mask;
    if (chance(12)) e |= gpte::XD::mask;
    if (chance(4)) e |= std::uint64_t{1} << (kMaxPhyAddr + below(52 - kMaxPhyAddr));  // reserved
    if (chance(15)) e |= gpte::PS::mask;  // a huge leaf at levels 2 / 3, reserved at 4
    if (chance(20)) e |= gpte::A::mask | (chance(50) ? gpte::D::mask : 0);
    return e;
  }
  // Indexes 0, 1 and 511 at each level, or anywhere.
  std::uint64_t gpa() {
    std::uint64_t g = below(0x1000);
    for (unsigned level = 1; level <= 4; ++level) {
      const std::uint64_t edge = below(3) == 2 ? 511 : below(2);
      const std::uint64_t index = chance(80) ? edge : below(512);
      g |= index << (12 + 9 * (level - 1));
    }
    return g;
  }
  AccessKind kind() { return static_cast<AccessKind>(below(3)); }
};

void run(std::uint64_t seed) {
  NptGenerator gen{std::mt19937_64(seed)};
  unsigned ok = 0, npf = 0;
  std::uint64_t hits = 0;
  for (unsigned n = 0; n < kNptCases; ++n) {
    const NptRoot root{gen.pool_page(), false, gen.chance(80)};
    SparseMemory<Gpa> direct, l1;
    for (unsigned page = 0; page < kNptPoolPages; ++page) {
      for (const std::uint64_t index : kNptIndexes) {
        const std::uint64_t where = kNptPool + page * 0x1000 + index * 8, e = gen.entry();
        direct.write<std::uint64_t>(Gpa(where), e);
        l1.write<std::uint64_t>(Gpa(where), e);
      }
    }
    shadow::test::SparseRam ram(l1);
    ShadowNptMmu mmu(ram, kCpu);
    ShadowNptVcpu vcpu;
    ASSERT_TRUE(mmu.load_ncr3(vcpu, root));
    x86::Registers regs;
    regs.cr0 = x86::cr0::PE::mask | x86::cr0::PG::mask;
    regs.cr3 = root.ncr3;
    regs.cr4 = x86::cr4::PAE::mask;
    regs.efer = x86::efer::LME::mask | x86::efer::LMA::mask | (root.nxe ? x86::efer::NXE::mask : 0);
    const x86::GuestPaging paging = x86::GuestPaging::from(regs, kCpu);
    std::vector<std::uint64_t> reached;
    for (unsigned i = 0; i < kNptAccesses; ++i) {
      // 40% go back to a page an earlier access reached: hits, and other kinds on leaves
      // installed without W (clean, or over one of L1's tables).
      const bool again = !reached.empty() && gen.chance(40);
      const std::uint64_t gpa = again ? (reached[gen.below(reached.size())] & ~std::uint64_t{0xfff}) | gen.below(0x1000)
                                      : gen.gpa();
      const AccessKind kind = gen.kind();
      const std::string where = "seed " + std::to_string(seed) + " case " + std::to_string(n) + " access " +
                                std::to_string(i) + " gpa " + std::to_string(gpa) + " kind " +
                                std::to_string(static_cast<int>(kind));
      const L2NptAccess got = mmu.access(vcpu, Gpa(gpa), kind);
      // As a linear address the gpa's bit 47 is sign-extended (the walker wants it canonical).
      const std::uint64_t linear = (gpa >> 47) != 0 ? gpa | 0xffff'0000'0000'0000 : gpa;
      const auto want = x86::walk(paging, direct, Gva(linear), Access{kind, true, false});
      if (want) {
        ASSERT_TRUE(got) << where << ": exit_info1 " << got.error().fault.exit_info1;
        ASSERT_EQ(got->l1_gpa, want->gpa) << where;
        ASSERT_EQ(got->page_size, want->page_size) << where;
        ASSERT_EQ(got->host.raw(), reinterpret_cast<std::uintptr_t>(ram.page(gfn_of(got->l1_gpa))) + (gpa & 0xfff))
            << where;
        ++ok;
        reached.push_back(gpa);
      } else {
        ASSERT_FALSE(got) << where;
        ASSERT_EQ(got.error().kind, ExitKind::ToL1) << where;
        ASSERT_EQ(got.error().fault,
                  (NptFault{NptFaultKind::Npf, want.error().error_code | npf::kFinal, Gpa(gpa), want.error().level}))
            << where;
        ++npf;
      }
      for (std::uint64_t page = 0; page < kNptPoolPages; ++page) {
        for (const std::uint64_t index : kNptIndexes) {
          const Gpa a(kNptPool + page * 0x1000 + index * 8);
          ASSERT_EQ(*l1.read<std::uint64_t>(a), *direct.read<std::uint64_t>(a)) << where << " word " << a.raw();
        }
      }
    }
    ASSERT_EQ(mmu.check_invariants(), std::nullopt) << "seed " << seed << " case " << n;
    hits += mmu.stats().hits;
  }
  EXPECT_GT(hits, 0u);
  EXPECT_GT(ok, kNptCases * kNptAccesses / 20);
  EXPECT_GT(npf, kNptCases * kNptAccesses / 20);
}

TEST(RandomShadowNpt, MatchesTheX86WalkerSeed1) { run(1); }
TEST(RandomShadowNpt, MatchesTheX86WalkerSeed2) { run(0x4e50'2026); }

}  // namespace
}  // namespace vmmu::nested::npt_test
