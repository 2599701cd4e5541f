// PAE guests (issue 12 item 3): the four PDPTEs at CR3[31:5] are shadowed by an ordinary
// level-3 page keyed by (CR3's frame, role.pdpt) below passthrough levels -- so two PDPTs in
// one frame get two pages, while the page directories below them are shared.

#include <gtest/gtest.h>

#include "shadow/support/sparse_ram.hpp"
#include "vmmu/shadow/shadow_mmu.hpp"

namespace vmmu::shadow::test {
namespace {

namespace gpte = x86::gpte;

constexpr std::uint64_t kPaeTable = gpte::P::mask | gpte::RW::mask | gpte::US::mask;

class Pae : public ::testing::Test {
 protected:
  // Frame 0x1000 holds two PDPTs: at offset 0 (PDPTE 0 -> PD 0x3000) and at offset 32
  // (PDPTE 0 -> PD 0x4000). PD 0x3000 -> PT 0x5000 -> page 0x10000; PD 0x4000 -> PT 0x5000
  // too at entry 0, and a 2 MiB page at 0x400000 at entry 1.
  void SetUp() override {
    mem.write<std::uint64_t>(Gpa(0x1000), 0x3000 | gpte::P::mask);
    mem.write<std::uint64_t>(Gpa(0x1020), 0x4000 | gpte::P::mask);
    mem.write<std::uint64_t>(Gpa(0x3000), 0x5000 | kPaeTable);
    mem.write<std::uint64_t>(Gpa(0x3008), 0x6000 | kPaeTable);
    mem.write<std::uint64_t>(Gpa(0x4000), 0x5000 | kPaeTable);
    mem.write<std::uint64_t>(Gpa(0x4008), 0x400000 | kPaeTable | gpte::PS::mask);
    mem.write<std::uint64_t>(Gpa(0x5000), 0x10000 | kPaeTable);
    mem.write<std::uint64_t>(Gpa(0x6000), 0x20000 | kPaeTable);
  }
  static x86::GuestPaging paging(std::uint64_t cr3) {
    namespace cr0 = x86::cr0;
    return x86::GuestPaging::from(
        {.cr0 = cr0::PE::mask | cr0::PG::mask | cr0::WP::mask, .cr3 = cr3, .cr4 = x86::cr4::PAE::mask}, {});
  }
  Gpa gpa(ShadowMmu& mmu, std::uint64_t cr3, std::uint64_t gva) {
    const Outcome o = mmu.access(paging(cr3), Gva(gva), Access::read());
    EXPECT_FALSE(o.exit.has_value());
    return o.guest.has_value() ? o.guest->gpa : Gpa(~0ULL);
  }

  SparseMemory<Gpa> mem;
  SparseRam ram{mem};
};

TEST_F(Pae, TwoPdptsInOneFrameAreShadowedApartAndShareWhatIsBelow) {
  for (unsigned host : {4u, 5u}) {
    SCOPED_TRACE(host);
    ShadowMmu mmu(ram, {.host_levels = host});
    EXPECT_EQ(gpa(mmu, 0x1000, 0x200123), Gpa(0x20123));   // PD 0x3000 entry 1 -> PT 0x6000
    EXPECT_EQ(gpa(mmu, 0x1020, 0x200123), Gpa(0x400123));  // PD 0x4000 entry 1: 2 MiB page
    EXPECT_EQ(gpa(mmu, 0x1000, 0x123), Gpa(0x10123));
    EXPECT_EQ(gpa(mmu, 0x1020, 0x123), Gpa(0x10123));
    Result<ShadowPage*, ShadowExit> a = mmu.load_root(paging(0x1000));
    Result<ShadowPage*, ShadowExit> b = mmu.load_root(paging(0x1020));
    ASSERT_TRUE(a && b);
    EXPECT_NE(*a, *b);
    EXPECT_TRUE((*a)->role().passthrough());
    EXPECT_EQ((*b)->role().pdpt(), 1u);
    // PT 0x5000 is shadowed once, shared by both PDPTs' paths.
    unsigned pt_pages = 0;
    mmu.pages().for_each([&](const ShadowPage& p) { pt_pages += p.gfn() == Gfn(5) ? 1u : 0u; });
    EXPECT_EQ(pt_pages, 1u);
    // The PDPT frame is write-tracked.
    EXPECT_TRUE(mmu.pages().tracked(Gfn(1)));
    const std::optional<std::string> bad = mmu.check_invariants();
    EXPECT_FALSE(bad) << *bad;
  }
}

}  // namespace
}  // namespace vmmu::shadow::test
