// Randomized differential test: random add / remove / move / set_flags / overlay operations
// against a deliberately simple model (slots and overlays in plain maps, expanded page by page
// into gfn -> host page), with the whole observable state compared after every operation.

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <iterator>
#include <map>
#include <optional>
#include <random>
#include <string>

#include "memory/support/host_pages.hpp"
#include "vmmu/memory/guest_memory.hpp"

namespace vmmu {
namespace {

using test::HostPages;

constexpr std::uint64_t kSpace = 192;  // guest frames the operations mostly play in
constexpr std::uint64_t kHighBase = kMaxGfnCount - 4;  // a few operations go to the top

struct ModelOverlay {
  SlotId slot;
  std::uint64_t first_page;
  std::uint64_t pages;
  std::byte* host;
};

struct Model {
  std::map<SlotId, MemslotSpec> slots;
  std::map<std::uint64_t, ModelOverlay> overlays;  // by id
  std::uint64_t next_overlay = 1;

  struct Page {
    std::byte* host;
    SlotId slot;
    bool read_only;
  };
  // Page by page, overlays applied after their slot: no ranges, no search.
  std::map<std::uint64_t, Page> pages() const {
    std::map<std::uint64_t, Page> out;
    for (const auto& [id, s] : slots) {
      for (std::uint64_t i = 0; i < s.pages; ++i) out[s.base.raw() + i] = {s.host + i * kPageSize, id, s.flags.is_read_only()};
    }
    for (const auto& [oid, o] : overlays) {
      const MemslotSpec& s = slots.at(o.slot);
      for (std::uint64_t i = 0; i < o.pages; ++i) out[s.base.raw() + o.first_page + i].host = o.host + i * kPageSize;
    }
    return out;
  }
  std::optional<MemslotError> check_range(Gfn base, std::uint64_t n, const std::byte* host) const {
    if (n == 0) return MemslotError::ZeroSize;
    if (host == nullptr) return MemslotError::NullHost;
    if (reinterpret_cast<std::uintptr_t>(host) % kPageSize != 0) return MemslotError::MisalignedHost;
    for (std::uint64_t i = 0; i < n; ++i) {
      if (base.raw() + i >= kMaxGfnCount) return MemslotError::GfnOverflow;
    }
    return std::nullopt;
  }
  bool page_taken(std::uint64_t gfn, std::optional<SlotId> except) const {
    for (const auto& [id, s] : slots) {
      if (id != except && gfn >= s.base.raw() && gfn < s.base.raw() + s.pages) return true;
    }
    return false;
  }
  std::optional<MemslotError> add(const MemslotSpec& spec) {
    if (!spec.flags.known()) return MemslotError::UnknownFlags;
    if (auto e = check_range(spec.base, spec.pages, spec.host)) return e;
    if (slots.contains(spec.id)) return MemslotError::DuplicateId;
    for (std::uint64_t i = 0; i < spec.pages; ++i) {
      if (page_taken(spec.base.raw() + i, std::nullopt)) return MemslotError::Overlap;
    }
    slots[spec.id] = spec;
    return std::nullopt;
  }
  std::optional<MemslotError> remove(SlotId id) {
    if (!slots.erase(id)) return MemslotError::UnknownSlot;
    std::erase_if(overlays, [&](const auto& kv) { return kv.second.slot == id; });
    return std::nullopt;
  }
  std::optional<MemslotError> move(SlotId id, Gfn base) {
    auto it = slots.find(id);
    if (it == slots.end()) return MemslotError::UnknownSlot;
    if (auto e = check_range(base, it->second.pages, it->second.host)) return e;
    for (std::uint64_t i = 0; i < it->second.pages; ++i) {
      if (page_taken(base.raw() + i, id)) return MemslotError::Overlap;
    }
    it->second.base = base;
    return std::nullopt;
  }
  std::optional<MemslotError> set_flags(SlotId id, MemslotFlags f) {
    auto it = slots.find(id);
    if (it == slots.end()) return MemslotError::UnknownSlot;
    if (!f.known()) return MemslotError::UnknownFlags;
    it->second.flags = f;
    return std::nullopt;
  }
  std::optional<MemslotError> overlay_add(Gfn first, std::uint64_t n, std::byte* host, std::uint64_t& id_out) {
    if (auto e = check_range(first, n, host)) return e;
    for (const auto& [id, s] : slots) {
      if (first < s.base || s.base.raw() + s.pages < first.raw() + n) continue;
      const std::uint64_t fp = first - s.base;
      for (const auto& [oid, o] : overlays) {
        if (o.slot != id) continue;
        for (std::uint64_t i = 0; i < n; ++i) {
          if (fp + i >= o.first_page && fp + i < o.first_page + o.pages) return MemslotError::OverlayOverlap;
        }
      }
      id_out = next_overlay++;
      overlays[id_out] = {id, fp, n, host};
      return std::nullopt;
    }
    return MemslotError::OverlayOutsideSlot;
  }
  std::optional<MemslotError> overlay_remove(std::uint64_t id) {
    if (!overlays.erase(id)) return MemslotError::UnknownOverlay;
    return std::nullopt;
  }
};

template <class S>
std::optional<MemslotError> error_of(const S& s) {
  if (s.has_value()) return std::nullopt;
  return s.error();
}

TEST(MemslotsRandom, MatchesASimpleModelAfterEveryOperation) {
  const std::uint32_t seed = 20261123;
  SCOPED_TRACE(testing::Message() << "seed " << seed);
  std::mt19937_64 rng(seed);
  auto pick = [&](std::uint64_t n) { return std::uniform_int_distribution<std::uint64_t>(0, n - 1)(rng); };

  HostPages pool(64);
  pool.fill(1);  // each word of pool page p reads tag_of(1, p)
  Memslots slots;
  GuestMemory mem(slots);
  Model model;
  std::vector<OverlayId> live_overlays;

  auto host = [&]() -> std::byte* {
    const std::uint64_t r = pick(40);
    if (r == 0) return nullptr;
    if (r == 1) return pool.page(pick(8)) + 8;  // misaligned
    return pool.page(pick(48));
  };
  auto gfn = [&] { return Gfn(pick(20) == 0 ? kHighBase + pick(4) : pick(kSpace)); };
  auto slot_id = [&] { return SlotId{static_cast<std::uint32_t>(pick(12))}; };
  auto pages = [&] { return pick(16) == 0 ? 0 : 1 + pick(16); };

  std::map<std::string, int> outcomes;  // "<op>:<ok or error>" -> count
  const int kOps = 3000;
  for (int op = 0; op < kOps; ++op) {
    SCOPED_TRACE(testing::Message() << "operation " << op);
    const std::uint64_t gen_before = slots.generation();
    std::optional<MemslotError> got, want;
    // Weights: adds and overlay adds (which mostly aim inside a live slot) dominate so that
    // the layout stays busy enough for overlaps and overlays of overlays to happen.
    static constexpr std::array<std::uint64_t, 10> kKinds{0, 1, 0, 2, 3, 4, 5, 5, 5, 6};
    const std::uint64_t kind = kKinds[pick(kKinds.size())];
    switch (kind) {
      case 0:
      case 1: {
        const MemslotSpec spec{slot_id(), gfn(), pages(), host(),
                               MemslotFlags::from_raw(pick(10) == 0 ? 4u : static_cast<std::uint32_t>(pick(4)))};
        got = error_of(slots.add(spec));
        want = model.add(spec);
        break;
      }
      case 2: {
        const SlotId id = slot_id();
        got = error_of(slots.remove(id));
        want = model.remove(id);
        break;
      }
      case 3: {
        const SlotId id = slot_id();
        const Gfn to = gfn();
        got = error_of(slots.move(id, to));
        want = model.move(id, to);
        break;
      }
      case 4: {
        const SlotId id = slot_id();
        const auto f = MemslotFlags::from_raw(pick(10) == 0 ? 8u : static_cast<std::uint32_t>(pick(4)));
        got = error_of(slots.set_flags(id, f));
        want = model.set_flags(id, f);
        break;
      }
      case 5: {
        Gfn first = gfn();
        if (!model.slots.empty() && pick(4) != 0) {  // aim inside (or just off) a live slot
          auto it = std::next(model.slots.begin(), static_cast<std::ptrdiff_t>(pick(model.slots.size())));
          first = it->second.base + pick(it->second.pages + 1);
        }
        const std::uint64_t n = pick(8) == 0 ? 0 : 1 + pick(4);
        std::byte* h = host();
        auto r = slots.overlay_add(first, n, h);
        std::uint64_t model_id = 0;
        want = model.overlay_add(first, n, h, model_id);
        got = error_of(r);
        if (r.has_value()) {
          EXPECT_EQ(r->value, model_id);
          live_overlays.push_back(*r);
        }
        break;
      }
      case 6: {
        std::erase_if(live_overlays, [&](OverlayId o) { return !model.overlays.contains(o.value); });
        const OverlayId id = live_overlays.empty() || pick(6) == 0 ? OverlayId{1000 + pick(5)}
                                                                    : live_overlays[pick(live_overlays.size())];
        got = error_of(slots.overlay_remove(id));
        want = model.overlay_remove(id.value);
        break;
      }
    }
    ASSERT_EQ(got, want) << (got ? to_string(*got) : "ok") << " vs model " << (want ? to_string(*want) : "ok");
    ++outcomes[std::to_string(kind) + ":" + std::string(got ? to_string(*got) : "ok")];
    if (got) {
      ASSERT_EQ(slots.generation(), gen_before) << "a failed update changed the generation";
    } else {
      ASSERT_NE(slots.generation(), gen_before) << "a successful update kept the generation";
    }

    // Invariant: slot and overlay lists match the model.
    std::vector<MemslotSpec> want_slots;
    for (const auto& [id, s] : model.slots) want_slots.push_back(s);
    std::sort(want_slots.begin(), want_slots.end(), [](auto& x, auto& y) { return x.base < y.base; });
    ASSERT_EQ(slots.slots(), want_slots);
    ASSERT_EQ(slots.overlays().size(), model.overlays.size());

    // Invariant: every frame maps exactly where the model says, through a fresh lookup and
    // through the long-lived GuestMemory (its hit cache must never serve a stale layout).
    const auto want_pages = model.pages();
    rcu::ReadGuard guard;
    auto check = [&](std::uint64_t g) {
      const MemslotRegion* r = slots.find(Gfn(g));
      auto it = want_pages.find(g);
      if (it == want_pages.end()) {
        ASSERT_EQ(r, nullptr) << "gfn " << g << " should be unbacked";
        ASSERT_FALSE(mem.read<std::uint64_t>(gpa_of(Gfn(g))).has_value()) << "gfn " << g;
        return;
      }
      ASSERT_NE(r, nullptr) << "gfn " << g << " should be backed";
      ASSERT_EQ(r->host_of(Gfn(g)), it->second.host) << "gfn " << g;
      ASSERT_EQ(r->slot, it->second.slot) << "gfn " << g;
      ASSERT_EQ(!r->writable(), it->second.read_only) << "gfn " << g;
      const auto pool_page = static_cast<std::uint64_t>(it->second.host - pool.data()) / kPageSize;
      ASSERT_EQ(mem.read<std::uint64_t>(gpa_of(Gfn(g)) + 8 * pick(512)), HostPages::tag_of(1, pool_page)) << "gfn " << g;
    };
    for (std::uint64_t g = 0; g < kSpace + 20; ++g) check(g);
    for (std::uint64_t g = kHighBase - 2; g < kMaxGfnCount + 2; ++g) check(g);
  }
  // The sequence must exercise every operation's success and its main failures.
  for (const auto& [outcome, n] : outcomes) std::printf("  %-70s %d\n", outcome.c_str(), n);
  for (const char* must : {"0:ok", "2:ok", "3:ok", "4:ok", "5:ok", "6:ok", "0:the guest range overlaps another memslot",
                           "3:the guest range overlaps another memslot",
                           "5:the overlay range overlaps another overlay",
                           "5:the overlay range does not lie inside one memslot"}) {
    EXPECT_GE(outcomes[must], 10) << must;
  }
}

}  // namespace
}  // namespace vmmu
