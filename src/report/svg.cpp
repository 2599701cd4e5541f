#include "vmmu/report/svg.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>

namespace vmmu::report {

std::string escape_xml(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (const char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

Ticks nice_ticks(double lo, double hi, unsigned target) {
  if (lo > hi) std::swap(lo, hi);
  target = std::max(target, 2u);
  double range = hi - lo;
  if (!(range > 0)) range = lo == 0 ? 1 : std::abs(lo);  // one value: a range around it
  const double rough = range / (target - 1);
  const double magnitude = std::pow(10.0, std::floor(std::log10(rough)));
  const double norm = rough / magnitude;
  const double step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * magnitude;
  Ticks t;
  t.step = step;
  t.lo = std::floor(lo / step) * step;
  t.hi = std::ceil(hi / step) * step;
  if (t.hi <= t.lo) t.hi = t.lo + step;
  const long n = std::lround((t.hi - t.lo) / step);
  for (long i = 0; i <= n; ++i) {
    const double v = t.lo + static_cast<double>(i) * step;  // not accumulated: no drift
    t.values.push_back(std::abs(v) < step * 1e-9 ? 0.0 : v);
  }
  return t;
}

std::string tick_label(double v, const Ticks& axis) {
  struct Unit {
    double from, size;  // used when the largest tick reaches `from`
    std::string_view suffix;
  };
  // "9000", not "9k": four digits read well; "k" from 10k.
  static constexpr std::array<Unit, 4> kUnits{{{1e9, 1e9, "G"}, {1e6, 1e6, "M"}, {1e4, 1e3, "k"}, {0, 1, ""}}};
  const double largest = std::max(std::abs(axis.lo), std::abs(axis.hi));
  Unit unit = kUnits.back();
  for (const Unit& u : kUnits) {
    if (largest >= u.from) {
      unit = u;
      break;
    }
  }
  if (v == 0) return "0";
  const double step = axis.step / unit.size;
  const int decimals = step >= 1 ? 0 : static_cast<int>(std::ceil(-std::log10(step) - 1e-9));
  return fmt::format("{:.{}f}{}", v / unit.size, decimals, unit.suffix);
}

std::string value_label(double v) {
  if (v != std::floor(v) || std::abs(v) >= 1e18) return fmt::format("{:.3f}", v);
  const std::string digits = fmt::format("{}", static_cast<long long>(std::abs(v)));
  std::string out = v < 0 ? "-" : "";
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i != 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string_view series_colour(std::size_t i) {
  static constexpr std::array<std::string_view, 6> kColours{"#1f77b4", "#d62728", "#2ca02c",
                                                            "#9467bd", "#ff7f0e", "#17becf"};
  return kColours[i % kColours.size()];
}

}  // namespace vmmu::report
