#include "vmmu/report/html_page.hpp"

#include <fmt/format.h>

#include "vmmu/report/svg.hpp"

namespace vmmu::report {
namespace {

// Runs once the page has loaded: one <li> per plot with its drawn bounding box.
constexpr std::string_view kRenderCheck = R"(<script>
window.addEventListener('load', () => {
  const out = document.getElementById('render-check');
  for (const fig of document.querySelectorAll('figure[data-plot]')) {
    const svg = fig.querySelector('svg');
    const box = svg ? svg.getBBox() : {width: 0, height: 0};
    const li = document.createElement('li');
    li.dataset.plot = fig.dataset.plot;
    li.dataset.width = Math.round(box.width);
    li.dataset.height = Math.round(box.height);
    li.textContent = fig.dataset.plot + ' ' + li.dataset.width + 'x' + li.dataset.height;
    out.appendChild(li);
  }
});
</script>
)";

}  // namespace

std::string html_page(std::string_view title, const std::vector<Figure>& figures, std::string_view table_html) {
  std::string out = fmt::format(
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{0}</title>\n"
      "<style>body{{font-family:sans-serif;margin:1em}}figure{{display:inline-block;margin:0.5em}}"
      "table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 6px;text-align:right}}"
      "td:first-child{{text-align:left}}</style>\n</head>\n<body>\n<h1>{0}</h1>\n",
      escape_xml(title));
  for (const Figure& f : figures) {
    out += fmt::format("<figure data-plot=\"{0}\">\n{1}<figcaption><a href=\"{0}\">{0}</a></figcaption>\n</figure>\n",
                       escape_xml(f.file), f.svg);
  }
  out += table_html;
  out += "\n<ol id=\"render-check\"></ol>\n";
  out += kRenderCheck;
  out += "</body>\n</html>\n";
  return out;
}

}  // namespace vmmu::report
