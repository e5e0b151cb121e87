// compare.cpp -- `viosim compare BASE CUR`: joins the points of two sweeps (or two
// stats.json files) on their grid values, compares every statistic against a threshold
// in the direction its row declares, and writes the verdict as a terminal table,
// Markdown, JUnit XML, JSON and (through scripts/compare-html) an HTML page.
#include "compare.h"

#include <jansson.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "stats.h"

extern char **environ;

namespace viosim {

namespace fs = std::filesystem;

namespace {

constexpr int EXIT_REGRESSED = 1;
constexpr int EXIT_USAGE = 2;
constexpr json_int_t MAX_POINTS = 1000000; // as viosim sweep allows
constexpr size_t MARKDOWN_MAX_OTHER_ROWS = 500;

const char USAGE[] =
    "usage: viosim compare BASE CUR [--metrics a,b,...] [--threshold NAME=VALUE]...\n"
    "                      [--thresholds FILE] [--markdown FILE] [--junit FILE] [--json FILE]\n"
    "                      [--html DIR]\n";

const char HELP[] =
    "\n"
    "Compares two sets of results: BASE and CUR are each a sweep output directory\n"
    "(viosim sweep --out DIR) or a stats.json file. Points are joined on their grid values;\n"
    "each statistic is judged in the direction its stats.json row declares (\"better\":\n"
    "higher, lower or neutral; neutral statistics never regress) against a threshold.\n"
    "Runs are deterministic, so every change shown is real. See docs/regression.md.\n"
    "\n"
    "  --metrics a,b,...     compare only these statistics (default: every statistic both\n"
    "                        sides have); result.ok (the run's outcome) is always compared\n"
    "  --threshold NAME=VALUE  the change NAME may make in its worse direction before it\n"
    "                        counts as a regression (repeatable): 2% (of BASE's value), or\n"
    "                        an absolute number in the statistic's unit; a sign (-2%, +5)\n"
    "                        must point the way the statistic gets worse\n"
    "  --thresholds FILE     JSON object {\"NAME\": \"2%\" or number, ...}; --threshold wins\n"
    "                        defaults: 0 for whole counts (units count, frames, bytes,\n"
    "                        buffers, flag), 1% for everything else (times, rates, fractions,\n"
    "                        per-packet ratios, means)\n"
    "  --markdown FILE       a merge-request comment: summary, regressions and improvements,\n"
    "                        the other changes folded\n"
    "  --junit FILE          JUnit XML: one test case per point and statistic\n"
    "  --json FILE           every row at full precision, for scripts\n"
    "  --html DIR            DIR/index.html with before/after plots (scripts/compare-html,\n"
    "                        run with /usr/bin/python3 and matplotlib)\n"
    "\n"
    "exit status: 0 nothing regressed; 1 something regressed; 2 usage or input error\n"
    "(unreadable or malformed input, points that do not match, an unknown metric, a bad\n"
    "threshold).\n";

// "# Runs are deterministic" in every output: the reader must not discount a change as noise.
const char DETERMINISTIC[] =
    "Runs are deterministic (same configuration and seed, same results): every change "
    "shown is real, not noise.";

struct compare_error {
    std::string message;
};

std::string in_quotes(const std::string &s) { return "'" + config_escaped(s) + "'"; }

struct json_deleter {
    void operator()(json_t *j) const { json_decref(j); }
};
using json_ptr = std::unique_ptr<json_t, json_deleter>;

// ---- Inputs ----

// One statistic's row of a stats.json.
struct stat_value {
    bool is_null = false;    // a non-finite value, written as null
    bool is_integer = false; // written as a JSON integer: an exact count
    json_int_t i = 0;
    double v = 0;
    std::string unit;
    std::string better; // "higher", "lower", "neutral", or "" when the row declares none
};

// One stats.json: its statistics in file order, and the run's outcome.
struct run_stats {
    std::string path;
    std::vector<std::string> order;
    std::map<std::string, stat_value> stats;
    int ok = -1; // result.ok: 1 or 0, -1 when the file does not say
    std::string reason;
};

struct point {
    size_t index = 0;
    std::vector<std::pair<std::string, std::string>> set; // grid key, value text
    std::string key;   // the join key: "k=v" lines, sorted
    std::string label; // "k=v k=v" in grid order; "run" for a lone stats.json
    run_stats stats;
};

struct side {
    const char *which = ""; // "BASE" or "CUR"
    std::string path;
    bool sweep = false;
    std::vector<std::string> grid_keys;
    std::vector<point> points;
};

json_ptr load_json_object(const std::string &path, const std::string &what)
{
    json_error_t jerr;
    json_ptr root(json_load_file(path.c_str(), JSON_REJECT_DUPLICATES, &jerr));
    if (!root) {
        if (jerr.line < 1)
            throw compare_error{"cannot read " + what + " " + in_quotes(path) + ": " + jerr.text};
        throw compare_error{config_escaped(path) + ":" + std::to_string(jerr.line) + ":" +
                            std::to_string(jerr.column) + ": JSON syntax error: " + jerr.text};
    }
    if (!json_is_object(root.get()))
        throw compare_error{config_escaped(path) + ": expected a JSON object (" + what + ")"};
    return root;
}

// A stats.json as viosim writes it (docs/statistics.md); anything else is refused with
// the file and the statistic named.
run_stats load_stats(const std::string &path)
{
    run_stats r;
    r.path = path;
    json_ptr doc = load_json_object(path, "stats.json");
    const std::string at = config_escaped(path) + ": ";
    const json_t *stats = json_object_get(doc.get(), "stats");
    if (!json_is_object(stats))
        throw compare_error{at + "no \"stats\" object (not a viosim stats.json?)"};
    const char *name;
    json_t *row;
    json_object_foreach(const_cast<json_t *>(stats), name, row) {
        const std::string where = at + "statistic " + in_quotes(name) + ": ";
        if (!json_is_object(row))
            throw compare_error{where + "expected an object {\"value\": ..., \"unit\": ...}"};
        stat_value s;
        const json_t *value = json_object_get(row, "value");
        if (json_is_integer(value)) {
            s.is_integer = true;
            s.i = json_integer_value(value);
            s.v = static_cast<double>(s.i);
        } else if (json_is_real(value)) {
            s.v = json_real_value(value);
        } else if (json_is_null(value)) {
            s.is_null = true;
        } else {
            throw compare_error{where + "\"value\" must be a number or null"};
        }
        const json_t *unit = json_object_get(row, "unit");
        if (!json_is_string(unit))
            throw compare_error{where + "\"unit\" must be a string"};
        s.unit = json_string_value(unit);
        if (const json_t *better = json_object_get(row, "better")) {
            const char *b = json_string_value(better);
            if (!b || (std::strcmp(b, "higher") != 0 && std::strcmp(b, "lower") != 0 &&
                       std::strcmp(b, "neutral") != 0))
                throw compare_error{where + "\"better\" must be \"higher\", \"lower\" or \"neutral\""};
            s.better = b;
        }
        r.order.push_back(name);
        r.stats.emplace(name, std::move(s));
    }
    const json_t *result = json_object_get(doc.get(), "result");
    if (result && !json_is_object(result))
        throw compare_error{at + "\"result\" must be an object"};
    if (const json_t *ok = json_object_get(result, "ok")) {
        if (!json_is_boolean(ok))
            throw compare_error{at + "\"result\": \"ok\" must be true or false"};
        r.ok = json_is_true(ok) ? 1 : 0;
        if (const char *reason = json_string_value(json_object_get(result, "reason")))
            r.reason = reason;
    }
    return r;
}

void finish_point(point &p)
{
    std::vector<std::string> lines;
    for (const auto &a : p.set) {
        lines.push_back(a.first + "=" + a.second);
        p.label += (p.label.empty() ? "" : " ") + a.first + "=" + a.second;
    }
    std::sort(lines.begin(), lines.end());
    for (const std::string &l : lines)
        p.key += l + "\n";
    if (p.set.empty())
        p.label = "run";
}

// A sweep directory: study.json names the grid keys and the number of points; each
// points/<i>/point.json the point's values and points/<i>/stats.json its results.
void load_sweep(side &s)
{
    const std::string study_path = (fs::path(s.path) / "study.json").string();
    std::error_code ec;
    if (!fs::exists(study_path, ec))
        throw compare_error{std::string(s.which) + " " + in_quotes(s.path) +
                            " is a directory without study.json (not a viosim sweep output "
                            "directory)"};
    json_ptr study = load_json_object(study_path, "study.json");
    const std::string at = config_escaped(study_path) + ": ";
    const json_t *grid = json_object_get(study.get(), "grid");
    if (!json_is_object(grid))
        throw compare_error{at + "\"grid\" must be an object"};
    const char *k;
    json_t *v;
    json_object_foreach(const_cast<json_t *>(grid), k, v) s.grid_keys.push_back(k);
    const json_t *count = json_object_get(study.get(), "points");
    if (!json_is_integer(count) || json_integer_value(count) < 1 ||
        json_integer_value(count) > MAX_POINTS)
        throw compare_error{at + "\"points\" must be a number of points from 1 to " +
                            std::to_string(MAX_POINTS)};
    const size_t n = static_cast<size_t>(json_integer_value(count));
    for (size_t i = 0; i < n; i++) {
        const fs::path dir = fs::path(s.path) / "points" / std::to_string(i);
        const std::string pj = (dir / "point.json").string(), sj = (dir / "stats.json").string();
        if (!fs::exists(pj, ec) || !fs::exists(sj, ec))
            throw compare_error{std::string(s.which) + " " + in_quotes(s.path) + ": point " +
                                std::to_string(i) + " has no " +
                                (fs::exists(pj, ec) ? "stats.json" : "point.json") +
                                " (has the sweep finished? 'viosim sweep --merge' lists missing points)"};
        json_ptr pdoc = load_json_object(pj, "point.json");
        const std::string pat = config_escaped(pj) + ": ";
        const json_t *index = json_object_get(pdoc.get(), "index");
        if (!json_is_integer(index) || json_integer_value(index) != static_cast<json_int_t>(i))
            throw compare_error{pat + "\"index\" must be " + std::to_string(i)};
        const json_t *set = json_object_get(pdoc.get(), "set");
        if (!json_is_object(set))
            throw compare_error{pat + "\"set\" must be an object {grid key: value}"};
        point p;
        p.index = i;
        for (const std::string &key : s.grid_keys) {
            const char *text = json_string_value(json_object_get(set, key.c_str()));
            if (!text)
                throw compare_error{pat + "\"set\" has no value (a string) for grid key " +
                                    in_quotes(key)};
            p.set.emplace_back(key, text);
        }
        if (json_object_size(set) != s.grid_keys.size())
            throw compare_error{pat + "\"set\" has keys that are not in the grid of " +
                                config_escaped(study_path)};
        finish_point(p);
        p.stats = load_stats(sj);
        s.points.push_back(std::move(p));
    }
}

side load_side(const char *which, const std::string &path)
{
    side s;
    s.which = which;
    s.path = path;
    struct stat st;
    if (stat(path.c_str(), &st) != 0)
        throw compare_error{std::string(which) + " " + in_quotes(path) + ": " + std::strerror(errno)};
    if (S_ISDIR(st.st_mode)) {
        s.sweep = true;
        load_sweep(s);
    } else {
        point p;
        finish_point(p);
        p.stats = load_stats(path);
        s.points.push_back(std::move(p));
    }
    return s;
}

// Up to ten labels, then how many more.
std::string label_list(const std::vector<std::string> &labels)
{
    std::string out;
    for (size_t i = 0; i < labels.size() && i < 10; i++)
        out += (i ? "; " : "") + labels[i];
    if (labels.size() > 10)
        out += "; and " + std::to_string(labels.size() - 10) + " more";
    return out;
}

// The matched points: pairs of (BASE point, CUR point), in CUR's order.
std::vector<std::pair<const point *, const point *>> join_points(const side &base, const side &cur)
{
    if (base.sweep != cur.sweep)
        throw compare_error{std::string("BASE is ") + (base.sweep ? "a sweep directory" : "a stats.json") +
                            " and CUR " + (cur.sweep ? "a sweep directory" : "a stats.json") +
                            ": compare two sweeps or two stats.json files"};
    std::set<std::string> bk(base.grid_keys.begin(), base.grid_keys.end()),
        ck(cur.grid_keys.begin(), cur.grid_keys.end());
    if (bk != ck) {
        auto joined = [](const std::vector<std::string> &keys) {
            std::string out;
            for (const std::string &k : keys)
                out += (out.empty() ? "" : ", ") + k;
            return out;
        };
        throw compare_error{"the sweeps have different grid keys (BASE: " + joined(base.grid_keys) +
                            "; CUR: " + joined(cur.grid_keys) + "): their points do not match"};
    }
    std::map<std::string, const point *> by_key[2];
    const side *sides[2] = {&base, &cur};
    for (int w = 0; w < 2; w++)
        for (const point &p : sides[w]->points)
            if (!by_key[w].emplace(p.key, &p).second)
                throw compare_error{std::string(sides[w]->which) + " " + in_quotes(sides[w]->path) +
                                    ": two points have the same grid values (" + p.label +
                                    "): they cannot be told apart"};
    std::vector<std::string> only[2];
    for (int w = 0; w < 2; w++)
        for (const point &p : sides[w]->points)
            if (!by_key[1 - w].count(p.key))
                only[w].push_back("point " + std::to_string(p.index) + " (" + p.label + ")");
    if (!only[0].empty() || !only[1].empty()) {
        std::string message = "the sweeps' points do not match:";
        if (!only[0].empty())
            message += " only in BASE: " + label_list(only[0]) + ".";
        if (!only[1].empty())
            message += " only in CUR: " + label_list(only[1]) + ".";
        throw compare_error{message};
    }
    std::vector<std::pair<const point *, const point *>> pairs;
    for (const point &p : cur.points)
        pairs.emplace_back(by_key[0][p.key], &p);
    return pairs;
}

// ---- Thresholds ----

struct threshold {
    double amount = 0;   // magnitude
    bool percent = false; // of BASE's value
    int sign = 0;        // -1, +1: the worse direction the user wrote; 0: none
    std::string text;    // as written (or the default's)
    std::string from;    // "default", "--threshold", or the thresholds file
};

// [+|-]NUMBER[%], NUMBER finite and written whole (no trailing text).
bool parse_threshold(const std::string &text, threshold &t)
{
    std::string s = text;
    t = threshold{};
    t.text = text;
    if (!s.empty() && s.back() == '%') {
        t.percent = true;
        s.pop_back();
    }
    if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
        t.sign = s[0] == '-' ? -1 : 1;
        s.erase(0, 1);
    }
    if (s.empty() || !(std::isdigit(static_cast<unsigned char>(s[0])) || s[0] == '.'))
        return false;
    char *end = nullptr;
    errno = 0;
    const double v = std::strtod(s.c_str(), &end);
    if (*end != '\0' || errno == ERANGE || !std::isfinite(v) || v < 0)
        return false;
    t.amount = v;
    return true;
}

// Units whose whole-number values are exact counts: their default threshold is 0, any
// change in the worse direction regresses. Everything else (times, rates, fractions,
// per-packet ratios, means) defaults to 1 %.
bool counting_unit(const std::string &unit)
{
    static const std::set<std::string> units = {"count", "frames", "bytes", "buffers", "flag"};
    return units.count(unit) != 0;
}

threshold default_threshold(const stat_value &b, const stat_value &c)
{
    threshold t;
    t.from = "default";
    if (counting_unit(c.unit) && b.is_integer && c.is_integer) {
        t.text = "0";
    } else {
        t.text = "1%";
        t.amount = 1;
        t.percent = true;
    }
    return t;
}

// ---- Rows ----

// The run's outcome, compared like a statistic: a run that worked in BASE and fails in CUR
// is a regression.
const char RESULT_OK[] = "result.ok";

struct row {
    size_t pair = 0;     // index into the matched points
    size_t order = 0;    // the statistic's position in its file (stable listing order)
    std::string metric;
    stat_value base, cur;
    std::string better;      // higher, lower, neutral
    std::string better_from; // current, base, threshold, none
    threshold th;
    std::string status; // regressed, improved, changed, unchanged
    bool has_delta = false;
    double delta = 0;        // cur - base
    bool delta_integer = false;
    json_int_t delta_i = 0;
    bool has_percent = false;
    double percent = 0;      // delta / |base| * 100
    double severity = 0;     // relative move in the judged direction, for sorting
};

// The change from b to c: exact for two integers that do not overflow.
void set_delta(row &r)
{
    if (r.base.is_null || r.cur.is_null)
        return;
    r.has_delta = true;
    if (r.base.is_integer && r.cur.is_integer &&
        !__builtin_sub_overflow(r.cur.i, r.base.i, &r.delta_i)) {
        r.delta_integer = true;
        r.delta = static_cast<double>(r.delta_i);
    } else {
        r.delta = r.cur.v - r.base.v;
    }
    if (r.base.v != 0 && std::isfinite(r.delta)) {
        r.has_percent = true;
        r.percent = r.delta / std::fabs(r.base.v) * 100.0;
    }
}

void judge(row &r)
{
    set_delta(r);
    if (!r.has_delta) {
        r.status = r.base.is_null == r.cur.is_null ? "unchanged" : "changed";
        return;
    }
    if (r.delta == 0 && (!r.delta_integer || r.delta_i == 0)) {
        r.status = r.base.v == r.cur.v ? "unchanged" : "changed";
        return;
    }
    if (r.better != "higher" && r.better != "lower") {
        r.status = "changed";
        return;
    }
    const double worse = r.better == "higher" ? -r.delta : r.delta;
    const double tolerance = r.th.percent ? std::fabs(r.base.v) * r.th.amount / 100.0 : r.th.amount;
    r.severity = r.base.v != 0 ? std::fabs(r.delta / r.base.v) : HUGE_VAL;
    if (worse > tolerance)
        r.status = "regressed";
    else if (-worse > tolerance)
        r.status = "improved";
    else
        r.status = "changed";
}

struct comparison {
    std::vector<std::pair<const point *, const point *>> pairs;
    std::vector<row> rows; // report order: regressed, improved, changed, unchanged
    size_t counts[4] = {}; // in that order
    size_t undirected = 0; // compared statistics that declared no direction
    std::vector<std::string> undirected_names;
    std::vector<std::string> tabled_names; // declared none, judged by the built-in table
    std::vector<std::string> only_base, only_cur; // "label: name"
    size_t metrics = 0;                           // distinct statistics compared
};

const char *const STATUSES[] = {"regressed", "improved", "changed", "unchanged"};

size_t status_rank(const std::string &s)
{
    for (size_t i = 0; i < 4; i++)
        if (s == STATUSES[i])
            return i;
    return 4;
}

struct options {
    std::string base_path, cur_path;
    bool have_metrics = false;
    std::vector<std::string> metrics;
    std::vector<std::pair<std::string, std::string>> thresholds; // --threshold NAME, VALUE
    std::string thresholds_file, markdown, junit, json, html;
};

// Every statistic name the inputs hold (for checking names and suggesting one).
std::vector<std::string> input_names(const side &base, const side &cur)
{
    std::set<std::string> seen;
    std::vector<std::string> names;
    for (const side *s : {&cur, &base})
        for (const point &p : s->points) {
            for (const std::string &n : p.stats.order)
                if (seen.insert(n).second)
                    names.push_back(n);
            if (p.stats.ok >= 0 && seen.insert(RESULT_OK).second)
                names.push_back(RESULT_OK);
        }
    return names;
}

// Named like an unknown parameter or study metric: "unknown metric 'x'; did you mean 'y'?"
std::string unknown_metric(const std::string &where, const std::string &name,
                           const std::vector<std::string> &names)
{
    std::string message = where + "unknown metric " + in_quotes(name) +
                          " (not a statistic of BASE or CUR; see docs/statistics.md)";
    std::string guess = config_closest_name(name, names);
    if (guess.empty())
        guess = config_closest_name(name, stats_known_names());
    if (!guess.empty())
        message += "; did you mean " + in_quotes(guess) + "?";
    return message;
}

std::map<std::string, threshold> read_thresholds(const options &o, const std::vector<std::string> &names)
{
    std::map<std::string, threshold> out;
    auto check_name = [&](const std::string &where, const std::string &name) {
        if (std::find(names.begin(), names.end(), name) == names.end())
            throw compare_error{unknown_metric(where, name, names)};
    };
    if (!o.thresholds_file.empty()) {
        json_ptr doc = load_json_object(o.thresholds_file, "thresholds file");
        const std::string at = config_escaped(o.thresholds_file) + ": ";
        const char *k;
        json_t *v;
        json_object_foreach(doc.get(), k, v) {
            const std::string where = at + "threshold " + in_quotes(k) + ": ";
            threshold t;
            std::string text;
            if (json_is_string(v))
                text = json_string_value(v);
            else if (!json_is_number(v) || !config_scalar_text(v, text))
                throw compare_error{where + "expected a string such as \"2%\" or \"-2%\", or a "
                                            "number in the statistic's unit"};
            if (!parse_threshold(text, t))
                throw compare_error{where + "bad value " + in_quotes(text) +
                                    " (expected e.g. 2%, -2%, or a number >= 0 in the statistic's unit)"};
            check_name(at, k);
            t.from = o.thresholds_file;
            out[k] = t;
        }
    }
    for (const auto &nv : o.thresholds) {
        threshold t;
        if (!parse_threshold(nv.second, t))
            throw compare_error{"--threshold " + in_quotes(nv.first + "=" + nv.second) + ": bad value " +
                                in_quotes(nv.second) +
                                " (expected e.g. 2%, -2%, or a number >= 0 in the statistic's unit)"};
        check_name("--threshold: ", nv.first);
        t.from = "--threshold";
        out[nv.first] = t;
    }
    return out;
}

// The direction a statistic is judged in: its row in CUR, else in BASE, else (files
// written before statistics declared one) docs/statistics.md's table; a name in none is
// neutral (counted and said in the report), unless a signed threshold names the worse
// direction.
void set_direction(row &r, const stat_value &b, const stat_value &c)
{
    if (!c.better.empty()) {
        r.better = c.better;
        r.better_from = "current";
    } else if (!b.better.empty()) {
        r.better = b.better;
        r.better_from = "base";
    } else if (stat_better known; stats_known_direction(r.metric, known)) {
        r.better = stat_better_name(known);
        r.better_from = "table";
    } else {
        r.better = "neutral";
        r.better_from = "none";
    }
}

void apply_threshold_sign(row &r)
{
    if (r.th.from == "default")
        return;
    const std::string named = "threshold " + in_quotes(r.metric + "=" + r.th.text) + " (" +
                              (r.th.from == "--threshold" ? std::string("--threshold")
                                                          : config_escaped(r.th.from)) + "): ";
    if (r.better_from == "none") {
        if (r.th.sign != 0) {
            r.better = r.th.sign < 0 ? "higher" : "lower";
            r.better_from = "threshold";
        }
        return;
    }
    if (r.better == "neutral")
        throw compare_error{named + in_quotes(r.metric) +
                            " is neutral (it describes the workload and never regresses), so a "
                            "threshold for it has no effect"};
    if (r.th.sign != 0 && (r.th.sign < 0) != (r.better == "higher"))
        throw compare_error{named + in_quotes(r.metric) + " is " + r.better +
                            "-better, so it gets worse by " +
                            (r.better == "higher" ? "falling: write -" : "rising: write +") +
                            config_escaped(r.th.text.substr(1))};
}

comparison compare(const side &base, const side &cur, const options &o)
{
    comparison c;
    c.pairs = join_points(base, cur);
    const std::vector<std::string> names = input_names(base, cur);
    std::vector<std::string> selected;
    if (o.have_metrics) {
        for (const std::string &m : o.metrics)
            if (std::find(names.begin(), names.end(), m) == names.end())
                throw compare_error{unknown_metric("--metrics: ", m, names)};
        selected = o.metrics;
    }
    const std::map<std::string, threshold> thresholds = read_thresholds(o, names);

    std::set<std::string> metric_names, undirected, tabled;
    for (size_t pi = 0; pi < c.pairs.size(); pi++) {
        const point &bp = *c.pairs[pi].first, &cp = *c.pairs[pi].second;
        const run_stats &bs = bp.stats, &cs = cp.stats;
        std::vector<std::string> here;
        if (o.have_metrics) {
            for (const std::string &m : selected) {
                if (m == RESULT_OK)
                    continue;
                for (const run_stats *rs : {&bs, &cs})
                    if (!rs->stats.count(m))
                        throw compare_error{"--metrics: " + in_quotes(m) + " is not in " +
                                            (rs == &bs ? "BASE" : "CUR") + " point " + cp.label +
                                            " (" + config_escaped(rs->path) + ")"};
                here.push_back(m);
            }
        } else {
            for (const std::string &m : cs.order) {
                if (bs.stats.count(m))
                    here.push_back(m);
                else
                    c.only_cur.push_back(cp.label + ": " + m);
            }
            for (const std::string &m : bs.order)
                if (!cs.stats.count(m))
                    c.only_base.push_back(cp.label + ": " + m);
        }
        for (size_t k = 0; k < here.size(); k++) {
            const std::string &m = here[k];
            row r;
            r.pair = pi;
            r.order = k;
            r.metric = m;
            r.base = bs.stats.at(m);
            r.cur = cs.stats.at(m);
            set_direction(r, r.base, r.cur);
            auto t = thresholds.find(m);
            r.th = t != thresholds.end() ? t->second : default_threshold(r.base, r.cur);
            apply_threshold_sign(r);
            if (r.better_from == "none" && undirected.insert(m).second)
                c.undirected_names.push_back(m);
            if (r.better_from == "table" && tabled.insert(m).second)
                c.tabled_names.push_back(m);
            metric_names.insert(m);
            judge(r);
            c.rows.push_back(std::move(r));
        }
        if (bs.ok >= 0 && cs.ok >= 0) {
            row r;
            r.pair = pi;
            r.order = here.size();
            r.metric = RESULT_OK;
            r.base.is_integer = r.cur.is_integer = true;
            r.base.i = bs.ok;
            r.cur.i = cs.ok;
            r.base.v = bs.ok;
            r.cur.v = cs.ok;
            r.base.unit = r.cur.unit = "flag";
            r.better = "higher";
            r.better_from = "viosim compare";
            auto t = thresholds.find(RESULT_OK);
            r.th = t != thresholds.end() ? t->second : default_threshold(r.base, r.cur);
            judge(r);
            c.rows.push_back(std::move(r));
        }
    }
    c.metrics = metric_names.size();
    c.undirected = undirected.size();
    std::stable_sort(c.rows.begin(), c.rows.end(), [](const row &a, const row &b) {
        const size_t ra = status_rank(a.status), rb = status_rank(b.status);
        if (ra != rb)
            return ra < rb;
        if (ra <= 1 && a.severity != b.severity)
            return a.severity > b.severity; // the largest moves first
        if (a.pair != b.pair)
            return a.pair < b.pair;
        return a.order < b.order;
    });
    for (const row &r : c.rows)
        c.counts[status_rank(r.status)]++;
    return c;
}

// ---- Text ----

// v to 4 significant digits: positional from 0.0001 to under 1e6, else scientific; no
// trailing zeros (as scripts/viosim_plot.py's sig4, so the page and the table agree).
std::string sig4(double v)
{
    if (v == 0)
        return "0";
    if (!std::isfinite(v))
        return std::isnan(v) ? "nan" : v > 0 ? "inf" : "-inf";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.3e", v);
    const double r = std::strtod(buf, nullptr);
    if (std::fabs(r) >= 1e-4 && std::fabs(r) < 1e6) {
        const int decimals = std::max(0, 3 - static_cast<int>(std::floor(std::log10(std::fabs(r)))));
        std::snprintf(buf, sizeof buf, "%.*f", decimals, r);
        std::string s = buf;
        if (s.find('.') != std::string::npos) {
            while (s.back() == '0')
                s.pop_back();
            if (s.back() == '.')
                s.pop_back();
        }
        return s;
    }
    std::string s = buf;
    const size_t e = s.find('e');
    std::string mantissa = s.substr(0, e);
    if (mantissa.find('.') != std::string::npos) {
        while (mantissa.back() == '0')
            mantissa.pop_back();
        if (mantissa.back() == '.')
            mantissa.pop_back();
    }
    return mantissa + "e" + std::to_string(std::atoi(s.c_str() + e + 1));
}

// The value as stats.json holds it: integers whole, reals to 15 significant digits.
std::string exact_text(const stat_value &s)
{
    if (s.is_null)
        return "null";
    char buf[40];
    if (s.is_integer)
        std::snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, s.i);
    else
        std::snprintf(buf, sizeof buf, "%.15g", s.v);
    return buf;
}

