#pragma once
// The pieces every plot is drawn with: text made safe for SVG and HTML, "nice" axis ticks
// (steps of 1, 2 or 5 times a power of ten) and their labels. Plots are written as SVG text
// by vmmu itself: no plotting library or program is involved at run time.

#include <string>
#include <string_view>
#include <vector>

namespace vmmu::report {

// `s` with & < > " ' replaced by entities: safe as XML / HTML text and attribute values.
std::string escape_xml(std::string_view s);

struct Ticks {
  double lo = 0, hi = 1;  // the axis range: the first and last tick
  double step = 1;
  std::vector<double> values;  // lo, lo + step, ..., hi
};
// About `target` ticks covering [lo, hi] (lo > hi swapped; an empty range widened to one step).
Ticks nice_ticks(double lo, double hi, unsigned target = 5);
// A tick's label: "0", "0.5", "250", "1.5M" -- one suffix (k, M, G) for the whole axis, chosen
// by its largest tick, and as many decimals as the step needs.
std::string tick_label(double v, const Ticks& axis);

// A value as printed beside a bar: "1,234,567", or "0.125" when not whole.
std::string value_label(double v);

// The colour of series `i` (a palette readable on white, cycled).
std::string_view series_colour(std::size_t i);

}  // namespace vmmu::report
