#include "ept_walk_case.hpp"

#include <fmt/format.h>

#include "json_writer.hpp"
#include "vmmu/core/page_size.hpp"
#include "x86_walk_case.hpp"

namespace vmmu::cli {

namespace {

// x86-ept-walk.md: the fields a case names.
constexpr std::string_view kCaseKeys[] = {"format", "arch", "maxphyaddr", "eptp", "five_level", "memory", "accesses"};
constexpr std::string_view kAccessKeys[] = {"gpa", "op"};

}  // namespace

Result<EptWalkCase, CaseError> parse_ept_walk_case(const Json& doc) {
  EptWalkCase c;
  if (auto f = check_format(doc, kEptCaseFormat, "x86-ept"); !f) return Unexpected{f.error()};
  if (auto k = check_keys(doc, "", kCaseKeys); !k) return Unexpected{k.error()};
  auto m = read_maxphyaddr(doc, std::nullopt);
  if (!m) return Unexpected{m.error()};
  c.maxphyaddr = *m;
  auto eptp = read_number(doc, "", "eptp");
  if (!eptp) return Unexpected{eptp.error()};
  c.eptp = *eptp;
  auto five = read_bool_or(doc, "", "five_level", false);
  if (!five) return Unexpected{five.error()};
  c.five_level = *five;

  auto memory = parse_memory_chunks(doc, ChunkRules{"pa", false, false});
  if (!memory) return Unexpected{memory.error()};
  c.memory = std::move(*memory);

  const std::uint64_t gpa_limit = (std::uint64_t{1} << c.maxphyaddr) - 1;
  auto accesses = read_accesses<EptAccess>(doc, kAccessKeys, R"({"gpa": "0x1000", "op": "read"})",
                                           [&](const Json& a, const std::string& at) -> Result<EptAccess, CaseError> {
    // x86-ept-walk.md: gpas are below 2^maxphyaddr.
    auto gpa = read_number(a, at, "gpa");
    if (!gpa) return Unexpected{gpa.error()};
    if (*gpa > gpa_limit) {
      return Unexpected{CaseError{CaseErrorKind::OutOfRange, field_path(at, "gpa"),
                                  fmt::format("{} is not below 2^{} (maxphyaddr)", hex(*gpa), c.maxphyaddr)}};
    }
    auto op = read_op(a, at);
    if (!op) return Unexpected{op.error()};
    return EptAccess{Gpa(*gpa), *op};
  });
  if (!accesses) return Unexpected{accesses.error()};
  c.accesses = std::move(*accesses);
  return c;
}

std::string_view fault_name(x86::EptFaultKind kind) {
  switch (kind) {
    case x86::EptFaultKind::Violation: return "ept_violation";
    case x86::EptFaultKind::Misconfig: return "ept_misconfig";
    case x86::EptFaultKind::InvalidEptp: return "invalid_eptp";
    case x86::EptFaultKind::TableUnreadable: return "table_unreadable";
  }
  return "?";
}

std::string ept_walk_result_json(const EptWalkCase& c, const EptWalkRun& run) {
  JsonWriter w;
  w.begin_object().key("format").string(kEptResultFormat).key("results").begin_array();
  for (std::size_t i = 0; i < c.accesses.size(); ++i) {
    const EptOutcome& o = run.outcomes[i];
    w.begin_object().key("gpa").hex(c.accesses[i].gpa.raw());
    if (o) {
      w.key("ok").boolean(true).key("pa").hex(o->address.raw()).key("page_size").string(size_name(o->page_size));
    } else {
      w.key("ok").boolean(false).key("fault").string(fault_name(o.error().kind));
      if (o.error().kind == x86::EptFaultKind::Violation) {
        w.key("exit_qualification").hex(o.error().exit_qualification);
      }
    }
    w.end_object();
  }
  w.end_array();
  if (c.accessed_dirty()) write_memory_after(w, c.memory, "pa", run.memory);
  w.end_object();
  return w.take();
}

}  // namespace vmmu::cli
