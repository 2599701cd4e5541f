#pragma once
// What the host can give a scenario's memory, checked before any of it is mapped or touched:
// faulting in more than the kernel has ends in its OOM killer, with no message and often other
// processes with it. The figure is MemAvailable from /proc/meminfo (free memory plus what the
// kernel can reclaim without swapping). An address-space limit (`ulimit -v`) is not read
// here: the mapping fails under it and names the slot.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "vmmu/sim/scenario.hpp"

namespace vmmu::sim {

struct HostCapacity {
  std::uint64_t available = 0;  // bytes
  std::string source;           // where the figure came from, for the message
};

// The host's figure now; none when /proc/meminfo cannot be read or has no MemAvailable line.
std::optional<HostCapacity> host_capacity();
// MemAvailable of a /proc/meminfo text, in bytes; none without a well-formed line.
std::optional<std::uint64_t> parse_mem_available(std::string_view meminfo);

// The first memslot at which the slots' host memory, added up in order, exceeds what the host
// has: key "memslots[i].size", naming both figures.
std::optional<ScenarioError> check_host_memory(const Scenario& s, const HostCapacity& host);

}  // namespace vmmu::sim
