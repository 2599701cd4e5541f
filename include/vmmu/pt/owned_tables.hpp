#pragma once
// OwnedTables<F>: tables vmmu owns and the (modelled) hardware walks -- for any OwnedFormat
// (arm64 stage 2 now, EPT / NPT next). Every range operation is a loop over pt::TableIterator
// and every change goes through ops::EntryOps::install (compare-exchange, break-before-make
// when the format needs it). Mutations return a [[nodiscard]] TlbFlush: apply it to the TLB
// log, or drop it on purpose.
//
//   map(in, out, attrs)    largest block that alignment, range and format allow at each spot;
//                          splits a block it has to map inside; replaces a table by a block
//                          (coalesce) unless `shared`
//   unmap(in)              removes leaves and whole tables, splits blocks straddling the edges,
//                          then frees tables left empty at the edges; unmap(in, WholeLeaves)
//                          removes straddling blocks whole instead, so it cannot fail
//   write_protect(in)      clears write on every leaf touching the range (whole blocks)
//   age(in) / test_age(in) test-and-clear / test the accessed flag
//   relax(addr, attrs)     adds permissions to the leaf at addr (a permission fault's fix)
//   split(in, level)       eager: every block touching the range becomes level-`level` leaves
//   collapse(in, max)      tables whose entries are contiguous, equal leaves become blocks
//
// Concurrency, chosen by a mode type (pt/ops/mode.hpp): map(..., Shared{}), update(...,
// Shared{}), collapse(..., Shared{}, ...), relax and lookup may run concurrently with each
// other (compare-exchange installs, lost races retried); unmap, split, update_pages and the
// Exclusive forms must run exclusively (they may unlink tables, or store whole page tables
// without compare-exchange). Lock-free readers walk inside an
// rcu::ReadGuard; unlinked tables are freed after them.

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <thread>
#include <vector>
#include <utility>

#include "vmmu/core/address.hpp"
#include "vmmu/core/rcu.hpp"
#include "vmmu/core/result.hpp"
#include "vmmu/pt/table_error.hpp"
#include "vmmu/pt/owned_format.hpp"
#include "vmmu/pt/owned_table_memory.hpp"
#include "vmmu/pt/tlb_log.hpp"
#include "vmmu/pt/ops/install.hpp"
#include "vmmu/pt/ops/mode.hpp"
#include "vmmu/pt/table_iterator.hpp"
#include "vmmu/pt/walk.hpp"

namespace vmmu::pt {

// unmap's tag for removing blocks that straddle the range whole (see OwnedTables::unmap).
struct WholeLeaves {};

struct MapOptions {
  unsigned max_level = kMaxLevels;  // largest block level to use (1: pages only)
};

template <OwnedFormat F>
class OwnedTables {
 public:
  using Entry = typename F::Entry;
  using Input = typename F::Input;
  using Flush = TlbFlush<Input>;
  using Iterator = TableIterator<F, OwnedTableMemory>;

  struct Mapping {
    Hpa output;   // translation of the looked-up address
    Range<Input> covers;  // input bytes the leaf maps
    unsigned level;
    LeafAttrs attrs;
  };
  struct [[nodiscard]] Counted {
    std::uint64_t count;  // leaves found young (age) / tables collapsed (collapse)
    Flush flush;
  };

  // Empty tables with a freshly allocated root.
  // Errors: OutOfMemory.
  static Result<OwnedTables, TableError> create(const F& format, OwnedTableMemory& memory, TlbLog<Input>& tlb) {
    Result<Hpa, TableError> root = memory.allocate(format.geometry().root_level());
    if (!root) return Unexpected{root.error()};
    return OwnedTables(format, memory, tlb, *root);
  }
  OwnedTables(OwnedTables&& o) noexcept
      : f_(o.f_), memory_(o.memory_), tlb_(o.tlb_), root_(std::exchange(o.root_, Hpa{})) {}
  OwnedTables& operator=(OwnedTables&&) = delete;
  OwnedTables(const OwnedTables&) = delete;
  OwnedTables& operator=(const OwnedTables&) = delete;
  // Frees every table (after concurrent readers are done).
  ~OwnedTables() {
    if (root_ == Hpa{}) return;
    const Geometry& g = f_.geometry();
    // Listed first, retired after: a quiesced memory frees a retired table at once, and the
    // walk must not descend into a freed one. Retired last-first and the root last, so a pool
    // that hands back the last page freed first gives the next tree the same pages in the
    // same order (root, then tables in address order).
    std::vector<RetiredTable> tables;
    {
      rcu::ReadGuard reading;
      for (Iterator it(f_, *memory_, root_, 0, g.input_limit(), 2); it.valid(); it.next()) {
        if (it.is_table()) tables.push_back({f_.table_address(it.entry(), it.level()), it.level() - 1});
      }
    }
    for (auto t = tables.rbegin(); t != tables.rend(); ++t) memory_->retire(*t);
    memory_->retire({root_, g.root_level()});
  }

