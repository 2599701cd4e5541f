#include "run_trace.hpp"

#include <fmt/format.h>

#include <charconv>
#include <ostream>

#include "exit_status.hpp"
#include "run_report.hpp"

namespace vmmu::cli {
namespace {

using OJson = nlohmann::ordered_json;

std::optional<std::uint64_t> parse_u32(std::string_view s) {
  std::uint32_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

}  // namespace

Result<sim::ReplayConfig, std::string> replay_config(const TraceOptions& o) {
  sim::ReplayConfig c;
  if (o.mmu == "shadow") {
    c.mmu = sim::MmuKind::Shadow;
  } else if (!o.mmu.empty() && o.mmu != "tdp") {
    return Unexpected{fmt::format("--mmu {}: expected tdp or shadow", o.mmu)};
  }
  if (o.guest_pages == "2m") {
    c.guest_page_size = std::uint64_t{2} << 20;
  } else if (!o.guest_pages.empty() && o.guest_pages != "4k") {
    return Unexpected{fmt::format("--guest-pages {}: expected 4k or 2m", o.guest_pages)};
  }
  if (o.guest_levels == "5") {
    c.guest_levels = 5;
  } else if (!o.guest_levels.empty() && o.guest_levels != "4") {
    return Unexpected{fmt::format("--guest-levels {}: expected 4 or 5", o.guest_levels)};
  }
  if (!o.tlb.empty()) {
    const std::size_t colon = o.tlb.find(':');
    const auto entries = parse_u32(std::string_view(o.tlb).substr(0, colon));
    const auto ways = colon == std::string::npos ? std::optional<std::uint64_t>(0)
                                                 : parse_u32(std::string_view(o.tlb).substr(colon + 1));
    if (!entries || !ways || *entries == 0 || (colon != std::string::npos && *ways == 0))
      return Unexpected{fmt::format("--tlb {}: expected ENTRIES or ENTRIES:WAYS (numbers of at least 1)", o.tlb)};
    if (*ways != 0 && (*ways > *entries || *entries % *ways != 0))
      return Unexpected{fmt::format("--tlb {}: the ways must divide the entries", o.tlb)};
    c.tlb = {static_cast<std::uint32_t>(*entries), static_cast<std::uint32_t>(*ways)};
  }
  if (!o.dirty_log_at.empty()) {
    double f = 0;
    const auto [end, ec] = std::from_chars(o.dirty_log_at.data(), o.dirty_log_at.data() + o.dirty_log_at.size(), f);
    if (ec != std::errc() || end != o.dirty_log_at.data() + o.dirty_log_at.size() || !(f >= 0.0 && f <= 1.0))
      return Unexpected{fmt::format("--dirty-log-at {}: expected a fraction from 0 to 1", o.dirty_log_at)};
    c.dirty_log_at = f;
  }
  return c;
}

OJson replay_json(const TraceOptions& o, const sim::ReplayReport& r) {
  OJson j;
  j["format"] = kReplayReportFormat;
  j["traces"] = o.traces;
  j["mmu"] = o.mmu.empty() ? "tdp" : o.mmu;
  j["guest_pages"] = o.guest_pages.empty() ? "4k" : o.guest_pages;
  j["guest_levels"] = r.hardware.guest_levels;
  j["time_ns"] = r.time_ns;
  OJson rep;
  rep["records"] = r.records;
  rep["accesses"] = r.accesses;
  rep["pages"] = {{"touched", r.pages_touched}, {"written", r.pages_written}};
  rep["guest"] = {{"page_faults", r.guest_page_faults}, {"table_pages", r.guest_table_pages}};
  const tlb::HardwareStats& t = r.tlb;
  OJson tj;
  tj["entries"] = r.hardware.tlb.entries;
  tj["ways"] = r.hardware.tlb.ways == 0 ? r.hardware.tlb.entries : r.hardware.tlb.ways;
  tj["lookups"] = t.lookups;
  tj["misses"] = t.misses;
  tj["dirty_misses"] = t.dirty_misses;
  tj["hits"] = t.lookups - t.misses;
  tj["guest_walks"] = t.guest_walks;
  tj["nested_walks"] = t.nested_walks;
  tj["walk_refs"] = t.walk_refs();
  tj["guest_refs"] = t.guest_refs;
  tj["nested_refs"] = t.nested_refs;
  tj["refs_saved"] = t.refs_saved;
  tj["psc_entries"] = r.hardware.psc_entries;
  tj["nested_tlb_entries"] = r.hardware.nested_tlb_entries;
  rep["tlb"] = tj;
  if (r.dirty_log_start) {
    rep["dirty_log"] = {{"start_access", *r.dirty_log_start},
                        {"data_pages_logged", r.data_pages_logged},
                        {"table_pages_logged", r.table_pages_logged}};
  }
  j["replay"] = rep;
  OJson stats = OJson::object();
  for (const sim::Metric& m : r.stats) stats[m.key] = m.value;
  j["stats"] = stats;
  return j;
}

void print_replay_text(std::ostream& out, const TraceOptions& o, const sim::ReplayReport& r) {
  const tlb::HardwareStats& t = r.tlb;
  auto row = [&out](std::string_view label, std::string value) { out << fmt::format("  {:<34} {:>16}\n", label, value); };
  auto n = [](std::uint64_t v) { return with_separators(v); };
  out << fmt::format("vmmu run --trace: {} trace(s), --mmu {}, {} guest pages, {}-level guest\n", o.traces.size(),
                     o.mmu.empty() ? "tdp" : o.mmu, o.guest_pages.empty() ? "4k" : o.guest_pages,
                     r.hardware.guest_levels);
  row("time", metric_text(r.time_ns, sim::Unit::Nanoseconds));
  row("records", n(r.records));
  row("accesses", n(r.accesses));
  row("pages touched", n(r.pages_touched));
  row("pages written", n(r.pages_written));
  row("guest page faults", n(r.guest_page_faults));
  row("guest table pages", n(r.guest_table_pages));
  row(fmt::format("TLB ({} entries, {} ways) lookups", r.hardware.tlb.entries,
                  r.hardware.tlb.ways == 0 ? r.hardware.tlb.entries : r.hardware.tlb.ways),
      n(t.lookups));
  row("TLB misses", n(t.misses));
  row("  of which writes to clean entries", n(t.dirty_misses));
  row("guest walks (nested TLB hits)", n(t.guest_walks));
  row("nested walks", n(t.nested_walks));
  row("walk memory references", n(t.walk_refs()));
  row("  saved by the caches", n(t.refs_saved));
  if (r.dirty_log_start) {
    row("dirty logging from access", n(*r.dirty_log_start));
    row("data pages logged", n(r.data_pages_logged));
    row("table pages logged", n(r.table_pages_logged));
  }
  for (const sim::Metric& m : r.stats) {
    if (m.value != 0) row(m.label, metric_text(m.value, m.unit));
  }
}

int run_trace(const TraceOptions& o, bool json, std::ostream& out, std::ostream& err) {
  auto config = replay_config(o);
  if (!config) {
    err << "vmmu run: " << config.error() << '\n';
    return kExitBadInput;
  }
  auto report = sim::replay(o.traces, *config);
  if (!report) {
    err << "vmmu run: " << report.error().message << '\n';
    return report.error().bad_input ? kExitBadInput : kExitFailed;
  }
  if (json)
    out << replay_json(o, *report).dump() << '\n';
  else
    print_replay_text(out, o, *report);
  out.flush();
  return kExitOk;
}

}  // namespace vmmu::cli