std::string short_text(const stat_value &s)
{
    return s.is_null || s.is_integer ? exact_text(s) : sig4(s.v);
}

// BASE and CUR as a table shows them: rounded, unless the rounding would make two
// different values look equal; then exact.
std::pair<std::string, std::string> shown_values(const row &r)
{
    std::string b = short_text(r.base), c = short_text(r.cur);
    if (b == c && r.status != "unchanged") {
        b = exact_text(r.base);
        c = exact_text(r.cur);
    }
    return {b, c};
}

std::string signed_sig4(double v) { return (v > 0 ? "+" : "") + sig4(v); }

// The change with its sign: rounded as the values are, or (exact) to 15 significant digits.
std::string change_text(const row &r, bool exact = false)
{
    if (!r.has_delta)
        return r.status == "unchanged" ? "0" : "n/a";
    if (r.delta_integer)
        return (r.delta_i > 0 ? "+" : "") + std::to_string(static_cast<long long>(r.delta_i));
    if (r.delta == 0)
        return "0";
    if (!exact)
        return signed_sig4(r.delta);
    char buf[40];
    std::snprintf(buf, sizeof buf, "%+.15g", r.delta);
    return buf;
}

std::string percent_text(const row &r)
{
    if (r.has_percent)
        return r.percent == 0 ? "0%" : signed_sig4(r.percent) + "%";
    return r.has_delta && r.delta == 0 ? "0%" : "n/a";
}

