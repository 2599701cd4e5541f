#include "kvm/support/kvm_vm.hpp"

#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace vmmu::test::kvm {
namespace {

constexpr std::uint64_t kEferLma = 1u << 10;
constexpr std::uint64_t kRflagsFixed = 0x2;  // RFLAGS bit 1 always reads 1 (SDM vol. 1, 3.4.3)

Unexpected<KvmFailure> fail(KvmError error) { return Unexpected<KvmFailure>{KvmFailure{error, errno}}; }

// 64-bit code segment: KVM_SET_SREGS insists that CS.L matches EFER.LMA.
void set_code_segment(kvm_segment& cs, bool long_mode) {
  cs.l = long_mode ? 1 : 0;
  cs.db = long_mode ? 0 : 1;
  cs.present = 1;
  cs.s = 1;
  cs.type = 0xb;  // execute/read, accessed
}

}  // namespace

const char* to_string(KvmError error) {
  switch (error) {
    case KvmError::DeviceMissing: return "/dev/kvm does not exist";
    case KvmError::DeviceUnusable: return "/dev/kvm cannot be opened";
    case KvmError::ApiVersion: return "KVM_GET_API_VERSION is not 12";
    case KvmError::CreateVm: return "KVM_CREATE_VM failed";
    case KvmError::GuestRam: return "mmap of guest RAM failed";
    case KvmError::SetMemoryRegion: return "KVM_SET_USER_MEMORY_REGION failed";
    case KvmError::CreateVcpu: return "KVM_CREATE_VCPU failed";
    case KvmError::GetRegisters: return "KVM_GET_SREGS/KVM_GET_REGS failed";
    case KvmError::SetRegisters: return "KVM_SET_SREGS/KVM_SET_REGS refused the registers";
    case KvmError::Translate: return "KVM_TRANSLATE failed";
  }
  return "?";
}

std::string KvmFailure::message() const {
  std::string m = to_string(error);
  if (os_error != 0) m += std::string(" (") + std::strerror(os_error) + ")";
  return m;
}

Result<KvmVm, KvmFailure> KvmVm::create(const std::vector<GuestRamSlot>& slots) {
  struct stat st {};
  if (::stat("/dev/kvm", &st) != 0) return fail(KvmError::DeviceMissing);
  KvmVm vm;
  vm.kvm_fd_ = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (vm.kvm_fd_ < 0) return fail(KvmError::DeviceUnusable);
  if (::ioctl(vm.kvm_fd_, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) return fail(KvmError::ApiVersion);
  vm.vm_fd_ = ::ioctl(vm.kvm_fd_, KVM_CREATE_VM, 0);
  if (vm.vm_fd_ < 0) return fail(KvmError::CreateVm);
  for (const GuestRamSlot& spec : slots) {
    const Range<Gpa>& slot = spec.range;
    void* host = ::mmap(nullptr, slot.size(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (host == MAP_FAILED) return fail(KvmError::GuestRam);
    vm.ram_.push_back({slot.begin, {static_cast<std::byte*>(host), slot.size()}, spec.read_only});
    kvm_userspace_memory_region region{};
    region.slot = static_cast<std::uint32_t>(vm.ram_.size() - 1);
    region.guest_phys_addr = slot.begin.raw();
    region.memory_size = slot.size();
    region.flags = spec.read_only ? KVM_MEM_READONLY : 0;
    // The kernel takes the host address of the memory as an integer.
    region.userspace_addr = reinterpret_cast<std::uintptr_t>(host);
    if (::ioctl(vm.vm_fd_, KVM_SET_USER_MEMORY_REGION, &region) != 0) return fail(KvmError::SetMemoryRegion);
  }
  vm.vcpu_fd_ = ::ioctl(vm.vm_fd_, KVM_CREATE_VCPU, 0);
  if (vm.vcpu_fd_ < 0) return fail(KvmError::CreateVcpu);
  return vm;
}

KvmVm::KvmVm(KvmVm&& other) noexcept
    : kvm_fd_(std::exchange(other.kvm_fd_, -1)),
      vm_fd_(std::exchange(other.vm_fd_, -1)),
      vcpu_fd_(std::exchange(other.vcpu_fd_, -1)),
      ram_(std::exchange(other.ram_, {})) {}

KvmVm::~KvmVm() {
  if (vcpu_fd_ >= 0) ::close(vcpu_fd_);
  if (vm_fd_ >= 0) ::close(vm_fd_);
  if (kvm_fd_ >= 0) ::close(kvm_fd_);
  for (const RamRegion& r : ram_) ::munmap(r.bytes.data(), r.bytes.size());
}

Status<KvmFailure> KvmVm::set_paging(const x86::Registers& regs) {
  kvm_sregs sregs{};
  if (::ioctl(vcpu_fd_, KVM_GET_SREGS, &sregs) != 0) return fail(KvmError::GetRegisters);
  sregs.cr0 = regs.cr0;
  sregs.cr3 = regs.cr3;
  sregs.cr4 = regs.cr4;
  sregs.efer = regs.efer;
  set_code_segment(sregs.cs, (regs.efer & kEferLma) != 0);
  if (::ioctl(vcpu_fd_, KVM_SET_SREGS, &sregs) != 0) return fail(KvmError::SetRegisters);
  kvm_regs gprs{};
  if (::ioctl(vcpu_fd_, KVM_GET_REGS, &gprs) != 0) return fail(KvmError::GetRegisters);
  gprs.rflags = regs.rflags | kRflagsFixed;
  if (::ioctl(vcpu_fd_, KVM_SET_REGS, &gprs) != 0) return fail(KvmError::SetRegisters);
  return {};
}

Result<x86::Registers, KvmFailure> KvmVm::paging() const {
  kvm_sregs sregs{};
  kvm_regs gprs{};
  if (::ioctl(vcpu_fd_, KVM_GET_SREGS, &sregs) != 0) return fail(KvmError::GetRegisters);
  if (::ioctl(vcpu_fd_, KVM_GET_REGS, &gprs) != 0) return fail(KvmError::GetRegisters);
  x86::Registers regs;
  regs.cr0 = sregs.cr0;
  regs.cr3 = sregs.cr3;
  regs.cr4 = sregs.cr4;
  regs.efer = sregs.efer;
  regs.rflags = gprs.rflags;
  regs.pkru = 0;
  return regs;
}

Result<KvmTranslation, KvmFailure> KvmVm::translate(Gva gva) {
  kvm_translation t{};
  t.linear_address = gva.raw();
  if (::ioctl(vcpu_fd_, KVM_TRANSLATE, &t) != 0) return fail(KvmError::Translate);
  return KvmTranslation{t.valid != 0, Gpa(t.physical_address)};
}

}  // namespace vmmu::test::kvm
