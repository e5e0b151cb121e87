"""viosim_plot: the plots and tables of viosim's reports, for design reviews.

Imported by scripts/report (and meant for any other script that draws viosim results,
such as a comparison page): `sys.path.insert(0, <scripts dir>); import viosim_plot`.
docs/sweeps.md ("How plots are drawn") describes what a reader sees; in short:

- Units come from the tables viosim itself keeps, never from a list of names here: a
  statistic's unit is the "unit" its stats.json row carries (platform/stats.cpp), a
  parameter's is the unit column of docs/parameters.md (written by `viosim params
  --markdown` from platform/config.cpp; a test keeps it current). A name in neither
  gets the unit its last `_suffix` names, if that suffix is a unit those tables use
  (`_ns`, `_bytes`, `_mpps`, ...); otherwise it has none.
- Values are rescaled to readable units: a value of 280000 ns is drawn as 280 µs,
  fractions as %, large counts as "×1000". Axis labels are the column's name without
  its unit suffix (or the study's alias for it) and the unit in parentheses.
- Every series has its own colour (Okabe-Ito, safe for colour-blind readers), marker
  and line style (bars: colour and hatch), cycling independently.
- More than MAX_LINES series on one axis become small multiples: a grid of panels with
  shared axes, one panel per value of the leading series keys, one legend for all.
- A categorical x (any value not a number: a name, on/off, a list) is drawn as grouped
  bars.
- The legend sits below the plot, in as many columns as fit its width; it is never
  left out.
- Tables round numbers to 4 significant digits (the exact text in a tooltip) and
  scroll inside their container when wider than the page.

Output is deterministic: the same input gives the same SVG bytes (fixed id salt, no
dates, text kept as text).

Use from another script (e.g. before/after plots: a made-up series key such as "build"
with values "base" and "current" gives one series each, same units and styles):

    units = viosim_plot.load_units(ROOT, [stats_json_doc, ...])
    plt = viosim_plot.load_matplotlib(install_function)
    svg = viosim_plot.draw(plt, rows, {"x": "pcie.lanes", "y": ["throughput.tx_mpps"],
                                       "series": ["build"], "title": "..."},
                           units, labels, "out/plot-1", "page-plot-1")
    table = viosim_plot.table_html(header, rows_as_lists)  # and viosim_plot.CSS
"""
import html
import math
import os
import re
import textwrap

MAX_LINES = 6  # series on one axis; more become small multiples

# Okabe & Ito's colour-blind-safe palette, the weakest on white (yellow) last.
COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000",
           "#F0E442"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X"]  # 7: cycles apart from the 8 colours
LINESTYLES = ["-", "--", "-.", ":"]
HATCHES = ["", "//", "..", "xx", "\\\\", "++", "oo"]

# How a unit rescales: a ladder of (unit as the tables write it, unit as shown, size in
# the ladder's first unit). Units not on a ladder are not rescaled, except "fraction"
# (shown as %) and plain quantities (count, frames, ...: shown "×1000" when large).
LADDERS = [
    [("ps", "ps", 1.0), ("ns", "ns", 1e3), ("us", "µs", 1e6), ("ms", "ms", 1e9),
     ("s", "s", 1e12)],
    [("bytes", "bytes", 1.0), ("kB", "kB", 1e3), ("MB", "MB", 1e6), ("GB", "GB", 1e9)],
    [("pps", "pps", 1.0), ("kpps", "kpps", 1e3), ("Mpps", "Mpps", 1e6),
     ("Gpps", "Gpps", 1e9)],
    [("Mb/s", "Mb/s", 1.0), ("Gb/s", "Gb/s", 1e3), ("Tb/s", "Tb/s", 1e6)],
    [("kHz", "kHz", 1.0), ("MHz", "MHz", 1e3), ("GHz", "GHz", 1e6)],
]
NO_UNIT = ("", "-")
SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")


def number(text):
    """The finite float a results.csv cell holds, or None."""
    try:
        v = float(text)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def sig4(v):
    """v to 4 significant digits: positional from 0.0001 to under 1e6, else scientific;
    no trailing zeros (1.5, not 1.500)."""
    if v == 0:
        return "0"
    r = float(f"{v:.3e}")
    if 1e-4 <= abs(r) < 1e6:
        decimals = max(0, 3 - math.floor(math.log10(abs(r))))
        s = f"{r:.{decimals}f}"
        return s.rstrip("0").rstrip(".") if "." in s else s
    mantissa, exponent = f"{r:.3e}".split("e")
    if "." in mantissa:
        mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def cell_number_text(text):
    """A table cell: integers as they are (exact counts), other numbers to 4 significant
    digits, anything else unchanged. Returns (shown, exact or None when unchanged)."""
    if re.fullmatch(r"-?[0-9]+", text):
        return text, None
    v = number(text)
    if v is None:
        return text, None
    shown = sig4(v)
    if text.startswith("+") and v > 0:
        shown = "+" + shown  # a change keeps its sign
    return shown, (text if shown != text else None)


