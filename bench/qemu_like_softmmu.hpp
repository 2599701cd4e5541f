#pragma once
// A comparison baseline for walk_bench, NOT QEMU code: a re-implementation of the path QEMU's
// TCG takes when an x86-64 guest's load misses the softmmu TLB (accel/tcg/cputlb.c and
// target/i386/tcg/sysemu/excp_helper.c, QEMU 8-9), reduced to what a warm miss executes:
//
//   mmu_lookup1: direct-mapped TLB of the access's MMU index (256 entries) misses,
//                victim TLB (8 entries) searched
//   tlb_fill -> get_physical_address: pg_mode recomputed from CR0/CR4/EFER,
//               mmu_translate: per level, the entry's physical address translated through the
//               TLB of the physical MMU index (probe_access_full, a hit here), a plain load,
//               present / reserved checks, A bit set by cmpxchg unless already set,
//               protection bits combined as `ptep &= pte ^ NX`; then prot, PKRU, the leaf's
//               A (and D) bits
//   tlb_set_page_full: the memory region of the physical page (the dispatch's MRU section),
//               its RAM pointer and dirty bitmap, the TLB lock, the victim TLB flushed of the
//               page, the old entry moved to the victim TLB, the new entry and its full entry
//
// Left out (so this is a lower bound of QEMU's cost): the helper call from translated code,
// watchpoints, the I/O TLB, large-page tracking, statistics.

#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <utility>

namespace vmmu::bench::qemu_like {

inline constexpr std::uint64_t kPageMask = ~std::uint64_t{0xfff};
inline constexpr std::uint64_t kAddressMask = 0x000f'ffff'ffff'f000ULL;  // PG_ADDRESS_MASK
inline constexpr std::uint64_t kPresent = 1, kRw = 2, kUser = 4, kAccessed = 0x20, kDirty = 0x40, kPse = 0x80;
inline constexpr std::uint64_t kNx = 1ULL << 63;
inline constexpr unsigned kRead = 1, kWrite = 2, kExec = 4;  // PAGE_READ / WRITE / EXEC
inline constexpr std::uint64_t kEmpty = ~std::uint64_t{0};

struct TlbEntry {  // CPUTLBEntry
  std::uint64_t addr_read = kEmpty, addr_write = kEmpty, addr_code = kEmpty;
  std::uintptr_t addend = 0;
};
struct TlbEntryFull {  // CPUTLBEntryFull, the fields a RAM page uses
  std::uint64_t xlat_section = 0, phys_addr = 0;
  std::uint8_t prot = 0, lg_page_size = 0;
};
struct Tlb {  // CPUTLBDesc + CPUTLBDescFast of one MMU index
  static constexpr unsigned kBits = 8, kVictims = 8;
  std::array<TlbEntry, 1u << kBits> table{};
  std::array<TlbEntryFull, 1u << kBits> full{};
  std::array<TlbEntry, kVictims> victim{};
  std::array<TlbEntryFull, kVictims> victim_full{};
  unsigned vindex = 0, used = 0;
  static unsigned index(std::uint64_t addr) { return static_cast<unsigned>((addr >> 12) & ((1u << kBits) - 1)); }
};
struct Section {  // the one RAM MemoryRegionSection / RAMBlock of the guest
  std::uint64_t base = 0, size = 0;
  std::byte* host = nullptr;
  const std::uint8_t* dirty = nullptr;  // the migration dirty bitmap, one byte per page here
};

// One vCPU of the emulated guest: its registers, a data TLB and the physical-index TLB.
class Cpu {
 public:
  Cpu(Section ram, std::uint64_t cr0, std::uint64_t cr3, std::uint64_t cr4, std::uint64_t efer, unsigned phys_bits)
      : ram_(ram), cr0_(cr0), cr3_(cr3), cr4_(cr4), efer_(efer), phys_bits_(phys_bits) {}

  // A 64-bit user load: the softmmu lookup, and on a miss the fill. nullopt: a fault.
  std::optional<std::uint64_t> load(std::uint64_t addr) {
    TlbEntry* e = &data_.table[Tlb::index(addr)];
    if ((e->addr_read & kPageMask) != (addr & kPageMask)) {
      if (!victim_hit(data_, addr) && !fill(data_, addr, kRead, /*user=*/true)) return std::nullopt;
      e = &data_.table[Tlb::index(addr)];
    }
    return *reinterpret_cast<const std::uint64_t*>(e->addend + addr);
  }
  // tlb_flush_page for one MMU index: the page leaves the TLB and the victim TLB.
  void flush_page(std::uint64_t addr) {
    const std::uint64_t page = addr & kPageMask;
    TlbEntry& e = data_.table[Tlb::index(addr)];
    if ((e.addr_read & kPageMask) == page) e = TlbEntry{};
    for (TlbEntry& v : data_.victim) {
      if ((v.addr_read & kPageMask) == page) v = TlbEntry{};
    }
  }

 private:
  static bool victim_hit(Tlb& tlb, std::uint64_t addr) {
    const std::uint64_t page = addr & kPageMask;
    for (unsigned i = 0; i < Tlb::kVictims; ++i) {
      if ((tlb.victim[i].addr_read & kPageMask) == page) {
        const unsigned index = Tlb::index(addr);
        std::swap(tlb.victim[i], tlb.table[index]);
        std::swap(tlb.victim_full[i], tlb.full[index]);
        return true;
      }
    }
    return false;
  }

