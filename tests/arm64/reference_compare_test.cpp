// The walker against the independent reference walker (support/reference_walker.cpp) over
// random VTCRs (every granule, IPA size, start level -- consistent or not --, PS, PA range,
// HA/HD; and 52-bit: DS, SL2, FEAT_LPA), random tables (valid, invalid and reserved descriptors, out-of-range addresses,
// random attributes) and random IPAs and accesses. Fixed seeds, reported on failure.

#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <string>
#include <random>
#include <vector>

#include "arm64/support/reference_walker.hpp"
#include "vmmu/arm64/walk.hpp"

namespace vmmu::arm64 {
namespace {

// Two memories holding the same words: one for each walker.
struct TwinMemory {
  SparseMemory<Hpa> ours, theirs;
  std::map<std::uint64_t, std::uint64_t> words;
  void write(std::uint64_t at, std::uint64_t v) {
    ours.write<std::uint64_t>(Hpa(at), v);
    theirs.write<std::uint64_t>(Hpa(at), v);
    words[at] = v;
  }
};

class Scenario {
 public:
  // `fifty_two`: a CPU with a 52-bit PA range, 4K / 16K mostly with DS = 1.
  Scenario(std::uint32_t seed, std::map<std::string, int>& seen, bool fifty_two = false)
      : rng_(seed), seen_(seen), fifty_two_(fifty_two) {}

  void run() {
    const unsigned pa_choices[] = {32, 36, 40, 42, 44, 48};
    pa_bits_ = fifty_two_ ? 52 : pa_choices[pick(6)];
    const Granule g = kAllGranules[pick(3)];
    gran_ = granule_shift(g);
    const bool ds = fifty_two_ && (g == Granule::K64 ? pick(4) == 0 : pick(8) != 0);  // 64K: ignored
    ds_ = ds && g != Granule::K64;
    lpa64_ = g == Granule::K64 && pa_bits_ == 52;
    const unsigned max_ipa = ds_ || lpa64_ ? 52 : kMaxIpaBits;
    const unsigned ipa = kMinIpaBits + static_cast<unsigned>(pick(max_ipa - kMinIpaBits + 1));
    auto chosen = choose_layout(ipa, g, ds_ || lpa64_);
    std::uint64_t sl0 = chosen->sl0;
    std::uint64_t sl2 = chosen->sl2 ? 1 : 0;
    std::uint64_t t0sz = 64 - ipa;
    if (ds_ && g == Granule::K4 && ipa > 48 && pick(2) == 0) sl0 = 0, sl2 = 1;  // start at level -1
    if (pick(8) == 0) sl0 = pick(4);                 // maybe reserved or inconsistent
    if (ds_ && g == Granule::K4 && pick(8) == 0) sl2 = pick(2);
    if (pick(16) == 0) t0sz = pick(64);              // maybe out of range
    vtcr_ = (1ULL << 31) | t0sz | (sl0 << 6) | (tg0_encoding(g) << 14) | (pick(8) << 16);
    if (pick(2) == 0) vtcr_ |= 1ULL << 21;  // HA
    if (pick(2) == 0) vtcr_ |= 1ULL << 22;  // HD
    if (ds) vtcr_ |= 1ULL << 32;
    vtcr_ |= sl2 << 33;
    // Entry table somewhere below 4G (inside every PS), sometimes above the PS range.
    vttbr_ = (pick(16) == 0 ? (1ULL << (32 + pick(16))) : 0x10000000) | (pick(4) == 0 ? pick(1ULL << 16) << 48 : 0);
    if (fifty_two_ && pick(8) == 0) vttbr_ |= pick(16) << 2;  // BADDR[51:48] where 52-bit formats keep it

    auto s2 = Stage2::from({vtcr_, vttbr_}, {pa_bits_});
    ASSERT_TRUE(s2) << to_string(s2.error());
    // Build tables along random paths with the start level the registers actually select.
    if (!s2->setup_fault()) {
      for (int i = 0; i < 24; ++i) grow(*s2, random_ipa(ipa));
    }
    for (int i = 0; i < 64; ++i) {
      const std::uint64_t a = i % 4 == 3 ? rng_() : (ipas_.empty() ? random_ipa(ipa) : ipas_[pick(ipas_.size())] + pick(1ULL << gran_));
      const char op = "rwx"[pick(3)];
      const AccessKind kind = op == 'r' ? AccessKind::Read : op == 'w' ? AccessKind::Write : AccessKind::Fetch;
      auto ours = walk(*s2, mem_.ours, Ipa(a), kind);
      auto theirs = reference::walk(vtcr_, vttbr_, pa_bits_, mem_.theirs, a, op);
      reference::Outcome got;
      if (ours) {
        got.ok = true;
        got.pa = ours->pa.raw();
        got.block_size = ours->block_size;
        got.level = ours->level;
      } else {
        got.fault = std::string(to_string(ours.error().kind));
        got.level = ours.error().level;
      }
      ++seen_[got.ok ? "ok@" + std::to_string(got.level) : got.fault + "@" + std::to_string(got.level)];
      if (got.ok && (got.pa >> 48) != 0) ++seen_["ok above 2^48"];
      ASSERT_EQ(got, theirs) << "ipa " << std::hex << a << " op " << op << " vtcr " << vtcr_ << " vttbr " << vttbr_
                             << std::dec << " pa_bits " << pa_bits_ << ": ours " << reference::describe(got)
                             << ", reference " << reference::describe(theirs);
      for (const auto& [at, v] : mem_.words) {
        (void)v;
        ASSERT_EQ(mem_.ours.read<std::uint64_t>(Hpa(at)), mem_.theirs.read<std::uint64_t>(Hpa(at)))
            << "descriptor at " << std::hex << at << " after ipa " << a;
      }
    }
  }

