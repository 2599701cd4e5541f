#pragma once
// Random EPT configurations for differential tests: capabilities, EPTPs (valid and not), EPT
// entries with random rights, memory types, A/D, reserved and ignored bits, pointing into a
// pool of kPoolPages tables (so tables alias and point to themselves), and gpas whose indices
// hit the entries written (0, 1, 256, 511 of each table). Used by the EPT walker's test
// against the reference walker and by the shadow EPT's test against the EPT walker.

#include <algorithm>
#include <array>
#include <cstdint>
#include <random>

#include "vmmu/core/access.hpp"
#include "vmmu/x86/ept_walk.hpp"

namespace vmmu::x86::test {

inline constexpr std::uint64_t kPool = 0x200000;
inline constexpr unsigned kPoolPages = 6;

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

}  // namespace vmmu::x86::test
