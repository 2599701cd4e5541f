// The shadow MMU against the x86 walker: random guests (paging off, 32-bit, PAE, 4-level, 5-level, every
// permission feature), random tables with random bits (reserved ones included) in a few pool
// pages that point at each other -- so guest tables are also data pages, shared between paths
// and write-tracked -- and many accesses per case, so later accesses hit, refault and
// write-protect the shadow pages earlier ones built. Each access must give the walker's
// translation (gpa, page size) or its fault and error code, and leave the same A/D bits; the
// invariants must hold after every case. Fixed seeds; a failure prints seed, case and access.

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "shadow/support/sparse_ram.hpp"
#include "vmmu/shadow/shadow_mmu.hpp"
#include "vmmu/x86/walk.hpp"

namespace vmmu::shadow::test {
namespace {

namespace gpte = x86::gpte;
namespace cr0 = x86::cr0;
namespace cr4 = x86::cr4;
namespace efer = x86::efer;

constexpr std::uint64_t kPool = 0x40000;
constexpr unsigned kPages = 8;

class Guest {
 public:
  explicit Guest(std::uint64_t seed) : rng_(seed) {}
  bool chance(unsigned percent) { return pick(100) < percent; }
  std::uint64_t pick(std::uint64_t n) { return std::uniform_int_distribution<std::uint64_t>(0, n - 1)(rng_); }

  // Registers for paging off (1 in 10), 32-bit (2 in 10), PAE (2 in 10), 4-level or 5-level
  // paging, random features. `levels`: the guest's (0, 2, 3, 4, 5).
  x86::Registers registers(unsigned& levels) {
    x86::Registers r;
    const unsigned mode = static_cast<unsigned>(pick(10));
    levels = mode == 0 ? 0 : mode < 3 ? 2 : mode < 5 ? 3 : mode < 8 ? 4 : 5;
    levels_ = levels;
    r.cr0 = cr0::PE::mask | (levels != 0 ? cr0::PG::mask : 0) | (chance(60) ? cr0::WP::mask : 0);
    r.cr4 = (levels > 2 ? cr4::PAE::mask : 0) | (levels == 5 ? cr4::LA57::mask : 0) |
            (levels == 2 && chance(70) ? cr4::PSE::mask : 0) |
            (chance(50) ? cr4::SMEP::mask : 0) | (chance(50) ? cr4::SMAP::mask : 0) | (chance(40) ? cr4::PKE::mask : 0);
    r.efer = (levels > 3 ? efer::LME::mask | efer::LMA::mask : 0) | (chance(70) ? efer::NXE::mask : 0);
    r.rflags = 0x2 | (chance(40) ? x86::rflags::AC::mask : 0);
    r.pkru = chance(40) ? static_cast<std::uint32_t>(rng_()) : 0;
    r.cr3 = kPool + pick(kPages) * 0x1000;
    return r;
  }

  // Entries at a few indices of every pool page: tables of the pool, or frames. 32-bit: the
  // indices reach every quarter of a root and both halves of a page table.
  void fill(SparseMemory<Gpa>& a, SparseMemory<Gpa>& b, unsigned maxphyaddr) {
    for (unsigned page = 0; page < kPages; ++page) {
      for (std::uint64_t index : indices()) {
        const std::uint64_t e = entry(maxphyaddr);
        const Gpa at(kPool + page * 0x1000 + index * (levels_ == 2 ? 4 : 8));
        if (levels_ == 2) {
          a.write<std::uint32_t>(at, static_cast<std::uint32_t>(e));
          b.write<std::uint32_t>(at, static_cast<std::uint32_t>(e));
        } else {
          a.write<std::uint64_t>(at, e);
          b.write<std::uint64_t>(at, e);
        }
      }
    }
  }
  std::array<std::uint64_t, 4> indices() {
    if (levels_ != 2) return {0, 1, 256, 511};
    return {pick(2) * 256, 511 + pick(2), 767, 1023};
  }

