#pragma once
// A shadow page (KVM's kvm_mmu_page): one owned table page shadowing one guest table (or, when
// direct, a run of guest frames) in one role, with what each of its leaves maps in guest terms
// (KVM's shadowed_translation) and the entries that point to it (parent links).

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <vector>

#include "vmmu/core/address.hpp"
#include "vmmu/shadow/role.hpp"

namespace vmmu::shadow {

inline constexpr unsigned kShadowEntries = 512;

// The index of the shadow entry at `entry` in its table.
inline unsigned entry_index(Hpa entry) {
  return static_cast<unsigned>((entry.raw() & (kPageSize - 1)) / sizeof(std::uint64_t));
}

// What a shadow leaf maps, in the guest's terms: the guest frame of its first byte and the
// size of the guest's leaf (the `page_size` a walk reports), packed in one word.
struct GuestLeaf {
  Gfn gfn;
  std::uint64_t page_size = 0;
};

class ShadowPage {
 public:
  ShadowPage(Gfn gfn, Role role, Hpa table) : gfn_(gfn), role_(role), table_(table) {}

  [[nodiscard]] Gfn gfn() const { return gfn_; }
  [[nodiscard]] Role role() const { return role_; }
  // Zapped while still some vCPU's root: found by no lookup, freed when the last lets go.
  void mark_invalid() { role_.set_invalid(true); }
  [[nodiscard]] Hpa table() const { return table_; }
  // Whether this page shadows a guest table (so the guest frame must be write-tracked).
  [[nodiscard]] bool tracks_gfn() const { return !role_.direct() && !role_.passthrough(); }

  [[nodiscard]] GuestLeaf leaf(unsigned index) const {
    return {Gfn(leaves_[index] >> 8), std::uint64_t{1} << (leaves_[index] & 0xff)};
  }
  void set_leaf(unsigned index, GuestLeaf l) {
    leaves_[index] = (l.gfn.raw() << 8) | static_cast<unsigned>(__builtin_ctzll(l.page_size));
  }

  // Addresses of the shadow entries that point to this page.
  [[nodiscard]] const std::vector<Hpa>& parents() const { return parents_; }
  void add_parent(Hpa entry) { parents_.push_back(entry); }
  void remove_parent(Hpa entry) { std::erase(parents_, entry); }
  void clear_parents() { parents_.clear(); }

  // Vcpus / callers using this page as their root.
  [[nodiscard]] unsigned root_count() const { return root_count_; }
  void hold_root() { ++root_count_; }
  void release_root() { --root_count_; }

  // When a fault last went through this page (the MMU's fault count): the quota reclaims
  // the pages used longest ago first.
  [[nodiscard]] std::uint64_t last_used() const { return last_used_; }
  void touch(std::uint64_t now) { last_used_ = now; }

  // Emulated writes to its guest table since a fault last went through it (KVM's
  // write_flooding_count): a table written often and never used is not worth shadowing.
  [[nodiscard]] unsigned written_unused() const { return written_unused_; }
  unsigned count_write() { return ++written_unused_; }
  void reset_written_unused() { written_unused_ = 0; }

  // Unsync (a level-1 page whose guest table may have changed since it was synced: its frame
  // is mapped writable), and which entries lead down to unsync pages (KVM's
  // unsync_child_bitmap) so that a sync walks only those paths. Bits may outlive what they
  // name (a zapped child); the sync walk clears them.
  [[nodiscard]] bool unsync() const { return unsync_; }
  void set_unsync(bool u) { unsync_ = u; }
  [[nodiscard]] bool has_unsync_children() const {
    return std::any_of(unsync_children_.begin(), unsync_children_.end(), [](std::uint64_t w) { return w != 0; });
  }
  [[nodiscard]] bool unsync_child(unsigned i) const { return (unsync_children_[i / 64] >> (i % 64)) & 1U; }
  // Sets bit `i`; true when it is the page's first (its parents must learn of it).
  bool mark_unsync_child(unsigned i) {
    const bool first = !has_unsync_children();
    unsync_children_[i / 64] |= std::uint64_t{1} << (i % 64);
    return first;
  }
  void clear_unsync_child(unsigned i) { unsync_children_[i / 64] &= ~(std::uint64_t{1} << (i % 64)); }
  // Calls fn(i) for each set bit, lowest first.
  template <class Fn>
  void for_each_unsync_child(Fn&& fn) const {
    for (unsigned w = 0; w < unsync_children_.size(); ++w) {
      for (std::uint64_t bits = unsync_children_[w]; bits != 0; bits &= bits - 1) {
        fn(w * 64 + static_cast<unsigned>(std::countr_zero(bits)));
      }
    }
  }

 private:
  Gfn gfn_;
  Role role_;
  Hpa table_;
  unsigned root_count_ = 0;
  std::uint64_t last_used_ = 0;
  unsigned written_unused_ = 0;
  bool unsync_ = false;
  std::array<std::uint64_t, kShadowEntries / 64> unsync_children_{};
  std::vector<Hpa> parents_;
  std::array<std::uint64_t, kShadowEntries> leaves_{};  // gfn << 8 | log2(guest page size)
};

}  // namespace vmmu::shadow