def _norm(unit):
    return unit.lower().replace("/", "p").replace("µ", "u")


class Units:
    """Column name -> unit, from viosim's own tables (see the module's doc)."""

    def __init__(self):
        self.table = {}

    def add_stats(self, doc):
        """A stats.json document: {"stats": {name: {"unit": u, ...}}}."""
        stats = doc.get("stats") if isinstance(doc, dict) else None
        if isinstance(stats, dict):
            for name, row in stats.items():
                if isinstance(row, dict) and isinstance(row.get("unit"), str):
                    self.table.setdefault(name, row["unit"])

    def add_markdown_table(self, path):
        """A generated Markdown table whose first two columns are `name` and unit
        (docs/parameters.md, docs/statistics.md); silently nothing if it is missing."""
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError:
            return
        for m in re.finditer(r"^\| `([a-z0-9_.]+)` \| ([^|`]*?) \|", text, re.M):
            if "." in m.group(1):
                self.table.setdefault(m.group(1), m.group(2).strip())

    def unit(self, name):
        if name in self.table:
            u = self.table[name]
            return "" if u in NO_UNIT else u
        known = sorted({u for u in self.table.values() if u not in NO_UNIT},
                       key=lambda u: (-len(u), u))
        for u in known:
            if name.lower().endswith("_" + _norm(u)):
                return u
        return ""


def load_units(root, stats_docs=()):
    """Units from stats.json documents first, then the generated docs under root."""
    units = Units()
    for doc in stats_docs:
        units.add_stats(doc)
    units.add_markdown_table(os.path.join(root, "docs", "statistics.md"))
    units.add_markdown_table(os.path.join(root, "docs", "parameters.md"))
    return units


def scale(unit, values):
    """(divisor, unit shown) that makes values readable: the given unit while the
    largest magnitude is from 0.01 to under 10000, else the unit of its ladder in which
    it is at least 1; fractions as %; plain quantities over 10000 as ×10^3k."""
    mags = [abs(v) for v in values if v is not None and v != 0 and math.isfinite(v)]
    top = max(mags) if mags else 0.0
    if unit == "fraction":
        return 0.01, "%"
    for ladder in LADDERS:
        names = [u for u, _, _ in ladder]
        if unit not in names:
            continue
        i = names.index(unit)
        base = ladder[i][2]
        if top == 0 or 0.01 <= top < 1e4:
            return 1.0, ladder[i][1]
        j = 0
        for k, (_, _, size) in enumerate(ladder):
            if top * base / size >= 1:
                j = k
        return ladder[j][2] / base, ladder[j][1]
    if top >= 1e4:
        e = 3 * int(math.floor(math.log10(top) / 3))
        mult = "×1000" if e == 3 else "×10" + str(e).translate(SUPERSCRIPT)
        return 10.0 ** e, (f"{unit}, {mult}" if unit else mult)
    return 1.0, unit


def name_without_unit(name, unit):
    suffix = "_" + _norm(unit) if unit else None
    if suffix and name.lower().endswith(suffix) and len(name) > len(suffix):
        return name[:-len(suffix)]
    return name


def axis_label(name, unit, shown_unit, labels):
    text = labels.get(name) or name_without_unit(name, unit)
    if not shown_unit or (shown_unit == unit and text.split()[-1:] == [unit]):
        return text  # "queue engines", not "queue engines (engines)"
    return f"{text} ({shown_unit})"


def value_label(key, value, labels):
    """One series key's value as a legend or panel title shows it."""
    alias = labels.get(f"{key}={value}")
    if alias is not None:
        return alias
    return f"{labels.get(key, key)}={value}"


def category_label(key, value, labels):
    """A categorical x value as its tick shows it."""
    alias = labels.get(f"{key}={value}")
    if alias is not None:
        return alias
    return value if value != "" else "(empty)"


def _first_seen(values):
    return list(dict.fromkeys(values))


def _sorted_values(values):
    """Distinct values, numerically if all are numbers, else in order of appearance."""
    distinct = _first_seen(values)
    if all(number(v) is not None for v in distinct):
        return sorted(distinct, key=number)
    return distinct


