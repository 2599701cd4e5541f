#pragma once
// HostBuffer: anonymous host memory to lend a memslot, aligned to the page size the slot
// declares as its backing, so the MMU may map it with pages that large.
//
// The declared size is what the MMU honours; whether the kernel really backs the memory with
// huge pages only changes the host's own speed. So huge host pages are asked for only on
// request (transparent huge pages through madvise(MADV_HUGEPAGE); for 1 GiB, hugetlbfs pages
// first): on some hosts faulting THP in costs several times what 4 KiB pages do.
// `populate` faults every page in at allocation, so a scenario's phases time the MMU, not
// the host's page faults: MADV_POPULATE_WRITE, then one write to every 4 KiB page, because on a
// virtualized host (PVM's shadow paging here) madvise succeeds yet the first user write to each
// page still traps to the outer hypervisor -- 10 to 50 us a page, unseen by the kernel's fault
// counters. The write pass is timed: it is what a phase would otherwise pay.

#include <cstddef>
#include <cstdint>
#include <string>

#include "vmmu/core/result.hpp"

namespace vmmu::sim {

struct HostMemoryOptions {
  bool huge_pages = false;  // ask the kernel for huge pages of the backing size
  bool populate = true;     // fault every page in now and touch it once
};

class HostBuffer {
 public:
  // `bytes`: a multiple of `page_size` (4 KiB, 2 MiB or 1 GiB). Memory reads as zero.
  // Errors: a line naming the size and the system's reason.
  static Result<HostBuffer, std::string> allocate(std::uint64_t bytes, std::uint64_t page_size,
                                                  HostMemoryOptions options = {});

  HostBuffer() = default;
  ~HostBuffer();
  HostBuffer(HostBuffer&& o) noexcept;
  HostBuffer& operator=(HostBuffer&& o) noexcept;
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;

  [[nodiscard]] std::byte* data() const { return data_; }
  [[nodiscard]] std::uint64_t size() const { return size_; }
  // True when the kernel gave hugetlbfs pages (1 GiB backing only).
  [[nodiscard]] bool hugetlb() const { return hugetlb_; }
  // The populate write pass: its wall time and the 4 KiB pages it wrote (0 without populate).
  [[nodiscard]] std::uint64_t touch_ns() const { return touch_ns_; }
  [[nodiscard]] std::uint64_t pages_touched() const { return pages_touched_; }

 private:
  void populate();
  void release();

  std::byte* data_ = nullptr;
  std::uint64_t size_ = 0;
  void* mapping_ = nullptr;  // what munmap takes back (may start before data_)
  std::uint64_t mapping_size_ = 0;
  bool hugetlb_ = false;
  std::uint64_t touch_ns_ = 0;
  std::uint64_t pages_touched_ = 0;
};

}  // namespace vmmu::sim
