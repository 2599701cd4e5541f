#pragma once
// The guest's page tables as a pt::TableMemory for the page-table builder: every read and
// write goes through Vm::read / Vm::write -- the VMM's path, faulted in and logged dirty like
// a device's access -- or, given a vCPU, through Vcpu::read_gpa / write_gpa: the guest's own
// guest-physical access, so a shadow MMU emulates or unsyncs the write as it would a guest's.
// The exchange is a read, a compare and a write, not one
// atomic step: the builder is its tables' only writer (see guest_page_table_builder.hpp).

#include <cstdint>
#include <optional>
#include <span>

#include "vmmu/core/address.hpp"
#include "vmmu/vm/vcpu.hpp"
#include "vmmu/vm/vm.hpp"

namespace vmmu::vm::detail {

class VmTableMemory {
 public:
  VmTableMemory(Vm& vm, Vcpu* vcpu) : vm_(vm), vcpu_(vcpu) {}

  template <class T>
  std::optional<T> read(Gpa gpa) {
    T value{};
    const std::span<std::byte> out = std::as_writable_bytes(std::span(&value, 1));
    if (!(vcpu_ != nullptr ? static_cast<bool>(vcpu_->read_gpa(gpa, out)) : static_cast<bool>(vm_.read(gpa, out))))
      return std::nullopt;
    return value;
  }

  bool write(Gpa gpa, std::span<const std::byte> in) {
    return vcpu_ != nullptr ? static_cast<bool>(vcpu_->write_gpa(gpa, in)) : static_cast<bool>(vm_.write(gpa, in));
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
    return write(gpa, std::as_bytes(std::span(&desired, 1)));
  }

 private:
  Vm& vm_;
  Vcpu* vcpu_;  // null: the VMM's path
};

}  // namespace vmmu::vm::detail