  [[nodiscard]] Hpa root() const { return root_; }
  // What every range operation rejects: OutOfRange (empty, or past the input limit),
  // Misaligned (not page aligned); nullopt for a range they accept.
  [[nodiscard]] std::optional<TableError> check_range(Range<Input> in) const { return check(in); }
  [[nodiscard]] const F& format() const { return f_; }
  [[nodiscard]] OwnedTableMemory& memory() const { return *memory_; }
  // The entry-sized steps (install, reach, split_block, ...) for an MMU's own one-address
  // operations, such as a fault: look up, decide, install.
  [[nodiscard]] ops::EntryOps<F> entry_ops() const { return ops(); }
  // An iterator over the path to `addr` (for settle / reach).
  [[nodiscard]] Iterator path(Input addr) const {
    return Iterator(f_, *memory_, root_, addr.raw(), addr.raw() + 1);
  }

  // The look-up of `addr` (below input_limit()): one walk down to the first entry of its path
  // that is not a table -- the leaf mapping it, or the empty entry (or a format's not-present
  // marker) where its mapping would go -- frozen entries waited out. A fault's first step; its
  // decision is made on the entry read, and at() gives the iterator that builds or installs.
  [[nodiscard]] WalkResult<F> look_up(Input addr) const {
    const Entry frozen = f_.frozen_entry();
    for (;;) {
      const WalkResult<F> w = walk(f_, *memory_, root_, addr.raw(), [frozen](Step<F>& s) {
        return s.entry == frozen ? Visit::Stop : Visit::Continue;
      });
      if (w.end != WalkEnd::Stopped) return w;
      std::this_thread::yield();  // another thread is between break and make: let it finish
    }
  }
  // An iterator standing on the entry look_up(addr) ended on (the tables above it are not
  // recorded: reach() and install() need only the entry and what lies below it).
  [[nodiscard]] Iterator at(const WalkResult<F>& w, Input addr) const {
    const Hpa table = w.entry_address - std::uint64_t{f_.geometry().index(addr.raw(), w.level)} * sizeof(Entry);
    return Iterator::at(f_, *memory_, table, w.level, addr.raw());
  }

  // Maps `in` to [out, out + size) with `attrs`.
  // Errors: OutOfRange, Misaligned (in or out not page aligned), OutOfMemory / Unsupported
  // (what was installed before the failure stays, and is flushed before returning).
  // Shared: concurrent with other shared callers; never replaces a table by a block.
  template <Mode M = Exclusive>
  Result<Flush, TableError> map(Range<Input> in, Hpa out, LeafAttrs attrs, MapOptions opt = {}, M = {}) {
    if (auto bad = check(in)) return Unexpected{*bad};
    if (!out.aligned_to(f_.geometry().span(1))) return Unexpected{TableError::Misaligned};
    auto entry_ops = ops();
    Flush flush(memory_);
    const std::uint64_t begin = in.begin.raw(), end = in.end.raw();
    std::optional<TableError> error = for_each_settled_entry(in, 1, [&](Iterator& it) -> std::optional<TableError> {
      const Entry old = it.entry();
      const unsigned level = it.level();
      const std::uint64_t addr = it.address(), span = it.span();
      const bool inside = addr >= begin && end - addr >= span;
      const Hpa target = out + (addr - begin);
      const bool fits = inside && level <= opt.max_level && (level == 1 || f_.block_allowed(level)) &&
                        target.aligned_to(span);
      if (fits && !(std::same_as<M, Shared> && it.is_table())) {
        const Entry desired = f_.make_leaf(target, level, attrs);
        if (old != desired && entry_ops.install(it, desired, flush) == ops::Installed::Lost) return std::nullopt;
        it.next_sibling();
        return std::nullopt;
      }
      if (it.is_table()) {
        it.next();
        return std::nullopt;
      }
      // An empty level-2 entry whose whole span is mapped with pages: build the page table
      // off-tree and publish it at once (the common "map a range with pages" case).
      const bool whole_page_table = level == 2 && inside && !f_.present(old, level);
      Result<Entry, TableError> table = whole_page_table   ? entry_ops.page_table(target, attrs)
                                       : f_.present(old, level) ? entry_ops.split_block(old, level)
                                                                : entry_ops.empty_table(level);
      if (!table) return table.error();
      if (entry_ops.install(it, *table, flush) == ops::Installed::Lost) {
        entry_ops.discard(*table, level);
        return std::nullopt;
      }
      if (whole_page_table) {
        it.next_sibling();
      } else {
        it.next();  // into the new table
      }
      return std::nullopt;
    });
    if (error) return fail(std::move(flush), *error);
    return flush;
  }

