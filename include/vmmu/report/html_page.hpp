#pragma once
// One HTML page showing a report's plots together: each SVG inline (so the page stands alone
// and a browser lays the plots out) with a link to its file, and an optional table.
//
// The page's script writes what the browser rendered into the page itself -- each plot's
// bounding box, as <li data-plot="FILE" data-width="W" data-height="H"> under
// <ol id="render-check"> -- so a headless browser's --dump-dom shows whether every plot drew.

#include <string>
#include <string_view>
#include <vector>

namespace vmmu::report {

struct Figure {
  std::string file;  // the SVG's file name, beside the page
  std::string svg;   // its text (render_svg)
};

// `table_html`: inserted as is after the plots (build it with escape_xml'd text).
std::string html_page(std::string_view title, const std::vector<Figure>& figures, std::string_view table_html = {});

}  // namespace vmmu::report
