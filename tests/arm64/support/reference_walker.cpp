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

  // 52-bit descriptors: DS = VTCR<32> for 4K and 16K (FEAT_LPA2; the 52-bit CPU has it);
  // FEAT_LPA for 64K whenever the CPU's PA range is 52 bits.
  const bool ds = gran != 16 && bits(vtcr, 32, 32) == 1;
  const bool lpa64 = gran == 16 && pa_bits == 52;
  const bool wide = ds || lpa64;

  // T0SZ = VTCR<5:0>; without FEAT_TTST the legal range is 16..39, from 12 with 52-bit
  // descriptors.
  const unsigned t0sz = static_cast<unsigned>(bits(vtcr, 5, 0));
  if (t0sz < (wide ? 12u : 16u) || t0sz > 39) return fault("translation", 0);
  const unsigned iasize = 64 - t0sz;

  // SL0 = VTCR<7:6>, SL2 = VTCR<33>.
  const unsigned sl0 = static_cast<unsigned>(bits(vtcr, 7, 6));
  const bool sl2 = bits(vtcr, 33, 33) == 1;
  int start = 0;
  if (gran == 12) {
    if (sl2) {
      if (!ds || sl0 != 0) return fault("translation", 0);
      start = -1;
    } else if (sl0 == 0) start = 2;
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
    } else if (gran == 14 && ds) {
      start = 0;
    } else {
      return fault("translation", 0);
    }
  }
  const unsigned below = static_cast<unsigned>(3 - start);
  const unsigned lowest = below * s + gran + 1;
  if (iasize < lowest || iasize > lowest + s - 1 + 4) return fault("translation", 0);
  if (iasize < 64 && (ipa >> iasize) != 0) return fault("translation", 0);

  // PS = VTCR<18:16>, capped at the CPU's range, and at 48 bits when the descriptors
  // cannot carry more.
  static const unsigned kPs[8] = {32, 36, 40, 42, 44, 48, 52, 52};
  const unsigned ps = kPs[bits(vtcr, 18, 16)];
  unsigned oa = ps;
  if (oa > pa_bits) oa = pa_bits;
  if (!wide && oa > 48) oa = 48;
  const bool ha = bits(vtcr, 21, 21) == 1;
  const bool hd = bits(vtcr, 22, 22) == 1;

  // Base: VTTBR<47:1>, aligned to the start level's table run; with DS, or 64K and PS = 52,
  // VTTBR<5:2> are base bits 51:48 and the run is at least 64-byte aligned.
  const unsigned start_bits = iasize - (below * s + gran);
  std::uint64_t table = bits(vttbr, 47, 1) << 1;
  std::uint64_t run = 8ULL << start_bits;
  if (ds || (lpa64 && ps == 52)) {
    table = (bits(vttbr, 47, 6) << 6) | (bits(vttbr, 5, 2) << 48);
    if (run < 64) run = 64;
  }
  table &= ~(run - 1);

  // Address held by descriptor d from bit `low` up.
  auto address = [&](std::uint64_t d, unsigned low) {
    if (ds) return (bits(d, 49, low) << low) | (bits(d, 9, 8) << 50);
    if (lpa64) return (bits(d, 47, low) << low) | (bits(d, 15, 12) << 48);
    return bits(d, 47, low) << low;
  };

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
      const std::uint64_t next = address(d, gran);
      if ((next >> oa) != 0) return fault("address_size", level);
      table = next;
      ++level;
      continue;
    }
    if (level == 3 && !bit1) return fault("translation", level);
    if (level < 3) {
      bool legal = level == 2;
      if (gran == 12) legal = legal || level == 1 || (ds && level == 0);
      if (gran == 14) legal = legal || (ds && level == 1);
      if (gran == 16) legal = legal || (lpa64 && level == 1);
      if (!legal) return fault("translation", level);
    }
    // Leaf.
    const std::uint64_t out = address(d, lo);
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
