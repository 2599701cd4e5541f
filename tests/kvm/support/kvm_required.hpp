#pragma once
// When a KVM test may skip: only when /dev/kvm is missing or closed to this user -- a machine
// without KVM. Any other setup failure (KVM_CREATE_VM, a memslot, a vCPU, registers) is a
// broken harness and fails, and VMMU_REQUIRE_KVM=1 (a CI machine that has KVM) turns the skip
// into a failure too, so "no KVM" can never hide a harness that stopped working.

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "kvm/support/kvm_vm.hpp"

namespace vmmu::test::kvm {

enum class Unavailable : std::uint8_t { Skip, Fail };

inline bool kvm_required() {
  const char* v = std::getenv("VMMU_REQUIRE_KVM");
  return v != nullptr && std::string_view(v) == "1";
}

inline Unavailable on_setup_failure(const KvmFailure& f, bool required) {
  const bool no_kvm = f.error == KvmError::DeviceMissing || f.error == KvmError::DeviceUnusable;
  return no_kvm && !required ? Unavailable::Skip : Unavailable::Fail;
}

}  // namespace vmmu::test::kvm

// Skips or fails the running test (see above) for a failed KVM setup step; `what` names the test.
#define VMMU_KVM_SETUP_FAILED(failure, what)                                                                  \
  do {                                                                                                        \
    const ::vmmu::test::kvm::KvmFailure& vmmu_kvm_failure_ = (failure);                                       \
    if (::vmmu::test::kvm::on_setup_failure(vmmu_kvm_failure_, ::vmmu::test::kvm::kvm_required()) ==          \
        ::vmmu::test::kvm::Unavailable::Skip)                                                                 \
      GTEST_SKIP() << "KVM not usable, skipping " << (what) << ": " << vmmu_kvm_failure_.message()            \
                   << " (VMMU_REQUIRE_KVM=1 makes this a failure)";                                           \
    FAIL() << "KVM setup failed for " << (what) << ": " << vmmu_kvm_failure_.message()                        \
           << (::vmmu::test::kvm::kvm_required() ? " (VMMU_REQUIRE_KVM=1)" : " (not a missing /dev/kvm)");   \
  } while (0)
