#pragma once
// A reference LRU TLB written the obvious way (a list per set, most recent first), to check
// the model's misses against: an entry filled by a read misses a later write (the walk that
// sets D), which then makes it writable.

#include <cstdint>
#include <list>
#include <vector>

namespace vmmu::tlb::test_support {

class ReferenceLru {
 public:
  ReferenceLru(std::uint32_t entries, std::uint32_t ways) : ways_(ways), lists_(entries / ways) {}
  // One access of 4 KiB page `page`: true on a miss.
  bool access(std::uint64_t page, bool write) {
    std::list<Entry>& l = lists_[page % lists_.size()];
    for (auto it = l.begin(); it != l.end(); ++it) {
      if (it->page != page) continue;
      const bool miss = write && !it->writable;
      const Entry e{page, it->writable || write};
      l.erase(it);
      l.push_front(e);
      return miss;
    }
    if (l.size() == ways_) l.pop_back();
    l.push_front({page, write});
    return true;
  }

 private:
  struct Entry {
    std::uint64_t page;
    bool writable;
  };
  std::uint32_t ways_;
  std::vector<std::list<Entry>> lists_;
};

}  // namespace vmmu::tlb::test_support
