#pragma once
// Guest RAM as the shadow MMU sees it: the host page backing each guest frame, and the guest's
// page tables read (and their A/D bits compare-exchanged) in it by the x86 walker.
//
// The shadow MMU maps gva straight to these host pages, so it needs each frame's host address,
// not just a way to read it: a memslot-backed VM or a case file's sparse memory answer alike.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>

#include "vmmu/core/address.hpp"

namespace vmmu::shadow {

class GuestRam {
 public:
  virtual ~GuestRam() = default;
  // The 4 KiB host page backing `gfn`, or nullptr when no memory is there (MMIO).
  virtual std::byte* page(Gfn gfn) = 0;
};

// pt::TableMemory<_, Gpa> over GuestRam: what the x86 walker reads the guest's tables with.
class GuestRamTables {
 public:
  explicit GuestRamTables(GuestRam& ram) : ram_(ram) {}
  template <class T>
  std::optional<T> read(Gpa addr) const {
    T* p = at<T>(addr);
    if (p == nullptr) return std::nullopt;
    return std::atomic_ref<T>(*p).load(std::memory_order_acquire);
  }
  template <class T>
  bool compare_exchange(Gpa addr, T& expected, T desired) {
    T* p = at<T>(addr);
    if (p == nullptr) {
      expected = 0;
      return false;
    }
    return std::atomic_ref<T>(*p).compare_exchange_strong(expected, desired, std::memory_order_acq_rel);
  }

 private:
  template <class T>
  T* at(Gpa addr) const {
    std::byte* page = ram_.page(gfn_of(addr));
    // Entries are naturally aligned and pages page-aligned: the cast is aligned.
    return page == nullptr ? nullptr : reinterpret_cast<T*>(page + addr.offset_in(kPageSize));  // NOLINT
  }
  GuestRam& ram_;
};

}  // namespace vmmu::shadow
