// Randomized differential test: thousands of random operations -- accesses, memslot changes
// (add, remove, move, flags, overlays), zaps, invalidations, splits, merges, aging, dirty
// logs -- against the simplest model of what the guest must see: every access reaches the
// memory the current memslots say (read directly from host memory), every dirty log reports
// exactly the pages written since the last one, and the MMU's invariants hold after each step.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

#include "tdp/support/tdp_fixture.hpp"
#include "vmmu/core/rcu.hpp"

namespace vmmu::tdp {
namespace {

using test::HostMemory;
using test::TdpVm;

using test::k2M;
constexpr std::uint64_t kSlotPages = 2 * 512;  // 4 MiB slots
constexpr unsigned kSlots = 3;

struct Model {
  std::map<std::uint32_t, MemslotSpec> slots;
  std::map<std::uint32_t, std::set<std::uint64_t>> dirty;  // slot -> pages written while logging
};

// The byte the guest must see at `gpa`, read straight from the memory the memslots name.
std::optional<std::uint64_t> direct_read(Memslots& slots, Gpa gpa) {
  rcu::ReadGuard g;
  const MemslotRegion* r = slots.find(gfn_of(gpa));
  if (r == nullptr) return std::nullopt;
  std::uint64_t v = 0;
  std::memcpy(&v, r->host_of(gfn_of(gpa)) + (gpa.raw() & (kPageSize - 1)), 8);
  return v;
}

void run(std::uint64_t seed, const TdpConfig& cfg) {
  std::mt19937_64 rng(seed);
  TdpVm vm(cfg);
  std::vector<std::unique_ptr<HostMemory>> ram;
  for (unsigned i = 0; i < kSlots; ++i) ram.push_back(std::make_unique<HostMemory>(kSlotPages * kPageSize, k2M));
  HostMemory overlay_ram(16 * kPageSize);
  Model model;
  std::vector<std::pair<OverlayId, std::uint32_t>> overlays;  // and the slot each lies in
  auto& v = vm.vcpu();
  auto pick_gfn = [&] { return Gfn(rng() % (8 * kSlotPages)); };  // slots live in [0, 32 MiB)
  std::uint64_t next_value = 1;

  for (int step = 0; step < 1500; ++step) {
    const unsigned op = static_cast<unsigned>(rng() % 100);
    std::string what;
    if (op < 40) {  // write
      const Gfn page = pick_gfn();  // one statement per draw: the order is the same on every compiler
      const Gpa gpa = gpa_of(page) + (rng() % 512) * 8;
      const std::uint64_t value = next_value++;
      auto s = vm.write64(v, gpa, value);
      std::optional<MemslotSpec> slot;
      for (const auto& [id, spec] : model.slots) {
        if (spec.range().contains(gfn_of(gpa))) slot = spec;
      }
      const bool writable = slot && !slot->flags.is_read_only();
      ASSERT_EQ(s.has_value(), writable) << "step " << step << " write " << gpa.raw();
      if (writable) {
        ASSERT_EQ(direct_read(vm.slots, gpa), value) << "step " << step;
        if (slot->flags.is_log_dirty()) model.dirty[slot->id.value].insert(gfn_of(gpa) - slot->base);
      }
      what = "write";
    } else if (op < 65) {  // read
      const Gfn page = pick_gfn();  // one statement per draw: the order is the same on every compiler
      const Gpa gpa = gpa_of(page) + (rng() % 512) * 8;
      auto r = vm.read64(v, gpa);
      const auto want = direct_read(vm.slots, gpa);
      ASSERT_EQ(r.has_value(), want.has_value()) << "step " << step;
      if (r) {
        ASSERT_EQ(*r, *want) << "step " << step << " read " << gpa.raw();
      }
      what = "read";
    } else if (op < 70) {  // add or remove a slot
      const std::uint32_t id = static_cast<std::uint32_t>(rng() % kSlots);
      if (model.slots.contains(id)) {
        ASSERT_TRUE(vm.slots.remove(SlotId{id}));
        model.slots.erase(id);
        model.dirty.erase(id);
        std::erase_if(overlays, [&](const auto& o) { return o.second == id; });  // removed with their slot
      } else {
        MemslotSpec s{SlotId{id}, Gfn((rng() % 8) * kSlotPages), kSlotPages, ram[id]->data(), MemslotFlags::none()};
        s.backing_page_size = rng() % 2 ? k2M : kPageSize;
        if (vm.slots.add(s)) model.slots[id] = s;
      }
      what = "slot add/remove";
    } else if (op < 73 && !model.slots.empty()) {  // move
      auto it = std::next(model.slots.begin(), static_cast<long>(rng() % model.slots.size()));
      const std::uint64_t slot_at = (rng() % 8) * kSlotPages;
      const Gfn to(slot_at + (rng() % 2) * 256);
      if (vm.slots.move(it->second.id, to)) it->second.base = to;
      what = "move";
    } else if (op < 78 && !model.slots.empty()) {  // flags
      auto it = std::next(model.slots.begin(), static_cast<long>(rng() % model.slots.size()));
      const MemslotFlags f = MemslotFlags::from_raw(static_cast<std::uint32_t>(rng() % 4));
      ASSERT_TRUE(vm.slots.set_flags(it->second.id, f));
      if (f.is_log_dirty() && !it->second.flags.is_log_dirty()) model.dirty[it->second.id.value].clear();
      it->second.flags = f;
      what = "flags";
    } else if (op < 81) {  // overlay add / remove
      if (!overlays.empty() && rng() % 2) {
        ASSERT_TRUE(vm.slots.overlay_remove(overlays.back().first)) << "step " << step;
        overlays.pop_back();
      } else {
        const Gfn first = pick_gfn();
        const std::uint64_t pages = 1 + rng() % 4;
        std::byte* host = overlay_ram.data() + (rng() % 8) * kPageSize;
        auto o = vm.slots.overlay_add(first, pages, host);
        for (const auto& [id, spec] : model.slots) {
          if (o && spec.range().contains(first)) overlays.emplace_back(*o, id);
        }
      }
      what = "overlay";
    } else if (op < 84) {
      const Gfn a = pick_gfn();
      ASSERT_TRUE(vm.mmu->unmap({a, a + rng() % 2048}));
      what = "zap";
    } else if (op < 85) {
      vm.mmu->unmap_all();
      what = "zap_all";
    } else if (op < 88) {
      const Gfn a = pick_gfn();
      ASSERT_TRUE(vm.mmu->split({a, a + rng() % 2048}));
      what = "split";
    } else if (op < 91) {
      vm.mmu->collapse({Gfn(0), Gfn(8 * kSlotPages)});
      what = "merge";
    } else if (op < 93) {
      vm.mmu->age({Gfn(0), Gfn(8 * kSlotPages)});
      what = "age";
    } else if (op < 95) {
      const Gfn a = pick_gfn();
      vm.mmu->invalidate_begin({a, a + 64});
      // Memory under invalidation is never mapped; a gfn without memslot may still be answered
      // from its MMIO marker (no host memory is involved there).
      const FaultAction act = vm.mmu->handle_fault(v, gpa_of(a), Access::read())->action;
      if (direct_read(vm.slots, gpa_of(a))) {
        ASSERT_EQ(act, FaultAction::Retry) << "step " << step;
      } else {
        ASSERT_TRUE(act == FaultAction::Retry || act == FaultAction::Mmio) << "step " << step;
      }
      vm.mmu->invalidate_end({a, a + 64});
      what = "invalidate";
    } else if (op < 97) {
      const Gfn a = pick_gfn();
      vm.mmu->disallow_huge({a, a + 1});
      if (rng() % 2) vm.mmu->allow_huge({a, a + 1});
      what = "disallow_huge";
    } else {  // harvest a logging slot
      for (auto& [id, spec] : model.slots) {
        if (!spec.flags.is_log_dirty()) continue;
        auto bits = vm.mmu->get_dirty_log(spec.id);
        ASSERT_TRUE(bits);
        std::set<std::uint64_t> got;
        for (std::size_t w = 0; w < bits->size(); ++w) {
          for (std::uint64_t m = (*bits)[w]; m != 0; m &= m - 1) got.insert(w * 64 + static_cast<unsigned>(__builtin_ctzll(m)));
        }
        ASSERT_EQ(got, model.dirty[id]) << "step " << step << " slot " << id;
        model.dirty[id].clear();
      }
      what = "harvest";
    }
    auto bad = vm.mmu->check_invariants();
    ASSERT_FALSE(bad.has_value()) << "seed " << seed << " step " << step << " after " << what << ": " << *bad;
  }
}

TEST(TdpModel, RandomOperationsEpt) {
  for (std::uint64_t seed = 1; seed <= 3; ++seed) run(seed, {});
}

TEST(TdpModel, RandomOperationsNptLazyDrop) {
  TdpConfig c;
  c.format.kind = TdpKind::Npt;
  c.policies.split = SplitPolicy::Lazy;
  c.policies.huge_on_dirty_log = HugeOnDirtyLog::Drop;
  c.policies.recovery = RecoveryPolicy::ZapAndRefault;
  for (std::uint64_t seed = 11; seed <= 12; ++seed) run(seed, c);
}

TEST(TdpModel, RandomOperationsDirtyBitsNoAd) {
  TdpConfig c;
  c.policies.dirty_tracking = DirtyTracking::DirtyBits;
  c.policies.split = SplitPolicy::Lazy;
  for (std::uint64_t seed = 21; seed <= 22; ++seed) run(seed, c);
  TdpConfig no_ad;
  no_ad.format.ad_bits = false;  // aging zaps
  no_ad.format.levels = 5;
  for (std::uint64_t seed = 31; seed <= 32; ++seed) run(seed, no_ad);
}

}  // namespace
}  // namespace vmmu::tdp
