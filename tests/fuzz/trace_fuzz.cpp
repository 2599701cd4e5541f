// libFuzzer over the page-trace line parser (../shared/formats/page-trace.md) and the lackey
// converter: every line of the input is a trace line and a lackey line -- a record or an error
// naming what is wrong, never a crash or undefined behaviour. A record that parses is written
// back by TraceWriter and must parse to the same record.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "vmmu/sim/lackey.hpp"
#include "vmmu/sim/trace.hpp"

namespace {

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "trace_fuzz: %s\n", what.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace vmmu::sim;
  static std::FILE* sink = std::fopen("/dev/null", "w");
  const std::string_view text(reinterpret_cast<const char*>(data), size);  // libFuzzer's bytes as characters
  TraceWriter lackey_out(sink);
  LackeyConverter lackey(lackey_out);
  for (std::size_t begin = 0; begin <= text.size();) {
    std::size_t end = text.find('\n', begin);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(begin, end - begin);
    begin = end + 1;
    (void)lackey.line(line);
    auto r = parse_trace_line(line);
    if (!r) {
      if (r.error().empty()) fail("an error without a message");
      continue;
    }
    char buf[64];
    const int n = std::snprintf(buf, sizeof buf, "%c %llx %llu", to_char(r->kind),
                                static_cast<unsigned long long>(r->vpn), static_cast<unsigned long long>(r->count));
    auto again = parse_trace_line(std::string_view(buf, static_cast<std::size_t>(n)));
    if (!again || !(*again == *r)) fail("a record does not read back: " + std::string(line));
  }
  return 0;
}
