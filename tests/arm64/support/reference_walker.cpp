#include "arm64/support/reference_walker.hpp"

namespace vmmu::arm64::reference {
namespace {

Outcome fault(const char* kind, int level) {
  Outcome o;
  o.fault = kind;
  o.level = level;
  return o;
}

std::uint64_t bits(std::uint64_t v, unsigned hi, unsigned lo) {
  return (v >> lo) & ((hi - lo == 63) ? ~0ULL : ((1ULL << (hi - lo + 1)) - 1));
}

}  // namespace

Outcome walk(std::uint64_t vtcr, std::uint64_t vttbr, unsigned pa_bits, SparseMemory<Hpa>& memory,
             std::uint64_t ipa, char op) {
  // Granule: TG0 = VTCR<15:14>.
  unsigned gran = 12;
  const std::uint64_t tg0 = bits(vtcr, 15, 14);
  if (tg0 == 1) gran = 16;
  if (tg0 == 2) gran = 14;
  const unsigned s = gran - 3;

  // T0SZ = VTCR<5:0>; without FEAT_TTST / LPA the legal range is 16..39.
  const unsigned t0sz = static_cast<unsigned>(bits(vtcr, 5, 0));
  if (t0sz < 16 || t0sz > 39) return fault("translation", 0);
  const unsigned iasize = 64 - t0sz;

  // SL0 = VTCR<7:6>.
  const unsigned sl0 = static_cast<unsigned>(bits(vtcr, 7, 6));
  int start = 0;
  if (gran == 12) {
    if (sl0 == 0) start = 2;
    else if (sl0 == 1) start = 1;
    else if (sl0 == 2) {
      if (pa_bits < 44) return fault("translation", 0);
      start = 0;
    } else {
      return fault("translation", 0);
    }
  } else {
    if (sl0 == 0) start = 3;
    else if (sl0 == 1) start = 2;
    else if (sl0 == 2) {
      if (pa_bits < (gran == 14 ? 42u : 44u)) return fault("translation", 0);
      start = 1;
    } else {
      return fault("translation", 0);
    }
  }
  const unsigned below = static_cast<unsigned>(3 - start);
  const unsigned lowest = below * s + gran + 1;
  if (iasize < lowest || iasize > lowest + s - 1 + 4) return fault("translation", 0);
  if (iasize < 64 && (ipa >> iasize) != 0) return fault("translation", 0);

  // PS = VTCR<18:16>, capped at the CPU's range.
  static const unsigned kPs[8] = {32, 36, 40, 42, 44, 48, 52, 52};
  unsigned oa = kPs[bits(vtcr, 18, 16)];
  if (oa > pa_bits) oa = pa_bits;
  const bool ha = bits(vtcr, 21, 21) == 1;
  const bool hd = bits(vtcr, 22, 22) == 1;

  // Base: VTTBR<47:1>, aligned to the start level's table run.
  const unsigned start_bits = iasize - (below * s + gran);
  std::uint64_t table = bits(vttbr, 47, 1) << 1;
  table &= ~((8ULL << start_bits) - 1);

  int level = start;
  for (;;) {
    const unsigned lo = gran + s * static_cast<unsigned>(3 - level);
    const unsigned width = level == start ? start_bits : s;
    const std::uint64_t index = (ipa >> lo) & ((1ULL << width) - 1);
    const std::uint64_t where = table + index * 8;
    if (level == start && (where >> oa) != 0) return fault("address_size", 0);
    const std::uint64_t d = memory.read<std::uint64_t>(Hpa(where)).value_or(0);
    if ((d & 1) == 0) return fault("translation", level);
    const bool bit1 = (d & 2) != 0;
    if (level < 3 && bit1) {
      const std::uint64_t next = bits(d, 47, gran) << gran;
      if ((next >> oa) != 0) return fault("address_size", level);
      table = next;
      ++level;
      continue;
    }
    if (level == 3 && !bit1) return fault("translation", level);
    if (level < 3) {
      const bool legal = gran == 12 ? (level == 1 || level == 2) : level == 2;
      if (!legal) return fault("translation", level);
    }
    // Leaf.
    const std::uint64_t out = bits(d, 47, lo) << lo;
    if ((out >> oa) != 0) return fault("address_size", level);
    const bool af = ((d >> 10) & 1) != 0;
    if (!af && !ha) return fault("access_flag", level);
    const bool r = ((d >> 6) & 1) != 0;
    const bool w = ((d >> 7) & 1) != 0;
    const bool dbm = ((d >> 51) & 1) != 0;
    const bool xn = ((d >> 54) & 1) != 0;
    bool allowed = false;
    if (op == 'r') allowed = r;
    if (op == 'w') allowed = w || (ha && hd && dbm);
    if (op == 'x') allowed = !xn;
    if (!allowed) return fault("permission", level);
    std::uint64_t nd = d;
    if (ha) nd |= 1ULL << 10;
    if (op == 'w' && ha && hd && dbm) nd |= 1ULL << 7;
    if (nd != d) memory.write<std::uint64_t>(Hpa(where), nd);
    Outcome o;
    o.ok = true;
    o.block_size = 1ULL << lo;
    o.pa = out | (ipa & (o.block_size - 1));
    o.level = level;
    return o;
  }
}

std::string describe(const Outcome& o) {
  if (o.ok) return "ok pa=" + std::to_string(o.pa) + " size=" + std::to_string(o.block_size);
  return o.fault + "@" + std::to_string(o.level);
}

}  // namespace vmmu::arm64::reference
