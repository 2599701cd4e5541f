// SoftTlb on its own: lookup by PCID and global bit, the three flush scopes, INVLPG over the
// pieces of a huge page, and a random comparison against a plain list of entries.

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <random>

#include "vmmu/vm/soft_tlb.hpp"

namespace vmmu::vm {
namespace {

TlbEntry entry(std::uint64_t vpn, std::uint16_t pcid, bool global, std::uint8_t size_shift = 0) {
  TlbEntry e;
  e.vpn = vpn;
  e.gfn = vpn + 0x100;
  e.pcid = pcid;
  e.global = global;
  e.size_shift = size_shift;
  return e;
}

TEST(SoftTlb, LookupMatchesOwnPcidOrGlobal) {
  SoftTlb tlb;
  tlb.insert(entry(5, 1, false));
  tlb.insert(entry(6, 1, true));
  EXPECT_NE(tlb.lookup(5, 1), nullptr);
  EXPECT_EQ(tlb.lookup(5, 2), nullptr);
  EXPECT_NE(tlb.lookup(6, 2), nullptr);  // global: any PCID
  EXPECT_EQ(tlb.lookup(5 + SoftTlb::kEntries, 1), nullptr);  // same slot, other tag
  tlb.insert(entry(5 + SoftTlb::kEntries, 1, false));       // evicts 5
  EXPECT_EQ(tlb.lookup(5, 1), nullptr);
  EXPECT_EQ(tlb.lookup(5 + SoftTlb::kEntries, 1)->gfn, 5 + SoftTlb::kEntries + 0x100);
}

TEST(SoftTlb, FlushScopes) {
  auto fill = [](SoftTlb& t) {
    t.insert(entry(1, 0, false));
    t.insert(entry(2, 0, true));
    t.insert(entry(3, 7, false));
    t.insert(entry(4, 7, true));
  };
  SoftTlb tlb;
  fill(tlb);
  EXPECT_EQ(tlb.flush(TlbScope::NonGlobal, 0), 1u);  // entry 1 only
  EXPECT_EQ(tlb.size(), 3u);
  EXPECT_EQ(tlb.global_entries(), 2u);
  EXPECT_NE(tlb.lookup(3, 7), nullptr);

  SoftTlb pcid;
  fill(pcid);
  EXPECT_EQ(pcid.flush(TlbScope::Pcid, 7), 3u);  // 3 and both globals
  EXPECT_NE(pcid.lookup(1, 0), nullptr);
  EXPECT_EQ(pcid.size(), 1u);

  SoftTlb all;
  fill(all);
  EXPECT_EQ(all.flush(TlbScope::All, 0), 4u);
  EXPECT_EQ(all.size(), 0u);

  SoftTlb nonglobal;  // INVPCID type 3
  fill(nonglobal);
  EXPECT_EQ(nonglobal.flush(TlbScope::NonGlobalAll, 0), 2u);  // 1 and 3, of both PCIDs
  EXPECT_EQ(nonglobal.global_entries(), 2u);
  EXPECT_EQ(nonglobal.size(), 2u);
}

TEST(SoftTlb, InvpcidOfOneAddressSparesGlobalsAndOtherPcids) {
  SoftTlb tlb;
  tlb.insert(entry(1, 5, false));
  tlb.insert(entry(2, 5, true));
  EXPECT_EQ(tlb.invalidate_pcid_page(1, 6), 0u);  // another PCID's entry
  EXPECT_EQ(tlb.invalidate_pcid_page(2, 5), 0u);  // a global one
  EXPECT_EQ(tlb.invalidate_pcid_page(1, 5), 1u);
  EXPECT_EQ(tlb.lookup(1, 5), nullptr);
  EXPECT_NE(tlb.lookup(2, 5), nullptr);
}

TEST(SoftTlb, InvlpgDropsEveryPieceOfAHugePage) {
  SoftTlb tlb;
  // Three 4K pieces of one 2M page (vpn 512..1023), one piece of the next 2M page, a 4K page,
  // all in different slots.
  tlb.insert(entry(513, 0, false, 9));
  tlb.insert(entry(600, 0, false, 9));
  tlb.insert(entry(1023, 0, true, 9));
  tlb.insert(entry(1024, 0, false, 9));
  tlb.insert(entry(3, 0, false, 0));
  ASSERT_EQ(tlb.size(), 5u);
  EXPECT_EQ(tlb.invalidate_page(700, 0), 3u);
  EXPECT_NE(tlb.lookup(1024, 0), nullptr);
  EXPECT_NE(tlb.lookup(3, 0), nullptr);
  // Another PCID's non-global piece survives, its global one does not.
  tlb.insert(entry(2049, 4, false, 0));
  tlb.insert(entry(2050, 4, true, 0));
  EXPECT_EQ(tlb.invalidate_page(2049, 0), 0u);
  EXPECT_EQ(tlb.invalidate_page(2050, 0), 1u);
  tlb.drop(3);
  EXPECT_EQ(tlb.lookup(3, 0), nullptr);
}

TEST(SoftTlb, RandomOperationsAgreeWithAModel) {
  // Model: the set of (slot -> entry) a direct-mapped cache must hold.
  std::mt19937_64 rng(42);
  SoftTlb tlb;
  std::map<std::size_t, TlbEntry> model;
  for (int step = 0; step < 20000; ++step) {
    const std::uint64_t vpn = rng() % 300;
    const auto pcid = static_cast<std::uint16_t>(rng() % 3);
    switch (rng() % 6) {
      case 0:
      case 1:
      case 2: {
        const TlbEntry e = entry(vpn, pcid, rng() % 4 == 0);
        tlb.insert(e);
        model[vpn % SoftTlb::kEntries] = e;
        break;
      }
      case 3: {
        const auto scope = static_cast<TlbScope>(rng() % 4);
        std::size_t dropped = 0;
        for (auto it = model.begin(); it != model.end();) {
          const TlbEntry& e = it->second;
          const bool drop = scope == TlbScope::All || (scope == TlbScope::Pcid && (e.global || e.pcid == pcid)) ||
                            (scope == TlbScope::NonGlobal && !e.global && e.pcid == pcid) ||
                            (scope == TlbScope::NonGlobalAll && !e.global);
          if (drop) {
            it = model.erase(it);
            ++dropped;
          } else {
            ++it;
          }
        }
        EXPECT_EQ(tlb.flush(scope, pcid), dropped);
        break;
      }
      default: {
        const auto it = model.find(vpn % SoftTlb::kEntries);
        const TlbEntry* got = tlb.lookup(vpn, pcid);
        const bool want = it != model.end() && it->second.vpn == vpn && (it->second.global || it->second.pcid == pcid);
        ASSERT_EQ(got != nullptr, want) << "step " << step;
        if (got != nullptr) {
          EXPECT_EQ(got->gfn, it->second.gfn);
        }
      }
    }
    ASSERT_EQ(tlb.size(), model.size());
  }
}

}  // namespace
}  // namespace vmmu::vm