std::string better_text(const row &r)
{
    if (r.better_from == "none")
        return "neutral (not recorded)";
    if (r.better_from == "table")
        return r.better + " (table)";
    return r.better;
}

std::string unit_text(const row &r) { return r.cur.unit.empty() ? "-" : r.cur.unit; }

// "throughput.tx_mpps fell from 2.5 to 2.3 Mpps (-8%), beyond the threshold 1% (higher is
// better)": one line that says what a regression or improvement is.
std::string verdict_text(const comparison &c, const row &r)
{
    const auto v = shown_values(r);
    const std::string unit = r.cur.unit.empty() || r.cur.unit == "count" || r.cur.unit == "flag"
                                 ? ""
                                 : " " + r.cur.unit;
    return "point " + c.pairs[r.pair].second->label + ": " + r.metric + " " +
           (r.delta > 0 ? "rose" : "fell") + " from " + v.first + " to " + v.second + unit + " (" +
           percent_text(r) + ", " + change_text(r) + "), beyond the threshold " + r.th.text +
           " (" + r.better + " is better)";
}

std::vector<std::string> table_header(bool points)
{
    std::vector<std::string> h = {"statistic", "base", "current", "change", "change %", "unit",
                                  "threshold", "better"};
    if (points)
        h.insert(h.begin(), "point");
    return h;
}