  // probe_access_full on the physical index: the host pointer of a page-table entry.
  std::uint64_t* pte_host(std::uint64_t paddr) {
    TlbEntry* e = &phys_.table[Tlb::index(paddr)];
    if ((e->addr_write & kPageMask) != (paddr & kPageMask)) {
      if (!victim_hit(phys_, paddr)) set_page(phys_, paddr, paddr, kRead | kWrite | kExec, 12);
      e = &phys_.table[Tlb::index(paddr)];
    }
    return reinterpret_cast<std::uint64_t*>(e->addend + paddr);
  }
  static bool set_bits(std::uint64_t* pte, std::uint64_t old, std::uint64_t set) {  // ptw_setl
    if ((set & ~old) == 0) return true;
    auto expected = static_cast<std::uint32_t>(old);
    return std::atomic_ref<std::uint32_t>(*reinterpret_cast<std::uint32_t*>(pte))
        .compare_exchange_strong(expected, static_cast<std::uint32_t>(old | set));
  }

  bool fill(Tlb& tlb, std::uint64_t addr, unsigned access, bool user) {
    // get_pg_mode()
    const bool pae = (cr4_ & 0x20) != 0, lma = (efer_ & 0x400) != 0, nxe = (efer_ & 0x800) != 0;
    const bool wp = (cr0_ & 0x10000) != 0, smep = (cr4_ & 0x100000) != 0, la57 = (cr4_ & 0x1000) != 0;
    if ((cr0_ & 0x80000000) == 0 || !pae || !lma) return false;  // only 4/5-level paging here
    for (;;) {  // restart_all
      std::uint64_t rsvd = ~((std::uint64_t{1} << phys_bits_) - 1) & kAddressMask;
      if (!nxe) rsvd |= kNx;
      std::uint64_t table = cr3_ & kAddressMask, ptep = kNx | kUser | kRw, pte = 0, size = 0;
      std::uint64_t* host = nullptr;
      for (unsigned level = la57 ? 5 : 4; level >= 1; --level) {
        const unsigned shift = 12 + 9 * (level - 1);
        std::uint64_t* at = nullptr;
        do {  // restart_N
          at = pte_host(table + ((addr >> shift) & 0x1ff) * 8);
          pte = *at;
          if ((pte & kPresent) == 0) return false;
          if ((pte & (rsvd | (level >= 4 ? kPse : 0))) != 0) return false;
        } while (!((level <= 3 && (pte & kPse) != 0) || level == 1 || set_bits(at, pte, kAccessed)));
        ptep &= pte ^ kNx;
        host = at;
        if (level == 1 || (pte & kPse) != 0) {
          size = std::uint64_t{1} << shift;
          break;
        }
        table = pte & kAddressMask;
      }
      rsvd |= (size - 1) & kAddressMask & ~std::uint64_t{0x1000};  // do_check_protect
      if ((pte & rsvd) != 0) return false;
      ptep ^= kNx;
      if (user && (ptep & kUser) == 0) return false;
      unsigned prot = kRead;
      if ((ptep & kRw) != 0 || !(user || wp)) prot |= kWrite;
      if ((ptep & kNx) == 0 && (user || !(smep && (ptep & kUser) != 0))) prot |= kExec;
      if ((prot & access) == 0) return false;
      std::uint64_t set = kAccessed;
      if (access == kWrite) {
        set |= kDirty;
      } else if ((pte & kDirty) == 0) {
        prot &= ~kWrite;  // writable only once dirty
      }
      if (!set_bits(host, pte, set)) continue;
      const std::uint64_t paddr = (pte & kAddressMask & ~(size - 1)) | (addr & (size - 1));
      set_page(tlb, addr & kPageMask, paddr & kPageMask, prot, static_cast<std::uint8_t>(std::countr_zero(size)));
      return true;
    }
  }

  void set_page(Tlb& tlb, std::uint64_t vaddr, std::uint64_t paddr, unsigned prot, std::uint8_t lg_page_size) {
    // address_space_translate_for_iotlb: the MRU section covers the page.
    if (paddr - ram_.base >= ram_.size) return;
    const std::uint64_t xlat = paddr - ram_.base;
    const std::uintptr_t addend = reinterpret_cast<std::uintptr_t>(ram_.host) + xlat;
    std::uint64_t write_flags = 0;
    if ((prot & kWrite) != 0 && ram_.dirty[xlat >> 12] == 0) write_flags = 1ULL << 11;  // TLB_NOTDIRTY
    while (lock_.test_and_set(std::memory_order_acquire)) {
    }
    for (TlbEntry& v : tlb.victim) {  // tlb_flush_vtlb_page_locked
      if ((v.addr_read & kPageMask) == vaddr || (v.addr_write & kPageMask) == vaddr) v = TlbEntry{};
    }
    const unsigned index = Tlb::index(vaddr);
    TlbEntry& te = tlb.table[index];
    if ((te.addr_read & kPageMask) != vaddr && te.addr_read != kEmpty) {
      const unsigned vidx = tlb.vindex++ % Tlb::kVictims;
      tlb.victim[vidx] = te;
      tlb.victim_full[vidx] = tlb.full[index];
      --tlb.used;
    }
    tlb.full[index] = TlbEntryFull{xlat - vaddr, paddr, static_cast<std::uint8_t>(prot), lg_page_size};
    TlbEntry tn;
    tn.addend = addend - vaddr;
    tn.addr_code = (prot & kExec) != 0 ? vaddr : kEmpty;
    tn.addr_read = (prot & kRead) != 0 ? vaddr : kEmpty;
    tn.addr_write = (prot & kWrite) != 0 ? vaddr | write_flags : kEmpty;
    te = tn;
    ++tlb.used;
    lock_.clear(std::memory_order_release);
  }

  Section ram_;
  std::uint64_t cr0_, cr3_, cr4_, efer_;
  unsigned phys_bits_;
  Tlb data_, phys_;
  std::atomic_flag lock_ = ATOMIC_FLAG_INIT;
};

}  // namespace vmmu::bench::qemu_like
