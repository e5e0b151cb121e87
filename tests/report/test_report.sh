#!/usr/bin/env bash
# test_report.sh VIOSIM -- scripts/report on a tiny sweep: plots (PNG and SVG) and a
# self-contained index.html with the results table and the reproduce commands; the same
# directory gives the same bytes; the default plots without a "report" section; and
# exit 2 with one line naming the problem for an unknown column, a missing directory and
# a missing or empty results.csv. Then the plots for a design review on a hand-made
# results.csv: units and readable scales, small multiples for more than 6 series, bars
# for a categorical x, study aliases, distinct series styles, 4 significant digits.
set -uo pipefail
viosim=${1:?usage: test_report.sh VIOSIM}
root=$(cd "$(dirname "$0")/../.." && pwd)
report=$root/scripts/report
tmp=$(mktemp -d /tmp/viosim-report-test-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
failures=0
check() { # check DESCRIPTION COMMAND...
  if "${@:2}"; then :; else echo "FAIL: $1" >&2; failures=$((failures + 1)); fi
}
# expect_usage_error NAME_IN_MESSAGE ARGS...: exit 2, one line on stderr naming it.
expect_usage_error() {
  local want=$1; shift
  "$report" "$@" >"$tmp/out" 2>"$tmp/err"
  local st=$?
  check "scripts/report $* exits 2 (got $st)" test "$st" -eq 2
  check "scripts/report $*: one line on stderr: $(cat "$tmp/err")" test "$(wc -l <"$tmp/err")" -eq 1
  check "scripts/report $*: names '$want': $(cat "$tmp/err")" grep -qF -- "$want" "$tmp/err"
}

cat >"$tmp/study.json" <<'JSON'
{
  "description": "report test",
  "base": {"driver.frames_count": 30},
  "grid": {"driver.frame_sizes_bytes": [64, 1500], "pcie.lanes": [4, 8]},
  "metrics": ["throughput.tx_mpps", "latency.p99_ns"],
  "report": {"title": "Lanes and frame sizes",
             "plots": [{"x": "pcie.lanes", "y": ["throughput.tx_mpps"],
                        "series": "driver.frame_sizes_bytes", "logx": true,
                        "title": "Throughput by lanes"}]}
}
JSON
sweep=$tmp/sweep
"$viosim" sweep "$tmp/study.json" --out "$sweep" --jobs 2 2>"$tmp/sweep.err" ||
  { cat "$tmp/sweep.err" >&2; echo "FAIL: the sweep" >&2; exit 1; }

"$report" "$sweep" --out "$tmp/r1" 2>"$tmp/err"
check "scripts/report exits 0: $(cat "$tmp/err")" test $? -eq 0
for f in plot-1.png plot-1.svg index.html; do
  check "$f written" test -s "$tmp/r1/$f"
done
check "one plot only (the report section names one)" test ! -e "$tmp/r1/plot-2.svg"
check "PNG signature" grep -q PNG <(head -c 8 "$tmp/r1/plot-1.png")
html=$tmp/r1/index.html
check "the plot's title in the SVG" grep -qF "Throughput by lanes" "$tmp/r1/plot-1.svg"
check "the report title in the HTML" grep -qF "<h1>Lanes and frame sizes</h1>" "$html"
check "the SVG inline in the HTML" grep -q "<svg" "$html"
check "no external assets" test -z "$(grep -oE '(src|href)="https?:[^"]*"|<script|<link' "$html")"
# Every results.csv row is a table row, field by field: integers and words as they are,
# other numbers rounded, with the exact text in the cell's title.
check "four result rows" test "$(tail -n +2 "$sweep/results.csv" | wc -l)" -eq 4
check "every results.csv row is a table row" python3 - "$sweep/results.csv" "$html" <<'PY'
import csv, re, sys
html = open(sys.argv[2]).read()
for row in list(csv.reader(open(sys.argv[1])))[1:]:
    cells = [re.escape(f"<td>{f}</td>") if re.fullmatch(r"-?[0-9]+|ok", f) else
             re.escape(f'<td title="{f}">') + r"[0-9.e-]+</td>" for f in row]
    if not re.search("<tr>" + "".join(cells) + "</tr>", html):
        sys.exit(f"no table row for {row}")
PY
check "the sweep's reproduce command" grep -qF "viosim sweep &#x27;$tmp/study.json&#x27; --out &#x27;$sweep&#x27;" "$html"
check "the report's reproduce command" grep -qF "$report $sweep --out $tmp/r1" "$html"
check "the study file as given" grep -qF "report test" "$html"
version=$("$viosim" --version | awk '{print $2}')
check "the build that ran the points ($version)" grep -qF "viosim version that ran the points: $version<" "$html"

# Determinism: the same directory gives the same bytes.
"$report" "$sweep" --out "$tmp/r1" 2>/dev/null
cp "$html" "$tmp/first.html"; cp "$tmp/r1/plot-1.svg" "$tmp/first.svg"
"$report" "$sweep" --out "$tmp/r1" 2>/dev/null
check "index.html byte-identical" cmp -s "$html" "$tmp/first.html"
check "plot-1.svg byte-identical" cmp -s "$tmp/r1/plot-1.svg" "$tmp/first.svg"
check "no timestamps in the SVG" test -z "$(grep -E '<dc:date>' "$tmp/r1/plot-1.svg")"

# Without a report section: one plot per metric against the first grid key.
python3 - "$sweep/study.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1])); del s["report"]
json.dump(s, open(sys.argv[1], "w"), indent=2)
PY
"$report" "$sweep" 2>"$tmp/err"
check "default report exits 0: $(cat "$tmp/err")" test $? -eq 0
check "default: one plot per metric" test -s "$sweep/report/plot-2.svg" -a ! -e "$sweep/report/plot-3.svg"
check "default: metric vs first key" grep -qF "latency.p99_ns vs driver.frame_sizes_bytes" "$sweep/report/plot-2.svg"

# A report section naming an unknown column (edited after the sweep, which checks it too).
python3 - "$sweep/study.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
s["report"] = {"plots": [{"x": "pcie.lanes", "y": "throughput.tx_gbps"}]}
json.dump(s, open(sys.argv[1], "w"), indent=2)
PY
expect_usage_error "'throughput.tx_gbps'" "$sweep" --out "$tmp/r2"
check "nothing drawn for a bad report section" test ! -e "$tmp/r2/plot-1.svg"
expect_usage_error "no sweep output directory" "$tmp/nonexistent"
mkdir -p "$tmp/empty"
expect_usage_error "results.csv' is missing" "$tmp/empty"
: >"$tmp/empty/results.csv"
expect_usage_error "results.csv' is empty" "$tmp/empty"
head -1 "$sweep/results.csv" >"$tmp/empty/results.csv"
expect_usage_error "results.csv' is empty" "$tmp/empty"

# --- Plots for a design review, on a hand-made sweep directory (results.csv and
# study.json are all scripts/report reads; no viosim run needed). Metric names are
# real statistics so their units come from viosim's tables (docs/statistics.md here:
# this directory has no stats.json).
fake=$tmp/fake
mkdir -p "$fake"
python3 - "$fake" <<'PY'
import json, sys
d = sys.argv[1]
layouts = ["one_desc", "chain"]
rows = ["index,dma.read_tags_count,driver.tx_layout,driver.decline_features,pcie.lanes,status,"
        "latency.p50_ns,throughput.tx_mpps,link.up.utilisation"]
i = 0
for lanes in (1, 2, 4, 8):                 # 4 x 2 = 8 series: more than 6 on one axis
    for decline in ("", "RING_PACKED"):
        for layout in layouts:
            for tags in (4, 16, 32):
                rows.append(f"{i},{tags},{layout},{decline},{lanes},ok,"
                            f"{284950.528 + 1000 * i},{0.123456789 + i / 1000},{0.5 + i / 1000}")
                i += 1
open(f"{d}/results.csv", "w").write("\n".join(rows) + "\n")
study = {"grid": {}, "metrics": ["latency.p50_ns", "throughput.tx_mpps", "link.up.utilisation"],
         "report": {"title": "Design review",
                    "labels": {"driver.decline_features=": "packed ring",
                               "driver.decline_features=RING_PACKED": "split ring",
                               "latency.p50_ns": "median latency",
                               "driver.tx_layout=one_desc": "one descriptor"},
                    "plots": [
    {"x": "dma.read_tags_count", "y": "latency.p50_ns", "series": ["pcie.lanes", "driver.decline_features"],
     "where": {"driver.tx_layout": "one_desc"}, "title": "eight series"},
    {"x": "driver.tx_layout", "y": "throughput.tx_mpps", "series": "driver.decline_features",
     "where": {"pcie.lanes": 1, "dma.read_tags_count": 4}, "title": "categorical x"},
    {"x": "dma.read_tags_count", "y": "link.up.utilisation", "series": "driver.decline_features",
     "where": {"pcie.lanes": 1, "driver.tx_layout": "chain"}, "title": "two series"},
    {"x": "dma.read_tags_count", "y": "latency.p50_ns",
     "series": ["pcie.lanes", "driver.tx_layout", "driver.decline_features"],
     "where": {"pcie.lanes": [1, 2], "driver.decline_features": "RING_PACKED"},
     "title": "long legend"}]}}
json.dump(study, open(f"{d}/study.json", "w"), indent=2)
PY
"$report" "$fake" --out "$tmp/f1" 2>"$tmp/err"
check "design-review report exits 0: $(cat "$tmp/err")" test $? -eq 0
svg1=$tmp/f1/plot-1.svg svg2=$tmp/f1/plot-2.svg svg3=$tmp/f1/plot-3.svg
# Units from the statistics table, rescaled: ~290000 ns is drawn in µs, a fraction in %.
check "latency in µs under its alias" grep -qF "median latency (µs)" "$svg1"
check "the x axis named without its unit suffix" grep -qF ">dma.read_tags (count)<" "$svg1"
check "no raw ns axis label" test -z "$(grep -F 'latency.p50_ns' "$svg1")"
check "throughput in Mpps" grep -qF "throughput.tx (Mpps)" "$svg2"
check "utilisation as %" grep -qF "link.up.utilisation (%)" "$svg3"
check "µs ticks, not 280000" test -z "$(grep -E '>28[0-9]{4}<' "$svg1")"
# More than 6 series: small multiples, one panel per pcie.lanes value, 2 lines each,
# and every series in the legend (none dropped).
panels=$(grep -oE 'id="viosim-report-1-panel-[0-9]+"' "$svg1" | sort -u | wc -l)
check "8 series give 4 panels (got $panels)" test "$panels" -eq 4
check "panel titles name the panel's value" grep -qF "pcie.lanes=8" "$svg1"
check "two series per panel" test "$(grep -oE 'id="viosim-report-1-panel-1-series-[0-9]+"' "$svg1" | sort -u | wc -l)" -eq 2
check "aliases in the legend" grep -qF ">packed ring<" "$svg1"
check "both legend entries" grep -qF ">split ring<" "$svg1"
check "the two series differ in colour, marker or line style" test "$(python3 - "$svg1" <<'PY'
import re, sys
svg = open(sys.argv[1]).read()
styles = set()
for n in (1, 2):
    g = svg.split(f'id="viosim-report-1-panel-1-series-{n}"', 1)[1].split("</g>", 1)[0]
    styles.add(re.search(r'style="([^"]*)"', g).group(1))
print(len(styles))
PY
)" -eq 2
# The legend fits under the plot: the 7 x 4.2 in figure (504 pt) stays as wide.
check "a long legend does not widen the figure" python3 - "$tmp/f1/plot-4.svg" <<'PY'
import re, sys
width = float(re.search(r'<svg[^>]* width="([0-9.]+)pt"', open(sys.argv[1]).read()).group(1))
sys.exit(0 if width <= 504 else f"plot-4.svg is {width} pt wide")
PY
check "every series of the long legend named" test "$(grep -c '>pcie.lanes=[12], .*, split ring<' "$tmp/f1/plot-4.svg")" -eq 4
# Categorical x: grouped bars (2 categories x 2 series), tick labels aliased.
bars=$(grep -cE 'id="viosim-report-2-panel-1-series-[0-9]+-bar-[0-9]+"' "$svg2")
check "categorical x drawn as 4 bars (got $bars)" test "$bars" -eq 4
check "no lines for categorical x" test -z "$(grep -E 'id="viosim-report-2-panel-1-series-[0-9]+"' "$svg2")"
check "category alias as tick label" grep -qF ">one descriptor<" "$svg2"
check "numeric x drawn as lines" grep -qE 'id="viosim-report-3-panel-1-series-1"' "$svg3"
# The table: 4 significant digits, the exact value in the cell's title; integers exact.
fhtml=$tmp/f1/index.html
check "table: 284950.528 shown as 285000" grep -qF '<td title="284950.528">285000</td>' "$fhtml"
check "table: 0.123456789 shown as 0.1235" grep -qF '<td title="0.123456789">0.1235</td>' "$fhtml"
check "table: no 9 significant digits shown" test -z "$(grep -E '>[0-9.]*[0-9]{6,}\.[0-9]+<' "$fhtml")"
check "table: integers as they are" grep -qF '<tr><td>0</td><td>4</td>' "$fhtml"
check "table inside a scrolling container" grep -qF '<div class="table-wrap">' "$fhtml"
check "the container scrolls" grep -qF 'overflow-x: auto' "$fhtml"
# Same input, same bytes, plot after plot.
for f in index.html plot-1.svg plot-2.svg plot-3.svg plot-4.svg; do cp "$tmp/f1/$f" "$tmp/first-$f"; done
"$report" "$fake" --out "$tmp/f1" 2>/dev/null
for f in index.html plot-1.svg plot-2.svg plot-3.svg plot-4.svg; do
  check "$f byte-identical on a rerun" cmp -s "$tmp/f1/$f" "$tmp/first-$f"
done
# sig4 itself, at the edges.
check "sig4 at the edges" test "$(cd "$root/scripts" && python3 -c '
import viosim_plot as v
print(" ".join(v.sig4(x) for x in (0, 1.5, 12345.6, 999999.9, 0.00012346, 1.23456e-7, -2.5e9)))')" = \
  "0 1.5 12350 1e6 0.0001235 1.235e-7 -2.5e9"
check "scale: 280000 ns is 280 µs" test "$(cd "$root/scripts" && python3 -c '
import viosim_plot as v
print(v.scale("ns", [1000.0, 280000.0]), v.scale("ns", [9000.0]), v.scale("count", [25000.0]))')" = \
  "(1000.0, 'µs') (1.0, 'ns') (1000.0, 'count, ×1000')"
# A label naming a column the results do not have.
python3 - "$fake/study.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1])); s["report"]["labels"] = {"pcie.lane=4": "x4"}
json.dump(s, open(sys.argv[1], "w"), indent=2)
PY
expect_usage_error "'pcie.lane'" "$fake" --out "$tmp/f2"

if [ "$failures" -ne 0 ]; then
  echo "$failures checks failed" >&2
  exit 1
fi
echo "test_report: all checks passed"
