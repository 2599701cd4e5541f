#include "walk_table.hpp"

#include <algorithm>
#include <array>
#include <filesystem>
#include <ostream>

#include <fmt/format.h>

#include "batch.hpp"
#include "ept_walk_case.hpp"
#include "vmmu/core/page_size.hpp"
#include "walk_case.hpp"
#include "x86_walk_case.hpp"

namespace vmmu::cli {

namespace {

std::string x86_result(const X86Outcome& o) {
  if (o) return fmt::format("gpa {} ({})", hex(o->gpa.raw()), size_name(o->page_size));
  switch (o.error().kind) {
    case x86::WalkFaultKind::PageFault:
      if (o.error().error_code == 0) return "#PF 0x0 (not present)";
      return fmt::format("#PF {} {}", hex(o.error().error_code), decode_error_code(o.error().error_code));
    case x86::WalkFaultKind::GeneralProtection: return "#GP (non-canonical)";
    case x86::WalkFaultKind::TableUnreadable: return "table unreadable";
  }
  return "?";
}

// Exit qualification bits 2:0 = the access, 5:3 = R/W/X ANDed over the walk (Intel SDM vol. 3C,
// Table 28-7).
std::string ept_result(const EptOutcome& o) {
  if (o) return fmt::format("pa {} ({})", hex(o->address.raw()), size_name(o->page_size));
  switch (o.error().kind) {
    case x86::EptFaultKind::Violation: {
      const std::uint64_t q = o.error().exit_qualification;
      const char* access = (q & 4) != 0 ? "fetch" : (q & 2) != 0 ? "write" : "read";
      return fmt::format("EPT violation {} ({}; entries r={} w={} x={})", hex(q), access, (q >> 3) & 1,
                         (q >> 4) & 1, (q >> 5) & 1);
    }
    case x86::EptFaultKind::Misconfig: return "EPT misconfiguration";
    case x86::EptFaultKind::InvalidEptp: return "invalid EPTP";
    case x86::EptFaultKind::TableUnreadable: return "table unreadable";
  }
  return "?";
}

}  // namespace

Result<std::vector<WalkTableRow>, CaseError> walk_table_rows(const Json& doc, std::string_view case_name) {
  auto kind = walk_case_kind(doc);
  if (!kind) return Unexpected{kind.error()};
  std::vector<WalkTableRow> rows;
  if (*kind == WalkCaseKind::X86) {
    auto c = parse_x86_walk_case(doc);
    if (!c) return Unexpected{c.error()};
    const X86WalkRun run = run_x86_walk_case(*c);
    for (std::size_t i = 0; i < c->accesses.size(); ++i) {
      const X86Access& a = c->accesses[i];
      rows.push_back({std::string(case_name), x86::to_string(run.mode), hex(a.gva.raw()),
                      std::string(to_string(a.op)), std::to_string(a.cpl), x86_result(run.outcomes[i])});
    }
    return rows;
  }
  auto c = parse_ept_walk_case(doc);
  if (!c) return Unexpected{c.error()};
  const EptWalkRun run = run_ept_walk_case(*c);
  // EPTP bits 5:3: walk length minus one.
  const std::string mode = fmt::format("ept{}{}", ((c->eptp >> 3) & 7) + 1, c->accessed_dirty() ? "+ad" : "");
  for (std::size_t i = 0; i < c->accesses.size(); ++i) {
    const EptAccess& a = c->accesses[i];
    rows.push_back({std::string(case_name), mode, hex(a.gpa.raw()), std::string(to_string(a.op)), "-",
                    ept_result(run.outcomes[i])});
  }
  return rows;
}

namespace {

// "long4-basic" for samples/long4-basic.json, "batch:3" for line 3 of batch.jsonl.
std::string case_name(const CaseLocation& where) {
  std::string stem = std::filesystem::path(where.file).stem().string();
  if (where.line == 0) return stem;
  return fmt::format("{}:{}", stem, where.line);
}

}  // namespace

int print_case_table(std::span<const std::string> files, CaseTableRows rows_of, std::ostream& out, std::ostream& err,
                     std::string_view command) {
  std::vector<WalkTableRow> rows;
  std::vector<WalkTableRow> case_rows;  // the case being answered
  const AnswerCounts counts = visit_answers(
      files,
      [&](const Json& doc, const CaseLocation& where) -> Result<std::string, CaseError> {
        auto r = rows_of(doc, case_name(where));
        if (!r) return Unexpected{r.error()};
        case_rows = std::move(*r);
        return std::string();
      },
      [&](const CaseLocation&, const std::string&) {
        rows.insert(rows.end(), std::make_move_iterator(case_rows.begin()), std::make_move_iterator(case_rows.end()));
        case_rows.clear();
      },
      [&](const CaseLocation& where, const std::string& message) {
        rows.push_back({case_name(where), "-", "-", "-", "-", "error: " + message});
      },
      err, command);
  print_walk_table(out, rows);
  out.flush();
  return counts.exit_status();
}

void print_walk_table(std::ostream& out, std::span<const WalkTableRow> rows) {
  const WalkTableRow header{"case", "mode", "address", "op", "cpl", "result"};
  auto cells = [](const WalkTableRow& r) {
    return std::array<const std::string*, 6>{&r.case_name, &r.mode, &r.address, &r.op, &r.cpl, &r.result};
  };
  std::array<std::size_t, 6> width{};
  auto widen = [&](const WalkTableRow& r) {
    auto c = cells(r);
    for (std::size_t i = 0; i < c.size(); ++i) width[i] = std::max(width[i], c[i]->size());
  };
  widen(header);
  for (const WalkTableRow& r : rows) widen(r);
  auto print = [&](const WalkTableRow& r) {
    auto c = cells(r);
    std::string line;
    for (std::size_t i = 0; i < c.size(); ++i) {
      line += *c[i];
      if (i + 1 < c.size()) line.append(width[i] - c[i]->size() + 2, ' ');
    }
    out << line << '\n';
  };
  print(header);
  for (const WalkTableRow& r : rows) print(r);
}

}  // namespace vmmu::cli
