#pragma once
// TranslationHardware: the processor's translation caches for one vCPU, to classify each
// access and count the memory references its walk makes.
//
//   access(gva) ─► TLB (gva page -> hpa page, one entry per mapped page of the smaller of
//        │          the guest and nested sizes, as hardware splinters) ── hit ─► done
//        ▼ miss
//   guest walk: start below the lowest paging-structure-cache hit (PML4E / PDPTE / PDE
//        │      caches keyed by the gva bits they translate), read guest entries down to the leaf
//        ▼
//   every guest table address and the final gpa: nested TLB (gpa page -> hpa) ── miss ─►
//   nested walk of `nested_levels - nested leaf level + 1` entries
//
// An access is a TLB hit, a guest walk (every gpa found in the nested TLB) or a nested walk
// (at least one nested walk). With nested_levels = 0 walks are native (a shadow MMU's
// tables are walked as one dimension). Not modelled: nested paging-structure caches, PCIDs
// (a CR3 switch flushes the TLB and the guest caches; the nested TLB is gpa-tagged and stays).
// Owned by one thread.

#include <array>
#include <cstdint>
#include <vector>

#include "vmmu/core/address.hpp"
#include "vmmu/core/result.hpp"
#include "vmmu/tlb/lru_tlb.hpp"

namespace vmmu::tlb {

struct HardwareConfig {
  TlbShape tlb;
  unsigned guest_levels = 4;
  unsigned nested_levels = 4;       // 0: one-dimensional walks
  std::uint32_t psc_entries = 32;   // per guest level above the leaves, fully associative; 0: none
  std::uint32_t nested_tlb_entries = 64;  // fully associative; 0: none
};

// What one walk needs from the tables: the guest's table pages on the path and the nested
// leaf level of any guest-physical address (the caller reads them from its MMU).
struct GuestPath {
  Gva gva;
  unsigned leaf_level = 1;        // guest leaf level (1: 4 KiB)
  std::array<Gpa, 5> table{};     // table[level - 1]: the guest table page read at `level`
  Gpa gpa;                        // the translated address
  bool write = false;             // the walk sets D: the entry may serve writes
};

enum class Outcome : std::uint8_t { TlbHit, GuestWalk, NestedWalk };

struct HardwareStats {
  std::uint64_t lookups = 0;
  std::uint64_t misses = 0;          // lookups that walked (compulsory, capacity, dirty-bit)
  std::uint64_t dirty_misses = 0;    // of which: a write through an entry filled by a read
  std::uint64_t guest_walks = 0;     // walks with every gpa in the nested TLB
  std::uint64_t nested_walks = 0;    // walks with at least one nested walk
  std::uint64_t guest_refs = 0;      // guest entries read
  std::uint64_t nested_refs = 0;     // nested entries read
  std::uint64_t refs_saved = 0;      // what the paging-structure caches and nested TLB spared
  [[nodiscard]] std::uint64_t walk_refs() const { return guest_refs + nested_refs; }
};

enum class HardwareError : std::uint8_t { BadTlb, BadLevels, BadCache };
std::string_view to_string(HardwareError e);

class TranslationHardware {
 public:
  // Errors: BadTlb (shape), BadLevels (guest 4 or 5; nested 0, 4 or 5), BadCache.
  static Result<TranslationHardware, HardwareError> create(const HardwareConfig& config);

  [[nodiscard]] const HardwareConfig& config() const { return config_; }
  [[nodiscard]] const HardwareStats& stats() const { return stats_; }

  // One access of the 4 KiB page holding `gva`: true on a TLB hit. On false the caller
  // translates and reports the walk with walk().
  bool lookup(Gva gva, bool write) {
    ++stats_.lookups;
    const Lookup l = tlb_.lookup(gva.raw() >> kPageShift, write);
    if (l == Lookup::Hit) return true;
    ++stats_.misses;
    if (l == Lookup::NotDirty) ++stats_.dirty_misses;
    return false;
  }
  // `count` lookups of the page `lookup` just hit or filled, with nothing between: all hit
  // (a write after a write fill, or reads), so they are counted without probing.
  void repeat_hits(std::uint64_t count) { stats_.lookups += count; }

