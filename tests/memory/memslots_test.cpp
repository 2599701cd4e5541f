// Memslots: validation (each error named, nothing changed), lookup at edges, move, flags,
// overlays, generation and observers.

#include "vmmu/memory/memslots.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "memory/support/host_pages.hpp"
#include "vmmu/core/rcu.hpp"

namespace vmmu {
namespace {

using test::HostPages;

// Everything observable about a Memslots, to prove a failed update changed nothing.
struct State {
  std::vector<MemslotSpec> slots;
  std::vector<OverlayInfo> overlays;
  std::uint64_t generation;
  std::vector<MemslotRegion> regions;
  bool operator==(const State& o) const {
    if (regions.size() != o.regions.size()) return false;
    for (std::size_t i = 0; i < regions.size(); ++i) {
      const MemslotRegion &a = regions[i], &b = o.regions[i];
      if (a.gfn_begin != b.gfn_begin || a.pages != b.pages || a.host != b.host || a.slot != b.slot ||
          a.flags != b.flags || a.overlay != b.overlay)
        return false;
    }
    return slots == o.slots && overlays == o.overlays && generation == o.generation;
  }
};

State state_of(const Memslots& m) {
  rcu::ReadGuard g;
  return {m.slots(), m.overlays(), m.generation(), m.snapshot().regions()};
}

class MemslotsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(slots.add({SlotId{1}, Gfn(0x100), 16, a.data(), MemslotFlags::none()}));
    ASSERT_TRUE(slots.add({SlotId{2}, Gfn(0x200), 16, b.data(), MemslotFlags::none()}));
    before = state_of(slots);
  }
  // Expects `status` to fail with `want` and the memslots to be exactly as in SetUp.
  template <class S>
  void expect_rejected(const S& status, MemslotError want) {
    ASSERT_FALSE(status.has_value());
    EXPECT_EQ(status.error(), want) << to_string(status.error());
    EXPECT_TRUE(state_of(slots) == before);
  }
  const MemslotRegion* find(Gfn gfn) {
    rcu::ReadGuard g;
    return slots.find(gfn);
  }

  HostPages a{16}, b{16}, c{16};
  Memslots slots;
  State before;
};

TEST_F(MemslotsTest, AddRejectsZeroSize) {
  expect_rejected(slots.add({SlotId{3}, Gfn(0x300), 0, c.data(), {}}), MemslotError::ZeroSize);
}

TEST_F(MemslotsTest, AddRejectsNullHost) {
  expect_rejected(slots.add({SlotId{3}, Gfn(0x300), 1, nullptr, {}}), MemslotError::NullHost);
}

TEST_F(MemslotsTest, AddRejectsHostNotPageAligned) {
  expect_rejected(slots.add({SlotId{3}, Gfn(0x300), 1, c.data() + 8, {}}), MemslotError::MisalignedHost);
}

TEST_F(MemslotsTest, AddRejectsGfnRangePastFiftyTwoBits) {
  expect_rejected(slots.add({SlotId{3}, Gfn(kMaxGfnCount - 1), 2, c.data(), {}}), MemslotError::GfnOverflow);
  expect_rejected(slots.add({SlotId{3}, Gfn(~std::uint64_t{0}), 2, c.data(), {}}), MemslotError::GfnOverflow);
  // The very last frame is fine.
  EXPECT_TRUE(slots.add({SlotId{3}, Gfn(kMaxGfnCount - 1), 1, c.data(), {}}));
}

TEST_F(MemslotsTest, AddRejectsOverlapWithAnotherSlot) {
  expect_rejected(slots.add({SlotId{3}, Gfn(0xf8), 9, c.data(), {}}), MemslotError::Overlap);    // tail on head
  expect_rejected(slots.add({SlotId{3}, Gfn(0x10f), 1, c.data(), {}}), MemslotError::Overlap);   // last page
  expect_rejected(slots.add({SlotId{3}, Gfn(0x104), 2, c.data(), {}}), MemslotError::Overlap);   // inside
  expect_rejected(slots.add({SlotId{3}, Gfn(0xf0), 0x200, c.data(), {}}), MemslotError::Overlap);  // covers both
}

TEST_F(MemslotsTest, AddAcceptsSlotsThatTouchWithoutOverlapping) {
  EXPECT_TRUE(slots.add({SlotId{3}, Gfn(0x110), 16, c.data(), {}}));  // right after slot 1
  HostPages d(16);
  EXPECT_TRUE(slots.add({SlotId{4}, Gfn(0xf0), 16, d.data(), {}}));   // right before slot 1
}

TEST_F(MemslotsTest, AddRejectsUnknownFlagBits) {
  expect_rejected(slots.add({SlotId{3}, Gfn(0x300), 1, c.data(), MemslotFlags::from_raw(1u << 2)}),
                  MemslotError::UnknownFlags);
}

