#pragma once
// An L1 on memslots for the dirty-logging tests: slot 1 (L1 gfn 0, 4 MiB) holds L1's 4-level
// EPT and L2's 4 KiB data frames; slot 2 (L1 gfn 0x400, 2 MiB) is the frames of one 2 MiB L1
// leaf. L1's EPT (written by L1's own stores before the MMU sees it):
//   L2 page i < 512            -> L1 frame kSmall + (i * 7) % 512   (PT at kPt, 4 KiB leaves)
//   L2 0x200000 + j * 4 KiB    -> L1 frame kHuge + j                (PD[1], one 2 MiB leaf)

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "nested/support/l1_ept.hpp"
#include "tdp/support/tdp_fixture.hpp"
#include "vmmu/memory/memslots.hpp"
#include "vmmu/nested/shadow_ept_mmu.hpp"

namespace vmmu::nested::test {

inline constexpr std::uint64_t kSmall = 0x200, kHuge = 0x400;  // L1 gfns
inline constexpr std::uint64_t kL2Pages = 1024;                 // 512 small, then 512 in the huge leaf

struct SlotL1 {
  vmmu::test::HostMemory small{std::uint64_t{4} << 20}, huge{std::uint64_t{2} << 20};
  Memslots slots;
  std::unique_ptr<ShadowEptMmu> mmu;
  ShadowEptVcpu vcpu;  // declared last: released before the MMU goes

  explicit SlotL1(bool ad) {
    if (!slots.add({SlotId{1}, Gfn(0), small.pages(), small.data(), MemslotFlags::none()})) std::abort();
    if (!slots.add({SlotId{2}, Gfn(kHuge), huge.pages(), huge.data(), MemslotFlags::none()})) std::abort();
    poke(kPml4, kPdpt | kTable);
    poke(kPdpt, kPd | kTable);
    poke(kPd, kPt | kTable);
    poke(kPd + 8, (kHuge << 12) | kRwx | kWb | ept::PS::mask);
    for (std::uint64_t i = 0; i < 512; ++i) poke(kPt + i * 8, (l1_frame(i) << 12) | kRwx | kWb);
    mmu = ShadowEptMmu::create(slots, x86::EptCapabilities{.maxphyaddr = 46});
    eptp = eptp_for(kPml4, ad);
    if (!mmu->load_eptp(vcpu, eptp)) std::abort();
  }
  // The L1 frame behind L2 page `i` (< kL2Pages), from the layout above (not from the MMU).
  static std::uint64_t l1_frame(std::uint64_t i) { return i < 512 ? kSmall + (i * 7) % 512 : kHuge + (i - 512); }
  static std::uint64_t l2_gpa(std::uint64_t i) { return i << 12; }
  // L1's entry mapping L2 page `i`: its PT entry, or PD[1] for the huge leaf.
  static std::uint64_t l1_leaf(std::uint64_t i) { return i < 512 ? kPt + i * 8 : kPd + 8; }

  // L1's memory, as L1's own stores and loads (slot 1: the tables).
  void poke(std::uint64_t gpa, std::uint64_t v) { word(gpa).store(v); }
  [[nodiscard]] std::uint64_t peek(std::uint64_t gpa) { return word(gpa).load(); }
  std::atomic_ref<std::uint64_t> word(std::uint64_t gpa) {
    return std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(small.data() + gpa));  // NOLINT
  }

  // L2 stores `v` at the start of its page `i` through the shadow EPT; false on an exit.
  bool l2_write(std::uint64_t i, std::uint64_t v) {
    const L2Access a = mmu->access(vcpu, Gpa(l2_gpa(i)), AccessKind::Write);
    if (!a || a->emulate) return false;
    std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(a->host.raw())).store(v);  // NOLINT
    return true;
  }

  std::uint64_t eptp = 0;
};

inline bool dirty_bit(const std::vector<std::uint64_t>& bits, std::uint64_t page) {
  return (bits[page / 64] >> (page % 64)) & 1;
}

}  // namespace vmmu::nested::test
