#pragma once
// The choices KVM's developers argued over, as policies a VM is created with (and a scenario
// can compare side by side with `vmmu run --compare`).
//
//   huge_on_dirty_log  what enabling dirty logging does to huge leaves it does not split:
//                      WriteProtect keeps them mapped read-only, so reads never fault ("KVM:
//                      MMU: lazily drop large spte"); Drop zaps them, as KVM did before.
//   split              Eager splits every huge leaf of the slot when logging starts (KVM's
//                      eager page splitting, no faults needed); Lazy splits one on its first
//                      write fault.
//   recovery           what disabling dirty logging does to the 4K mappings: MergeInPlace
//                      replaces each full, contiguous page table by one huge leaf without ever
//                      unmapping it; ZapAndRefault zaps them and lets faults map huge again.
//   roots              on a CR0/CR4/EFER write that changes the guest's paging role: Keep the
//                      TDP roots (they do not depend on the guest's paging), or Rebuild them,
//                      as KVM did before 6.4 (the vCPU drops its root; the last drop frees it).
//   dirty_tracking     WriteProtect leaves, or (EPT/NPT with A/D) DirtyBits: leaves stay
//                      writable, the modelled hardware sets D, and harvesting clears D bits.

#include <cstdint>
#include <vector>
#include <string_view>

namespace vmmu::tdp {

enum class HugeOnDirtyLog : std::uint8_t { WriteProtect, Drop };
enum class SplitPolicy : std::uint8_t { Eager, Lazy };
enum class RecoveryPolicy : std::uint8_t { MergeInPlace, ZapAndRefault };
enum class RootPolicy : std::uint8_t { Keep, Rebuild };
enum class DirtyTracking : std::uint8_t { WriteProtect, DirtyBits };

struct Policies {
  HugeOnDirtyLog huge_on_dirty_log = HugeOnDirtyLog::WriteProtect;
  SplitPolicy split = SplitPolicy::Eager;
  RecoveryPolicy recovery = RecoveryPolicy::MergeInPlace;
  RootPolicy roots = RootPolicy::Keep;
  DirtyTracking dirty_tracking = DirtyTracking::WriteProtect;
  friend constexpr bool operator==(const Policies&, const Policies&) = default;
};

std::string_view to_string(HugeOnDirtyLog p);
std::string_view to_string(SplitPolicy p);
std::string_view to_string(RecoveryPolicy p);
std::string_view to_string(RootPolicy p);
std::string_view to_string(DirtyTracking p);

// Names as scenarios spell them: "write-protect" / "drop", "eager" / "lazy",
// "merge-in-place" / "zap-and-refault", "keep" / "rebuild", "write-protect" / "dirty-bits".
// Policy names themselves: "huge-on-dirty-log", "split", "recovery", "roots", "dirty-tracking".
// Sets `name` to `value` in `p`; false when either is unknown.
bool set_policy(Policies& p, std::string_view name, std::string_view value);
// Every value a policy name accepts (empty when the name is unknown).
// Every policy name, in the order above.
inline constexpr std::string_view kPolicyNames[] = {"huge-on-dirty-log", "split", "recovery", "roots",
                                                    "dirty-tracking"};
std::vector<std::string_view> policy_values(std::string_view name);
std::string_view policy_value(const Policies& p, std::string_view name);

}  // namespace vmmu::tdp
