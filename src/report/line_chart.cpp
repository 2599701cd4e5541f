// Line charts: one polyline per series over shared nice axes.

#include <algorithm>
#include <limits>

#include "frame.hpp"
#include "vmmu/report/chart.hpp"

namespace vmmu::report {

std::string render_svg(const LineChart& c) {
  double x_lo = std::numeric_limits<double>::max(), x_hi = std::numeric_limits<double>::lowest();
  double y_hi = 0, y_lo = 0;  // the y axis always shows 0: counts and rates start there
  for (const Series& s : c.series) {
    for (const double x : s.x) x_lo = std::min(x_lo, x), x_hi = std::max(x_hi, x);
    for (const double y : s.y) y_lo = std::min(y_lo, y), y_hi = std::max(y_hi, y);
  }
  if (x_lo > x_hi) x_lo = 0, x_hi = 1;  // no points: an empty frame
  detail::Frame f(c.title, c.y_label, nice_ticks(y_lo, y_hi));
  const Ticks x = nice_ticks(x_lo, x_hi, 6);
  auto x_at = [&x](double v) { return detail::kLeft + (v - x.lo) / (x.hi - x.lo) * (detail::kRight - detail::kLeft); };
  for (const double v : x.values) {
    f.svg += fmt::format(
        "<line x1=\"{0:.1f}\" y1=\"{1}\" x2=\"{0:.1f}\" y2=\"{2}\" stroke=\"black\"/>"
        "<text x=\"{0:.1f}\" y=\"{3}\" text-anchor=\"middle\">{4}</text>\n",
        x_at(v), detail::kBottom, detail::kBottom + 5, detail::kBottom + 18, escape_xml(tick_label(v, x)));
  }
  f.svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
                       (detail::kLeft + detail::kRight) / 2, detail::kBottom + 40, escape_xml(c.x_label));
  for (std::size_t i = 0; i < c.series.size(); ++i) {
    const Series& s = c.series[i];
    std::string points;
    for (std::size_t p = 0; p < std::min(s.x.size(), s.y.size()); ++p)
      points += fmt::format("{}{:.1f},{:.1f}", points.empty() ? "" : " ", x_at(s.x[p]), f.y_at(s.y[p]));
    f.svg += fmt::format("<polyline fill=\"none\" stroke-width=\"2\" stroke=\"{}\" points=\"{}\"><title>{}</title></polyline>\n",
                         series_colour(i), points, escape_xml(s.name));
    f.legend(i, s.name, series_colour(i));
  }
  return std::move(f).close();
}

}  // namespace vmmu::report
