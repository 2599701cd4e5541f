// Randomized comparison of the walker with the reference walker (tests/x86/support): random
// registers across all modes and permission features, random page tables with random bits
// (reserved ones included), random accesses; translation, page size, error code and the memory
// after A/D updates must agree. Fixed seeds; a failure prints the seed and the case.
// The same cases through GuestMemory check the walk's per-walk reader (GuestMemory::WalkReader)
// against GuestMemory's read-by-read path while slots are read-only or relocated between walks.

#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <type_traits>
#include <utility>
#include <vector>

#include "x86/support/reference_walker.hpp"
#include "vmmu/memory/guest_memory.hpp"
#include "vmmu/memory/memslots.hpp"
#include "vmmu/memory/sparse_memory.hpp"
#include "vmmu/x86/walk.hpp"

namespace vmmu::x86::test {
namespace {

constexpr std::uint64_t kPool = 0x10000;  // table pages: kPool + i * 0x1000
constexpr unsigned kPoolPages = 6;

struct Case {
  Registers regs;
  CpuModel cpu;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> writes;  // (gpa, entry) in entry width
  unsigned entry_bytes = 8;
};

class Generator {
 public:
  explicit Generator(std::uint64_t seed) : rng_(seed) {}

  bool chance(unsigned percent) { return std::uniform_int_distribution<unsigned>(0, 99)(rng_) < percent; }
  std::uint64_t below(std::uint64_t n) { return std::uniform_int_distribution<std::uint64_t>(0, n - 1)(rng_); }
  std::uint64_t any() { return rng_(); }

  Case make_case() {
    Case c;
    static constexpr std::array<unsigned, 7> kMaxphy{32, 36, 39, 40, 46, 48, 52};
    c.cpu.maxphyaddr = kMaxphy[below(kMaxphy.size())];
    c.cpu.pages_1g = chance(70);
    c.cpu.pse36 = chance(70);
    const unsigned mode = static_cast<unsigned>(below(10));  // 0: off, 1-2: 32-bit, 3-4: PAE, 5-7: long4, 8-9: long5
    Registers& r = c.regs;
    if (mode > 0) r.cr0 = cr0::PG::mask | cr0::PE::mask;
    if (chance(60)) r.cr0 |= cr0::WP::mask;
    if (chance(60)) r.cr4 |= cr4::PSE::mask;
    if (mode >= 3) r.cr4 |= cr4::PAE::mask;
    if (mode >= 5) r.efer |= efer::LME::mask | efer::LMA::mask;
    if (mode >= 8) r.cr4 |= cr4::LA57::mask;
    if (chance(50)) r.cr4 |= cr4::SMEP::mask;
    if (chance(50)) r.cr4 |= cr4::SMAP::mask;
    if (chance(50)) r.cr4 |= cr4::PKE::mask;
    if (chance(60)) r.efer |= efer::NXE::mask;
    if (chance(50)) r.rflags |= rflags::AC::mask;
    r.pkru = chance(50) ? static_cast<std::uint32_t>(any()) : 0;
    c.entry_bytes = (mode == 1 || mode == 2) ? 4 : 8;
    const std::uint64_t root = kPool + below(kPoolPages) * 0x1000;
    r.cr3 = root | (mode == 3 || mode == 4 ? below(128) * 32 : 0) | (chance(20) ? (any() & 0x18) : 0);

    // Entries at a few indices of every pool page (and at the PAE root's four slots).
    for (unsigned page = 0; page < kPoolPages; ++page) {
      const std::uint64_t base = kPool + page * 0x1000;
      const std::uint64_t count = 0x1000 / c.entry_bytes;
      for (std::uint64_t index : {std::uint64_t{0}, std::uint64_t{1}, count / 2, count - 1}) {
        c.writes.emplace_back(base + index * c.entry_bytes, random_entry(c));
      }
    }
    if (mode == 3 || mode == 4) {
      for (std::uint64_t i = 0; i < 4; ++i) c.writes.emplace_back((r.cr3 & 0xffffffe0) + i * 8, random_pdpte(c));
    }
    return c;
  }

