#pragma once
// GuestMm: the guest kernel of the fork, rewrite-tables and cr3-switch phases, one per vCPU and
// running on it. Its address spaces share a kernel half: a direct map of the guest-physical
// pages it uses (its table pool, its data frames) at kDirectMap + gpa. Through it the kernel
// reads and writes its page tables and copies pages with the vCPU's own accesses, as a guest
// kernel does -- so under shadow every table write is the guest's (emulated, or into an
// unsync page), not the VMM's. Only the direct map itself is written by the VMM, at boot.
//
//   gva  kUserBase + i * 4 KiB  ── the process's user half ──►  a data frame
//        kDirectMap + gpa       ── kernel half, shared ──────►  gpa (table pool, data frames)

#include <cstdint>
#include <string>
#include <vector>

#include "vmmu/core/address.hpp"
#include "vmmu/core/result.hpp"
#include "vmmu/vm/guest_exit.hpp"
#include "vmmu/vm/vcpu.hpp"
#include "vmmu/vm/vm.hpp"

namespace vmmu::sim {

class GuestMm {
 public:
  static constexpr Gva kUserBase{std::uint64_t{1} << 30};
  static constexpr std::uint64_t kDirectMap = 0xffff'8880'0000'0000;  // Linux's page_offset_base

  // Table pages from the pool that boot and `spaces` address spaces of up to `user_pages`
  // user pages each need, `frames` data frames directly mapped.
  static std::uint64_t pool_pages(std::uint64_t frames, unsigned spaces, std::uint64_t user_pages);

  // Builds the direct map of `pool` and `frames` in the pool and the first address space, and
  // puts `vcpu` in long mode on it. Errors: a line naming what failed.
  static Result<GuestMm, std::string> boot(vm::Vm& vm, vm::Vcpu& vcpu, Range<Gpa> pool, const std::vector<Gpa>& frames);

  [[nodiscard]] vm::Vcpu& vcpu() { return *vcpu_; }
  [[nodiscard]] Gpa first_root() const { return first_root_; }

  // A new address space: an empty user half, the kernel half shared (its root entries copied).
  Result<Gpa, std::string> new_address_space();
  // Where the 4 KiB leaf entry of `gva` lives in the address space at `root` (tables made on
  // the way). Errors: the pool exhausted, a huge leaf in the way, an access that exited.
  Result<Gpa, std::string> leaf_address(Gpa root, Gva gva);

  // The kernel's 8-byte accesses to guest-physical memory, through the direct map.
  Result<std::uint64_t, std::string> read_phys(Gpa gpa);
  Status<std::string> write_phys(Gpa gpa, std::uint64_t value);
  // Copies the 4 KiB page at `from` to `to` through the direct map.
  Status<std::string> copy_page(Gpa from, Gpa to);

  // A user page's 4 KiB leaf: `frame`, present, user, writable or not.
  static std::uint64_t user_leaf(Gpa frame, bool writable);
  static Gpa leaf_frame(std::uint64_t leaf);
  static bool leaf_writable(std::uint64_t leaf);

  // The process's own 8-byte accesses at `gva` (CPL 3): a refusal is the guest's #PF.
  Result<std::uint64_t, vm::GuestExit> read_user(Gva gva);
  Status<vm::GuestExit> write_user(Gva gva, std::uint64_t value);

 private:
  GuestMm(vm::Vcpu& vcpu, Range<Gpa> pool) : vcpu_(&vcpu), pool_(pool), next_(pool.begin) {}
  Result<Gpa, std::string> take_table();

  vm::Vcpu* vcpu_;
  Range<Gpa> pool_;
  Gpa next_;
  Gpa first_root_;
};

// "vCPU 1: ..." lines of a guest-kernel phase, kept to the first few; and a count of all.
struct KernelLog {
  static constexpr std::size_t kKept = 4;
  std::vector<std::string> failures;
  std::uint64_t count = 0;
  void fail(std::string what) {
    if (count++ < kKept) failures.push_back(std::move(what));
  }
};

}  // namespace vmmu::sim