// A neutral statistic has no threshold: nothing it does is a regression.
std::string threshold_text(const row &r) { return r.better == "neutral" ? "-" : r.th.text; }

std::vector<std::string> table_cells(const comparison &c, const row &r, bool points)
{
    const auto v = shown_values(r);
    std::vector<std::string> cells = {r.metric,        v.first,      v.second,         change_text(r),
                                      percent_text(r), unit_text(r), threshold_text(r), better_text(r)};
    if (points)
        cells.insert(cells.begin(), c.pairs[r.pair].second->label);
    return cells;
}

std::string summary_line(const comparison &c)
{
    char buf[512];
    std::snprintf(buf, sizeof buf,
                  "%zu point%s, %zu statistic%s, %zu comparisons: %zu regressed, %zu improved, "
                  "%zu changed within threshold or neutral, %zu unchanged.",
                  c.pairs.size(), c.pairs.size() == 1 ? "" : "s", c.metrics,
                  c.metrics == 1 ? "" : "s", c.rows.size(), c.counts[0], c.counts[1], c.counts[2],
                  c.counts[3]);
    return buf;
}

std::vector<std::string> notes(const comparison &c)
{
    std::vector<std::string> out;
    if (!c.tabled_names.empty())
        out.push_back(std::to_string(c.tabled_names.size()) +
                      " statistics declare no direction (\"better\") in either file (files "
                      "written before statistics declared one): judged in the direction "
                      "docs/statistics.md gives them, shown as \"(table)\"");
    if (c.undirected) {
        std::string names;
        for (size_t i = 0; i < c.undirected_names.size() && i < 5; i++)
            names += (i ? ", " : "") + c.undirected_names[i];
        if (c.undirected_names.size() > 5)
            names += ", ...";
        out.push_back(std::to_string(c.undirected) +
                      " statistics declare no direction (\"better\") in either file and are "
                      "not in docs/statistics.md: treated as neutral, they never regress (" +
                      names + ")");
    }
    for (const auto *list : {&c.only_base, &c.only_cur})
        if (!list->empty())
            out.push_back(std::to_string(list->size()) + " statistics only in " +
                          (list == &c.only_base ? "BASE" : "CUR") + ", not compared: " +
                          label_list(*list));
    return out;
}