  // Removes every mapping of `in`, freeing tables that no longer map anything.
  // Errors: OutOfRange, Misaligned, OutOfMemory / Unsupported (splitting a block that straddles
  // an edge; the part unmapped before stays unmapped and is flushed).
  Result<Flush, TableError> unmap(Range<Input> in) {
    if (auto bad = check(in)) return Unexpected{*bad};
    return unmap_checked(in, false);
  }

  // Removes every leaf touching `in` whole -- a block straddling an edge goes entirely, the
  // MMU refaults what it still needs (KVM's zap) -- and frees tables left empty. Needs no
  // table memory, so it cannot fail: `in` is clamped to the input limit and widened to pages.
  Flush unmap(Range<Input> in, WholeLeaves) {
    const Geometry& g = f_.geometry();
    const std::uint64_t page = g.span(1);
    const std::uint64_t end = in.end.raw() < g.input_limit() ? (in.end.raw() + page - 1) & ~(page - 1) : g.input_limit();
    const std::uint64_t begin = in.begin.raw() & ~(page - 1);
    if (!(begin < end)) return Flush(memory_);
    Result<Flush, TableError> r = unmap_checked({Input(begin), Input(end)}, true);
    return std::move(*r);  // no split, so no error (see unmap_checked)
  }

  // Clears write permission on every leaf that touches `in` (dirty logging).
  // Errors: OutOfRange, Misaligned.
  template <Mode M = Exclusive>
  Result<Flush, TableError> write_protect(Range<Input> in, M mode = {}) {
    Result<Counted, TableError> r = update(in, ops::LeafFlag::Write, mode);
    if (!r) return Unexpected{r.error()};
    return std::move(r->flush);
  }

  // Clears the accessed flag on every leaf touching `in`; count = leaves that had it.
  // Errors: OutOfRange, Misaligned.
  template <Mode M = Exclusive>
  Result<Counted, TableError> age(Range<Input> in, M mode = {}) {
    return update(in, ops::LeafFlag::Accessed, mode);
  }

  // Clears `flag` on every leaf touching `in` (one AND per entry, see ops/leaf_bits.hpp);
  // count = leaves that had it. The mode says whether whole page tables may be stored
  // (Exclusive) or every entry is compare-exchanged (Shared, concurrent with faults and A/D
  // updates).
  // Errors: OutOfRange, Misaligned.
  template <Mode M = Exclusive>
  Result<Counted, TableError> update(Range<Input> in, ops::LeafFlag flag, M mode = {}) {
    if (auto bad = check(in)) return Unexpected{*bad};
    Flush flush(memory_);
    const std::uint64_t n = update_leaves(in, flush, ops::ClearFlag<F>(f_, flag), mode);
    return Counted{n, std::move(flush)};
  }

