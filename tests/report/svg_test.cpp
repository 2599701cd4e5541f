// SVG output: escaping, nice ticks and their labels, and charts whose every point and bar lands
// inside the plot area with its legend -- checked on the text, as a browser would read it.

#include "vmmu/report/svg.hpp"

#include <gtest/gtest.h>

#include <regex>

#include "vmmu/report/chart.hpp"
#include "vmmu/report/html_page.hpp"

namespace vmmu::report {
namespace {

std::size_t count(const std::string& s, std::string_view what) {
  std::size_t n = 0;
  for (std::size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
  return n;
}

TEST(Svg, EscapesEveryMarkupCharacter) {
  EXPECT_EQ(escape_xml(R"(a<b>&"c"'d')"), "a&lt;b&gt;&amp;&quot;c&quot;&#39;d&#39;");
  EXPECT_EQ(escape_xml("plain 4k"), "plain 4k");
}

TEST(Svg, TicksAreNiceStepsCoveringTheRange) {
  const Ticks t = nice_ticks(0, 97);
  EXPECT_EQ(t.step, 20);
  EXPECT_EQ(t.lo, 0);
  EXPECT_EQ(t.hi, 100);
  EXPECT_EQ(t.values, (std::vector<double>{0, 20, 40, 60, 80, 100}));
  const Ticks f = nice_ticks(0, 1);
  EXPECT_DOUBLE_EQ(f.step, 0.2);
  EXPECT_EQ(f.values.size(), 6u);
  EXPECT_EQ(f.values[3], 0.6000000000000001);  // lo + 3 * step, not three additions
  const Ticks neg = nice_ticks(-35, 12);
  EXPECT_EQ(neg.lo, -40);
  EXPECT_EQ(neg.hi, 20);
  EXPECT_EQ(neg.step, 10);
  const Ticks flat = nice_ticks(5, 5);  // one value: still an axis around it
  EXPECT_LT(flat.lo, flat.hi);
  EXPECT_LE(flat.lo, 5);
  EXPECT_GE(flat.hi, 5);
  const Ticks zero = nice_ticks(0, 0);
  EXPECT_EQ(zero.lo, 0);
  EXPECT_GT(zero.hi, 0);
}

TEST(Svg, TickLabelsShareOneSuffixAndTheStepsDecimals) {
  const Ticks big = nice_ticks(0, 1'500'000);
  EXPECT_EQ(big.step, 500'000);
  EXPECT_EQ(tick_label(500'000, big), "0.5M");
  EXPECT_EQ(tick_label(1'500'000, big), "1.5M");
  EXPECT_EQ(tick_label(0, big), "0");
  const Ticks small = nice_ticks(0, 8000);
  EXPECT_EQ(tick_label(8000, small), "8000");
  const Ticks k = nice_ticks(0, 250'000);
  EXPECT_EQ(tick_label(250'000, k), "250k");
  const Ticks frac = nice_ticks(0, 0.15);
  EXPECT_EQ(frac.step, 0.05);
  EXPECT_EQ(tick_label(0.15, frac), "0.15");
  EXPECT_EQ(value_label(1234567), "1,234,567");
  EXPECT_EQ(value_label(0.125), "0.125");
}

// Points of every polyline, as (x, y) pairs.
std::vector<std::pair<double, double>> points(const std::string& svg) {
  std::vector<std::pair<double, double>> out;
  const std::regex polyline("points=\"([^\"]*)\"");
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), polyline); it != std::sregex_iterator(); ++it) {
    const std::string list = (*it)[1];
    const std::regex pair("(-?[0-9.]+),(-?[0-9.]+)");
    for (auto p = std::sregex_iterator(list.begin(), list.end(), pair); p != std::sregex_iterator(); ++p)
      out.emplace_back(std::stod((*p)[1]), std::stod((*p)[2]));
  }
  return out;
}

TEST(Svg, LineChartDrawsEverySeriesInsideThePlotArea) {
  LineChart c{"Faults <per> interval", "accesses", "faults",
              {{"guest", {0, 100, 200, 300}, {5, 40, 0, 17}}, {"MMU & co", {0, 100, 200, 300}, {1, 2, 3, 90}}}};
  const std::string svg = render_svg(c);
  EXPECT_EQ(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0), 0u);
  EXPECT_EQ(count(svg, "</svg>"), 1u);
  EXPECT_EQ(count(svg, "<polyline"), 2u);
  EXPECT_NE(svg.find("Faults &lt;per&gt; interval"), std::string::npos);
  EXPECT_NE(svg.find(">MMU &amp; co</text>"), std::string::npos);  // the legend
  const auto ps = points(svg);
  ASSERT_EQ(ps.size(), 8u);
  for (const auto& [x, y] : ps) {
    EXPECT_GE(x, 72);
    EXPECT_LE(x, 500);
    EXPECT_GE(y, 40);
    EXPECT_LE(y, 300);
  }
  // The highest value (90, on an axis to 100) sits nine tenths up; x spans the whole area.
  EXPECT_NEAR(ps[7].second, 300 - 0.9 * 260, 0.1);
  EXPECT_NEAR(ps[0].first, 72, 0.1);
  EXPECT_NEAR(ps[7].first, 500, 0.1);
}

TEST(Svg, BarChartLabelsAGapForAValueNotMeasured) {
  BarChart c{"TLB misses by mmu", "misses", {"tdp", "shadow", "adaptive"}, {1200.0, std::nullopt, 300.0}};
  const std::string svg = render_svg(c);
  EXPECT_EQ(count(svg, "<rect x="), 2u + 3u);  // two bars, three legend swatches
  EXPECT_EQ(count(svg, ">not run</text>"), 1u);
  EXPECT_NE(svg.find(">1,200</text>"), std::string::npos);
  const std::regex bar("<rect x=\"[0-9.]+\" y=\"([0-9.]+)\" width=\"[0-9.]+\" height=\"([0-9.]+)\"");
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), bar); it != std::sregex_iterator(); ++it) {
    if (std::stod((*it)[2]) <= 4) continue;  // a legend swatch
    EXPECT_NEAR(std::stod((*it)[1]) + std::stod((*it)[2]), 300, 0.1);  // bars stand on the axis
  }
}

TEST(HtmlPage, InlinesEveryPlotWithItsLinkAndTheRenderCheck) {
  const std::string page =
      html_page("a <b> page", {{"one.svg", "<svg id=\"1\"></svg>\n"}, {"two&.svg", "<svg id=\"2\"></svg>\n"}});
  EXPECT_NE(page.find("<title>a &lt;b&gt; page</title>"), std::string::npos);
  EXPECT_NE(page.find("<figure data-plot=\"one.svg\">\n<svg id=\"1\"></svg>"), std::string::npos);
  EXPECT_NE(page.find("<a href=\"two&amp;.svg\">"), std::string::npos);
  EXPECT_EQ(count(page, "<figure"), 2u);
  EXPECT_NE(page.find("<ol id=\"render-check\"></ol>"), std::string::npos);
  EXPECT_NE(page.find("getBBox()"), std::string::npos);
}

}  // namespace
}  // namespace vmmu::report