def _wrap(text, width=56):
    return "\n".join(textwrap.wrap(text, width)) if len(text) > width else text


def _log_plain():
    import matplotlib.ticker as ticker

    class LogPlain(ticker.LogFormatter):
        """Log-axis tick labels as plain numbers (0.1, 20), not 10^-1 or 2x10^1."""

        def _num_to_string(self, x, vmin, vmax):
            return sig4(x)
    return LogPlain


def _LogPlain(**kw):
    return _log_plain()(**kw)


def _x_labels_overlap(ax, renderer):
    boxes = sorted((t.get_window_extent(renderer) for t in ax.get_xticklabels()
                    if t.get_visible() and t.get_text()), key=lambda b: b.x0)
    return any(a.x1 + 3 > b.x0 for a, b in zip(boxes, boxes[1:]))


def _untangle_x_ticks(fig, axes, numeric_x):
    """Tick labels that would overlap: categories turn 30 (then 90) degrees, numeric
    ticks keep every k-th value."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in axes:
        if not _x_labels_overlap(ax, renderer):
            continue
        if not numeric_x:
            for angle in (30, 90):
                for t in ax.get_xticklabels():
                    t.set_rotation(angle)
                    t.set_ha("right" if angle == 30 else "center")
                fig.canvas.draw()
                if not _x_labels_overlap(ax, renderer):
                    break
        else:
            ticks = list(ax.get_xticks())
            lo, hi = ax.get_xlim()
            ticks = [t for t in ticks if min(lo, hi) <= t <= max(lo, hi)]
            for k in range(2, max(3, len(ticks))):
                ax.set_xticks(ticks[::k])
                ax.set_xticklabels([sig4(t) for t in ticks[::k]])
                fig.canvas.draw()
                if not _x_labels_overlap(ax, renderer):
                    break
    fig.tight_layout()


def draw(plt, rows, plot, units, labels, base_path, salt):
    """Draws one plot of rows (dicts: column -> results.csv text) and writes
    base_path.png and .svg; returns the SVG text from its <svg> element on.

    plot: {"x": column, "y": [metrics], "series": [keys], "logx": bool, "logy": bool,
    "title": str}. labels: the study's aliases ({column: text, "key=value": text}).
    salt: a string fixing the SVG ids (unique per plot on one page)."""
    import matplotlib
    import matplotlib.ticker as ticker

    x, ys, series = plot["x"], list(plot["y"]), list(plot["series"])
    xs_text = [r[x] for r in rows]
    numeric_x = bool(xs_text) and all(number(t) is not None for t in xs_text)
    categories = _first_seen(xs_text)

    # Series dimensions: the metric (when several) then each series key.
    y_units = {y: units.unit(y) for y in ys}
    dims = (["\0y"] if len(ys) > 1 else []) + series
    dim_values = {d: (ys if d == "\0y" else _sorted_values(r[d] for r in rows)) for d in dims}

    def line_ids():
        for r in rows:
            for y in ys:
                yield tuple(y if d == "\0y" else r[d] for d in dims)
    present = _first_seen(line_ids())
    order = {d: {v: i for i, v in enumerate(dim_values[d])} for d in dims}
    present.sort(key=lambda ident: tuple(order[d][v] for d, v in zip(dims, ident)))

    # Small multiples: the fewest leading dimensions as panels that leave at most
    # MAX_LINES lines in a panel. Metrics of different units never share an axis.
    split = 0
    if len(ys) > 1 and len({y_units[y] for y in ys}) > 1:
        split = 1
    while split < len(dims):
        per_panel = {}
        for ident in present:
            per_panel.setdefault(ident[:split], set()).add(ident[split:])
        if max((len(v) for v in per_panel.values()), default=0) <= MAX_LINES:
            break
        split += 1
    panels = _first_seen(ident[:split] for ident in present) or [()]
    lines = _first_seen(ident[split:] for ident in present)
    y_per_panel = split >= 1 and dims[0] == "\0y"

    def describe(ident, first):
        parts = []
        for d, v in zip(dims[first:first + len(ident)], ident):
            if d == "\0y":
                u = y_units[v]
                parts.append(labels.get(v) or name_without_unit(v, u))
            else:
                parts.append(value_label(d, v, labels))
        return ", ".join(p for p in parts if p)  # a label "" leaves its key out

    # Scales: per metric when metrics have their own panels, else one for all.
    def values_of(metrics):
        return [number(r[y]) for r in rows for y in metrics]
    if y_per_panel or len(ys) == 1:
        y_scale = {y: scale(y_units[y], values_of([y])) for y in ys}
    else:
        common = scale(y_units[ys[0]], values_of(ys))
        y_scale = {y: common for y in ys}
    x_unit = units.unit(x) if numeric_x else ""
    x_div, x_shown = scale(x_unit, [number(t) for t in xs_text]) if numeric_x else (1.0, "")

    n = len(panels)
    ncols = 1 if n == 1 else 2 if n in (2, 4) else 3
    nrows = -(-n // ncols)
    if n == 1:
        size = (7.0, 4.2)
    else:
        size = (max(7.0, 3.6 * ncols), 2.9 * nrows + 0.5)
    fig, axes = plt.subplots(nrows, ncols, figsize=size, dpi=100, squeeze=False,
                             sharex=True, sharey=not y_per_panel)
    flat = [ax for row in axes for ax in row]
    for ax in flat[n:]:
        ax.set_visible(False)

    handles = {}
    width = 0.8 / max(1, len(lines))
    for p, panel in enumerate(panels):
        ax = flat[p]
        for li, line in enumerate(lines):
            ident = panel + line
            if ident not in present:
                continue
            values = dict(zip(dims, ident))
            y = values.get("\0y", ys[0])
            div = y_scale[y][0]
            members = [r for r in rows if all(r[d] == v for d, v in values.items() if d != "\0y")]
            pts = []
            for r in members:
                yv = number(r[y])
                if yv is None:
                    continue
                xv = number(r[x]) / x_div if numeric_x else categories.index(r[x])
                pts.append((xv, yv / div))
            if not pts:
                continue
            colour = COLOURS[li % len(COLOURS)]
            if numeric_x:
                pts.sort(key=lambda q: q[0])
                (h,) = ax.plot([q[0] for q in pts], [q[1] for q in pts], color=colour,
                               marker=MARKERS[li % len(MARKERS)],
                               linestyle=LINESTYLES[li % len(LINESTYLES)], markersize=6,
                               markerfacecolor="none", markeredgewidth=1.3, linewidth=1.5)
            else:
                offset = (li - (len(lines) - 1) / 2) * width
                h = ax.bar([q[0] + offset for q in pts], [q[1] for q in pts], width=width,
                           color=colour, hatch=HATCHES[li % len(HATCHES)],
                           edgecolor="white" if HATCHES[li % len(HATCHES)] else colour,
                           linewidth=0.0, log=plot.get("logy", False))
            # Ids name what each element is (also for tests): <salt>-panel-<p>-series-<l>
            # (a line), with -bar-<k> for each bar.
            gid = f"{salt}-panel-{p + 1}-series-{li + 1}"
            if numeric_x:
                h.set_gid(gid)
            else:
                for k, patch in enumerate(h.patches, 1):
                    patch.set_gid(f"{gid}-bar-{k}")
            handles.setdefault(line, h)
        ax.set_gid(f"{salt}-panel-{p + 1}")
        if n > 1:
            ax.set_title(_wrap(describe(panel, 0), 40), fontsize="medium")
        ax.grid(True, alpha=0.3, axis="both" if numeric_x else "y")
        ax.set_axisbelow(True)

    # Axes: scales, ticks, labels.
    for p, ax in enumerate(flat[:n]):
        if plot.get("logx") and numeric_x:
            ax.set_xscale("log")
        if plot.get("logy") and numeric_x:
            ax.set_yscale("log")
        if numeric_x and len(categories) <= 12:
            ticks = sorted({number(t) / x_div for t in categories})
            ax.set_xticks(ticks)
            ax.set_xticklabels([sig4(t) for t in ticks])
            ax.xaxis.set_minor_locator(ticker.NullLocator())
        elif not numeric_x:
            names = [category_label(x, c, labels) for c in categories]
            ax.set_xticks(range(len(categories)))
            ax.set_xticklabels(names)
        if plot.get("logy"):
            ax.yaxis.set_major_formatter(_LogPlain())
            # Up to two decades, label some ticks between powers of ten too.
            ax.yaxis.set_minor_formatter(_LogPlain(labelOnlyBase=False,
                                                   minor_thresholds=(2, 0.5)))
        else:
            fmt = ticker.ScalarFormatter(useOffset=False)
            fmt.set_scientific(False)
            ax.yaxis.set_major_formatter(fmt)
        last_row = p + ncols >= n
        if last_row:
            ax.xaxis.set_tick_params(labelbottom=True)
            ax.set_xlabel(axis_label(x, x_unit, x_shown, labels))
        y = panels[p][0] if y_per_panel else ys[0]
        if y_per_panel or p % ncols == 0:
            if y_per_panel or len(ys) == 1:
                ax.set_ylabel(axis_label(y, y_units[y], y_scale[y][1], labels))
            else:
                shown = y_scale[y][1]
                ax.set_ylabel(f"value ({shown})" if shown else "value")
    if not rows or not handles:
        flat[0].text(0.5, 0.5, "no ok points with values", transform=flat[0].transAxes,
                     ha="center")
    if n == 1:
        flat[0].set_title(_wrap(plot["title"], 70))
    else:
        # At a fixed distance from the top (the default is a fraction of the height,
        # far down a tall grid); tight_layout keeps its room.
        fig.suptitle(_wrap(plot["title"], 90), y=1 - 0.08 / size[1], va="top")
    fig.tight_layout()
    _untangle_x_ticks(fig, flat[:n], numeric_x)

    # The legend: below everything, as many columns as fit the figure's width.
    entries = [(line, h) for line, h in ((ln, handles.get(ln)) for ln in lines) if h is not None]
    texts = [_wrap(describe(line, split)) for line, _ in entries]
    if entries and any(texts):
        renderer = fig.canvas.get_renderer()
        limit = fig.bbox.width
        for most in range(min(len(entries), 3), 0, -1):
            rows_needed = -(-len(entries) // most)
            ncol = -(-len(entries) // rows_needed)  # as many rows, no ragged last column
            legend = fig.legend([h for _, h in entries], texts, loc="upper center",
                                bbox_to_anchor=(0.5, 0.0), ncol=ncol, fontsize="small",
                                frameon=False)
            if most == 1 or legend.get_window_extent(renderer).width <= limit:
                break
            legend.remove()

    matplotlib.rcParams["svg.hashsalt"] = salt
    fig.savefig(base_path + ".png", format="png", metadata={"Software": None},
                bbox_inches="tight")
    fig.savefig(base_path + ".svg", format="svg", metadata={"Date": None}, bbox_inches="tight")
    plt.close(fig)
    with open(base_path + ".svg", encoding="utf-8") as f:
        svg = f.read()
    return svg[svg.index("<svg"):]


def load_matplotlib(install):
    """matplotlib with the settings deterministic SVG needs; install() is called once
    when it is missing and must make it importable (or exit)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        install()
    import matplotlib
    matplotlib.use("Agg")
    matplotlib.rcParams["svg.fonttype"] = "none"  # text as text: no glyph ids to clash
    matplotlib.rcParams["path.simplify"] = False
    matplotlib.rcParams["hatch.linewidth"] = 0.8
    import matplotlib.pyplot as plt
    return plt


