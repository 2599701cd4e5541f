#include "guest_kernel.hpp"

#include <fmt/format.h>

#include "vmmu/core/format.hpp"

namespace vmmu::sim {

Result<GuestKernel, std::string> GuestKernel::create(vm::Vcpu& vcpu, Range<Gpa> tables, Range<Gpa> data,
                                                     unsigned processes, unsigned levels, std::uint64_t page_size) {
  GuestKernel k(levels, page_size, data);
  const std::uint64_t share = (tables.end - tables.begin) / processes / kPageSize * kPageSize;
  for (unsigned p = 0; p < processes; ++p) {
    const Gpa begin = tables.begin + p * share;
    auto b = vm::GuestPageTableBuilder::create(vcpu, {begin, begin + share}, levels);
    if (!b) return Unexpected{fmt::format("guest page tables of process {}: {}", p, vm::to_string(b.error()))};
    k.processes_.push_back({std::move(*b), {}, {}});
  }
  return k;
}

std::uint64_t GuestKernel::table_pages() const {
  std::uint64_t n = 0;
  for (const Process& p : processes_) n += p.builder.tables_used();
  return n;
}

Status<std::string> GuestKernel::fault(unsigned process, Gva gva) {
  Process& p = processes_[process];
  const Gva page(gva.raw() & ~(page_size_ - 1));
  if (!p.mapped.insert(page.raw() / page_size_).second)
    return Unexpected{fmt::format("guest kernel: page fault at {} on a page it mapped already", gva)};
  if (next_ + page_size_ > data_.end)
    return Unexpected{fmt::format("guest memory exhausted at {} (the replay's memslot holds {} MiB of data)",
                                  gva, (data_.end - data_.begin) >> 20)};
  vm::GuestPageFlags flags;
  flags.user = true;
  if (auto s = p.builder.map(page, next_, page_size_, page_size_, flags); !s)
    return Unexpected{fmt::format("guest kernel: cannot map {}: {}", page, vm::to_string(s.error()))};
  next_ += page_size_;
  ++faults_;
  for (unsigned l = levels_ - 1; l >= leaf_level_; --l) {
    const std::uint64_t key = table_key(l, page);
    if (p.tables.contains(key)) continue;
    auto where = p.builder.entry_address(page, l);
    if (!where) return Unexpected{fmt::format("guest kernel: {}: {}", page, vm::to_string(where.error()))};
    p.tables.emplace(key, Gpa(where->raw() & ~(kPageSize - 1)));
  }
  return {};
}

tlb::GuestPath GuestKernel::path(unsigned process, Gva gva) const {
  const Process& p = processes_[process];
  tlb::GuestPath path;
  path.gva = gva;
  path.leaf_level = leaf_level_;
  path.table[levels_ - 1] = p.builder.root();
  for (unsigned l = levels_ - 1; l >= leaf_level_; --l) {
    const auto it = p.tables.find(table_key(l, gva));
    if (it != p.tables.end()) path.table[l - 1] = it->second;
  }
  return path;
}

}  // namespace vmmu::sim
