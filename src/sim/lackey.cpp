#include "vmmu/sim/lackey.hpp"

#include <charconv>

#include "vmmu/core/address.hpp"

namespace vmmu::sim {

Status<std::string> LackeyConverter::line(std::string_view text) {
  if (text.starts_with("==") || text.starts_with("--") || text.empty()) return {};
  TraceKind kind;
  std::string_view rest;
  if (text.starts_with("I  ")) {
    kind = TraceKind::Fetch;
    rest = text.substr(3);
  } else if (text.size() > 3 && text[0] == ' ' && text[2] == ' ') {
    switch (text[1]) {
      case 'L': kind = TraceKind::Read; break;
      case 'S': kind = TraceKind::Write; break;
      case 'M': kind = TraceKind::Modify; break;
      default: return Unexpected{"unknown access kind '" + std::string(1, text[1]) + "' (expected I, L, S or M)"};
    }
    rest = text.substr(3);
  } else {
    return Unexpected{std::string("not a lackey --trace-mem line (expected 'I  ADDR,SIZE' or ' L|S|M ADDR,SIZE')")};
  }
  const std::size_t comma = rest.find(',');
  if (comma == std::string_view::npos) return Unexpected{std::string("expected ADDR,SIZE")};
  std::uint64_t addr = 0, size = 0;
  const std::string_view a = rest.substr(0, comma), s = rest.substr(comma + 1);
  auto [ae, aec] = std::from_chars(a.data(), a.data() + a.size(), addr, 16);
  auto [se, sec] = std::from_chars(s.data(), s.data() + s.size(), size, 10);
  if (a.empty() || aec != std::errc() || ae != a.data() + a.size())
    return Unexpected{"bad address '" + std::string(a) + "'"};
  if (s.empty() || sec != std::errc() || se != s.data() + s.size() || size == 0 || size > kPageSize)
    return Unexpected{"bad size '" + std::string(s) + "'"};
  const std::uint64_t first = addr >> kPageShift, last = (addr + size - 1) >> kPageShift;
  for (std::uint64_t vpn = first; vpn <= last; ++vpn) out_.add(kind, vpn);
  ++accesses_;
  return {};
}

}  // namespace vmmu::sim