  std::uint64_t random_entry(const Case& c) {
    if (chance(12)) return 0;
    std::uint64_t e = 0;
    if (chance(75)) {
      e = kPool + below(kPoolPages) * 0x1000;  // a table (or a small page) in the pool
    } else {
      e = (any() & 0x000f'ffff'c000'0000ULL);  // a 1 GiB-aligned frame, often beyond MAXPHYADDR
      if (chance(50)) e &= 0xffff'ffffULL;
    }
    e |= gpte::P::mask;
    for (unsigned bit : {1u, 2u}) {
      if (chance(80)) e |= std::uint64_t{1} << bit;
    }
    for (unsigned bit : {3u, 4u, 5u, 6u, 8u, 9u, 10u, 11u}) {
      if (chance(30)) e |= std::uint64_t{1} << bit;
    }
    if (chance(30)) e |= gpte::PS::mask;
    if (chance(15)) e |= gpte::PatLarge::mask;
    if (chance(10)) e |= std::uint64_t{1} << (13 + below(9));  // PSE-36 / large-page reserved field
    if (chance(10)) e |= std::uint64_t{1} << (c.cpu.maxphyaddr + below(64 - c.cpu.maxphyaddr));
    if (chance(30)) e |= gpte::XD::mask;
    if (chance(40)) e |= (any() & gpte::ProtKey::mask);
    if (c.entry_bytes == 4) e &= 0xffff'ffffULL;
    return e;
  }

  // A PAE PDPTE: mostly valid (P, PWT, PCD, ignored bits, a pool table), sometimes not present
  // or with one reserved bit (2:1, 8:5, 63:M).
  std::uint64_t random_pdpte(const Case& c) {
    if (chance(10)) return 0;
    std::uint64_t e = (kPool + below(kPoolPages) * 0x1000) | gpte::P::mask | (any() & 0xe18);
    if (chance(20)) {
      static constexpr std::array<unsigned, 6> kLow{1, 2, 5, 6, 7, 8};
      e |= chance(50) ? std::uint64_t{1} << kLow[below(kLow.size())]
                      : std::uint64_t{1} << (c.cpu.maxphyaddr + below(64 - c.cpu.maxphyaddr));
    }
    return e;
  }

  // A gva whose indices hit the populated slots; sometimes non-canonical.
  std::uint64_t random_gva(const Case& c) {
    std::uint64_t gva = below(0x1000);
    const unsigned levels = c.entry_bytes == 4 ? 2 : 5;
    for (unsigned level = 1; level <= levels; ++level) {
      const unsigned bits = c.entry_bytes == 4 ? 10 : 9;
      const unsigned shift = 12 + bits * (level - 1);
      const std::uint64_t count = std::uint64_t{1} << bits;
      static constexpr std::array<unsigned, 4> kPick{0, 1, 2, 3};
      const unsigned pick = kPick[below(4)];
      const std::uint64_t index = pick == 0 ? 0 : pick == 1 ? 1 : pick == 2 ? count / 2 : count - 1;
      gva |= index << shift;
    }
    if (chance(50)) gva |= 0xffffULL << 48;  // sign-extend (often canonical, sometimes not)
    if (chance(5)) gva ^= std::uint64_t{1} << (47 + below(17));
    return gva;
  }

  Access random_access() {
    Access a;
    a.kind = static_cast<AccessKind>(below(3));
    a.user = chance(50);
    a.implicit_supervisor = chance(15);
    return a;
  }

 private:
  std::mt19937_64 rng_;
};

void apply(SparseMemory<Gpa>& mem, const Case& c) {
  for (auto [gpa, e] : c.writes) {
    if (c.entry_bytes == 4) {
      mem.write<std::uint32_t>(Gpa(gpa), static_cast<std::uint32_t>(e));
    } else {
      mem.write<std::uint64_t>(Gpa(gpa), e);
    }
  }
}

bool same_memory(const SparseMemory<Gpa>& a, const SparseMemory<Gpa>& b) {
  for (std::uint64_t addr = kPool; addr < kPool + kPoolPages * 0x1000; addr += 8) {
    if (*a.read<std::uint64_t>(Gpa(addr)) != *b.read<std::uint64_t>(Gpa(addr))) return false;
  }
  return true;
}

void run_walk_cases(std::uint64_t seed, unsigned cases, unsigned accesses_per_case) {
  Generator gen(seed);
  unsigned ok = 0, faults = 0;
  for (unsigned n = 0; n < cases; ++n) {
    const Case c = gen.make_case();
    SparseMemory<Gpa> mine, theirs;
    apply(mine, c);
    apply(theirs, c);
    const GuestPaging paging = GuestPaging::from(c.regs, c.cpu);
    for (unsigned i = 0; i < accesses_per_case; ++i) {
      const std::uint64_t gva = gen.random_gva(c);
      const Access access = gen.random_access();
      const bool update = !gen.chance(10);
      const auto got = walk(paging, mine, Gva(gva), access, WalkOptions{update});
      const RefResult want = reference_walk(c.regs, c.cpu, theirs, gva, access, update);
      const std::string where = ::testing::PrintToString(std::vector<std::uint64_t>{
                                    seed, n, i, gva, c.regs.cr0, c.regs.cr3, c.regs.cr4, c.regs.efer, c.regs.rflags,
                                    c.regs.pkru, c.cpu.maxphyaddr, c.cpu.pages_1g, c.cpu.pse36}) +
                                " access kind/user/implicit " + std::to_string(static_cast<int>(access.kind)) +
                                std::to_string(access.user) + std::to_string(access.implicit_supervisor);
      ASSERT_EQ(got.has_value(), want.ok) << where;
      if (want.ok) {
        ++ok;
        ASSERT_EQ(got->gpa.raw(), want.gpa) << where;
        ASSERT_EQ(got->page_size, want.page_size) << where;
      } else if (want.gp) {
        ASSERT_EQ(got.error().kind, WalkFaultKind::GeneralProtection) << where;
      } else {
        ++faults;
        ASSERT_EQ(got.error().kind, WalkFaultKind::PageFault) << where;
        ASSERT_EQ(got.error().error_code, want.error_code) << where;
      }
      ASSERT_TRUE(same_memory(mine, theirs)) << where;
    }
  }
  // The generator must exercise both outcomes, or the comparison proves little.
  std::printf("seed %llu: %u translations, %u page faults\n", static_cast<unsigned long long>(seed), ok, faults);
  EXPECT_GT(ok, cases * accesses_per_case / 20) << "seed " << seed;
  EXPECT_GT(faults, cases * accesses_per_case / 20) << "seed " << seed;
}

// The pool in two memslots, pages [0, 3) and [3, 6), each over its own host buffer, the
// second sometimes read-only (A/D writes into it are dropped), so walks change regions.
class PoolSlots {
 public:
  static constexpr unsigned kHalf = kPoolPages / 2;

