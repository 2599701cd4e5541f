#include "vmmu/tdp/policy.hpp"

#include <array>
#include <span>

namespace vmmu::tdp {
namespace {

constexpr std::array<std::string_view, 2> kHuge = {"write-protect", "drop"};
constexpr std::array<std::string_view, 2> kSplit = {"eager", "lazy"};
constexpr std::array<std::string_view, 2> kRecovery = {"merge-in-place", "zap-and-refault"};
constexpr std::array<std::string_view, 2> kRoots = {"keep", "rebuild"};
constexpr std::array<std::string_view, 2> kTracking = {"write-protect", "dirty-bits"};

template <class E>
bool pick(std::span<const std::string_view> names, std::string_view value, E& out) {
  std::uint8_t i = 0;
  for (std::string_view n : names) {
    if (n == value) {
      out = static_cast<E>(i);
      return true;
    }
    ++i;
  }
  return false;
}

std::string_view nth(std::span<const std::string_view> names, std::uint8_t i) { return names[i]; }

}  // namespace

std::string_view to_string(HugeOnDirtyLog p) { return nth(kHuge, static_cast<std::uint8_t>(p)); }
std::string_view to_string(SplitPolicy p) { return nth(kSplit, static_cast<std::uint8_t>(p)); }
std::string_view to_string(RecoveryPolicy p) { return nth(kRecovery, static_cast<std::uint8_t>(p)); }
std::string_view to_string(RootPolicy p) { return nth(kRoots, static_cast<std::uint8_t>(p)); }
std::string_view to_string(DirtyTracking p) { return nth(kTracking, static_cast<std::uint8_t>(p)); }

bool set_policy(Policies& p, std::string_view name, std::string_view value) {
  if (name == "huge-on-dirty-log") return pick(kHuge, value, p.huge_on_dirty_log);
  if (name == "split") return pick(kSplit, value, p.split);
  if (name == "recovery") return pick(kRecovery, value, p.recovery);
  if (name == "roots") return pick(kRoots, value, p.roots);
  if (name == "dirty-tracking") return pick(kTracking, value, p.dirty_tracking);
  return false;
}

std::vector<std::string_view> policy_values(std::string_view name) {
  std::span<const std::string_view> v;
  if (name == "huge-on-dirty-log") v = kHuge;
  if (name == "split") v = kSplit;
  if (name == "recovery") v = kRecovery;
  if (name == "roots") v = kRoots;
  if (name == "dirty-tracking") v = kTracking;
  return {v.begin(), v.end()};
}

std::string_view policy_value(const Policies& p, std::string_view name) {
  if (name == "huge-on-dirty-log") return to_string(p.huge_on_dirty_log);
  if (name == "split") return to_string(p.split);
  if (name == "recovery") return to_string(p.recovery);
  if (name == "roots") return to_string(p.roots);
  if (name == "dirty-tracking") return to_string(p.dirty_tracking);
  return {};
}

}  // namespace vmmu::tdp