  // The walk after a miss: counts its references, fills the caches and the TLB.
  // `nested_level(gpa)`: the nested leaf level mapping gpa (1: 4 KiB). `two_dimensional`
  // false: this walk is native whatever nested_levels says (an adaptive MMU's shadowed process).
  template <class NestedLevel>
  Outcome walk(const GuestPath& path, NestedLevel&& nested_level, bool two_dimensional = true) {
    const unsigned nested_levels = two_dimensional ? config_.nested_levels : 0;
    unsigned start = config_.guest_levels;  // first level whose entry is read
    for (unsigned l = path.leaf_level + 1; l <= config_.guest_levels && !psc_.empty(); ++l) {
      if (psc_[l - 2].lookup(psc_page(path.gva, l), false) == Lookup::Hit) {
        start = l - 1;
        break;
      }
    }
    bool nested = false;
    std::uint64_t refs = 0;
    std::uint64_t uncached = 0;
    auto nested_entries = [&](unsigned leaf) { return nested_levels == 0 ? 0 : nested_levels - leaf + 1; };
    auto translate = [&](Gpa gpa) {
      const unsigned leaf = nested_level(gpa);
      const unsigned n = nested_entries(leaf);
      uncached += n;
      if (n == 0) return leaf;
      if (!nested_tlb_.empty() && nested_tlb_[0].lookup(gpa.raw() >> kPageShift, false) == Lookup::Hit) return leaf;
      nested = true;
      stats_.nested_refs += n;
      refs += n;
      if (!nested_tlb_.empty()) nested_tlb_[0].insert(gpa.raw() >> kPageShift, size_of_level(leaf), true);
      return leaf;
    };
    for (unsigned l = config_.guest_levels; l >= path.leaf_level; --l) {
      ++uncached;
      if (l > start) {  // skipped thanks to a paging-structure cache: what it would have cost
        uncached += nested_entries(nested_level(path.table[l - 1]));
        continue;
      }
      translate(path.table[l - 1]);
      ++stats_.guest_refs;
      ++refs;
      if (l > path.leaf_level && !psc_.empty()) psc_[l - 2].insert(psc_page(path.gva, l), PageSize::Size4K, true);
    }
    const unsigned data_leaf = translate(path.gpa);
    stats_.refs_saved += uncached - refs;
    const unsigned tlb_level = nested_levels == 0 ? path.leaf_level : std::min(path.leaf_level, data_leaf);
    tlb_.insert(path.gva.raw() >> kPageShift, size_of_level(tlb_level), path.write);
    if (nested) {
      ++stats_.nested_walks;
      return Outcome::NestedWalk;
    }
    ++stats_.guest_walks;
    return Outcome::GuestWalk;
  }

  // MOV to CR3 without PCIDs: the TLB and the guest paging-structure caches.
  void switch_address_space();
  // The tables changed under every cached translation (dirty logging started): everything.
  void flush_all();

 private:
  TranslationHardware(const HardwareConfig& c, LruTlb tlb) : config_(c), tlb_(std::move(tlb)) {}
  // The cache key of the entry at `level` (>= 2) translating gva: the gva bits above the
  // region that entry maps, in units a 4 KiB-page cache stores.
  static std::uint64_t psc_page(Gva gva, unsigned level) { return gva.raw() >> (kPageShift + 9 * (level - 1)); }

  HardwareConfig config_;
  HardwareStats stats_;
  LruTlb tlb_;
  std::vector<LruTlb> psc_;         // psc_[level - 2]: the cache of entries at `level`
  std::vector<LruTlb> nested_tlb_;  // empty or one
};

}  // namespace vmmu::tlb
