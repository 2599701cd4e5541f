#pragma once
// The guest's page tables as a pt::TableMemory for the page-table builder: every read and
// write goes through Vm::read / Vm::write -- through the TDP tables, faulted in and logged
// dirty like a device's access. The exchange is a read, a compare and a write, not one
// atomic step: the builder is its tables' only writer (see guest_page_table_builder.hpp).

#include <cstdint>
#include <optional>
#include <span>

#include "vmmu/core/address.hpp"
#include "vmmu/vm/vm.hpp"

namespace vmmu::vm::detail {

class VmTableMemory {
 public:
  explicit VmTableMemory(Vm& vm) : vm_(vm) {}

  template <class T>
  std::optional<T> read(Gpa gpa) {
    T value{};
    if (!vm_.read(gpa, std::as_writable_bytes(std::span(&value, 1)))) return std::nullopt;
    return value;
  }

  // False with `expected` reloaded when the entry differs, or with 0 when it cannot be read;
  // false with `expected` unchanged when the write exits.
  template <class T>
  bool compare_exchange(Gpa gpa, T& expected, T desired) {
    const std::optional<T> now = read<T>(gpa);
    if (!now || *now != expected) {
      expected = now.value_or(T{0});
      return false;
    }
    return static_cast<bool>(vm_.write(gpa, std::as_bytes(std::span(&desired, 1))));
  }

 private:
  Vm& vm_;
};

}  // namespace vmmu::vm::detail
