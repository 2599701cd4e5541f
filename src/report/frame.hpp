#pragma once
// The frame every chart shares: the SVG element, title, y axis with ticks, grid and label,
// and the mapping from values to the plot area (chart.hpp's picture).

#include <fmt/format.h>

#include <string>
#include <string_view>

#include "vmmu/report/svg.hpp"

namespace vmmu::report::detail {

inline constexpr double kWidth = 640, kHeight = 360;
inline constexpr double kLeft = 72, kRight = 500, kTop = 40, kBottom = 300;  // the plot area

struct Frame {
  Ticks y;
  std::string svg;  // open: the caller draws, then close()

  [[nodiscard]] double y_at(double v) const { return kBottom - (v - y.lo) / (y.hi - y.lo) * (kBottom - kTop); }

  Frame(std::string_view title, std::string_view y_label, Ticks y_ticks) : y(std::move(y_ticks)) {
    svg = fmt::format(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {} {}\" width=\"{}\" height=\"{}\" "
        "font-family=\"sans-serif\" font-size=\"12\">\n"
        "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        "<text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">{}</text>\n",
        kWidth, kHeight, kWidth, kHeight, (kLeft + kRight) / 2, escape_xml(title));
    for (const double v : y.values) {
      const double py = y_at(v);
      svg += fmt::format(
          "<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"#ddd\"/>"
          "<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\" dominant-baseline=\"middle\">{}</text>\n",
          kLeft, py, kRight, py, kLeft - 6, py, escape_xml(tick_label(v, y)));
    }
    svg += fmt::format(
        "<text transform=\"translate(16 {}) rotate(-90)\" text-anchor=\"middle\">{}</text>\n"
        "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>"
        "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n",
        (kTop + kBottom) / 2, escape_xml(y_label), kLeft, kTop, kLeft, kBottom, kLeft, kBottom, kRight, kBottom);
  }

  // An entry of the legend right of the plot area.
  void legend(std::size_t i, std::string_view name, std::string_view colour) {
    const double py = kTop + 10 + 20 * static_cast<double>(i);
    svg += fmt::format(
        "<rect x=\"{}\" y=\"{}\" width=\"14\" height=\"4\" fill=\"{}\"/>"
        "<text x=\"{}\" y=\"{}\" dominant-baseline=\"middle\">{}</text>\n",
        kRight + 14, py - 2, colour, kRight + 34, py, escape_xml(name));
  }

  std::string close() && {
    svg += "</svg>\n";
    return std::move(svg);
  }
};

}  // namespace vmmu::report::detail
