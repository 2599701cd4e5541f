#pragma once
// LruTlb: a set-associative cache of page translations with LRU replacement in each set, the
// shape of a hardware TLB (and of the paging-structure caches and the nested TLB, which are
// the same structure keyed differently).
//
//   key = (page number at the entry's size, size class)   set = page number % sets
//   set:  [ key | stamp | writable ] x ways                 victim: an empty way, else the
//                                                           smallest stamp (least recently used)
//   hint[hash(key)] -> the way last seen holding key (checked; a miss scans the set)
//
// One entry per mapped page of its size (4 KiB, 2 MiB or 1 GiB): a lookup of a 4 KiB page
// number probes each size class that holds an entry. An entry filled by a read is not
// writable: a write through it misses (hardware walks again to set the dirty bit).
// Owned by one thread: no synchronisation.

#include <bit>
#include <cstdint>
#include <string_view>
#include <vector>

#include "vmmu/core/result.hpp"

namespace vmmu::tlb {

enum class PageSize : std::uint8_t { Size4K = 0, Size2M = 1, Size1G = 2 };
inline constexpr unsigned kPageSizes = 3;
// log2(bytes) - 12 of a page size: 0, 9, 18.
constexpr unsigned shift_of(PageSize s) { return 9u * static_cast<unsigned>(s); }
// The page size of a leaf at `level` (1: 4K, 2: 2M, 3: 1G).
constexpr PageSize size_of_level(unsigned level) { return static_cast<PageSize>(level - 1); }

struct TlbShape {
  std::uint32_t entries = 64;
  std::uint32_t ways = 0;  // 0: fully associative (ways = entries)
};

enum class TlbError : std::uint8_t {
  NoEntries,       // entries = 0
  WaysNotDivisor,  // ways does not divide entries
};
std::string_view to_string(TlbError e);

enum class Lookup : std::uint8_t {
  Hit,
  Miss,      // no entry maps the page
  NotDirty,  // an entry maps it, filled by a read, and this lookup writes
};

class LruTlb {
 public:
  // Errors: NoEntries, WaysNotDivisor.
  static Result<LruTlb, TlbError> create(TlbShape shape);

  [[nodiscard]] std::uint32_t entries() const { return sets_ * ways_; }
  [[nodiscard]] std::uint32_t ways() const { return ways_; }

  // Looks up the 4 KiB page `page`; a hit (and a NotDirty) becomes the most recently used.
  Lookup lookup(std::uint64_t page, bool write) {
    for (unsigned s = 0; s < kPageSizes; ++s) {
      if (held_[s] == 0) continue;
      const std::uint64_t key = key_of(page, static_cast<PageSize>(s));
      std::uint32_t& hint = hint_[hint_index(key)];
      Way* way = &ways_storage_[hint];
      if (way->key != key) {
        way = nullptr;
        Way* set = set_of(key);
        for (std::uint32_t w = 0; w < ways_; ++w) {
          if (set[w].key != key) continue;
          way = &set[w];
          hint = static_cast<std::uint32_t>(way - ways_storage_.data());
          break;
        }
        if (way == nullptr) continue;
      }
      way->stamp = ++clock_;
      return write && !way->writable ? Lookup::NotDirty : Lookup::Hit;
    }
    return Lookup::Miss;
  }
  // Fills the entry mapping `page` with a page of `size` (replacing one for the same page).
  void insert(std::uint64_t page, PageSize size, bool writable);
  // Drops every entry (a MOV to CR3 without PCIDs, a flush after the tables changed).
  void flush();

 private:
  struct Way {
    std::uint64_t key = kEmpty;
    std::uint64_t stamp = 0;
    bool writable = false;
  };
  static constexpr std::uint64_t kEmpty = ~std::uint64_t{0};
  LruTlb(std::uint32_t sets, std::uint32_t ways)
      : sets_(sets), ways_(ways), ways_storage_(std::size_t{sets} * ways),
        hint_(std::bit_ceil(std::size_t{2} * sets * ways), 0), hint_shift_(static_cast<unsigned>(64 - std::countr_zero(hint_.size()))) {}
  // Where the way holding `key` was last seen: a guess, checked against the way's key, so a
  // lookup that hits usually reads one way instead of scanning the set.
  [[nodiscard]] std::size_t hint_index(std::uint64_t key) const {
    return static_cast<std::size_t>((key * 0x9e3779b97f4a7c15ULL) >> hint_shift_);  // at least 2 hints
  }
  static std::uint64_t key_of(std::uint64_t page, PageSize s) {
    return ((page >> shift_of(s)) << 2) | static_cast<std::uint64_t>(s);
  }
  Way* set_of(std::uint64_t key) { return &ways_storage_[((key >> 2) % sets_) * ways_]; }

  std::uint32_t sets_;
  std::uint32_t ways_;
  std::vector<Way> ways_storage_;
  std::vector<std::uint32_t> hint_;  // by hash of the key: index of a way in ways_storage_
  unsigned hint_shift_;
  std::uint64_t clock_ = 0;
  std::uint64_t held_[kPageSizes] = {0, 0, 0};  // entries held per size class
};

}  // namespace vmmu::tlb
