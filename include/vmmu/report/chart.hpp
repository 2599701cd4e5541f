#pragma once
// Charts as SVG text: line charts for time series, bar charts for one figure per policy.
//
//   ┌ title ─────────────────────────────────┐
//   │ y ticks ┤ plot area (grid, lines/bars) │ legend
//   │         └──── x ticks, x label ────────┘
//
// Every chart is a fixed 640x360 viewBox, so pages can lay them out side by side.

#include <optional>
#include <string>
#include <vector>

namespace vmmu::report {

struct Series {
  std::string name;
  std::vector<double> x, y;  // same length; x increasing
};

struct LineChart {
  std::string title, x_label, y_label;
  std::vector<Series> series;
};

struct BarChart {
  std::string title, y_label;
  std::vector<std::string> labels;            // one bar each
  std::vector<std::optional<double>> values;  // none: a bar not measured ("not run")
};

std::string render_svg(const LineChart& chart);
std::string render_svg(const BarChart& chart);

}  // namespace vmmu::report