  // The same for the pages a bitmap names: page `first + i` (in pages) for each set bit i of
  // `words`, e.g. a dirty log's harvested bits; count = leaves changed. One walk per page
  // table, not per page. Exclusive only. Pages not mapped by a page leaf (unmapped, or inside
  // a block) are skipped; so are pages beyond the input limit.
  // Errors: Misaligned (first not page aligned).
  Result<Counted, TableError> update_pages(Input first, std::span<const std::uint64_t> words, ops::LeafFlag flag) {
    const Geometry& g = f_.geometry();
    if (!first.aligned_to(g.span(1))) return Unexpected{TableError::Misaligned};
    auto entry_ops = ops();
    const ops::ClearFlag<F> clear(f_, flag);
    Flush flush(memory_);
    std::uint64_t changed = 0;
    const unsigned page_shift = g.shift(1);
    const std::uint64_t first_page = first.raw() >> page_shift, per_table = g.entries(1);
    const std::uint64_t page_limit = g.input_limit() >> page_shift;
    // Page tables by frame (page table number), walked once for the prefetch front and the
    // update behind it: a few slots, as the two are at most a table or two apart.
    std::array<std::pair<std::uint64_t, Entry*>, 4> tables;
    tables.fill({~std::uint64_t{0}, nullptr});
    auto table_of = [&](std::uint64_t frame) {
      auto& [at, t] = tables[frame % tables.size()];
      if (at != frame) {
        at = frame;
        t = page_table((frame * per_table) << page_shift);
      }
      return t;
    };
    std::uint64_t frame = ~std::uint64_t{0};  // page table (in page tables) `table` belongs to
    Entry* table = nullptr;
    for (std::size_t w = 0; w < words.size(); ++w) {
      const std::uint64_t word_page = first_page + w * 64;
      // The entries are scattered cache lines: start loading those of a word a page table's
      // worth of words ahead (about memory latency / work per word) while this word's are
      // updated, whichever page table they are in.
      constexpr std::size_t kAhead = 8;
      if (w + kAhead < words.size()) {
        for (std::uint64_t m = words[w + kAhead]; m != 0; m &= m - 1) {
          const std::uint64_t p = word_page + kAhead * 64 + static_cast<unsigned>(__builtin_ctzll(m));
          if (p >= page_limit) break;
          if (Entry* t = table_of(p / per_table)) __builtin_prefetch(&t[p % per_table], 1);
        }
      }
      for (std::uint64_t m = words[w]; m != 0;) {
        const std::uint64_t p = word_page + static_cast<unsigned>(__builtin_ctzll(m));
        if (p >= page_limit) break;
        if (p / per_table != frame) {
          frame = p / per_table;
          table = table_of(frame);
        }
        // This word's bits inside the page table: up to its end (a word may straddle two).
        const std::uint64_t end_bit = (frame + 1) * per_table - word_page;
        const std::uint64_t here = end_bit >= 64 ? m : m & ((std::uint64_t{1} << end_bit) - 1);
        m &= ~here;
        if (table == nullptr) continue;  // unmapped, or a block (callers protect blocks whole)
        // Entry index of bit i: word_page + i - frame * per_table (modular: the word may start
        // in the previous table, and then only bits from this table's start are set).
        const std::uint64_t n = entry_ops.update_page_table_masked(table, word_page - frame * per_table, here, clear);
        if (n == 0) continue;
        changed += n;
        const std::uint64_t lo = word_page + static_cast<unsigned>(__builtin_ctzll(here));
        const std::uint64_t hi = word_page + 64 - static_cast<unsigned>(__builtin_clzll(here));
        flush.add({Input(lo << page_shift), Input(hi << page_shift)});
      }
    }
    return Counted{changed, std::move(flush)};
  }

  // Whether any leaf touching `in` has its accessed flag set. Out-of-range parts are ignored.
  [[nodiscard]] bool test_age(Range<Input> in) const {
    bool young = false;
    for_each_leaf(in, [&](const Mapping& m) { young = young || m.attrs.accessed; });
    return young;
  }

  // Adds `add`'s permissions (never removes any) to the leaf mapping `addr`.
  // Errors: NotMapped when no present leaf maps addr; OutOfRange.
  Result<Flush, TableError> relax(Input addr, LeafAttrs add) {
    if (addr.raw() >= f_.geometry().input_limit()) return Unexpected{TableError::OutOfRange};
    auto entry_ops = ops();
    Flush flush(memory_);
    Iterator it = path(addr);
    for (;;) {
      entry_ops.settle(it);
      if (!it.is_leaf()) return fail(std::move(flush), TableError::NotMapped);
      const LeafAttrs now = f_.leaf_attrs(it.entry(), it.level());
      const LeafAttrs want = now.plus(add);
      if (want == now) return flush;
      const Entry desired = f_.make_leaf(f_.leaf_address(it.entry(), it.level()), it.level(), want);
      if (entry_ops.install(it, desired, flush) == ops::Installed::Done) return flush;
    }
  }