void print_table(FILE *out, const std::vector<std::vector<std::string>> &rows)
{
    std::vector<size_t> w;
    for (const auto &r : rows)
        for (size_t i = 0; i < r.size(); i++) {
            if (w.size() <= i)
                w.push_back(0);
            w[i] = std::max(w[i], r[i].size());
        }
    for (const auto &r : rows) {
        std::string line = " ";
        for (size_t i = 0; i < r.size(); i++) {
            // Numbers right-aligned, names left.
            const bool right = i > 0 && r[i] != "" && (std::isdigit(static_cast<unsigned char>(r[i][0])) ||
                                                      r[i][0] == '+' || r[i][0] == '-' || r[i] == "n/a");
            const std::string pad(w[i] - r[i].size(), ' ');
            line += " " + (right ? pad + r[i] : r[i] + (i + 1 < r.size() ? pad : ""));
        }
        std::fprintf(out, "%s\n", line.c_str());
    }
}

void print_terminal(FILE *out, const comparison &c)
{
    const bool points = true;
    const char *const titles[] = {"regressions", "improvements",
                                  "other changes (within threshold, or neutral)"};
    for (size_t s = 0; s < 3; s++) {
        if (!c.counts[s])
            continue;
        std::fprintf(out, "%s (%zu):\n", titles[s], c.counts[s]);
        std::vector<std::vector<std::string>> t = {table_header(points)};
        for (const row &r : c.rows)
            if (status_rank(r.status) == s)
                t.push_back(table_cells(c, r, points));
        print_table(out, t);
        std::fputc('\n', out);
    }
    for (const std::string &n : notes(c))
        std::fprintf(out, "note: %s\n", n.c_str());
    std::fprintf(out, "viosim compare: %s %s\n", summary_line(c).c_str(), DETERMINISTIC);
}