  PoolSlots(const Case& c, bool second_read_only)
      : second_flags_(second_read_only ? MemslotFlags::read_only() : MemslotFlags::none()) {
    for (auto& half : halves_) half = page_buffer();
    for (auto [gpa, e] : c.writes) std::memcpy(host(gpa), &e, c.entry_bytes);  // little-endian: the low half
    if (!slots_.add({SlotId{0}, gfn_of(Gpa(kPool)), kHalf, halves_[0].get(), MemslotFlags::none()}) ||
        !slots_.add({SlotId{1}, gfn_of(Gpa(kPool)) + kHalf, kHalf, halves_[1].get(), second_flags_})) {
      ADD_FAILURE() << "memslots refused the pool";
    }
  }
  GuestMemory& memory() { return memory_; }
  const Memslots& slots() const { return slots_; }

  // Moves the second half to new host memory (same contents) and poisons the old buffer:
  // a reader still holding the old region would read all-ones entries.
  void relocate_second_half() {
    auto fresh = page_buffer();
    std::memcpy(fresh.get(), halves_[1].get(), kHalf * kPageSize);
    if (!slots_.remove(SlotId{1}) ||
        !slots_.add({SlotId{1}, gfn_of(Gpa(kPool)) + kHalf, kHalf, fresh.get(), second_flags_})) {
      ADD_FAILURE() << "memslots refused the move";
    }
    std::memset(halves_[1].get(), 0xff, kHalf * kPageSize);
    retired_.push_back(std::move(halves_[1]));
    halves_[1] = std::move(fresh);
  }

