#pragma once
// KvmVm: a real KVM virtual machine with one vCPU, used only as an oracle for guest
// page-table walks. It never runs the vCPU: it loads paging registers (KVM_SET_SREGS,
// KVM_SET_REGS) and asks KVM to translate addresses (KVM_TRANSLATE) through page tables the
// test writes into guest RAM it mmap'd and registered with KVM_SET_USER_MEMORY_REGION.
//
// What KVM_TRANSLATE is (arch/x86/kvm/x86.c, kvm_arch_vcpu_ioctl_translate): a walk with
// kvm_mmu_gva_to_gpa_system, i.e. access code 0 -- an explicit supervisor data read whatever
// the CPL (SMAP applies unless RFLAGS.AC, protection keys apply to user pages). `valid` is
// gpa != INVALID_GPA; `writeable` is always 1 and `usermode` always 0 (not information).
// The walk sets Accessed bits in guest memory when it succeeds. It does not check that the
// address is canonical, nor that the final page is backed by a memslot.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "vmmu/core/address.hpp"
#include "vmmu/core/result.hpp"
#include "vmmu/x86/registers.hpp"

namespace vmmu::test::kvm {

enum class KvmError : std::uint8_t {
  DeviceMissing,     // /dev/kvm does not exist
  DeviceUnusable,    // open(/dev/kvm) failed (permissions, ...)
  ApiVersion,        // KVM_GET_API_VERSION is not 12
  CreateVm,          // KVM_CREATE_VM failed
  GuestRam,          // mmap of guest RAM failed
  SetMemoryRegion,   // KVM_SET_USER_MEMORY_REGION failed
  CreateVcpu,        // KVM_CREATE_VCPU failed
  GetRegisters,      // KVM_GET_SREGS / KVM_GET_REGS failed
  SetRegisters,      // KVM_SET_SREGS / KVM_SET_REGS refused the values (EINVAL: unsupported)
  Translate,         // KVM_TRANSLATE failed
};

const char* to_string(KvmError error);

struct KvmFailure {
  KvmError error = KvmError::DeviceMissing;
  int os_error = 0;  // errno of the failing call
  [[nodiscard]] std::string message() const;
};

// A memslot to create: its guest-physical range (page-aligned) and KVM_MEM_READONLY.
struct GuestRamSlot {
  Range<Gpa> range;
  bool read_only = false;
};

// One memslot of guest RAM: guest-physical range and the host bytes backing it.
struct RamRegion {
  Gpa base;
  std::span<std::byte> bytes;
  bool read_only = false;  // to the guest (and to KVM's walker); the host may still write it
  [[nodiscard]] Range<Gpa> range() const { return {base, base + bytes.size()}; }
};

struct KvmTranslation {
  bool valid = false;
  Gpa gpa;  // meaningful when valid
};

class KvmVm {
 public:
  // Opens /dev/kvm, creates a VM with one memslot per entry of `slots` (fresh zeroed
  // anonymous memory each) and one vCPU.
  // Errors: DeviceMissing, DeviceUnusable, ApiVersion, CreateVm, GuestRam, SetMemoryRegion,
  // CreateVcpu -- each names the step that failed, for a clear test skip.
  static Result<KvmVm, KvmFailure> create(const std::vector<GuestRamSlot>& slots);

  KvmVm(KvmVm&& other) noexcept;
  KvmVm& operator=(KvmVm&&) = delete;
  KvmVm(const KvmVm&) = delete;
  KvmVm& operator=(const KvmVm&) = delete;
  ~KvmVm();

  [[nodiscard]] const std::vector<RamRegion>& ram() const { return ram_; }

  // Loads CR0, CR3, CR4, EFER (64-bit code segment when EFER.LMA) and RFLAGS. PKRU is not
  // loaded: this backend refuses KVM_SET_XSAVE, so it stays 0.
  // Errors: GetRegisters; SetRegisters when KVM refuses the combination (e.g. a CR4 bit it
  // does not support, CR3 above the guest MAXPHYADDR).
  Status<KvmFailure> set_paging(const x86::Registers& regs);

  // The registers as KVM holds them now (CR0, CR3, CR4, EFER, RFLAGS; pkru 0).
  // Errors: GetRegisters.
  Result<x86::Registers, KvmFailure> paging() const;

  // KVM_TRANSLATE of `gva`. Errors: Translate (the ioctl itself failed).
  Result<KvmTranslation, KvmFailure> translate(Gva gva);

 private:
  KvmVm() = default;
  int kvm_fd_ = -1;
  int vm_fd_ = -1;
  int vcpu_fd_ = -1;
  std::vector<RamRegion> ram_;
};

}  // namespace vmmu::test::kvm
