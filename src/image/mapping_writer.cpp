#include "vmmu/image/mapping_writer.hpp"

#include <iterator>
#include <string_view>

#include "vmmu/core/page_size.hpp"

namespace vmmu::image {
namespace {

void append(fmt::memory_buffer& out, std::string_view s) { out.append(s.data(), s.data() + s.size()); }

std::string_view json_bool(bool b) { return b ? "true" : "false"; }

// "4K", "2M", "4M", "1G" without building a string for the common sizes.
std::string_view size_label(std::uint64_t bytes, std::string& scratch) {
  switch (bytes) {
    case 4 * KiB: return "4K";
    case 2 * MiB: return "2M";
    case 4 * MiB: return "4M";
    case 1 * GiB: return "1G";
    default: scratch = size_name(bytes); return scratch;
  }
}

}  // namespace

void append_text(fmt::memory_buffer& out, const GuestMapping& m) {
  std::string scratch;
  fmt::format_to(std::back_inserter(out), "{:016x}: {:016x} {}  user={:d} write={:d} nx={:d}", m.gva.raw(),
                 m.gpa.raw(), size_label(m.page_size, scratch), m.user, m.write, m.nx);
  const std::pair<bool, std::string_view> flags[] = {{m.accessed, "A"}, {m.dirty, "D"}, {m.global, "G"},
                                                     {m.pwt, "PWT"},    {m.pcd, "PCD"}, {m.pat, "PAT"}};
  bool first = true;
  for (const auto& [on, name] : flags) {
    if (!on) continue;
    append(out, first ? "  " : " ");
    append(out, name);
    first = false;
  }
  if (m.protection_key != 0) fmt::format_to(std::back_inserter(out), "{}PK={}", first ? "  " : " ", m.protection_key);
  out.push_back('\n');
}

void append_json(fmt::memory_buffer& out, const GuestMapping& m) {
  std::string scratch;
  fmt::format_to(std::back_inserter(out),
                 R"({{"gva": "{:#x}", "gpa": "{:#x}", "page_size": "{}", "user": {}, "write": {}, "nx": {}, )"
                 R"("accessed": {}, "dirty": {}, "global": {}, "pwt": {}, "pcd": {}, "pat": {})",
                 m.gva.raw(), m.gpa.raw(), size_label(m.page_size, scratch), json_bool(m.user), json_bool(m.write),
                 json_bool(m.nx), json_bool(m.accessed), json_bool(m.dirty), json_bool(m.global), json_bool(m.pwt),
                 json_bool(m.pcd), json_bool(m.pat));
  if (m.protection_key != 0) fmt::format_to(std::back_inserter(out), R"(, "protection_key": {})", m.protection_key);
  append(out, "}\n");
}

void append_text(fmt::memory_buffer& out, const MappedRange& r) {
  fmt::format_to(std::back_inserter(out), "{:016x}-{:016x} {:016x} user={:d} write={:d} nx={:d}\n", r.gva.raw(),
                 r.gva.raw() + r.size, r.size, r.user, r.write, r.nx);
}

void append_json(fmt::memory_buffer& out, const MappedRange& r) {
  fmt::format_to(std::back_inserter(out), R"({{"gva": "{:#x}", "size": "{:#x}", "user": {}, "write": {}, "nx": {}}})"
                 "\n",
                 r.gva.raw(), r.size, json_bool(r.user), json_bool(r.write), json_bool(r.nx));
}

}  // namespace vmmu::image
