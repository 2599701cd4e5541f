#pragma once
// A pt::TableMemory that lends another one a fixed number of entry reads, then reads as
// unbacked. It bounds a listing over hostile tables: one table whose entries all point back
// at it, or tables fanning out 512 ways at every level, give 512^4 (LA57: 512^5) leaves or
// empty entries, and image::for_each_mapping has no limit of its own. Once the budget is
// spent every read fails, so the iterator skips the rest of each table on its path: at most
// 512 more entries per level, then it ends.

#include <cstdint>
#include <optional>

namespace vmmu::fuzz {

template <class M>
class ReadBudget {
 public:
  ReadBudget(M& memory, std::uint64_t reads) : memory_(memory), left_(reads) {}

  template <class T, class A>
  std::optional<T> read(A addr) {
    if (left_ == 0) return std::nullopt;
    --left_;
    return memory_.template read<T>(addr);
  }

  // Never writes (the image is read-only anyway); reloads `expected` while reads are left.
  template <class T, class A>
  bool compare_exchange(A addr, T& expected, T /*desired*/) {
    expected = read<T>(addr).value_or(T{});
    return false;
  }

  [[nodiscard]] bool spent() const { return left_ == 0; }

 private:
  M& memory_;
  std::uint64_t left_;
};

}  // namespace vmmu::fuzz
