// Bar charts: one bar per policy value, its value printed above it; a value not measured
// is a labelled gap, never a zero-height bar that would read as "none".

#include <algorithm>

#include "frame.hpp"
#include "vmmu/report/chart.hpp"

namespace vmmu::report {

std::string render_svg(const BarChart& c) {
  double hi = 0;
  for (const auto& v : c.values) hi = std::max(hi, v.value_or(0));
  detail::Frame f(c.title, c.y_label, nice_ticks(0, hi));
  const std::size_t n = std::max<std::size_t>(c.labels.size(), 1);
  const double slot = (detail::kRight - detail::kLeft) / static_cast<double>(n);
  for (std::size_t i = 0; i < c.labels.size(); ++i) {
    const double centre = detail::kLeft + slot * (static_cast<double>(i) + 0.5);
    const std::optional<double> v = i < c.values.size() ? c.values[i] : std::nullopt;
    if (v) {
      const double top = f.y_at(*v);
      f.svg += fmt::format(
          "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\"><title>{}</title></rect>"
          "<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n",
          centre - slot * 0.3, top, slot * 0.6, detail::kBottom - top, series_colour(i), escape_xml(c.labels[i]),
          centre, top - 5, escape_xml(value_label(*v)));
    } else {
      f.svg += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\" fill=\"#888\">not run</text>\n", centre,
                           detail::kBottom - 10);
    }
    f.svg += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", centre,
                         detail::kBottom + 18, escape_xml(c.labels[i]));
    f.legend(i, c.labels[i], series_colour(i));
  }
  return std::move(f).close();
}

}  // namespace vmmu::report
