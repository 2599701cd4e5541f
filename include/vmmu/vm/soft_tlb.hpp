#pragma once
// SoftTlb: a vCPU's guest TLB -- gva page -> gpa page with the walk's rights, direct-mapped.
//
//   index = vpn % 64 ──► [ vpn | gfn | pcid | leaf size | rights | key | G | D | PKE ]
//
// Like a hardware TLB it caches what the walk found (rights ANDed over the path, protection
// key, global bit), not the verdict: the vCPU checks an access against its *current* role on
// every hit, so CR0.WP / CR4.SMEP / CR4.SMAP / PKRU / RFLAGS.AC changes need no flush. A hit
// that is refused, or a write through an entry whose dirty bit the walk did not set, goes
// back to the walk (which then sets D or raises the exact #PF), as hardware re-walks then.
//
// A guest huge page is cached one 4 KiB piece at a time (as many TLBs split large pages);
// the entry keeps the leaf size so INVLPG drops every piece of the page it names.
// Owned by one vCPU thread: no synchronisation.

#include <array>
#include <cstddef>
#include <cstdint>

namespace vmmu::vm {

struct TlbEntry {
  std::uint64_t vpn = 0;     // linear address >> 12
  std::uint64_t gfn = 0;     // guest frame of that 4 KiB piece
  std::uint16_t pcid = 0;    // PCID it was filled under (ignored for global entries)
  std::uint8_t size_shift = 0;  // log2(guest leaf bytes) - 12: 0 (4K), 9 (2M), 10 (4M), 18 (1G)
  std::uint8_t rights = 0;   // x86::gpte::kAcc* of the walk
  std::uint8_t key = 0;      // protection key (0 unless CR4.PKE)
  bool global = false;       // G set in the leaf and CR4.PGE on
  bool dirty = false;        // the walk set D (a write filled it): writes may hit
  bool pke = false;          // CR4.PKE when filled: the key is meaningless under the other value
  bool valid = false;
};

// Which entries a flush drops.
enum class TlbScope : std::uint8_t {
  NonGlobal,  // the given PCID's non-global entries (MOV to CR3)
  Pcid,       // every entry the given PCID may use: its own and every global one
  All,        // everything
  NonGlobalAll,  // every PCID's non-global entries (INVPCID type 3)
};

class SoftTlb {
 public:
  static constexpr std::size_t kEntries = 64;

  // The entry for `vpn` usable by `pcid` (its own, or a global one), or null.
  [[nodiscard]] const TlbEntry* lookup(std::uint64_t vpn, std::uint16_t pcid) const {
    const TlbEntry& e = entries_[vpn % kEntries];
    if (!e.valid || e.vpn != vpn || (!e.global && e.pcid != pcid)) return nullptr;
    return &e;
  }
  // Replaces whatever shares the entry's slot.
  void insert(const TlbEntry& e) {
    TlbEntry& slot = entries_[e.vpn % kEntries];
    slot = e;
    slot.valid = true;
  }
  // Drops the entry for `vpn` whatever its PCID (a fault invalidates the faulting address).
  void drop(std::uint64_t vpn);
  // INVLPG (SDM 4.10.4.1): every piece of the page containing `vpn` for `pcid`, and global
  // ones whatever their PCID. Returns entries dropped.
  std::size_t invalidate_page(std::uint64_t vpn, std::uint16_t pcid);
  // INVPCID individual-address: the non-global pieces of that page for `pcid` only.
  std::size_t invalidate_pcid_page(std::uint64_t vpn, std::uint16_t pcid);
  // Returns entries dropped.
  std::size_t flush(TlbScope scope, std::uint16_t pcid);

  [[nodiscard]] std::size_t size() const;            // valid entries
  [[nodiscard]] std::size_t global_entries() const;  // valid global entries

 private:
  std::array<TlbEntry, kEntries> entries_{};
};

}  // namespace vmmu::vm