  // Splits every block touching `in` down to level-`level` leaves, eagerly, keeping each
  // block's attributes; the range never reads as unmapped (break-before-make aside).
  // Errors: OutOfRange, Misaligned, OutOfMemory / Unsupported (blocks split so far stay split).
  Result<Flush, TableError> split(Range<Input> in, unsigned level = 1) {
    if (auto bad = check(in)) return Unexpected{*bad};
    auto entry_ops = ops();
    Flush flush(memory_);
    std::optional<TableError> error = for_each_settled_entry(in, level, [&](Iterator& it) -> std::optional<TableError> {
      if (it.is_leaf() && it.level() > level) {
        Result<Entry, TableError> table = entry_ops.split_block(it.entry(), it.level());
        if (!table) return table.error();
        if (entry_ops.install(it, *table, flush) == ops::Installed::Lost) {
          entry_ops.discard(*table, it.level());
          return std::nullopt;
        }
        if (it.level() - 1 <= level) {  // the new leaves are small enough: skip them
          it.next_sibling();
          return std::nullopt;
        }
      }
      it.next();
      return std::nullopt;
    });
    if (error) return fail(std::move(flush), *error);
    return flush;
  }

  // Replaces every table inside `in` whose entries are present, contiguous, equally
  // permitted leaves by one block, bottom-up, up to level `max_level`; count = blocks made.
  // Errors: OutOfRange, Misaligned.
  Result<Counted, TableError> collapse(Range<Input> in, unsigned max_level = kMaxLevels) {
    Result<Collapsed, TableError> r =
        collapse(in, {.max_level = max_level}, Exclusive{}, [](Range<Input>, unsigned) { return true; });
    if (!r) return Unexpected{r.error()};
    return Counted{r->count, std::move(r->flush)};
  }

  struct CollapseOptions {
    unsigned max_level = kMaxLevels;         // largest block level to make
    ops::LeafMerge merge = ops::LeafMerge::Equal;
  };
  // The same, for spans may_be_huge(span, level) allows, with leaves merged as opt.merge
  // says. Shared: concurrent with faults -- each table is swapped for its block by one
  // compare-exchange, so the range is never unmapped; the caller must let every walker that
  // may hold an unlinked table leave (a lock barrier) before applying the flush, which frees
  // them. `raced` counts tables whose entries changed between the read and the swap (a
  // fault's W or the hardware's A/D there is lost to the block: the vCPU faults again).
  // Errors: OutOfRange, Misaligned.
  struct [[nodiscard]] Collapsed {
    std::uint64_t count;
    std::uint64_t raced;
    Flush flush;
  };
  template <Mode M, class MayBeHuge>
  Result<Collapsed, TableError> collapse(Range<Input> in, CollapseOptions opt, M, MayBeHuge&& may_be_huge) {
    if (auto bad = check(in)) return Unexpected{*bad};
    auto entry_ops = ops();
    Flush flush(memory_);
    std::uint64_t made = 0, raced = 0;
    std::vector<Entry> seen;
    const std::uint64_t begin = in.begin.raw(), end = in.end.raw();
    const unsigned top = opt.max_level < f_.geometry().root_level() ? opt.max_level : f_.geometry().root_level();
    for (unsigned level = 2; level <= top; ++level) {
      if (!f_.block_allowed(level)) continue;
      Iterator it(f_, *memory_, root_, begin, end, level);
      while (it.valid()) {
        if (it.level() != level || !it.is_table() || it.address() < begin || end - it.address() < it.span()) {
          it.next();
          continue;
        }
        const Range<Input> span{Input(it.address()), Input(it.address() + it.span())};
        const Hpa child = f_.table_address(it.entry(), level);
        // Shared: the entries are kept as read, in the same pass that decides, for the race
        // check after the swap.
        Entry* keep = nullptr;
        if constexpr (std::same_as<M, Shared>) {
          seen.resize(f_.geometry().entries(level - 1));
          keep = seen.data();
        }
        const std::optional<Entry> block =
            may_be_huge(span, level) ? entry_ops.collapsed(child, level, opt.merge, keep) : std::nullopt;
        if (!block) {
          it.next_sibling();
          continue;
        }
        if (entry_ops.install(it, *block, flush) == ops::Installed::Lost) continue;  // decide again
        ++made;
        if constexpr (std::same_as<M, Shared>) raced += changed_since(child, seen) ? 1u : 0u;
        it.next_sibling();
      }
    }
    return Collapsed{made, raced, std::move(flush)};
  }

