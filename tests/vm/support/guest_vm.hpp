#pragma once
// GuestVm: a VM with one memslot of host memory at gpa 0, a pool of guest page-table pages at
// the top of it, a GuestPageTableBuilder over the pool, and long-mode vCPUs running on those
// tables -- what most vm (and sim) tests start from.
//
//   gpa 0 ........................................ memory - pool ....... memory
//   [ data the tests map gvas onto               ][ guest page tables      ]

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

#include "vmmu/core/page_size.hpp"
#include "vmmu/memory/memslots.hpp"
#include "vmmu/vm/guest_page_table_builder.hpp"
#include "vmmu/vm/vcpu.hpp"
#include "vmmu/vm/vm.hpp"

namespace vmmu::vm::test {

// Where the tests put their data: gva 1 GiB, mapped onto gpa 1 MiB.
inline constexpr Gva kData(0x4000'0000);
inline constexpr Gpa kDataGpa(0x10'0000);

// Zeroed host memory aligned to `align` (a memslot's backing page size).
class HostMemory {
 public:
  HostMemory(std::uint64_t bytes, std::uint64_t align)
      : bytes_(bytes), data_(static_cast<std::byte*>(std::aligned_alloc(align, round_up(bytes, align)))) {
    std::memset(data_.get(), 0, bytes);
  }
  [[nodiscard]] std::byte* data() const { return data_.get(); }
  [[nodiscard]] std::uint64_t size() const { return bytes_; }

 private:
  static std::uint64_t round_up(std::uint64_t v, std::uint64_t a) { return (v + a - 1) / a * a; }
  struct Free {
    void operator()(std::byte* p) const { std::free(p); }
  };
  std::uint64_t bytes_;
  std::unique_ptr<std::byte, Free> data_;
};

struct GuestVmOptions {
  std::uint64_t memory = 64 * MiB;         // the slot: gpa [0, memory)
  std::uint64_t table_pool = 2 * MiB;      // top of the slot, for guest page tables
  std::uint64_t backing_page_size = kPageSize;
  MemslotFlags flags = MemslotFlags::none();
  unsigned guest_levels = 4;
  VmConfig config{};
};

class GuestVm {
 public:
  static constexpr SlotId kSlot{1};

  explicit GuestVm(const GuestVmOptions& o = {}) : options_(o), host_(o.memory, o.backing_page_size) {
    auto vm = Vm::create(o.config);
    if (!vm) {
      ADD_FAILURE() << "Vm::create: " << to_string(vm.error());
      return;
    }
    vm_ = std::move(*vm);
    const Status<MemslotError> added = vm_->memslots().add(
        MemslotSpec{kSlot, Gfn(0), o.memory / kPageSize, host_.data(), o.flags, o.backing_page_size});
    if (!added) {
      ADD_FAILURE() << "memslot: " << to_string(added.error());
      return;
    }
    auto b = GuestPageTableBuilder::create(*vm_, pool(), o.guest_levels);
    if (!b) {
      ADD_FAILURE() << "builder: " << to_string(b.error());
      return;
    }
    tables_ = std::make_unique<GuestPageTableBuilder>(std::move(*b));
  }

  [[nodiscard]] Vm& vm() { return *vm_; }
  [[nodiscard]] tdp::TdpMmu& tdp() { return *vm_->tdp_mmu(); }
  [[nodiscard]] GuestPageTableBuilder& tables() { return *tables_; }
  [[nodiscard]] Range<Gpa> pool() const { return {Gpa(options_.memory - options_.table_pool), Gpa(options_.memory)}; }
  // The host byte behind `gpa` (inside the slot).
  [[nodiscard]] std::byte* host(Gpa gpa) const { return host_.data() + gpa.raw(); }
  [[nodiscard]] std::uint64_t host_word(Gpa gpa) const {
    std::uint64_t v;
    std::memcpy(&v, host(gpa), 8);
    return v;
  }

  // Maps gva [gva, gva + bytes) onto gpa with `page_size` pages; fails the test on error.
  void map(Gva gva, Gpa gpa, std::uint64_t bytes, std::uint64_t page_size = kPageSize, GuestPageFlags flags = {}) {
    const Status<BuildError> s = tables_->map(gva, gpa, bytes, page_size, flags);
    ASSERT_TRUE(s) << "map: " << to_string(s.error());
  }
  // The guest entry translating `gva` at `level` (as stored in guest memory).
  [[nodiscard]] std::uint64_t entry(Gva gva, unsigned level) {
    auto where = tables_->entry_address(gva, level);
    EXPECT_TRUE(where);
    return where ? host_word(*where) : 0;
  }
  void set_entry(Gva gva, unsigned level, std::uint64_t value) {
    auto where = tables_->entry_address(gva, level);
    ASSERT_TRUE(where);
    std::memcpy(host(*where), &value, 8);
  }

  // A new vCPU in long mode on the builder's tables.
  Vcpu& add_vcpu() {
    Vcpu& v = vm_->add_vcpu();
    v.set_registers(long_mode_registers(tables_->root(), options_.guest_levels));
    return v;
  }

 private:
  GuestVmOptions options_;
  HostMemory host_;
  std::unique_ptr<Vm> vm_;
  std::unique_ptr<GuestPageTableBuilder> tables_;
};

// Bytes with a recognisable pattern: byte i = seed + i * 7 (mod 256).
inline std::vector<std::byte> pattern(std::size_t n, unsigned seed) {
  std::vector<std::byte> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::byte>((seed + i * 7) & 0xff);
  return v;
}

}  // namespace vmmu::vm::test
