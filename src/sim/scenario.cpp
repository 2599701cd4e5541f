#include "vmmu/sim/scenario.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <map>
#include <set>

#include "vmmu/core/address.hpp"
#include "vmmu/core/page_size.hpp"
#include "nested_checks.hpp"

namespace vmmu::sim {
namespace {

constexpr std::array<std::string_view, 11> kPhaseNames = {
    "populate",          "random-access", "smep-storm", "migration",      "read-all",  "dirty-log-enable",
    "dirty-log-disable", "conversion",    "fork",       "rewrite-tables", "cr3-switch"};

std::uint64_t round_up(std::uint64_t v, std::uint64_t align) { return (v + align - 1) / align * align; }

bool valid_backing(std::uint64_t size) { return size == 4 * KiB || size == 2 * MiB || size == 1 * GiB; }

std::optional<ScenarioError> error(std::string key, std::string message) {
  return ScenarioError{std::move(key), std::move(message)};
}

std::optional<ScenarioError> check_vm(const Scenario& s) {
  const VmParams& vm = s.vm;
  if (vm.levels != 4 && vm.levels != 5) return error("vm.levels", fmt::format("expected 4 or 5, got {}", vm.levels));
  if (vm.vcpus < 1 || vm.vcpus > kMaxVcpus)
    return error("vm.vcpus", fmt::format("expected 1 to {} vCPUs, got {}", kMaxVcpus, vm.vcpus));
  const std::uint32_t ring = vm.dirty_ring_size;
  if (ring != 0 && (ring < kMinDirtyRing || ring > kMaxDirtyRing || (ring & (ring - 1)) != 0))
    return error("vm.dirty_ring_size", fmt::format("expected 0 (dirty bitmaps) or a power of two from {} to {}, got {}",
                                                   kMinDirtyRing, kMaxDirtyRing, ring));
  const bool has_ad = vm.tdp == tdp::TdpKind::Npt || vm.ad_bits;
  if (s.policies.dirty_tracking == tdp::DirtyTracking::DirtyBits && !has_ad)
    return error("policies.dirty-tracking", "dirty-bits needs A/D bits: set vm.ad_bits to true (EPT) or use NPT");
  if (vm.mmu == mmu::MmuKind::Adaptive && ring != 0)
    return error("vm.dirty_ring_size", "under vm.mmu adaptive a shadowed process logs dirty pages in bitmaps "
                                       "(only the TDP side has rings): expected 0");
  if (vm.mmu == mmu::MmuKind::Shadow) {
    if (ring != 0) return error("vm.dirty_ring_size", "the shadow MMU logs dirty pages in bitmaps: expected 0");
    if (s.policies.dirty_tracking == tdp::DirtyTracking::DirtyBits)
      return error("policies.dirty-tracking", "dirty-bits is a TDP policy: under vm.mmu shadow use write-protect");
  }
  return std::nullopt;
}

std::optional<ScenarioError> check_memslots(const Scenario& s) {
  if (s.memslots.empty()) return error("memslots", "expected at least one memslot");
  if (s.memslots.size() > kMaxScenarioMemslots)
    return error("memslots",
                 fmt::format("expected at most {} memslots, got {}", kMaxScenarioMemslots, s.memslots.size()));
  const std::uint64_t limit = std::uint64_t{1} << (s.vm.levels == 5 ? 57 : 48);
  std::uint64_t total = 0;
  std::uint64_t next = 0;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;  // [base, end), by index
  for (std::size_t i = 0; i < s.memslots.size(); ++i) {
    const MemslotParams& m = s.memslots[i];
    const std::string at = fmt::format("memslots[{}]", i);
    if (!valid_backing(m.backing_page_size))
      return error(at + ".backing_page_size", fmt::format("expected 4K, 2M or 1G, got {}", m.backing_page_size));
    if (m.size == 0 || m.size % m.backing_page_size != 0)
      return error(at + ".size", fmt::format("expected a positive multiple of the backing page size ({}), got {}",
                                             size_name(m.backing_page_size), m.size));
    if (m.size > kMaxScenarioMemory - total)
      return error(at + ".size", fmt::format("expected at most {} of memory in all", size_name(kMaxScenarioMemory)));
    total += m.size;
    std::uint64_t base = m.gpa.value_or(round_up(next, m.backing_page_size));
    if (m.gpa && *m.gpa % m.backing_page_size != 0)
      return error(at + ".gpa", fmt::format("expected a multiple of the backing page size ({}), got {:#x}",
                                            size_name(m.backing_page_size), *m.gpa));
    if (base >= limit || m.size > limit - base)
      return error(at + ".gpa",
                   fmt::format("the slot ends beyond the {}-level tables' reach ({:#x})", s.vm.levels, limit));
    if (s.vm.mmu != mmu::MmuKind::Tdp && (base >= kShadowMemoryLimit || m.size > kShadowMemoryLimit - base))
      return error(at + ".gpa", fmt::format("under vm.mmu {} the vCPUs reach memory with paging off: the slot "
                                            "must end by {:#x}, not {:#x}",
                                            mmu::to_string(s.vm.mmu), kShadowMemoryLimit, base + m.size));
    for (std::size_t j = 0; j < ranges.size(); ++j) {
      if (base < ranges[j].second && ranges[j].first < base + m.size)
        return error(at + ".gpa", fmt::format("the slot [{:#x}, {:#x}) overlaps memslots[{}]", base, base + m.size, j));
    }
    ranges.emplace_back(base, base + m.size);
    next = base + m.size;
  }
  return std::nullopt;
}

std::optional<ScenarioError> check_fraction(const std::string& key, double f) {
  if (!(f >= 0.0 && f <= 1.0)) return error(key, fmt::format("expected a number from 0 to 1, got {}", f));
  return std::nullopt;
}

// A vCPU's share of memory, in 4 KiB pages.
std::uint64_t share_pages(const Scenario& s) { return total_memory(s) / kPageSize / s.vm.vcpus; }

// `pages` (key `at`) from 1 to kMaxGuestKernelPages, `frames_per_page` frames each in a share.
std::optional<ScenarioError> check_kernel_pages(const Scenario& s, const std::string& at, std::uint64_t pages,
                                                std::uint64_t frames_per_page) {
  if (pages == 0 || pages > kMaxGuestKernelPages)
    return error(at, fmt::format("expected 1 to {} pages, got {}", kMaxGuestKernelPages, pages));
  const std::uint64_t share = share_pages(s);
  if (pages * frames_per_page > share)
    return error(at, fmt::format("expected at most {} pages: the phase uses {} frames per page of a vCPU's share "
                                 "({} pages), got {}",
                                 share / frames_per_page, frames_per_page, share, pages));
  return std::nullopt;
}

std::optional<ScenarioError> check_phases(const Scenario& s) {
  if (s.phases.empty()) return error("phases", "expected at least one phase");
  bool logging = false;
  std::map<std::string, std::size_t> names;
  for (std::size_t i = 0; i < s.phases.size(); ++i) {
    const Phase& p = s.phases[i];
    const std::string at = fmt::format("phases[{}]", i);
    if (!p.name.empty()) {
      if (auto [it, fresh] = names.emplace(p.name, i); !fresh)
        return error(at + ".name",
                     fmt::format("expected a name no other phase has, \"{}\" is phases[{}]'s", p.name, it->second));
    }
    std::optional<ScenarioError> e;
    std::visit(
        [&](const auto& q) {
          using T = std::decay_t<decltype(q)>;
          if constexpr (std::is_same_v<T, RandomAccessPhase>) {
            if (q.accesses == 0) e = error(at + ".accesses", "expected a positive number of accesses");
            if (!e) e = check_fraction(at + ".write_fraction", q.write_fraction);
          } else if constexpr (std::is_same_v<T, SmepStormPhase>) {
            if (q.flips == 0) e = error(at + ".flips", "expected a positive number of flips");
            if (!e && (q.touch_pages == 0 || q.touch_pages > kMaxTouchPages))
              e = error(at + ".touch_pages",
                        fmt::format("expected 1 to {} pages, got {}", kMaxTouchPages, q.touch_pages));
            const std::uint64_t share = total_memory(s) / kPageSize / s.vm.vcpus;
            if (!e && q.touch_pages > share)
              e = error(at + ".touch_pages",
                        fmt::format("expected at most the {} pages of a vCPU's share, got {}", share, q.touch_pages));
          } else if constexpr (std::is_same_v<T, MigrationPhase>) {
            if (q.iterations == 0 || q.iterations > kMaxIterations)
              e = error(at + ".iterations",
                        fmt::format("expected 1 to {} iterations, got {}", kMaxIterations, q.iterations));
            if (!e) e = check_fraction(at + ".write_fraction", q.write_fraction);
            if (!e && q.harvest_while_writing && s.vm.dirty_ring_size != 0)
              e = error(at + ".harvest_while_writing",
                        "needs dirty bitmaps (vm.dirty_ring_size 0): a dirty ring has one collector, its vCPU");
            if (!e && logging)
              e = error(at,
                        "migration needs dirty logging off at its start: a dirty-log-enable phase before it is not "
                        "followed by dirty-log-disable");
          } else if constexpr (std::is_same_v<T, DirtyLogEnablePhase>) {
            if (logging) e = error(at, "dirty-log-enable: dirty logging is already enabled at this point");
            logging = true;
          } else if constexpr (std::is_same_v<T, DirtyLogDisablePhase>) {
            if (!logging) e = error(at, "dirty-log-disable: dirty logging is not enabled at this point");
            logging = false;
          } else if constexpr (std::is_same_v<T, ForkPhase>) {
            e = check_kernel_pages(s, at + ".pages", q.pages, 2);  // a frame and its copy
            if (!e) e = check_fraction(at + ".write_fraction", q.write_fraction);
          } else if constexpr (std::is_same_v<T, RewriteTablesPhase>) {
            e = check_kernel_pages(s, at + ".pages", q.pages, 2);  // frames to remap to
            if (!e && (q.rounds == 0 || q.rounds > kMaxIterations))
              e = error(at + ".rounds", fmt::format("expected 1 to {} rounds, got {}", kMaxIterations, q.rounds));
          } else if constexpr (std::is_same_v<T, Cr3SwitchPhase>) {
            if (q.processes == 0 || q.processes > kMaxProcesses)
              e = error(at + ".processes",
                        fmt::format("expected 1 to {} processes, got {}", kMaxProcesses, q.processes));
            if (!e && q.switches == 0) e = error(at + ".switches", "expected a positive number of switches");
            if (!e && (q.touch_pages == 0 || q.touch_pages > kMaxTouchPages))
              e = error(at + ".touch_pages",
                        fmt::format("expected 1 to {} pages, got {}", kMaxTouchPages, q.touch_pages));
            if (!e && q.touch_pages * q.processes > share_pages(s))
              e = error(at + ".touch_pages",
                        fmt::format("expected processes x touch_pages at most the {} pages of a vCPU's share, got {}",
                                    share_pages(s), q.touch_pages * q.processes));
          } else if constexpr (std::is_same_v<T, ConversionPhase>) {
            if (s.vm.mmu != mmu::MmuKind::Tdp)
              e = error(at, fmt::format("conversion (private/shared memory) is a TDX idea the shadow MMU does not run "
                                        "(vm.mmu {}): use vm.mmu tdp", mmu::to_string(s.vm.mmu)));
            const std::uint64_t available = conversion_ranges_available(s);
            if (!e && (q.ranges == 0 || q.ranges > available))
              e = error(at + ".ranges",
                        fmt::format("expected 1 to {} ranges (the 2M-aligned 2 MiB ranges inside memslots), got {}",
                                    available, q.ranges));
          }
        },
        p.params);
    if (e) return e;
  }
  return std::nullopt;
}

}  // namespace

std::string_view to_string(PhaseKind k) { return kPhaseNames[static_cast<std::size_t>(k)]; }

std::optional<PhaseKind> parse_phase_kind(std::string_view s) {
  for (std::size_t i = 0; i < kPhaseNames.size(); ++i) {
    if (kPhaseNames[i] == s) return static_cast<PhaseKind>(i);
  }
  return std::nullopt;
}

std::vector<PhaseKind> all_phase_kinds() {
  std::vector<PhaseKind> kinds;
  for (std::size_t i = 0; i < kPhaseNames.size(); ++i) kinds.push_back(static_cast<PhaseKind>(i));
  return kinds;
}

PhaseParams default_params(PhaseKind k) {
  switch (k) {
    case PhaseKind::Populate:
      return PopulatePhase{};
    case PhaseKind::RandomAccess:
      return RandomAccessPhase{};
    case PhaseKind::SmepStorm:
      return SmepStormPhase{};
    case PhaseKind::Migration:
      return MigrationPhase{};
    case PhaseKind::ReadAll:
      return ReadAllPhase{};
    case PhaseKind::DirtyLogEnable:
      return DirtyLogEnablePhase{};
    case PhaseKind::DirtyLogDisable:
      return DirtyLogDisablePhase{};
    case PhaseKind::Conversion:
      return ConversionPhase{};
    case PhaseKind::Fork:
      return ForkPhase{};
    case PhaseKind::RewriteTables:
      return RewriteTablesPhase{};
    case PhaseKind::Cr3Switch:
      return Cr3SwitchPhase{};
  }
  return PopulatePhase{};
}

std::vector<std::uint64_t> memslot_bases(const Scenario& s) {
  std::vector<std::uint64_t> bases;
  std::uint64_t next = 0;
  for (const MemslotParams& m : s.memslots) {
    const std::uint64_t align = valid_backing(m.backing_page_size) ? m.backing_page_size : kPageSize;
    const std::uint64_t base = m.gpa.value_or(round_up(next, align));
    bases.push_back(base);
    next = base + m.size;
  }
  return bases;
}

std::uint64_t total_memory(const Scenario& s) {
  std::uint64_t total = 0;
  for (const MemslotParams& m : s.memslots) total += m.size;
  return total;
}

std::uint64_t conversion_ranges_available(const Scenario& s) {
  const std::vector<std::uint64_t> bases = memslot_bases(s);
  std::uint64_t n = 0;
  for (std::size_t i = 0; i < s.memslots.size(); ++i) {
    const std::uint64_t first = round_up(bases[i], 2 * MiB);
    const std::uint64_t end = bases[i] + s.memslots[i].size;
    if (end > first) n += (end - first) / (2 * MiB);
  }
  return n;
}

std::optional<ScenarioError> validate(const Scenario& s) {
  if (auto e = check_vm(s)) return e;
  if (auto e = check_memslots(s)) return e;
  if (auto e = check_nested(s)) return e;
  return check_phases(s);
}

void name_phases(Scenario& s) {
  std::set<std::string> used;
  for (const Phase& p : s.phases) {
    if (!p.name.empty()) used.insert(p.name);
  }
  for (Phase& p : s.phases) {
    if (!p.name.empty()) continue;
    const std::string base(to_string(p.kind()));
    std::string name = base;
    for (unsigned n = 2; used.count(name) != 0; ++n) name = fmt::format("{}#{}", base, n);
    used.insert(name);
    p.name = std::move(name);
  }
}

}  // namespace vmmu::sim
