// An MMU's view of a slot's dirty log (slot_dirty_log.hpp): the slot and its bitmap, the
// errors both MMUs' get / clear dirty log give, and the words a clear write-protects.

#include <gtest/gtest.h>

#include <optional>
#include <span>
#include <vector>

#include "memory/support/host_pages.hpp"
#include "vmmu/core/rcu.hpp"
#include "vmmu/memory/slot_dirty_log.hpp"

namespace vmmu {
namespace {

TEST(SlotDirtyLog, TheSlotAndItsBitmapOrWhyNot) {
  test::HostPages logged(200), plain(4);
  Memslots slots;
  ASSERT_TRUE(slots.add({SlotId{1}, Gfn(0x100), 200, logged.data(), MemslotFlags::log_dirty()}));
  ASSERT_TRUE(slots.add({SlotId{2}, Gfn(0x300), 4, plain.data(), {}}));
  const rcu::ReadGuard rcu;
  const auto log = slot_dirty_log(&slots, SlotId{1});
  ASSERT_TRUE(log.has_value());
  EXPECT_EQ(log->spec.base, Gfn(0x100));
  EXPECT_EQ(log->spec.pages, 200u);
  EXPECT_EQ(log->bitmap, slots.find(Gfn(0x100))->dirty);
  auto error_of = [](const Memslots* s, SlotId id) -> std::optional<MemslotError> {
    const auto r = slot_dirty_log(s, id);
    return r ? std::nullopt : std::optional(r.error());
  };
  EXPECT_EQ(error_of(&slots, SlotId{2}), MemslotError::NotLoggingDirty);
  EXPECT_EQ(error_of(&slots, SlotId{9}), MemslotError::UnknownSlot);
  EXPECT_EQ(error_of(nullptr, SlotId{1}), MemslotError::UnknownSlot) << "an MMU over bare guest RAM";
}

TEST(SlotDirtyLog, ClearWordsAreTheMasksWordsInTheRangeTrimmedToIt) {
  const SlotDirtyLog log{{SlotId{1}, Gfn(0x100), 200, nullptr, {}}, nullptr};
  const std::vector<std::uint64_t> mask{~std::uint64_t{0}, ~std::uint64_t{0}, 7};
  const auto words = log.clear_words(100, 70, mask);
  ASSERT_TRUE(words.has_value());
  EXPECT_EQ(*words, (std::vector<std::uint64_t>{~std::uint64_t{0}, 0x3f})) << "70 pages: 64 + 6 bits";
  const auto two = log.clear_words(40, 128, mask);
  ASSERT_TRUE(two.has_value());
  EXPECT_EQ(two->size(), 2u);
  auto error_of = [&](std::uint64_t first, std::uint64_t pages, std::span<const std::uint64_t> m) {
    const auto r = log.clear_words(first, pages, m);
    return r ? std::nullopt : std::optional(r.error());
  };
  EXPECT_EQ(error_of(199, 2, mask), MemslotError::RangeOutsideSlot);
  EXPECT_EQ(error_of(201, 0, mask), MemslotError::RangeOutsideSlot);
  EXPECT_EQ(error_of(0, 129, {mask.data(), 2}), MemslotError::RangeOutsideSlot) << "needs 3 words";
  EXPECT_TRUE(log.clear_words(136, 64, mask).has_value()) << "up to the end is fine";
}

}  // namespace
}  // namespace vmmu
