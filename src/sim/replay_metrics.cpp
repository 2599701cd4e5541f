// A replay's figures as one list: the JSON report, the text report, comparison tables and
// merged sweep reports are all built from it, so a figure is named once.

#include <fmt/format.h>

#include <algorithm>

#include "vmmu/sim/replay.hpp"

namespace vmmu::sim {

std::vector<Metric> replay_metrics(const ReplayReport& r) {
  std::vector<Metric> out;
  auto count = [&out](std::string key, std::string label, std::uint64_t v) {
    out.push_back({std::move(key), std::move(label), v, Unit::Count});
  };
  out.push_back({"time_ns", "time", r.time_ns, Unit::Nanoseconds});
  count("records", "records", r.records);
  count("accesses", "accesses", r.accesses);
  count("pages.touched", "pages touched", r.pages_touched);
  count("pages.written", "pages written", r.pages_written);
  count("guest.page_faults", "guest page faults", r.guest_page_faults);
  count("guest.table_pages", "guest table pages", r.guest_table_pages);
  const tlb::HardwareStats& t = r.tlb;
  count("tlb.entries", "TLB entries", r.hardware.tlb.entries);
  count("tlb.ways", "TLB ways", r.hardware.tlb.ways == 0 ? r.hardware.tlb.entries : r.hardware.tlb.ways);
  count("tlb.lookups", "TLB lookups", t.lookups);
  count("tlb.misses", "TLB misses", t.misses);
  count("tlb.dirty_misses", "  of which writes to clean entries", t.dirty_misses);
  count("tlb.hits", "TLB hits", t.lookups - t.misses);
  count("tlb.guest_walks", "guest walks (nested TLB hits)", t.guest_walks);
  count("tlb.nested_walks", "nested walks", t.nested_walks);
  count("tlb.walk_refs", "walk memory references", t.walk_refs());
  count("tlb.guest_refs", "  guest entries read", t.guest_refs);
  count("tlb.nested_refs", "  nested entries read", t.nested_refs);
  count("tlb.refs_saved", "  saved by the caches", t.refs_saved);
  count("tlb.psc_entries", "paging-structure cache entries", r.hardware.psc_entries);
  count("tlb.nested_tlb_entries", "nested TLB entries", r.hardware.nested_tlb_entries);
  if (r.dirty_log_start) {
    count("dirty_log.start_access", "dirty logging from access", *r.dirty_log_start);
    count("dirty_log.data_pages_logged", "data pages logged", r.data_pages_logged);
    count("dirty_log.table_pages_logged", "table pages logged", r.table_pages_logged);
  }
  if (r.mmu == MmuKind::Adaptive) {
    const auto back = static_cast<std::uint64_t>(std::ranges::count(r.switches, false, &ReplaySwitch::to_tdp));
    count("adaptive.switches", "moves to two-dimensional paging", r.switches.size() - back);
    if (!r.switches.empty()) count("adaptive.first_switch_access", "  first during access", r.switches[0].access);
    count("adaptive.switches_back", "moves back to shadow paging", back);
  }
  for (const Metric& m : r.stats) out.push_back({"stats." + m.key, m.label, m.value, m.unit});
  return out;
}

}  // namespace vmmu::sim