CSS = """
body { font-family: sans-serif; margin: 2em auto; padding: 0 1em; max-width: 80em;
       color: #222; }
.table-wrap { max-width: 100%; overflow-x: auto; margin: 1em 0; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: right; }
th { background: #f0f0f0; vertical-align: bottom; max-width: 12em; }
td { white-space: nowrap; font-variant-numeric: tabular-nums; }
td.text { text-align: left; }
td.failed, td.missing { color: #b00; font-weight: bold; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
figure { margin: 1.5em 0; }
figure svg { max-width: 100%; height: auto; }
"""


def table_html(header, rows, status_column=None):
    """An HTML table of text rows: numbers to 4 significant digits (integers exact; the
    exact text of a rounded cell in its title), inside a container that scrolls when
    the table is wider than the page. Column names may break after a dot (not
    inside a word)."""
    e = html.escape

    def breakable(name):
        return e(name).replace(".", ".<wbr>")
    out = ["<div class=\"table-wrap\">", "<table>",
           "<tr>" + "".join(f"<th>{breakable(c)}</th>" for c in header) + "</tr>"]
    for r in rows:
        cells = []
        for i, v in enumerate(r):
            if status_column is not None and i == status_column:
                cls = f" class=\"{e(v)}\"" if v != "ok" else ""
                cells.append(f"<td{cls}>{e(v)}</td>")
                continue
            shown, exact = cell_number_text(v)
            attrs = ""
            if exact is not None:
                attrs = f" title=\"{e(exact)}\""
            elif number(v) is None and v != "":
                attrs = " class=\"text\""
            cells.append(f"<td{attrs}>{e(shown)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    out.append("</div>")
    return "\n".join(out)
