#pragma once
// A shadow page (KVM's kvm_mmu_page): one owned table page shadowing one guest table (or, when
// direct, a run of guest frames) in one role, with what each of its leaves maps in guest terms
// (KVM's shadowed_translation) and the entries that point to it (parent links).

#include <array>
#include <cstdint>
#include <vector>

#include "vmmu/core/address.hpp"
#include "vmmu/shadow/role.hpp"

namespace vmmu::shadow {

inline constexpr unsigned kShadowEntries = 512;

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

 private:
  Gfn gfn_;
  Role role_;
  Hpa table_;
  unsigned root_count_ = 0;
  std::uint64_t last_used_ = 0;
  std::vector<Hpa> parents_;
  std::array<std::uint64_t, kShadowEntries> leaves_{};  // gfn << 8 | log2(guest page size)
};

}  // namespace vmmu::shadow