TEST_F(MemslotsTest, AddRejectsDuplicateId) {
  expect_rejected(slots.add({SlotId{1}, Gfn(0x300), 1, c.data(), {}}), MemslotError::DuplicateId);
}

TEST_F(MemslotsTest, RemoveRejectsUnknownId) { expect_rejected(slots.remove(SlotId{9}), MemslotError::UnknownSlot); }

TEST_F(MemslotsTest, MoveRejectsUnknownId) {
  expect_rejected(slots.move(SlotId{9}, Gfn(0x300)), MemslotError::UnknownSlot);
}

TEST_F(MemslotsTest, MoveRejectsOverlapWithAnotherSlot) {
  expect_rejected(slots.move(SlotId{1}, Gfn(0x1f1)), MemslotError::Overlap);
}

TEST_F(MemslotsTest, MoveRejectsGfnRangePastFiftyTwoBits) {
  expect_rejected(slots.move(SlotId{1}, Gfn(kMaxGfnCount - 8)), MemslotError::GfnOverflow);
}

TEST_F(MemslotsTest, SetFlagsRejectsUnknownIdAndUnknownBits) {
  expect_rejected(slots.set_flags(SlotId{9}, MemslotFlags::read_only()), MemslotError::UnknownSlot);
  expect_rejected(slots.set_flags(SlotId{1}, MemslotFlags::from_raw(0x80)), MemslotError::UnknownFlags);
}

TEST_F(MemslotsTest, LookupFindsFirstAndLastPageOfSlotAndMissesJustOutside) {
  const MemslotRegion* first = find(Gfn(0x100));
  const MemslotRegion* last = find(Gfn(0x10f));
  ASSERT_NE(first, nullptr);
  ASSERT_NE(last, nullptr);
  EXPECT_EQ(first->slot, SlotId{1});
  EXPECT_EQ(first->host_of(Gfn(0x100)), a.page(0));
  EXPECT_EQ(last->host_of(Gfn(0x10f)), a.page(15));
  EXPECT_EQ(find(Gfn(0xff)), nullptr);
  EXPECT_EQ(find(Gfn(0x110)), nullptr);
  EXPECT_EQ(find(Gfn(0x1ff)), nullptr);
  EXPECT_EQ(find(Gfn(0x210)), nullptr);
  EXPECT_EQ(find(Gfn(0)), nullptr);
  EXPECT_EQ(find(Gfn(~std::uint64_t{0})), nullptr);
  EXPECT_EQ(find(Gfn(0x20f))->host_of(Gfn(0x20f)), b.page(15));
}

TEST_F(MemslotsTest, LookupWithNoSlotsMisses) {
  Memslots empty;
  rcu::ReadGuard g;
  EXPECT_EQ(empty.find(Gfn(0)), nullptr);
}

TEST_F(MemslotsTest, RemoveUnmapsTheSlotAndKeepsOthers) {
  ASSERT_TRUE(slots.remove(SlotId{1}));
  EXPECT_EQ(find(Gfn(0x100)), nullptr);
  EXPECT_NE(find(Gfn(0x200)), nullptr);
  EXPECT_FALSE(slots.slot(SlotId{1}).has_value());
  // The id is free again.
  EXPECT_TRUE(slots.add({SlotId{1}, Gfn(0x400), 1, c.data(), {}}));
}

TEST_F(MemslotsTest, MoveMapsTheSameHostMemoryAtTheNewBase) {
  ASSERT_TRUE(slots.move(SlotId{1}, Gfn(0x500)));
  EXPECT_EQ(find(Gfn(0x100)), nullptr);
  ASSERT_NE(find(Gfn(0x503)), nullptr);
  EXPECT_EQ(find(Gfn(0x503))->host_of(Gfn(0x503)), a.page(3));
  EXPECT_EQ(slots.slot(SlotId{1})->base, Gfn(0x500));
}

TEST_F(MemslotsTest, MoveMayOverlapTheSlotsOwnOldRange) {
  ASSERT_TRUE(slots.move(SlotId{1}, Gfn(0x108)));
  EXPECT_EQ(find(Gfn(0x107)), nullptr);
  EXPECT_EQ(find(Gfn(0x108))->host_of(Gfn(0x108)), a.page(0));
  EXPECT_EQ(find(Gfn(0x117))->host_of(Gfn(0x117)), a.page(15));
}

TEST_F(MemslotsTest, SetFlagsReplacesFlagsOfThatSlotOnly) {
  ASSERT_TRUE(slots.set_flags(SlotId{1}, MemslotFlags::read_only()));
  EXPECT_FALSE(find(Gfn(0x100))->writable());
  EXPECT_TRUE(find(Gfn(0x200))->writable());
  ASSERT_TRUE(slots.set_flags(SlotId{1}, MemslotFlags::none()));
  EXPECT_TRUE(find(Gfn(0x100))->writable());
}

