#!/usr/bin/env bash
# `vmmu run --trace` on the shipped trace of `ls /` compares the MMU kinds in one table and
# writes the plots and index.html, which must render in a real headless Chromium: the page's
# script writes every plot's SVG bounding box into the DOM (read back with --dump-dom), and a
# screenshot must hold far more than a blank page. Skipped (77) without chromium.
set -euo pipefail
vmmu=$1 trace=$2 work=$3
browser=$(command -v chromium || command -v chromium-browser || true)
if [[ -z $browser ]]; then
  echo "chromium is not installed: skipped"
  exit 77
fi
rm -rf "$work"
mkdir -p "$work"
"$vmmu" run --trace "$trace" --compare mmu --dirty-log-at 0.5 --plot "$work/plots" >"$work/table.txt"
grep -q "figure  *tdp  *shadow  *adaptive" "$work/table.txt"
plots=$(ls "$work/plots"/*.svg | wc -l)
test "$plots" -ge 11  # 7 figures compared as bars, 4 time series

# --no-sandbox: CI containers run as root, where Chromium's sandbox cannot start.
flags=(--headless --no-sandbox --disable-gpu "--user-data-dir=$work/profile")
page="file://$work/plots/index.html"
"$browser" "${flags[@]}" --dump-dom "$page" >"$work/dom.html" 2>"$work/browser.log"
grep -o '<li data-plot="[^"]*" data-width="[0-9]*" data-height="[0-9]*"' "$work/dom.html" >"$work/boxes.txt" || true
cat "$work/boxes.txt"
test "$(wc -l <"$work/boxes.txt")" -eq "$plots"  # every SVG file is drawn on the page
while read -r line; do
  width=$(sed 's/.*data-width="\([0-9]*\)".*/\1/' <<<"$line")
  height=$(sed 's/.*data-height="\([0-9]*\)".*/\1/' <<<"$line")
  if ((width < 300 || height < 200)); then  # a chart spans its 640x360 frame
    echo "not drawn: $line"
    exit 1
  fi
done <"$work/boxes.txt"

"$browser" "${flags[@]}" --screenshot="$work/page.png" --window-size=1400,3000 "$page" 2>>"$work/browser.log"
test "$(head -c 8 "$work/page.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a  # a PNG
size=$(stat -c %s "$work/page.png")
echo "screenshot: $size bytes"
test "$size" -gt 100000  # a blank page this size: 19 KB; these plots: about 265 KB (Chromium 156)