  std::uint64_t entry(unsigned maxphyaddr) {
    if (chance(10)) return 0;
    // A pool page (a table, or a data page that is also a table), a data page, or a huge frame.
    const unsigned kind = static_cast<unsigned>(pick(10));
    std::uint64_t e = kind < 6 ? kPool + pick(kPages) * 0x1000
                      : kind < 9 ? 0x100000 + pick(64) * 0x1000
                                 : (rng_() & 0x0000'00ff'ffe0'0000ULL);
    e |= gpte::P::mask | (chance(85) ? gpte::RW::mask : 0) | (chance(75) ? gpte::US::mask : 0);
    if (chance(30)) e |= gpte::A::mask;
    if (chance(30)) e |= gpte::D::mask;
    if (chance(25)) e |= gpte::PS::mask;
    if (chance(25)) e |= gpte::XD::mask;
    if (chance(30)) e |= rng_() & gpte::ProtKey::mask;
    if (chance(4)) e |= std::uint64_t{1} << (maxphyaddr + pick(52 - maxphyaddr));
    if (levels_ == 2) {
      if (kind == 9) e = (e & ~0xffc0'0000ULL) | (rng_() & 0xffc0'0000ULL);  // a 4 MiB frame
      if (chance(10)) e |= std::uint64_t{1} << (13 + pick(9));               // PSE-36 / reserved
      e &= 0xffff'ffffULL;
    }
    return e;
  }

  // Half the time a gva used before (another access kind: hits, D-bit refaults, upgrades).
  std::uint64_t gva(unsigned levels) {
    if (!used_.empty() && chance(50)) {
      const std::uint64_t v = used_[pick(used_.size())];
      // Its sign extension flipped: not canonical for a 4-level guest, canonical for a 5-level
      // host, and the same low 48 bits as a gva whose shadow entries exist.
      if (levels == 4 && chance(15)) return v ^ 0xffff'0000'0000'0000ULL;
      return v;
    }
    used_.push_back(fresh_gva(levels));
    return used_.back();
  }
  void new_case() { used_.clear(); }

  std::uint64_t fresh_gva(unsigned levels) {
    std::uint64_t v = pick(0x1000);
    if (levels == 2) {
      const std::array<std::uint64_t, 4> i = indices();
      return v | (i[pick(4)] << 22) | (i[pick(4)] << 12);
    }
    static constexpr std::array<std::uint64_t, 4> kIndex{0, 1, 256, 511};
    for (unsigned l = 1; l <= 5; ++l) v |= kIndex[pick(4)] << (12 + 9 * (l - 1));
    if (levels <= 3) return v & 0xffff'ffffULL;  // paging off, PAE: 32-bit linear addresses
    const unsigned bits = levels == 4 ? 48 : 57;
    v &= (std::uint64_t{1} << bits) - 1;
    if ((v >> (bits - 1)) & 1) v |= ~((std::uint64_t{1} << bits) - 1);  // canonical
    // Sometimes not: the guest's sign bit flipped (canonical for a deeper host, so it must not
    // reach the other half's shadow entries), or a bit above it.
    if (chance(4)) v ^= std::uint64_t{1} << (chance(50) ? bits - 1 : bits + pick(64 - bits));
    return v;
  }

  Access access() {
    Access a;
    a.kind = static_cast<AccessKind>(pick(3));
    a.user = chance(50);
    a.implicit_supervisor = !a.user && chance(10);
    return a;
  }

 private:
  std::mt19937_64 rng_;
  unsigned levels_ = 4;
  std::vector<std::uint64_t> used_;
};

std::string differences(const SparseMemory<Gpa>& a, const SparseMemory<Gpa>& b) {
  for (std::uint64_t at = kPool; at < kPool + kPages * 0x1000; at += 8) {
    if (*a.read<std::uint64_t>(Gpa(at)) != *b.read<std::uint64_t>(Gpa(at))) {
      return "memory differs at gpa " + std::to_string(at);
    }
  }
  return {};
}

void run(std::uint64_t seed, unsigned host_levels, unsigned cases, unsigned accesses) {
  Guest gen(seed);
  unsigned ok = 0, faults = 0;
  for (unsigned n = 0; n < cases; ++n) {
    unsigned levels = 0;
    gen.new_case();
    const x86::Registers regs = gen.registers(levels);
    const x86::CpuModel cpu{.maxphyaddr = 40};
    SparseMemory<Gpa> direct, shadowed;
    gen.fill(direct, shadowed, cpu.maxphyaddr);
    SparseRam ram(shadowed);
    ShadowMmu mmu(ram, {.host_levels = levels == 5 ? 5 : host_levels});
    const auto paging = x86::GuestPaging::from(regs, cpu);
    for (unsigned i = 0; i < accesses; ++i) {
      const Gva gva(gen.gva(levels));
      const Access access = gen.access();
      const auto want = x86::walk(paging, direct, gva, access);
      const Outcome got = mmu.access(paging, gva, access);
      const std::string where = "seed " + std::to_string(seed) + " case " + std::to_string(n) + " access " +
                                std::to_string(i) + " gva " + std::to_string(gva.raw()) + " kind " +
                                std::to_string(static_cast<int>(access.kind)) + " user " + std::to_string(access.user) +
                                " cr0 " + std::to_string(regs.cr0) + " cr4 " + std::to_string(regs.cr4);
      ASSERT_FALSE(got.exit) << where << ": " << to_string(*got.exit);
      ASSERT_EQ(got.guest.has_value(), want.has_value()) << where;
      if (want) {
        ++ok;
        ASSERT_EQ(got.guest->gpa, want->gpa) << where;
        ASSERT_EQ(got.guest->page_size, want->page_size) << where;
      } else {
        ++faults;
        ASSERT_EQ(got.guest.error().kind, want.error().kind) << where;
        ASSERT_EQ(got.guest.error().error_code, want.error().error_code) << where;
      }
      ASSERT_EQ(differences(direct, shadowed), "") << where;
    }
    const std::optional<std::string> bad = mmu.check_invariants();
    ASSERT_FALSE(bad) << "seed " << seed << " case " << n << ": " << *bad;
  }
  // Both outcomes must be common, or the comparison proves little.
  EXPECT_GT(ok, cases * accesses / 10);
  EXPECT_GT(faults, cases * accesses / 10);
}

TEST(ShadowDifferential, MatchesTheWalkerUnderA4LevelHost) { run(1, 4, 400, 24); }
TEST(ShadowDifferential, MatchesTheWalkerUnderA5LevelHost) { run(0x5eed2026, 5, 400, 24); }

}  // namespace
}  // namespace vmmu::shadow::test