TEST_F(MemslotsTest, GenerationChangesOnEveryUpdateAndNotOnFailure) {
  std::set<std::uint64_t> seen{slots.generation()};
  auto step = [&](bool ok) {
    EXPECT_TRUE(ok);
    EXPECT_TRUE(seen.insert(slots.generation()).second) << "generation repeated";
  };
  step(slots.add({SlotId{3}, Gfn(0x300), 4, c.data(), {}}).has_value());
  step(slots.move(SlotId{3}, Gfn(0x310)).has_value());
  step(slots.set_flags(SlotId{3}, MemslotFlags::log_dirty()).has_value());
  auto ov = slots.overlay_add(Gfn(0x311), 1, c.page(8));
  step(ov.has_value());
  step(slots.overlay_remove(*ov).has_value());
  step(slots.remove(SlotId{3}).has_value());
  const std::uint64_t g = slots.generation();
  (void)slots.remove(SlotId{3});
  EXPECT_EQ(slots.generation(), g);
  rcu::ReadGuard guard;
  EXPECT_EQ(slots.snapshot().generation(), g);
}

TEST_F(MemslotsTest, OverlayMapsOtherMemoryOverASubRange) {
  auto id = slots.overlay_add(Gfn(0x104), 2, c.data());
  ASSERT_TRUE(id.has_value()) << to_string(id.error());
  EXPECT_EQ(find(Gfn(0x103))->host_of(Gfn(0x103)), a.page(3));
  EXPECT_EQ(find(Gfn(0x104))->host_of(Gfn(0x104)), c.page(0));
  EXPECT_EQ(find(Gfn(0x105))->host_of(Gfn(0x105)), c.page(1));
  EXPECT_EQ(find(Gfn(0x106))->host_of(Gfn(0x106)), a.page(6));
  EXPECT_EQ(find(Gfn(0x105))->overlay, *id);
  EXPECT_EQ(find(Gfn(0x105))->slot, SlotId{1});
  ASSERT_EQ(slots.overlays().size(), 1u);
  EXPECT_EQ(slots.overlays()[0], (OverlayInfo{*id, SlotId{1}, Gfn(0x104), 2, c.data()}));
}

TEST_F(MemslotsTest, OverlayAtSlotEdgesLeavesTheRestMapped) {
  ASSERT_TRUE(slots.overlay_add(Gfn(0x100), 1, c.page(0)));
  ASSERT_TRUE(slots.overlay_add(Gfn(0x10f), 1, c.page(1)));
  EXPECT_EQ(find(Gfn(0x100))->host_of(Gfn(0x100)), c.page(0));
  EXPECT_EQ(find(Gfn(0x101))->host_of(Gfn(0x101)), a.page(1));
  EXPECT_EQ(find(Gfn(0x10e))->host_of(Gfn(0x10e)), a.page(14));
  EXPECT_EQ(find(Gfn(0x10f))->host_of(Gfn(0x10f)), c.page(1));
}

TEST_F(MemslotsTest, OverlayRemoveRestoresTheSlotsOwnPages) {
  auto id = slots.overlay_add(Gfn(0x104), 2, c.data());
  ASSERT_TRUE(id.has_value());
  ASSERT_TRUE(slots.overlay_remove(*id));
  EXPECT_EQ(find(Gfn(0x104))->host_of(Gfn(0x104)), a.page(4));
  EXPECT_EQ(find(Gfn(0x104))->overlay, OverlayId{});
  EXPECT_TRUE(slots.overlays().empty());
  // The whole slot is one region again.
  EXPECT_EQ(find(Gfn(0x100)), find(Gfn(0x10f)));
}

TEST_F(MemslotsTest, OverlayRejectsRangeNotInsideOneSlot) {
  expect_rejected(slots.overlay_add(Gfn(0x10f), 2, c.data()), MemslotError::OverlayOutsideSlot);  // past end
  expect_rejected(slots.overlay_add(Gfn(0xff), 2, c.data()), MemslotError::OverlayOutsideSlot);   // before
  expect_rejected(slots.overlay_add(Gfn(0x300), 1, c.data()), MemslotError::OverlayOutsideSlot);  // unbacked
  // Two touching slots are still two slots.
  HostPages d(16);
  ASSERT_TRUE(slots.add({SlotId{3}, Gfn(0x110), 16, d.data(), {}}));
  before = state_of(slots);
  expect_rejected(slots.overlay_add(Gfn(0x10f), 2, c.data()), MemslotError::OverlayOutsideSlot);
}