  // The leaf translating `addr`, if any (a lock-free reader: call inside an rcu::ReadGuard
  // when structural operations may run concurrently).
  [[nodiscard]] std::optional<Mapping> lookup(Input addr) const {
    if (addr.raw() >= f_.geometry().input_limit()) return std::nullopt;
    const WalkResult<F> r = walk(f_, *memory_, root_, addr.raw(), [](Step<F>&) { return Visit::Continue; });
    if (r.end != WalkEnd::Leaf) return std::nullopt;
    const std::uint64_t span = f_.geometry().span(r.level);
    const std::uint64_t base = addr.raw() & ~(span - 1);
    return Mapping{f_.leaf_address(r.entry, r.level) + (addr.raw() - base), {Input(base), Input(base + span)}, r.level,
                   f_.leaf_attrs(r.entry, r.level)};
  }

  // Calls fn(Mapping) for every present leaf touching `in`, in address order (output = the
  // leaf's base).
  template <class Fn>
  void for_each_leaf(Range<Input> in, Fn&& fn) const {
    for (Iterator it(f_, *memory_, root_, in.begin.raw(), in.end.raw()); it.valid(); it.next()) {
      if (!it.is_leaf()) continue;
      fn(Mapping{f_.leaf_address(it.entry(), it.level()), {Input(it.address()), Input(it.address() + it.span())},
                 it.level(), f_.leaf_attrs(it.entry(), it.level())});
    }
  }

  // Tables reachable from the root at each level (index = table level); for accounting checks.
  [[nodiscard]] std::array<std::uint64_t, kMaxLevels + 1> reachable_tables() const {
    std::array<std::uint64_t, kMaxLevels + 1> n{};
    n[f_.geometry().root_level()] = 1;
    for (Iterator it(f_, *memory_, root_, 0, f_.geometry().input_limit(), 2); it.valid(); it.next()) {
      if (it.is_table()) ++n[it.level() - 1];
    }
    return n;
  }

 private:
  OwnedTables(const F& format, OwnedTableMemory& memory, TlbLog<Input>& tlb, Hpa root)
      : f_(format), memory_(&memory), tlb_(&tlb), root_(root) {}

  ops::EntryOps<F> ops() const { return ops::EntryOps<F>(f_, *memory_, *tlb_, root_); }

  // unmap's loop; `whole`: a straddling leaf is removed, never split, and the only error
  // (the split's OutOfMemory / Unsupported) cannot occur.
  Result<Flush, TableError> unmap_checked(Range<Input> in, bool whole) {
    auto entry_ops = ops();
    Flush flush(memory_);
    const std::uint64_t begin = in.begin.raw(), end = in.end.raw();
    std::optional<TableError> error = for_each_settled_entry(in, 1, [&](Iterator& it) -> std::optional<TableError> {
      const Entry old = it.entry();
      const unsigned level = it.level();
      if (!f_.present(old, level)) {
        it.next_sibling();
        return std::nullopt;
      }
      if ((it.address() >= begin && end - it.address() >= it.span()) || (whole && it.is_leaf())) {
        if (entry_ops.install(it, Entry{}, flush) == ops::Installed::Done) it.next_sibling();
        return std::nullopt;
      }
      if (it.is_table()) {
        it.next();
        return std::nullopt;
      }
      Result<Entry, TableError> table = entry_ops.split_block(old, level);
      if (!table) return table.error();
      if (entry_ops.install(it, *table, flush) == ops::Installed::Lost) {
        entry_ops.discard(*table, level);
        return std::nullopt;
      }
      it.next();
      return std::nullopt;
    });
    if (error) return fail(std::move(flush), *error);
    prune(begin, end, flush);
    return flush;
  }