  bool same_tables(const PoolSlots& other) const {
    return std::memcmp(halves_[0].get(), other.halves_[0].get(), kHalf * kPageSize) == 0 &&
           std::memcmp(halves_[1].get(), other.halves_[1].get(), kHalf * kPageSize) == 0;
  }

 private:
  using Buffer = std::unique_ptr<std::byte, decltype(&std::free)>;
  static Buffer page_buffer() {
    Buffer b(static_cast<std::byte*>(std::aligned_alloc(kPageSize, kHalf * kPageSize)), &std::free);
    std::memset(b.get(), 0, kHalf * kPageSize);
    return b;
  }
  std::byte* host(std::uint64_t gpa) {
    const std::uint64_t off = gpa - kPool;
    return halves_[off / (kHalf * kPageSize)].get() + off % (kHalf * kPageSize);
  }

  MemslotFlags second_flags_;
  std::array<Buffer, 2> halves_{Buffer(nullptr, &std::free), Buffer(nullptr, &std::free)};
  std::vector<Buffer> retired_;
  Memslots slots_;
  GuestMemory memory_{slots_};
};

// GuestMemory without its per-walk reader: pt::walk then reads it read by read, each read
// through the hit cache's own checks -- what a walk did before the engine asked for a reader.
struct ReadByRead : GuestMemory {
  using GuestMemory::GuestMemory;
  void walk_reader() = delete;
};
static_assert(pt::TableMemory<ReadByRead, Gpa>);
static_assert(std::is_same_v<decltype(pt::walk_reader(std::declval<ReadByRead&>())), ReadByRead&>);
static_assert(std::is_same_v<decltype(pt::walk_reader(std::declval<GuestMemory&>())), GuestMemory::WalkReader>);

void run_through_memslots(std::uint64_t seed, unsigned cases, unsigned accesses_per_case) {
  Generator gen(seed);
  unsigned ok = 0, unreadable = 0;
  for (unsigned n = 0; n < cases; ++n) {
    const Case c = gen.make_case();
    const bool read_only = gen.chance(30);
    PoolSlots fast(c, read_only), plain(c, read_only);
    ReadByRead plain_reads(plain.slots());
    const GuestPaging paging = GuestPaging::from(c.regs, c.cpu);
    for (unsigned i = 0; i < accesses_per_case; ++i) {
      if (gen.chance(10)) {
        fast.relocate_second_half();
        plain.relocate_second_half();
      }
      const std::uint64_t gva = gen.random_gva(c);
      const Access access = gen.random_access();
      const WalkOptions options{!gen.chance(10)};
      const auto got = walk(paging, fast.memory(), Gva(gva), access, options);
      const auto want = walk(paging, plain_reads, Gva(gva), access, options);
      const std::string where = ::testing::PrintToString(std::vector<std::uint64_t>{seed, n, i, gva});
      ASSERT_EQ(got.has_value(), want.has_value()) << where;
      if (want) {
        ++ok;
        EXPECT_EQ(got->gpa, want->gpa) << where;
        EXPECT_EQ(got->entry, want->entry) << where;
        EXPECT_EQ(got->level, want->level) << where;
        EXPECT_EQ(got->user, want->user) << where;
        EXPECT_EQ(got->writable, want->writable) << where;
        EXPECT_EQ(got->nx, want->nx) << where;
        EXPECT_EQ(got->protection_key, want->protection_key) << where;
      } else {
        unreadable += want.error().kind == WalkFaultKind::TableUnreadable ? 1u : 0u;
        ASSERT_EQ(got.error(), want.error()) << where;
      }
      ASSERT_TRUE(fast.same_tables(plain)) << where;
    }
  }
  std::printf("seed %llu: %u translations, %u unreadable tables\n", static_cast<unsigned long long>(seed), ok,
              unreadable);
  EXPECT_GT(ok, cases * accesses_per_case / 20) << "seed " << seed;
  EXPECT_GT(unreadable, cases * accesses_per_case / 50) << "seed " << seed;
}

// The walk that sets A/D bits (walk_guest_update_ad: out of line, rules of its own) against
// the warm walk (walk_core alone, as a walk without A/D updates runs) on the same tables: the
// same translation or the same fault, up to the A/D bits the first one sets in the leaf.
void run_warm_against_update(std::uint64_t seed, unsigned cases, unsigned accesses_per_case) {
  Generator gen(seed);
  unsigned ok = 0, faults = 0;
  for (unsigned n = 0; n < cases; ++n) {
    const Case c = gen.make_case();
    const GuestPaging paging = GuestPaging::from(c.regs, c.cpu);
    for (unsigned i = 0; i < accesses_per_case; ++i) {
      SparseMemory<Gpa> updated, warm;  // fresh tables: most A bits are still clear
      apply(updated, c);
      apply(warm, c);
      const std::uint64_t gva = gen.random_gva(c);
      const Access access = gen.random_access();
      const auto got = walk(paging, updated, Gva(gva), access, WalkOptions{true});
      const auto want = walk(paging, warm, Gva(gva), access, WalkOptions{false});
      const std::string where = ::testing::PrintToString(std::vector<std::uint64_t>{seed, n, i, gva});
      ASSERT_EQ(got.has_value(), want.has_value()) << where;
      if (want) {
        ++ok;
        constexpr std::uint64_t kAd = gpte::A::mask | gpte::D::mask;
        EXPECT_EQ(got->gpa, want->gpa) << where;
        EXPECT_EQ(got->page_size, want->page_size) << where;
        EXPECT_EQ(got->level, want->level) << where;
        EXPECT_EQ(got->entry & ~kAd, want->entry & ~kAd) << where;
        EXPECT_EQ(got->user, want->user) << where;
        EXPECT_EQ(got->writable, want->writable) << where;
        EXPECT_EQ(got->nx, want->nx) << where;
        EXPECT_EQ(got->protection_key, want->protection_key) << where;
      } else {
        ++faults;
        ASSERT_EQ(got.error(), want.error()) << where;
      }
    }
  }
  EXPECT_GT(ok, cases * accesses_per_case / 20) << "seed " << seed;
  EXPECT_GT(faults, cases * accesses_per_case / 20) << "seed " << seed;
}

TEST(RandomWalk, MatchesReferenceWalkerSeed1) { run_walk_cases(1, 300, 20); }
TEST(RandomWalk, MatchesReferenceWalkerSeed2) { run_walk_cases(0x5eed2026, 300, 20); }
// A fifth of the cases in debug builds (ASan, invariant checks), where each costs far more.
#ifdef VMMU_CHECK_INVARIANTS
constexpr unsigned kMemslotCases = 40;
#else
constexpr unsigned kMemslotCases = 200;
#endif
TEST(RandomWalk, PerWalkReaderMatchesReadByRead) { run_through_memslots(3, kMemslotCases, 20); }
// Fresh tables for every access: a twelfth of the walks in debug builds.
#ifdef VMMU_CHECK_INVARIANTS
constexpr unsigned kWarmCases = 8, kWarmAccesses = 10;
#else
constexpr unsigned kWarmCases = 100, kWarmAccesses = 20;
#endif
TEST(RandomWalk, AccessedDirtyWalkAnswersAsTheWarmWalk) { run_warm_against_update(4, kWarmCases, kWarmAccesses); }

}  // namespace
}  // namespace vmmu::x86::test