TEST_F(MemslotsTest, OverlayRejectsOverlapWithAnotherOverlay) {
  ASSERT_TRUE(slots.overlay_add(Gfn(0x104), 4, c.data()));
  before = state_of(slots);
  expect_rejected(slots.overlay_add(Gfn(0x107), 2, c.page(8)), MemslotError::OverlayOverlap);
  expect_rejected(slots.overlay_add(Gfn(0x102), 3, c.page(8)), MemslotError::OverlayOverlap);
  EXPECT_TRUE(slots.overlay_add(Gfn(0x108), 1, c.page(8)));  // touching is fine
}

TEST_F(MemslotsTest, OverlayRejectsBadHostAndZeroSize) {
  expect_rejected(slots.overlay_add(Gfn(0x104), 1, c.data() + 1), MemslotError::MisalignedHost);
  expect_rejected(slots.overlay_add(Gfn(0x104), 1, nullptr), MemslotError::NullHost);
  expect_rejected(slots.overlay_add(Gfn(0x104), 0, c.data()), MemslotError::ZeroSize);
}

TEST_F(MemslotsTest, OverlayRemoveRejectsUnknownId) {
  expect_rejected(slots.overlay_remove(OverlayId{77}), MemslotError::UnknownOverlay);
}

TEST_F(MemslotsTest, RemovingASlotRemovesItsOverlays) {
  auto id = slots.overlay_add(Gfn(0x104), 1, c.data());
  ASSERT_TRUE(id.has_value());
  ASSERT_TRUE(slots.remove(SlotId{1}));
  EXPECT_TRUE(slots.overlays().empty());
  EXPECT_EQ(find(Gfn(0x104)), nullptr);
  const auto again = slots.overlay_remove(*id);
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error(), MemslotError::UnknownOverlay);
}

TEST_F(MemslotsTest, MovingASlotMovesItsOverlaysWithIt) {
  auto id = slots.overlay_add(Gfn(0x104), 1, c.data());
  ASSERT_TRUE(id.has_value());
  ASSERT_TRUE(slots.move(SlotId{1}, Gfn(0x800)));
  EXPECT_EQ(find(Gfn(0x804))->host_of(Gfn(0x804)), c.page(0));
  EXPECT_EQ(find(Gfn(0x803))->host_of(Gfn(0x803)), a.page(3));
  EXPECT_EQ(slots.overlays()[0].first, Gfn(0x804));
  EXPECT_TRUE(slots.overlay_remove(*id));
  EXPECT_EQ(find(Gfn(0x804))->host_of(Gfn(0x804)), a.page(4));
}

TEST_F(MemslotsTest, OverlayTakesTheFlagsOfItsSlot) {
  ASSERT_TRUE(slots.overlay_add(Gfn(0x104), 1, c.data()));
  ASSERT_TRUE(slots.set_flags(SlotId{1}, MemslotFlags::read_only()));
  EXPECT_FALSE(find(Gfn(0x104))->writable());
}

TEST_F(MemslotsTest, ObserversSeeEveryPublishedChange) {
  std::vector<MemslotChange> seen;
  const auto handle = slots.add_observer([&](const MemslotChange& change) { seen.push_back(change); });
  ASSERT_TRUE(slots.move(SlotId{1}, Gfn(0x800)));
  ASSERT_TRUE(slots.set_flags(SlotId{2}, MemslotFlags::read_only()));
  (void)slots.remove(SlotId{9});  // failed: not published
  ASSERT_TRUE(slots.remove(SlotId{2}));
  slots.remove_observer(handle);
  ASSERT_TRUE(slots.remove(SlotId{1}));
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].kind, MemslotChangeKind::Moved);
  EXPECT_EQ(seen[0].before, (Range<Gfn>{Gfn(0x100), Gfn(0x110)}));
  EXPECT_EQ(seen[0].after, (Range<Gfn>{Gfn(0x800), Gfn(0x810)}));
  EXPECT_EQ(seen[1].kind, MemslotChangeKind::FlagsChanged);
  EXPECT_EQ(seen[1].new_flags, MemslotFlags::read_only());
  EXPECT_EQ(seen[2].kind, MemslotChangeKind::Removed);
  EXPECT_EQ(seen[2].slot, SlotId{2});
  EXPECT_LT(seen[0].generation, seen[1].generation);
}

TEST(MemslotErrors, EveryErrorHasItsOwnMessage) {
  std::set<std::string_view> messages;
  for (unsigned e = 0; e <= static_cast<unsigned>(MemslotError::RangeOutsideSlot); ++e) {
    const std::string_view m = to_string(static_cast<MemslotError>(e));
    EXPECT_FALSE(m.empty());
    EXPECT_TRUE(messages.insert(m).second) << m;
  }
}

}  // namespace
}  // namespace vmmu
