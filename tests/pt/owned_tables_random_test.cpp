// Randomized differential test of the owned-table layer against a std::map model of
// page -> (output, attributes), with the tables checked through pt::walk (lookup) and the
// table-page accounting after every operation.

#include <gtest/gtest.h>

#include <map>
#include <random>

#include "pt/owned_toy_format.hpp"
#include "vmmu/pt/owned_tables.hpp"

namespace vmmu::pt {
namespace {

using toy::HostToyFormat;
using toy::kBlock;
using toy::Tables;

struct Page {
  Hpa out;
  LeafAttrs attrs;
};

constexpr std::uint64_t kPages = 4 * 1024 * 1024 / kPageSize;  // operate on the first 4 MiB

class HostTablesRandom : public ::testing::TestWithParam<bool> {
 protected:
  HostTablesRandom() { f.break_before_make = GetParam(); }

  void check(const Tables& t, const std::string& what) {
    for (std::uint64_t p = 0; p < kPages; ++p) {
      const auto m = t.lookup(Gpa(p * kPageSize));
      const auto it = model.find(p);
      if (it == model.end()) {
        ASSERT_FALSE(m) << what << ": page " << p << " should be unmapped";
      } else {
        ASSERT_TRUE(m) << what << ": page " << p << " should be mapped";
        ASSERT_EQ(m->output, it->second.out) << what << ": page " << p;
        ASSERT_EQ(m->attrs, it->second.attrs) << what << ": page " << p;
      }
    }
    const auto reach = t.reachable_tables();
    for (unsigned l = 1; l <= 3; ++l) ASSERT_EQ(memory.tables_in_use(l), reach[l]) << what << ": level " << l;
    // No table is left empty (the root aside): unmap prunes what it emptied.
    std::uint64_t empty_tables = 0;
    for (TableIterator it(f, memory, t.root(), 0, toy::kSpace, 2); it.valid(); it.next()) {
      if (!it.is_table()) continue;
      bool any = false;
      for (unsigned i = 0; i < f.g.entries(it.level() - 1); ++i) {
        any = any || *memory.read<std::uint64_t>(entry_address<HostToyFormat>(f.table_address(it.entry(), 1), i)) != 0;
      }
      empty_tables += any ? 0 : 1;
    }
    ASSERT_EQ(empty_tables, 0u) << what;
  }

  HostToyFormat f;
  OwnedTableMemory memory{f.g, ~std::uint64_t{0}, toy::kToyTableAlign};
  TlbLog<Gpa> tlb;
  std::map<std::uint64_t, Page> model;
};

TEST_P(HostTablesRandom, EveryOperationMatchesThePageModel) {
  const unsigned seed = 20261123u + (GetParam() ? 1u : 0u);
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  Tables t = std::move(Tables::create(f, memory, tlb).value());
  auto pick = [&](std::uint64_t n) { return std::uniform_int_distribution<std::uint64_t>(0, n - 1)(rng); };
  // A page range, sometimes block-aligned so blocks appear.
  auto page_range = [&](bool block_aligned) {
    const std::uint64_t unit = block_aligned ? kBlock / kPageSize : 1;
    const std::uint64_t first = pick(kPages / unit) * unit;
    const std::uint64_t count = (1 + pick(std::min<std::uint64_t>(48, (kPages - first) / unit))) * unit;
    return std::pair{first, count};
  };
  const Hpa base(0x10'0000'0000);
  std::uint64_t collapsed = 0, blocks_seen = 0;
  for (int step = 0; step < 400; ++step) {
    const unsigned op = static_cast<unsigned>(pick(7));
    std::string what = "step " + std::to_string(step) + " op " + std::to_string(op);
    if (op <= 1) {  // map
      auto [first, count] = page_range(pick(2) == 0);
      const std::uint64_t shift = pick(3) == 0 ? pick(16) : 0;  // output offset in pages
      const Hpa out = base + (pick(64) * kBlock) + shift * kPageSize;
      const LeafAttrs attrs{pick(4) != 0, pick(2) == 0, pick(3) == 0, pick(2) == 0, false};
      auto r = t.map({Gpa(first * kPageSize), Gpa((first + count) * kPageSize)}, out, attrs,
                     {.max_level = pick(4) == 0 ? 1u : 3u});
      ASSERT_TRUE(r) << what;
      std::move(*r).apply(tlb);
      for (std::uint64_t p = 0; p < count; ++p) model[first + p] = {out + p * kPageSize, attrs};
    } else if (op == 2) {  // unmap
      auto [first, count] = page_range(false);
      auto r = t.unmap({Gpa(first * kPageSize), Gpa((first + count) * kPageSize)});
      ASSERT_TRUE(r) << what;
      std::move(*r).apply(tlb);
      for (std::uint64_t p = 0; p < count; ++p) model.erase(first + p);
    } else if (op == 3) {  // write-protect whole blocks
      auto [first, count] = page_range(true);
      auto r = t.write_protect({Gpa(first * kPageSize), Gpa((first + count) * kPageSize)});
      ASSERT_TRUE(r) << what;
      std::move(*r).apply(tlb);
      for (auto it = model.lower_bound(first); it != model.end() && it->first < first + count; ++it) it->second.attrs.write = false;
    } else if (op == 4) {  // relax one leaf
      const std::uint64_t p = pick(kPages);
      const LeafAttrs add{false, pick(2) == 0, pick(2) == 0, true, false};
      const auto before = t.lookup(Gpa(p * kPageSize));
      auto r = t.relax(Gpa(p * kPageSize), add);
      ASSERT_EQ(r.has_value(), before.has_value()) << what;
      if (!r) continue;
      std::move(*r).apply(tlb);
      for (std::uint64_t q = before->covers.begin.raw() / kPageSize; q < before->covers.end.raw() / kPageSize; ++q) {
        model[q].attrs = model[q].attrs.plus(add);
      }
    } else if (op == 5) {  // split
      auto [first, count] = page_range(true);
      auto r = t.split({Gpa(first * kPageSize), Gpa((first + count) * kPageSize)});
      ASSERT_TRUE(r) << what;
      std::move(*r).apply(tlb);
    } else {  // collapse
      auto [first, count] = page_range(true);
      auto r = t.collapse({Gpa(first * kPageSize), Gpa((first + count) * kPageSize)});
      ASSERT_TRUE(r) << what;
      collapsed += r->count;
      std::move(r->flush).apply(tlb);
    }
    check(t, what);
    if (HasFatalFailure()) return;
    t.for_each_leaf({Gpa(0), Gpa(kPages * kPageSize)}, [&](const Tables::Mapping& m) { blocks_seen += m.level == 2; });
  }
  // The sequence must have exercised blocks and collapses, or it proves little.
  EXPECT_GT(collapsed, 0u);
  EXPECT_GT(blocks_seen, 0u);
}

INSTANTIATE_TEST_SUITE_P(BreakBeforeMake, HostTablesRandom, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& p) { return p.param ? "Bbm" : "NoBbm"; });

}  // namespace
}  // namespace vmmu::pt
