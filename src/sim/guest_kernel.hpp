#pragma once
// GuestKernel: the modelled guest kernel of a trace replay. Page tables start empty; a page
// fault on a page (4 KiB guest pages) or 2 MiB region (2 MiB pages) never touched maps it
// writable and user with fresh zeroed frames, allocated densely. The kernel writes only its
// page tables, through GuestPageTableBuilder over the replaying vCPU: each entry is a
// guest-physical write by the vCPU through the MMU's access path, so a shadow MMU emulates it
// or lets the table go unsync, as for a real guest (the VMM's Vm::write would zap instead).
//
//   guest-physical memory (one memslot):  [ table pool: process 0 | process 1 | ... ][ data frames ... ]

#include <cstdint>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "vmmu/core/address.hpp"
#include "vmmu/core/result.hpp"
#include "vmmu/tlb/translation_hardware.hpp"
#include "vmmu/vm/guest_page_table_builder.hpp"

namespace vmmu::sim {

class GuestKernel {
 public:
  // `tables`: the table pool, split evenly between `processes`; `data`: where frames go.
  // Errors: a line naming what failed (a pool too small for a root).
  static Result<GuestKernel, std::string> create(vm::Vcpu& vcpu, Range<Gpa> tables, Range<Gpa> data, unsigned processes,
                                                 unsigned levels, std::uint64_t page_size);

  [[nodiscard]] Gpa root(unsigned process) const { return processes_[process].builder.root(); }
  [[nodiscard]] std::uint64_t faults() const { return faults_; }
  [[nodiscard]] std::uint64_t table_pages() const;

  // The page fault of `process` at `gva`: maps its page. Errors: the page was mapped already
  // (the fault was not a first touch), guest memory or the table pool exhausted.
  Status<std::string> fault(unsigned process, Gva gva);

  // The tables a walk of `gva` reads (mapped) and its leaf level, for the hardware model.
  [[nodiscard]] tlb::GuestPath path(unsigned process, Gva gva) const;

 private:
  struct Process {
    vm::GuestPageTableBuilder builder;
    std::unordered_map<std::uint64_t, Gpa> tables;  // (level, gva >> span of a level-table) -> table page
    std::unordered_set<std::uint64_t> mapped;       // gva / page size of every page mapped
  };
  GuestKernel(unsigned levels, std::uint64_t page_size, Range<Gpa> data)
      : levels_(levels), page_size_(page_size), leaf_level_(page_size == kPageSize ? 1 : 2), data_(data),
        next_(data.begin) {}
  static std::uint64_t table_key(unsigned level, Gva gva) {
    return (std::uint64_t{level} << 58) | (gva.raw() >> (kPageShift + 9 * level));
  }

  unsigned levels_;
  std::uint64_t page_size_;
  unsigned leaf_level_;
  Range<Gpa> data_;
  Gpa next_;
  std::vector<Process> processes_;
  std::uint64_t faults_ = 0;
};

}  // namespace vmmu::sim
