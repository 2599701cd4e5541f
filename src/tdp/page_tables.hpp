#pragma once
// The loop the TDP MMU's range operations share: every leaf touching a range, with each page
// table that lies wholly inside the range handed over as one array of 512 entries (the
// common case, done with plain loads and masks instead of one iterator step per entry).

#include <cstdint>

#include "vmmu/pt/host_memory.hpp"
#include "vmmu/pt/table_iterator.hpp"
#include "vmmu/tdp/tdp_format.hpp"

namespace vmmu::tdp::detail {

// table(Entry* entries, std::uint64_t first_gpa) for whole page tables; leaf(iterator) for
// every other leaf, returning false when it lost a race and wants the entry again.
template <class TableFn, class LeafFn>
void for_each_leaf(const TdpFormat& f, pt::HostTableMemory& memory, Hpa root, Range<Gpa> range, TableFn&& table,
                   LeafFn&& leaf) {
  using Entry = TdpFormat::Entry;
  const std::uint64_t begin = range.begin.raw(), end = range.end.raw();
  pt::TableIterator it(f, memory, root, begin, end);
  while (it.valid()) {
    if (it.level() == 2 && it.is_table() && it.address() >= begin && end - it.address() >= it.span()) {
      table(pt::HostTableMemory::pointer<Entry>(f.table_address(it.entry(), 2)), it.address());
      it.next_sibling();
      continue;
    }
    if (it.is_leaf() && !leaf(it)) continue;
    it.next();
  }
}

}  // namespace vmmu::tdp::detail
