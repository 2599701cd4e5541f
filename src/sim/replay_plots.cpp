// Replay reports as plots (replay_plots.hpp): ReplayReport series and comparison rows turned
// into report::LineChart / BarChart, written with one index.html.

#include "vmmu/sim/replay_plots.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "vmmu/report/chart.hpp"
#include "vmmu/report/html_page.hpp"
#include "vmmu/report/svg.hpp"

namespace vmmu::sim {
namespace {

using report::Figure;

struct Run {
  std::string name;  // "" for a lone replay
  const ReplayReport* report;
};

std::string series_name(const Run& run, std::string_view what) {
  if (run.name.empty()) return std::string(what);
  return what.empty() ? run.name : fmt::format("{}: {}", run.name, what);
}

std::vector<Figure> series_figures(const std::vector<Run>& runs) {
  report::LineChart faults{"Faults per interval", "accesses replayed", "faults", {}};
  report::LineChart tables{"Table memory", "accesses replayed", "table pages (guest + MMU)", {}};
  report::LineChart miss_rate{"TLB miss rate", "accesses replayed", "misses per lookup (%)", {}};
  report::LineChart dirty{"Dirty pages per migration round", "round", "data pages harvested", {}};
  for (const Run& run : runs) {
    report::Series guest{series_name(run, "guest"), {}, {}}, mmu{series_name(run, "MMU"), {}, {}};
    report::Series pages{series_name(run, ""), {}, {}}, rate = pages, rounds = pages;
    for (const ReplaySample& s : run.report->series) {
      const auto x = static_cast<double>(s.accesses);
      guest.x.push_back(x), guest.y.push_back(static_cast<double>(s.guest_faults));
      mmu.x.push_back(x), mmu.y.push_back(static_cast<double>(s.mmu_faults));
      pages.x.push_back(x), pages.y.push_back(static_cast<double>(s.table_pages));
      rate.x.push_back(x);
      rate.y.push_back(s.tlb_lookups == 0 ? 0.0 : 100.0 * static_cast<double>(s.tlb_misses) / static_cast<double>(s.tlb_lookups));
      if (s.dirty_pages) {
        rounds.x.push_back(static_cast<double>(rounds.x.size() + 1));
        rounds.y.push_back(static_cast<double>(*s.dirty_pages));
      }
    }
    if (pages.name.empty()) pages.name = rate.name = rounds.name = "replay";
    faults.series.push_back(std::move(guest));
    faults.series.push_back(std::move(mmu));
    tables.series.push_back(std::move(pages));
    miss_rate.series.push_back(std::move(rate));
    if (!rounds.x.empty()) dirty.series.push_back(std::move(rounds));
  }
  std::vector<Figure> out{{"faults.svg", render_svg(faults)},
                          {"table-memory.svg", render_svg(tables)},
                          {"tlb-miss-rate.svg", render_svg(miss_rate)}};
  if (!dirty.series.empty()) out.push_back({"dirty-pages.svg", render_svg(dirty)});
  return out;
}

// The figures compared as bars, by replay_metrics() key.
struct BarFigure {
  std::string_view key, title, y_label;
  double scale;  // value / scale is plotted
};
constexpr BarFigure kBars[] = {
    {"tlb.misses", "TLB misses", "misses", 1},
    {"tlb.walk_refs", "Walk memory references", "references", 1},
    {"guest.page_faults", "Guest page faults", "faults", 1},
    {"stats.faults", "MMU faults", "faults", 1},
    {"stats.tables_in_use", "MMU table pages", "pages", 1},
    {"dirty_log.data_pages_logged", "Data pages logged dirty", "pages", 1},
    {"time_ns", "Replay time", "milliseconds", 1e6},
};

std::vector<Figure> bar_figures(const CompareTable& t) {
  std::vector<Figure> out;
  for (const BarFigure& b : kBars) {
    for (const CompareRow& row : t.rows) {
      if (row.key != b.key) continue;
      report::BarChart chart{fmt::format("{} by {}", b.title, t.policy), std::string(b.y_label), t.values, {}};
      for (const auto& v : row.values) chart.values.push_back(v ? std::optional(static_cast<double>(*v) / b.scale) : std::nullopt);
      std::string name(b.key);
      std::replace_if(name.begin(), name.end(), [](char ch) { return ch == '.' || ch == '_'; }, '-');
      std::string file = fmt::format("compare-{}.svg", name);
      out.push_back({std::move(file), render_svg(chart)});
      break;
    }
  }
  return out;
}

std::string table_html(const CompareTable& t) {
  std::string out = fmt::format("<table>\n<tr><th>{}</th>", report::escape_xml(t.policy));
  for (const std::string& v : t.values) out += fmt::format("<th>{}</th>", report::escape_xml(v));
  out += "</tr>\n";
  for (const CompareRow& row : t.rows) {
    if (!row.result && row.all_zero()) continue;
    out += fmt::format("<tr><td>{}</td>", report::escape_xml(row.label));
    for (const auto& v : row.values) out += fmt::format("<td>{}</td>", v ? report::value_label(static_cast<double>(*v)) : "-");
    out += "</tr>\n";
  }
  return out + "</table>\n";
}

Status<std::string> write_text(const std::filesystem::path& path, std::string_view text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
  f.close();
  if (!f) return Unexpected{fmt::format("--plot: cannot write {}", path.string())};
  return {};
}

Status<std::string> write_all(const std::string& dir, std::string_view title, const std::vector<Figure>& figures,
                              const std::string& table) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Unexpected{fmt::format("--plot: cannot make {}: {}", dir, ec.message())};
  for (const Figure& f : figures) {
    if (auto s = write_text(std::filesystem::path(dir) / f.file, f.svg); !s) return s;
  }
  return write_text(std::filesystem::path(dir) / "index.html", report::html_page(title, figures, table));
}

CompareTable one_column(const ReplayReport& r) {
  CompareTable t{"figure", {"value"}, {}};
  add_to_column(t, 0, "replay", replay_metrics(r), 0);
  return t;
}

}  // namespace

Status<std::string> write_replay_plots(const std::string& dir, const ReplayReport& r) {
  return write_all(dir, "vmmu run --trace", series_figures({{"", &r}}), table_html(one_column(r)));
}

Status<std::string> write_compare_plots(const std::string& dir, const ReplayCompareReport& r) {
  std::vector<Run> runs;
  for (std::size_t i = 0; i < r.runs.size(); ++i) {
    if (r.runs[i]) runs.push_back({r.table.values[i], &*r.runs[i]});
  }
  std::vector<Figure> figures = bar_figures(r.table);
  for (Figure& f : series_figures(runs)) figures.push_back(std::move(f));
  std::string table = table_html(r.table);
  for (const std::string& n : r.notes) table += fmt::format("<p>{}</p>\n", report::escape_xml(n));
  return write_all(dir, fmt::format("vmmu run --trace --compare {}", r.table.policy), figures, table);
}

Status<std::string> write_table_plots(const std::string& dir, const CompareTable& t) {
  return write_all(dir, fmt::format("vmmu report merge: {}", t.policy), bar_figures(t), table_html(t));
}

}  // namespace vmmu::sim
