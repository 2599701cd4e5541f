#include "vmmu/sim/host_capacity.hpp"

#include <fmt/format.h>

#include <charconv>
#include <fstream>
#include <sstream>

#include "vmmu/core/page_size.hpp"

namespace vmmu::sim {

std::optional<std::uint64_t> parse_mem_available(std::string_view meminfo) {
  constexpr std::string_view kKey = "MemAvailable:";
  for (std::size_t at = 0; at < meminfo.size();) {
    const std::size_t end = std::min(meminfo.find('\n', at), meminfo.size());
    std::string_view line = meminfo.substr(at, end - at);
    at = end + 1;
    if (line.substr(0, kKey.size()) != kKey) continue;
    line.remove_prefix(kKey.size());
    while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
    std::uint64_t kib = 0;
    const auto [rest, ec] = std::from_chars(line.data(), line.data() + line.size(), kib);
    // The kernel prints kibibytes ("MemAvailable:   22413520 kB").
    if (ec != std::errc() || std::string_view(rest, static_cast<std::size_t>(line.data() + line.size() - rest)) != " kB")
      return std::nullopt;
    if (kib > ~std::uint64_t{0} / KiB) return std::nullopt;
    return kib * KiB;
  }
  return std::nullopt;
}

std::optional<HostCapacity> host_capacity() {
  std::ifstream in("/proc/meminfo");
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  auto available = parse_mem_available(text.str());
  if (!available) return std::nullopt;
  return HostCapacity{*available, "MemAvailable in /proc/meminfo"};
}

namespace {

std::string gib(std::uint64_t bytes) { return fmt::format("{:.1f} GiB", static_cast<double>(bytes) / GiB); }

}  // namespace

std::optional<ScenarioError> check_host_memory(const Scenario& s, const HostCapacity& host) {
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < s.memslots.size(); ++i) {
    total += s.memslots[i].size;  // validate() keeps the sum within 1 TiB
    if (total <= host.available) continue;
    const std::string slots = i == 0 ? "memslots[0]" : fmt::format("memslots[0..{}]", i);
    return ScenarioError{fmt::format("memslots[{}].size", i),
                         fmt::format("{} need {} of host memory, more than the {} this host can give ({})", slots,
                                     size_name(total), gib(host.available), host.source)};
  }
  return std::nullopt;
}

}  // namespace vmmu::sim