// ---- Markdown ----

std::string md_cell(const std::string &s)
{
    std::string out;
    for (char ch : s) {
        switch (ch) {
        case '|': out += "\\|"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '&': out += "&amp;"; break;
        case '\\': out += "\\\\"; break;
        case '`': out += "\\`"; break;
        case '*': out += "\\*"; break;
        case '_': out += "\\_"; break;
        case '\n': case '\r': case '\t': out += ' '; break;
        default: out += ch;
        }
    }
    return out;
}

std::string md_table(const comparison &c, const std::vector<const row *> &rows, bool status)
{
    std::vector<std::string> header = table_header(true);
    if (status)
        header.insert(header.begin(), "");
    std::string out = "|";
    for (const std::string &h : header)
        out += " " + md_cell(h) + " |";
    out += "\n|";
    static const std::set<std::string> numbers = {"base", "current", "change", "change %", "threshold"};
    for (const std::string &h : header)
        out += numbers.count(h) ? " ---: |" : " --- |";
    out += "\n";
    for (const row *r : rows) {
        std::vector<std::string> cells = table_cells(c, *r, true);
        out += "|";
        if (status)
            out += std::string(" ") + (r->status == "regressed" ? "**regressed**" : "improved") + " |";
        for (const std::string &cell : cells)
            out += " " + md_cell(cell) + " |";
        out += "\n";
    }
    return out;
}

std::string markdown_text(const comparison &c)
{
    std::string out = std::string("### viosim compare: ") +
                      (c.counts[0] ? "**" + std::to_string(c.counts[0]) + " regressed**"
                                   : std::string("nothing regressed")) +
                      "\n\n" + md_cell(summary_line(c)) + " " + DETERMINISTIC + "\n\n";
    std::vector<const row *> headline, rest;
    for (const row &r : c.rows) {
        if (r.status == "regressed" || r.status == "improved")
            headline.push_back(&r);
        else if (r.status == "changed")
            rest.push_back(&r);
    }
    if (!headline.empty())
        out += md_table(c, headline, true) + "\n";
    // A merge-request comment has a size limit (GitLab: 1,000,000 characters): the other
    // changes of a large sweep are cut, and the JSON output has them all.
    const size_t cut = std::min(rest.size(), MARKDOWN_MAX_OTHER_ROWS);
    if (!rest.empty())
        out += "<details><summary>" + std::to_string(rest.size()) +
               " other changes (within threshold, or neutral)</summary>\n\n" +
               md_table(c, std::vector<const row *>(rest.begin(), rest.begin() + static_cast<long>(cut)), false) +
               (cut < rest.size() ? "\nand " + std::to_string(rest.size() - cut) +
                                        " more (see `viosim compare --json`)\n"
                                  : std::string()) +
               "\n</details>\n\n";
    for (const std::string &n : notes(c))
        out += "- " + md_cell(n) + "\n";
    return out;
}

// ---- JUnit XML ----

// Text for an attribute or element: the five special characters as entities, and the
// control characters XML 1.0 cannot carry at all written as \xHH.
std::string xml_text(const std::string &s)
{
    std::string out;
    for (char ch : s) {
        const unsigned char u = static_cast<unsigned char>(ch);
        switch (ch) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += "&quot;"; break;
        case '\'': out += "&apos;"; break;
        case '\n': out += "&#10;"; break;
        case '\t': out += "&#9;"; break;
        case '\r': out += "&#13;"; break;
        default:
            if (u < 0x20 || u == 0x7f) {
                char buf[8];
                std::snprintf(buf, sizeof buf, "\\x%02x", u);
                out += buf;
            } else {
                out += ch;
            }
        }
    }
    return out;
}

