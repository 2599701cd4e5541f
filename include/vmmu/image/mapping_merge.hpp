#pragma once
// Merging a listing into ranges, as `vmmu maps --merge` prints them (x86-maps.md): leaves
// whose gvas are contiguous and whose effective user / write / nx agree form one range;
// a gap or any difference in those three starts a new one. (QEMU's `info mem` uses the same
// rule without nx.) Frames are not compared: a range may map scattered guest memory.

#include <cstdint>
#include <optional>

#include "vmmu/core/address.hpp"
#include "vmmu/image/guest_mappings.hpp"

namespace vmmu::image {

struct MappedRange {
  Gva gva;
  std::uint64_t size = 0;
  bool user = false;
  bool write = false;
  bool nx = false;
  friend constexpr bool operator==(const MappedRange&, const MappedRange&) = default;
};

class RangeMerger {
 public:
  // Adds the next mapping (in ascending gva order); returns the range it closed, if any.
  std::optional<MappedRange> add(const GuestMapping& m) {
    if (open_ && open_->gva.raw() + open_->size == m.gva.raw() && open_->user == m.user &&
        open_->write == m.write && open_->nx == m.nx) {
      open_->size += m.page_size;
      return std::nullopt;
    }
    std::optional<MappedRange> closed = open_;
    open_ = MappedRange{m.gva, m.page_size, m.user, m.write, m.nx};
    return closed;
  }

  // The last open range, if any; the merger is empty afterwards.
  std::optional<MappedRange> finish() {
    std::optional<MappedRange> closed = open_;
    open_.reset();
    return closed;
  }

 private:
  std::optional<MappedRange> open_;
};

}  // namespace vmmu::image
