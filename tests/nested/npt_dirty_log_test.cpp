// Shadow NPT over L1's memslots while L1 is migrated: L2's writes through the shadow NPT appear
// in L1's dirty log, round after round (each harvest write-protects what it hands out, so the
// next write faults and logs again); beyond them the log holds only L1's table frames (the
// walk's A/D bits are L0 writing L1's memory).

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <random>
#include <set>

#include "nested/support/l1_npt.hpp"
#include "tdp/support/tdp_fixture.hpp"
#include "vmmu/memory/memslots.hpp"

namespace vmmu::nested::npt_test {
namespace {

constexpr std::uint64_t kNptL2Pages = 64, kNptDataGfn = 0x100;  // L2 page i -> L1 gfn 0x100 + i

struct SlotNptL1 {
  vmmu::test::HostMemory ram{std::uint64_t{4} << 20};
  Memslots slots;
  std::unique_ptr<ShadowNptMmu> mmu;
  ShadowNptVcpu vcpu;  // declared last: released before the MMU goes

  SlotNptL1() {
    if (!slots.add({SlotId{1}, Gfn(0), ram.pages(), ram.data(), MemslotFlags::none()})) std::abort();
    poke(kPml4, kPdpt | kUrw);
    poke(kPdpt, kPd | kUrw);
    poke(kPd, kPt | kUrw);
    for (std::uint64_t i = 0; i < kNptL2Pages; ++i) poke(kPt + i * 8, ((kNptDataGfn + i) << 12) | kUrw);
    mmu = ShadowNptMmu::create(slots, kCpu);
    if (!mmu->load_ncr3(vcpu, root_at(kPml4))) std::abort();
  }
  void poke(std::uint64_t gpa, std::uint64_t v) {
    std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(ram.data() + gpa)).store(v);  // NOLINT
  }
  std::set<std::uint64_t> harvest() {
    std::set<std::uint64_t> out;
    const auto bits = mmu->get_dirty_log(SlotId{1});
    EXPECT_TRUE(bits.has_value());
    if (!bits) return out;
    for (std::uint64_t p = 0; p < ram.pages(); ++p) {
      if (((*bits)[p / 64] >> (p % 64)) & 1) out.insert(p);
    }
    return out;
  }
};

TEST(ShadowNptDirtyLog, L2WritesAppearInL1sLogEveryRound) {
  SlotNptL1 l1;
  ASSERT_TRUE(l1.slots.set_flags(SlotId{1}, MemslotFlags::log_dirty()));
  (void)l1.harvest();
  std::mt19937_64 rng(13);
  for (int round = 0; round < 4; ++round) {
    SCOPED_TRACE(round);
    std::set<std::uint64_t> wrote;
    for (int n = 0; n < 24; ++n) {
      const std::uint64_t i = rng() % kNptL2Pages;
      const AccessKind op = rng() % 2 != 0 ? AccessKind::Write : AccessKind::Read;
      const L2NptAccess a = l1.mmu->access(l1.vcpu, Gpa(i << 12), op);
      ASSERT_TRUE(a);
      if (op == AccessKind::Write) wrote.insert(kNptDataGfn + i);
    }
    ASSERT_EQ(l1.mmu->check_invariants(), std::nullopt);
    const std::set<std::uint64_t> logged = l1.harvest();
    for (const std::uint64_t gfn : wrote) EXPECT_TRUE(logged.contains(gfn)) << "L2 wrote L1 gfn " << gfn;
    for (const std::uint64_t gfn : logged) {
      EXPECT_TRUE(wrote.contains(gfn) || (gfn >= (kPml4 >> 12) && gfn <= (kPt >> 12))) << "L1 gfn " << gfn;
    }
  }
  EXPECT_GT(l1.mmu->stats().logged, 0u);
}

}  // namespace
}  // namespace vmmu::nested::npt_test