 private:
  std::uint64_t pick(std::uint64_t n) { return std::uniform_int_distribution<std::uint64_t>(0, n - 1)(rng_); }
  std::uint64_t random_ipa(unsigned bits) { return pick(1ULL << bits) & ~((1ULL << gran_) - 1); }

  std::uint64_t random_leaf_attrs() {
    std::uint64_t a = 0;
    if (pick(6) != 0) a |= 1ULL << 10;   // AF mostly set
    a |= pick(4) << 6;                   // S2AP
    if (pick(4) == 0) a |= 1ULL << 51;   // DBM
    if (pick(3) == 0) a |= 1ULL << 54;   // XN
    a |= pick(16) << 2;                  // MemAttr
    if (pick(8) == 0) a |= pick(16) << 55;  // software bits
    return a;
  }
  std::uint64_t random_output(unsigned low_shift) {
    // Mostly below 4G; sometimes above a small PS (with 52-bit formats up to bit 51); low
    // bits random to prove they are ignored (64K LPA: bits [15:12] are OA[51:48]).
    const std::uint64_t high = pick(8) == 0 ? (1ULL << (32 + pick(fifty_two_ ? 20 : 16))) : pick(1ULL << 32);
    return encode(high & ~((1ULL << low_shift) - 1)) | (pick(4) == 0 ? pick(1ULL << low_shift) & ~0xfffULL : 0);
  }
  // An address as the descriptor format holds it (Arm ARM D8.3: LPA2 OA[51:50] in [9:8],
  // LPA OA[51:48] in [15:12]), and back.
  std::uint64_t encode(std::uint64_t a) const {
    if (ds_) return (a & ((1ULL << 50) - 1)) | (((a >> 50) & 3) << 8);
    if (lpa64_) return (a & ((1ULL << 48) - 1)) | (((a >> 48) & 0xf) << 12);
    return a;
  }
  std::uint64_t next_table_of(std::uint64_t d) const {
    const std::uint64_t low = ~((1ULL << gran_) - 1);
    if (ds_) return (d & ((1ULL << 50) - 1) & low) | (((d >> 8) & 3) << 50);
    if (lpa64_) return (d & ((1ULL << 48) - 1) & low) | (((d >> 12) & 0xf) << 48);
    return d & ((1ULL << 48) - 1) & low;
  }

