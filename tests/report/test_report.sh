#!/usr/bin/env bash
# test_report.sh VIOSIM -- scripts/report on a tiny sweep: plots (PNG and SVG) and a
# self-contained index.html with the results table and the reproduce commands; the same
# directory gives the same bytes; the default plots without a "report" section; and
# exit 2 with one line naming the problem for an unknown column, a missing directory and
# a missing or empty results.csv.
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
# Every results.csv row is a table row, field by field.
tail -n +2 "$sweep/results.csv" >"$tmp/rows"
check "four result rows" test "$(wc -l <"$tmp/rows")" -eq 4
while IFS= read -r row; do
  cells="<tr><td>${row//,/</td><td>}</td></tr>"
  check "table row for $row" grep -qF "$cells" "$html"
done <"$tmp/rows"
check "the sweep's reproduce command" grep -qF "viosim sweep &#x27;$tmp/study.json&#x27; --out &#x27;$sweep&#x27;" "$html"
check "the report's reproduce command" grep -qF "$report $sweep --out $tmp/r1" "$html"
check "the study file as given" grep -qF "report test" "$html"
check "the version" grep -qF "viosim version: 0.1" "$html"

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

if [ "$failures" -ne 0 ]; then
  echo "$failures checks failed" >&2
  exit 1
fi
echo "test_report: all checks passed"
