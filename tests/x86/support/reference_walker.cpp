#include "x86/support/reference_walker.hpp"

#include <vector>

#include "x86/support/bits.hpp"

namespace vmmu::x86::test {
namespace {

constexpr bool has(std::uint64_t v, unsigned n) { return (v & bit(n)) != 0; }

// Any bit n with lo <= n <= hi set?
bool any_bit(std::uint64_t v, unsigned hi, unsigned lo) {
  for (unsigned n = lo; n <= hi; ++n) {
    if (has(v, n)) return true;
  }
  return false;
}

struct Used {
  std::uint64_t addr;
  unsigned size;  // 4 or 8
  bool has_a;     // PAE PDPTEs have no A bit
};

std::uint64_t load(SparseMemory<Gpa>& mem, std::uint64_t addr, unsigned size) {
  if (size == 4) return *mem.read<std::uint32_t>(Gpa(addr));
  return *mem.read<std::uint64_t>(Gpa(addr));
}
void store(SparseMemory<Gpa>& mem, std::uint64_t addr, unsigned size, std::uint64_t v) {
  if (size == 4) {
    mem.write<std::uint32_t>(Gpa(addr), static_cast<std::uint32_t>(v));
  } else {
    mem.write<std::uint64_t>(Gpa(addr), v);
  }
}

}  // namespace

RefResult reference_walk(const Registers& regs, const CpuModel& cpu, SparseMemory<Gpa>& mem, std::uint64_t gva,
                         Access access, bool update_ad) {
  RefResult r;
  const bool pg = has(regs.cr0, 31);
  const bool wp = has(regs.cr0, 16);
  const bool pse = has(regs.cr4, 4);
  const bool pae = has(regs.cr4, 5);
  const bool la57 = has(regs.cr4, 12);
  const bool smep = has(regs.cr4, 20);
  const bool smap = has(regs.cr4, 21);
  const bool pke = has(regs.cr4, 22);
  const bool lma = pg && has(regs.efer, 8);
  const bool nxe = has(regs.efer, 11);
  const bool ac = has(regs.rflags, 18);
  const unsigned m = cpu.maxphyaddr;
  const bool write = access.kind == AccessKind::Write;
  const bool fetch = access.kind == AccessKind::Fetch;
  const bool user = access.user && !access.implicit_supervisor;

  if (!pg) {
    r.ok = true;
    r.gpa = gva & 0xffffffffULL;
    r.page_size = 4096;
    return r;
  }
  const bool nx_on = nxe && (pae || lma);
  std::uint32_t base_code = 0;
  if (write) base_code |= 2;
  if (user) base_code |= 4;
  if (fetch && (smep || nx_on)) base_code |= 16;

  std::vector<Used> path;
  bool u_all = true, w_all = true, xd_any = false;
  std::uint64_t leaf = 0, pa = 0, size = 0;
  auto not_present = [&] {
    r.error_code = base_code;
    return r;
  };
  auto reserved = [&] {
    r.error_code = base_code | 1 | 8;
    return r;
  };
  // Bits at or above MAXPHYADDR up to `hi`.
  auto above_m = [&](std::uint64_t e, unsigned hi) { return m <= hi && any_bit(e, hi, m); };
  auto take = [&](std::uint64_t e) {
    u_all = u_all && has(e, 2);
    w_all = w_all && has(e, 1);
    xd_any = xd_any || (nx_on && has(e, 63));
  };

  if (lma) {
    const unsigned levels = la57 ? 5 : 4;
    const unsigned width = la57 ? 57 : 48;
    // Canonical: bits 63:width-1 all equal.
    const bool top = has(gva, width - 1);
    for (unsigned n = width; n < 64; ++n) {
      if (has(gva, n) != top) {
        r.gp = true;
        return r;
      }
    }
    std::uint64_t table = regs.cr3 & 0x000ffffffffff000ULL;
    if (m < 52) table &= bit(m) - 1;
    for (unsigned level = levels; level >= 1; --level) {
      const unsigned shift = 12 + 9 * (level - 1);
      const std::uint64_t addr = table + ((gva >> shift) & 511) * 8;
      const std::uint64_t e = load(mem, addr, 8);
      if (!has(e, 0)) return not_present();
      if (above_m(e, 51)) return reserved();
      if (has(e, 63) && !nxe) return reserved();
      const bool ps = has(e, 7);
      if (level >= 4 && ps) return reserved();
      if (level == 3 && ps && (!cpu.pages_1g || any_bit(e, 29, 13))) return reserved();
      if (level == 2 && ps && any_bit(e, 20, 13)) return reserved();
      path.push_back({addr, 8, true});
      take(e);
      if (level == 1 || ((level == 2 || level == 3) && ps)) {
        leaf = e;
        size = std::uint64_t{1} << shift;
        pa = (e & 0x000ffffffffff000ULL & ~(size - 1)) | (gva & (size - 1));
        break;
      }
      table = e & 0x000ffffffffff000ULL;
    }
  } else if (pae) {
    gva &= 0xffffffffULL;
    const std::uint64_t pdpte_addr = (regs.cr3 & 0xffffffe0ULL) + ((gva >> 30) & 3) * 8;
    const std::uint64_t pdpte = load(mem, pdpte_addr, 8);
    if (!has(pdpte, 0)) return not_present();
    if (has(pdpte, 1) || has(pdpte, 2) || any_bit(pdpte, 8, 5) || above_m(pdpte, 63)) return reserved();
    path.push_back({pdpte_addr, 8, false});
    std::uint64_t table = pdpte & 0x000ffffffffff000ULL;
    for (unsigned level = 2; level >= 1; --level) {
      const unsigned shift = 12 + 9 * (level - 1);
      const std::uint64_t addr = table + ((gva >> shift) & 511) * 8;
      const std::uint64_t e = load(mem, addr, 8);
      if (!has(e, 0)) return not_present();
      if (above_m(e, 62)) return reserved();
      if (has(e, 63) && !nxe) return reserved();
      const bool ps = level == 2 && has(e, 7);
      if (ps && any_bit(e, 20, 13)) return reserved();
      path.push_back({addr, 8, true});
      take(e);
      if (level == 1 || ps) {
        leaf = e;
        size = std::uint64_t{1} << shift;
        pa = (e & 0x000ffffffffff000ULL & ~(size - 1)) | (gva & (size - 1));
        break;
      }
      table = e & 0x000ffffffffff000ULL;
    }
  } else {
    gva &= 0xffffffffULL;
    const std::uint64_t pde_addr = (regs.cr3 & 0xfffff000ULL) + (gva >> 22) * 4;
    const std::uint64_t pde = load(mem, pde_addr, 4);
    if (!has(pde, 0)) return not_present();
    if (pse && has(pde, 7)) {
      // 4 MiB page: bit 21 reserved; bits 20:13 are PA bits 39:32 up to min(M, 40) (PSE-36).
      const unsigned top = cpu.pse36 ? (m < 40 ? m : 40) : 32;
      if (has(pde, 21)) return reserved();
      for (unsigned n = 13; n <= 20; ++n) {
        if (has(pde, n) && n - 13 + 32 >= top) return reserved();
      }
      path.push_back({pde_addr, 4, true});
      take(pde);
      leaf = pde;
      size = 4ULL << 20;
      pa = (pde & 0xffc00000ULL) | (((pde >> 13) & 0xff) << 32) | (gva & (size - 1));
    } else {
      path.push_back({pde_addr, 4, true});
      take(pde);
      const std::uint64_t pte_addr = (pde & 0xfffff000ULL) + ((gva >> 12) & 1023) * 4;
      const std::uint64_t pte = load(mem, pte_addr, 4);
      if (!has(pte, 0)) return not_present();
      path.push_back({pte_addr, 4, true});
      take(pte);
      leaf = pte;
      size = 4096;
      pa = (pte & 0xfffff000ULL) | (gva & 0xfff);
    }
  }

  // Permissions (Intel SDM 4.6).
  bool fault = false;
  if (user) {
    if (!u_all || (write && !w_all) || (fetch && xd_any)) fault = true;
  } else {
    if (write && !w_all && wp) fault = true;
    if (fetch && xd_any) fault = true;
    if (fetch && u_all && smep) fault = true;
    if (!fetch && u_all && smap && (access.implicit_supervisor || !ac)) fault = true;
  }
  bool pk = false;
  if (lma && pke && u_all && !fetch) {
    const unsigned key = static_cast<unsigned>((leaf >> 59) & 15);
    const bool ad = has(regs.pkru, 2 * key);
    const bool wd = has(regs.pkru, 2 * key + 1);
    if (ad || (write && wd && (user || wp))) pk = true;
  }
  if (fault || pk) {
    r.error_code = base_code | 1 | (pk ? 32u : 0u);
    return r;
  }
  if (update_ad) {
    for (std::size_t i = 0; i < path.size(); ++i) {
      if (!path[i].has_a) continue;
      std::uint64_t e = load(mem, path[i].addr, path[i].size);
      e |= bit(5);
      if (i + 1 == path.size() && write) e |= bit(6);
      store(mem, path[i].addr, path[i].size, e);
    }
  }
  r.ok = true;
  r.gpa = pa;
  r.page_size = size;
  return r;
}

RefEptResult reference_ept_walk(std::uint64_t eptp, const EptCapabilities& caps, SparseMemory<Hpa>& mem,
                                std::uint64_t gpa, AccessKind kind) {
  RefEptResult r;
  const unsigned n = caps.maxphyaddr;
  const std::uint64_t type = eptp & 7;
  const std::uint64_t length = ((eptp >> 3) & 7) + 1;
  const bool ad = has(eptp, 6);
  bool valid = type == 0 || type == 6;
  if (!((length == 4 && caps.four_level) || (length == 5 && caps.five_level))) valid = false;
  if (any_bit(eptp, 11, 7)) valid = false;
  if (n < 64 && any_bit(eptp, 63, n)) valid = false;
  if (ad && !caps.accessed_dirty) valid = false;
  if (!valid) {
    r.kind = RefEptResult::InvalidEptp;
    return r;
  }
  const unsigned levels = static_cast<unsigned>(length);
  std::uint64_t table = eptp & 0x000ffffffffff000ULL;
  bool rd = true, wr = true, ex = true;
  std::vector<std::uint64_t> used;
  std::uint64_t leaf = 0, size = 0;
  for (unsigned level = levels; level >= 1; --level) {
    const unsigned shift = 12 + 9 * (level - 1);
    const std::uint64_t addr = table + ((gpa >> shift) & 511) * 8;
    const std::uint64_t e = *mem.read<std::uint64_t>(Hpa(addr));
    rd = rd && has(e, 0);
    wr = wr && has(e, 1);
    ex = ex && has(e, 2);
    const std::uint64_t rwx = e & 7;
    if (rwx == 0) break;  // not present: violation below
    // Misconfiguration (SDM 29.3.3.1).
    if (rwx == 2 || rwx == 6) return r.kind = RefEptResult::Misconfig, r;
    if (rwx == 4 && !caps.execute_only) return r.kind = RefEptResult::Misconfig, r;
    if (n <= 51 && any_bit(e, 51, n)) return r.kind = RefEptResult::Misconfig, r;
    const bool ps = has(e, 7);
    bool is_leaf = level == 1;
    if (level == levels) {
      if (any_bit(e, 7, 3)) return r.kind = RefEptResult::Misconfig, r;
    } else if (level > 1) {
      if (ps) {
        const bool allowed = (level == 2 && caps.pages_2m) || (level == 3 && caps.pages_1g);
        if (!allowed) return r.kind = RefEptResult::Misconfig, r;
        if (level == 2 && any_bit(e, 20, 12)) return r.kind = RefEptResult::Misconfig, r;
        if (level == 3 && any_bit(e, 29, 12)) return r.kind = RefEptResult::Misconfig, r;
        is_leaf = true;
      } else if (any_bit(e, 6, 3)) {
        return r.kind = RefEptResult::Misconfig, r;
      }
    }
    if (is_leaf) {
      const std::uint64_t mt = (e >> 3) & 7;
      if (mt == 2 || mt == 3 || mt == 7) return r.kind = RefEptResult::Misconfig, r;
    }
    used.push_back(addr);
    if (is_leaf) {
      leaf = e;
      size = std::uint64_t{1} << shift;
      break;
    }
    table = e & 0x000ffffffffff000ULL;
  }
  const bool allowed = size != 0 && (kind == AccessKind::Read ? rd : kind == AccessKind::Write ? wr : ex);
  if (!allowed) {
    r.kind = RefEptResult::Violation;
    r.exit_qualification = (kind == AccessKind::Read ? 1u : kind == AccessKind::Write ? 2u : 4u) |
                           (rd ? 8u : 0u) | (wr ? 16u : 0u) | (ex ? 32u : 0u) | 0x180u;
    return r;
  }
  if (ad) {
    for (std::size_t i = 0; i < used.size(); ++i) {
      std::uint64_t e = *mem.read<std::uint64_t>(Hpa(used[i]));
      e |= bit(8);
      if (i + 1 == used.size() && kind == AccessKind::Write) e |= bit(9);
      mem.write<std::uint64_t>(Hpa(used[i]), e);
    }
  }
  r.pa = (leaf & 0x000ffffffffff000ULL & ~(size - 1)) | (gpa & (size - 1));
  r.page_size = size;
  return r;
}

}  // namespace vmmu::x86::test