  // Walks the tables for `ipa` as the reference does, creating a random descriptor wherever
  // the walk would read 0, and stopping at the first leaf, invalid or unreachable entry.
  void grow(const Stage2& s2, std::uint64_t ipa) {
    ipas_.push_back(ipa);
    const Layout& l = s2.layout();
    const unsigned s = gran_ - 3;
    std::uint64_t t = s2.root().raw();
    for (int level = l.start_level; level <= 3; ++level) {
      const unsigned shift = gran_ + s * static_cast<unsigned>(3 - level);
      const unsigned width = level == l.start_level ? l.root_bits : s;
      const std::uint64_t at = t + ((ipa >> shift) & ((1ULL << width) - 1)) * 8;
      auto it = mem_.words.find(at);
      std::uint64_t d = it == mem_.words.end() ? 0 : it->second;
      if (it == mem_.words.end()) {
        const std::uint64_t roll = pick(20);
        if (roll == 0) {
          d = pick(1ULL << 62) & ~1ULL;  // invalid, junk in the other bits
        } else if (roll == 1) {
          d = random_output(gran_) | random_leaf_attrs() | 1;  // block encoding, legal or not
        } else if (level < 3 && roll < 12) {
          d = encode(pick(10) == 0 ? (1ULL << (32 + pick(fifty_two_ ? 20 : 16))) : next_table()) | 3;
        } else {
          const unsigned leaf_shift = shift;
          d = random_output(leaf_shift) | random_leaf_attrs() | (level == 3 ? 3 : 1);
        }
        mem_.write(at, d);
      }
      if ((d & 3) != 3 || level == 3) return;
      t = next_table_of(d);
    }
  }

  std::uint64_t next_table() {
    const std::uint64_t t = 0x20000000 + tables_ * (1ULL << gran_);
    ++tables_;
    return t;
  }

  std::mt19937_64 rng_;
  std::map<std::string, int>& seen_;
  bool fifty_two_ = false;
  bool ds_ = false, lpa64_ = false;
  unsigned pa_bits_ = 48;
  unsigned gran_ = 12;
  std::uint64_t vtcr_ = 0, vttbr_ = 0;
  std::uint64_t tables_ = 0;
  std::vector<std::uint64_t> ipas_;
  TwinMemory mem_;
};

TEST(ReferenceCompare, RandomTablesVtcrsAndIpasAgreeWithTheReferenceWalker) {
  std::map<std::string, int> seen;
  for (std::uint32_t seed = 1; seed <= 400; ++seed) {
    SCOPED_TRACE(::testing::Message() << "seed " << seed);
    Scenario sc(seed, seen);
    sc.run();
    if (::testing::Test::HasFatalFailure()) return;
  }
  // The generator must reach every outcome at every level where it can occur, or the
  // comparison proves little.
  const char* expected[] = {"ok@1", "ok@2", "ok@3", "translation@0", "translation@1", "translation@2",
                            "translation@3", "address_size@0", "address_size@1", "address_size@2",
                            "address_size@3", "access_flag@1", "access_flag@2", "access_flag@3",
                            "permission@1", "permission@2", "permission@3"};
  for (const char* e : expected) EXPECT_GT(seen[e], 0) << e << " never happened";
  std::string summary;
  for (const auto& [k, n] : seen) summary += k + "=" + std::to_string(n) + " ";
  RecordProperty("outcomes", summary);
  std::printf("outcomes: %s\n", summary.c_str());
}

TEST(ReferenceCompare, FiftyTwoBitLpaAndLpa2TablesAgreeWithTheReferenceWalker) {
  std::map<std::string, int> seen;
  for (std::uint32_t seed = 1; seed <= 600; ++seed) {
    SCOPED_TRACE(::testing::Message() << "seed " << seed);
    Scenario sc(seed, seen, /*fifty_two=*/true);
    sc.run();
    if (::testing::Test::HasFatalFailure()) return;
  }
  // Level -1 (4K, SL2) and level-0 / level-1 giant blocks exist only here.
  const char* expected[] = {"ok@0",           "ok@1",          "ok@2",           "ok@3",
                            "translation@-1", "translation@0", "translation@1",  "translation@3",
                            "address_size@-1", "address_size@0", "address_size@1", "address_size@3",
                            "access_flag@0",  "permission@1",  "permission@3",  "ok above 2^48"};
  for (const char* e : expected) EXPECT_GT(seen[e], 0) << e << " never happened";
  std::string summary;
  for (const auto& [k, n] : seen) summary += k + "=" + std::to_string(n) + " ";
  RecordProperty("outcomes", summary);
  std::printf("outcomes (52-bit): %s\n", summary.c_str());
}

}  // namespace
}  // namespace vmmu::arm64