// One <testsuite> per point, one <testcase> per statistic (classname: the point, name:
// the statistic); a regression is a <failure>, a statistic without a finite value on
// both sides is <skipped>. The elements and attributes GitLab and Jenkins read.
std::string junit_text(const comparison &c)
{
    struct suite {
        size_t tests = 0, failures = 0, skipped = 0;
        std::string cases;
    };
    std::vector<suite> suites(c.pairs.size());
    for (const row &r : c.rows) {
        suite &s = suites[r.pair];
        const std::string label = c.pairs[r.pair].second->label;
        s.tests++;
        s.cases += "    <testcase classname=\"" + xml_text(label) + "\" name=\"" + xml_text(r.metric) +
                   "\" time=\"0\">\n";
        const auto v = shown_values(r);
        const std::string detail = "base " + exact_text(r.base) + ", current " + exact_text(r.cur) +
                                   ", change " + change_text(r, true) + " (" + percent_text(r) +
                                   "), unit " + unit_text(r) + ", threshold " + threshold_text(r) +
                                   (r.better == "neutral" ? "" : " (" + r.th.from + ")") +
                                   ", better " + better_text(r);
        if (r.status == "regressed") {
            s.failures++;
            s.cases += "      <failure type=\"regression\" message=\"" + xml_text(verdict_text(c, r)) +
                       "\">" + xml_text(detail + ". " + DETERMINISTIC) + "</failure>\n";
        } else if (!r.has_delta) {
            s.skipped++;
            s.cases += "      <skipped message=\"no finite value on both sides (" +
                       xml_text(v.first + " -> " + v.second) + ")\"/>\n";
        }
        // What moved, for a reader of the dashboard; an unchanged statistic says nothing
        // (a large sweep has hundreds of thousands of them).
        if (r.status != "unchanged")
            s.cases += "      <system-out>" + xml_text(r.status + ": " + detail) + "</system-out>\n";
        s.cases += "    </testcase>\n";
    }
    size_t tests = 0, failures = 0, skipped = 0;
    for (const suite &s : suites) {
        tests += s.tests;
        failures += s.failures;
        skipped += s.skipped;
    }
    auto counts = [](size_t t, size_t f, size_t sk) {
        return "tests=\"" + std::to_string(t) + "\" failures=\"" + std::to_string(f) +
               "\" errors=\"0\" skipped=\"" + std::to_string(sk) + "\" time=\"0\"";
    };
    std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"viosim compare\" " +
                      counts(tests, failures, skipped) + ">\n";
    for (size_t i = 0; i < suites.size(); i++) {
        const suite &s = suites[i];
        out += "  <testsuite name=\"" + xml_text("viosim compare: " + c.pairs[i].second->label) +
               "\" " + counts(s.tests, s.failures, s.skipped) + ">\n" + s.cases + "  </testsuite>\n";
    }
    return out + "</testsuites>\n";
}

// ---- JSON ----

json_t *value_json(const stat_value &s)
{
    if (s.is_null)
        return json_null();
    if (s.is_integer)
        return json_integer(s.i);
    return std::isfinite(s.v) ? json_real(s.v) : json_null();
}

json_t *side_json(const side &s)
{
    json_t *j = json_object();
    std::error_code ec;
    const fs::path abs = fs::absolute(s.path, ec);
    json_object_set_new(j, "path", json_string((ec ? fs::path(s.path) : abs).lexically_normal().c_str()));
    json_object_set_new(j, "kind", json_string(s.sweep ? "sweep" : "stats"));
    return j;
}

std::string json_text(const comparison &c, const side &base, const side &cur, int exit_status)
{
    json_t *doc = json_object();
    json_object_set_new(doc, "tool", json_string("viosim compare"));
    json_object_set_new(doc, "base", side_json(base));
    json_object_set_new(doc, "current", side_json(cur));
    json_t *grid = json_array();
    for (const std::string &k : cur.grid_keys)
        json_array_append_new(grid, json_string(k.c_str()));
    json_object_set_new(doc, "grid_keys", grid);
    json_object_set_new(doc, "deterministic", json_string(DETERMINISTIC));
    json_t *summary = json_object();
    json_object_set_new(summary, "points", json_integer(static_cast<json_int_t>(c.pairs.size())));
    json_object_set_new(summary, "statistics", json_integer(static_cast<json_int_t>(c.metrics)));
    for (size_t s = 0; s < 4; s++)
        json_object_set_new(summary, STATUSES[s], json_integer(static_cast<json_int_t>(c.counts[s])));
    json_object_set_new(summary, "undirected", json_integer(static_cast<json_int_t>(c.undirected)));
    json_object_set_new(summary, "exit_status", json_integer(exit_status));
    json_object_set_new(summary, "text", json_string(summary_line(c).c_str()));
    json_object_set_new(doc, "summary", summary);
    json_t *points = json_array();
    for (const auto &p : c.pairs) {
        json_t *pj = json_object();
        json_object_set_new(pj, "label", json_string(p.second->label.c_str()));
        json_t *set = json_object();
        for (const auto &a : p.second->set)
            json_object_set_new(set, a.first.c_str(), json_string(a.second.c_str()));
        json_object_set_new(pj, "set", set);
        json_object_set_new(pj, "base_index", json_integer(static_cast<json_int_t>(p.first->index)));
        json_object_set_new(pj, "current_index", json_integer(static_cast<json_int_t>(p.second->index)));
        json_object_set_new(pj, "base_stats", json_string(p.first->stats.path.c_str()));
        json_object_set_new(pj, "current_stats", json_string(p.second->stats.path.c_str()));
        json_array_append_new(points, pj);
    }
    json_object_set_new(doc, "points", points);
    json_t *notes_j = json_array();
    for (const std::string &n : notes(c))
        json_array_append_new(notes_j, json_string(n.c_str()));
    json_object_set_new(doc, "notes", notes_j);
    json_t *rows = json_array();
    for (const row &r : c.rows) {
        json_t *rj = json_object();
        json_object_set_new(rj, "point", json_integer(static_cast<json_int_t>(r.pair)));
        json_object_set_new(rj, "label", json_string(c.pairs[r.pair].second->label.c_str()));
        json_object_set_new(rj, "statistic", json_string(r.metric.c_str()));
        json_object_set_new(rj, "status", json_string(r.status.c_str()));
        json_object_set_new(rj, "base", value_json(r.base));
        json_object_set_new(rj, "current", value_json(r.cur));
        json_object_set_new(rj, "change",
                            !r.has_delta ? json_null()
                            : r.delta_integer ? json_integer(r.delta_i)
                            : std::isfinite(r.delta) ? json_real(r.delta)
                                                     : json_null());
        json_object_set_new(rj, "change_percent",
                            r.has_percent && std::isfinite(r.percent) ? json_real(r.percent) : json_null());
        json_object_set_new(rj, "unit", json_string(r.cur.unit.c_str()));
        json_object_set_new(rj, "better", json_string(r.better.c_str()));
        json_object_set_new(rj, "better_from", json_string(r.better_from.c_str()));
        const bool neutral = r.better == "neutral";
        json_object_set_new(rj, "threshold", neutral ? json_null() : json_string(r.th.text.c_str()));
        json_object_set_new(rj, "threshold_from", neutral ? json_null() : json_string(r.th.from.c_str()));
        json_array_append_new(rows, rj);
    }
    json_object_set_new(doc, "rows", rows);
    std::string text = stats_json_text(doc);
    json_decref(doc);
    return text;
}