  std::optional<TableError> check(Range<Input> in) const {
    const Geometry& g = f_.geometry();
    if (!(in.begin < in.end) || in.end.raw() > g.input_limit()) return TableError::OutOfRange;
    if (!in.begin.aligned_to(g.span(1)) || !in.end.aligned_to(g.span(1))) return TableError::Misaligned;
    return std::nullopt;
  }

  // The level-1 table under the level-2 entry covering `addr`; null when that entry is
  // not a table (empty, or a block).
  Entry* page_table(std::uint64_t addr) const {
    const WalkResult<F> r = walk(f_, *memory_, root_, addr, [](Step<F>& s) {
      return s.level == 2 ? Visit::Stop : Visit::Continue;
    });
    if (r.end != WalkEnd::Stopped || !f_.present(r.entry, 2) || f_.leaf(r.entry, 2)) return nullptr;
    return OwnedTableMemory::pointer<Entry>(f_.table_address(r.entry, 2));
  }

  bool changed_since(Hpa table, const std::vector<Entry>& seen) const {
    const Entry* e = OwnedTableMemory::pointer<const Entry>(table);
    Entry diff = 0;  // no early exit: a branch-free pass over a table the swap just read
    for (std::size_t i = 0; i < seen.size(); ++i) diff |= std::atomic_ref<const Entry>(e[i]).load(std::memory_order_acquire) ^ seen[i];
    return diff != 0;
  }

  // Partial work is flushed before the error goes back: the caller gets no token to apply.
  Unexpected<TableError> fail(Flush flush, TableError e) {
    std::move(flush).apply(*tlb_);
    return Unexpected{e};
  }

  template <Mode M>
  std::uint64_t update_leaves(Range<Input> in, Flush& flush, const ops::ClearFlag<F>& clear, M mode) {
    auto entry_ops = ops();
    std::uint64_t changed = 0;
    for_each_settled_entry(in, 1, [&](Iterator& it) -> std::optional<TableError> {
      if (it.level() == 2 && it.is_table() && it.address() >= in.begin.raw() &&
          in.end.raw() - it.address() >= it.span()) {
        // A page table wholly inside the range: one pass over its entries.
        const std::uint64_t n = entry_ops.update_page_table(f_.table_address(it.entry(), 2), clear, mode);
        if (n != 0) flush.add({Input(it.address()), Input(it.address() + it.span())});
        changed += n;
        it.next_sibling();
        return std::nullopt;
      }
      const Entry mask = clear.mask(it.level());
      if (it.is_leaf() && (it.entry() & mask) != 0) {
        if (entry_ops.install(it, it.entry() & ~mask, flush) == ops::Installed::Lost) return std::nullopt;  // decide again
        ++changed;
      }
      it.next();
      return std::nullopt;
    });
    return changed;
  }

  // The loop head every modifying range operation shares: an iterator over `in` down to
  // `min_level`, frozen entries waited out. step(it) decides on it.entry() and moves `it`
  // itself (or leaves it in place to decide again after a lost race); an error stops the loop.
  template <class Step>
  std::optional<TableError> for_each_settled_entry(Range<Input> in, unsigned min_level, Step&& step) {
    auto entry_ops = ops();
    Iterator it(f_, *memory_, root_, in.begin.raw(), in.end.raw(), min_level);
    while (it.valid()) {
      if (entry_ops.frozen(it)) {
        entry_ops.wait(it);
        continue;
      }
      if (std::optional<TableError> e = step(it)) return e;
    }
    return std::nullopt;
  }

  // Unlinks tables left empty where [begin, end) only partly covered them, bottom-up.
  void prune(std::uint64_t begin, std::uint64_t end, Flush& flush) {
    auto entry_ops = ops();
    for (unsigned level = 2; level <= f_.geometry().root_level(); ++level) {
      Iterator it(f_, *memory_, root_, begin, end, level);
      while (it.valid()) {
        if (it.level() == level && it.is_table() && entry_ops.empty(f_.table_address(it.entry(), level), level - 1)) {
          if (entry_ops.install(it, Entry{}, flush) == ops::Installed::Lost) continue;
        }
        it.next();
      }
    }
  }

  F f_;
  OwnedTableMemory* memory_;
  TlbLog<Input>* tlb_;
  Hpa root_;
};

}  // namespace vmmu::pt