// ---- Files ----

void write_output(const std::string &option, const std::string &path, const std::string &text)
{
    const std::string tmp = path + ".tmp";
    FILE *f = std::fopen(tmp.c_str(), "wb");
    bool ok = f && std::fwrite(text.data(), 1, text.size(), f) == text.size();
    const int err = errno;
    if (f)
        ok = std::fclose(f) == 0 && ok;
    if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
        const int e = ok ? errno : err;
        std::remove(tmp.c_str());
        throw compare_error{option + ": cannot write " + in_quotes(path) + ": " + std::strerror(e)};
    }
}

#ifndef VIOSIM_SOURCE_DIR
#define VIOSIM_SOURCE_DIR ""
#endif

// --html DIR: DIR/compare.json, then scripts/compare-html (in the source tree this viosim
// was built from) draws DIR/index.html with Debian's python3 and matplotlib.
void write_html(const std::string &dir, const std::string &json)
{
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec || !fs::is_directory(dir, ec))
        throw compare_error{"--html: cannot create directory " + in_quotes(dir) +
                            (ec ? ": " + ec.message() : "")};
    const std::string json_path = (fs::path(dir) / "compare.json").string();
    write_output("--html", json_path, json);
    const std::string script = std::string(VIOSIM_SOURCE_DIR) + "/scripts/compare-html";
    const char *python = "/usr/bin/python3";
    if (access(python, X_OK) != 0)
        throw compare_error{"--html: needs /usr/bin/python3 (Debian's python3 with "
                            "python3-matplotlib) to draw the page; " + in_quotes(json_path) +
                            " is written"};
    if (access(script.c_str(), R_OK) != 0)
        throw compare_error{"--html: cannot find " + in_quotes(script) +
                            " (the source tree this viosim was built from)"};
    std::vector<std::string> args = {python, script, json_path, "--out", dir};
    std::vector<char *> argv;
    for (std::string &a : args)
        argv.push_back(a.data());
    argv.push_back(nullptr);
    std::fflush(nullptr);
    pid_t pid;
    // The page's messages go to stderr: stdout is the comparison's table.
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, STDERR_FILENO, STDOUT_FILENO);
    const int rc = posix_spawn(&pid, python, &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0)
        throw compare_error{std::string("--html: cannot run /usr/bin/python3: ") + std::strerror(rc)};
    int st = 0;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            throw compare_error{std::string("--html: waitpid: ") + std::strerror(errno)};
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        throw compare_error{"--html: scripts/compare-html failed (" +
                            (WIFEXITED(st) ? "exit " + std::to_string(WEXITSTATUS(st))
                                           : "signal " + std::to_string(WTERMSIG(st))) +
                            "; its message is above)"};
}

int usage_error(const std::string &message)
{
    std::fprintf(stderr, "viosim compare: error: %s\n", config_escaped(message).c_str());
    return EXIT_USAGE;
}

// The options that name a file or a directory to read or write.
struct path_option {
    const char *name;
    std::string options::*field;
    const char *needs;
};
const path_option PATH_OPTIONS[] = {
    {"--thresholds", &options::thresholds_file, "a JSON file"},
    {"--markdown", &options::markdown, "a file name"},
    {"--junit", &options::junit, "a file name"},
    {"--json", &options::json, "a file name"},
    {"--html", &options::html, "a directory"},
};

const path_option *take_path_option(int argc, char **argv, int &i, std::string &value, bool &missing)
{
    for (const path_option &p : PATH_OPTIONS)
        if (take_option(argc, argv, i, p.name, value, missing))
            return &p;
    return nullptr;
}

} // namespace

int compare_main(int argc, char **argv)
{
    options o;
    std::vector<std::string> positional;
    for (int i = 2; i < argc; i++) {
        std::string value;
        bool missing = false;
        const char *arg = argv[i];
        if (take_option(argc, argv, i, "--metrics", value, missing)) {
            if (missing || value.empty())
                return usage_error("--metrics needs a comma-separated list of statistics");
            for (const std::string &m : config_split_list(value)) {
                if (m.empty())
                    return usage_error("--metrics: an empty name in " + in_quotes(value));
                if (std::find(o.metrics.begin(), o.metrics.end(), m) == o.metrics.end())
                    o.metrics.push_back(m);
            }
            o.have_metrics = true;
        } else if (take_option(argc, argv, i, "--threshold", value, missing)) {
            const size_t eq = value.find('=');
            if (missing || eq == std::string::npos || eq == 0)
                return usage_error("--threshold needs NAME=VALUE (e.g. throughput.tx_mpps=-2%)");
            o.thresholds.emplace_back(value.substr(0, eq), value.substr(eq + 1));
        } else if (const path_option *p = take_path_option(argc, argv, i, value, missing)) {
            if (missing || value.empty())
                return usage_error(std::string(p->name) + " needs " + p->needs);
            o.*(p->field) = value;
        } else if (std::strcmp(arg, "--help") == 0 || std::strcmp(arg, "-h") == 0) {
            std::fputs(USAGE, stdout);
            std::fputs(HELP, stdout);
            return 0;
        } else if (arg[0] == '-' && arg[1] != '\0') {
            return usage_error(std::string("unknown option '") + arg +
                               "' (see 'viosim compare --help')");
        } else {
            positional.push_back(arg);
        }
    }
    if (positional.size() != 2) {
        std::fputs(USAGE, stderr);
        return usage_error(positional.size() < 2 ? "compare needs BASE and CUR"
                                                 : "compare takes two inputs, BASE and CUR; got " +
                                                       std::to_string(positional.size()));
    }
    o.base_path = positional[0];
    o.cur_path = positional[1];

    try {
        const side base = load_side("BASE", o.base_path);
        const side cur = load_side("CUR", o.cur_path);
        const comparison c = compare(base, cur, o);
        const int status = c.counts[0] ? EXIT_REGRESSED : 0;
        print_terminal(stdout, c);
        std::fflush(stdout);
        if (!o.markdown.empty())
            write_output("--markdown", o.markdown, markdown_text(c));
        if (!o.junit.empty())
            write_output("--junit", o.junit, junit_text(c));
        const std::string json = (o.json.empty() && o.html.empty()) ? "" : json_text(c, base, cur, status);
        if (!o.json.empty())
            write_output("--json", o.json, json);
        if (!o.html.empty())
            write_html(o.html, json);
        return status;
    } catch (const compare_error &e) {
        return usage_error(e.message);
    }
}

} // namespace viosim
