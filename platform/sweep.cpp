// sweep.cpp -- `viosim sweep`: expands a study's grid into points, checks every point
// with the config rules of `viosim run`, runs the points as child processes of the same
// binary (SystemC elaborates once per process), and collects one CSV row per point.
#include "sweep.h"

#include <jansson.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "provenance.h"
#include "stats.h"

namespace viosim {

namespace fs = std::filesystem;

namespace {

constexpr int EXIT_POINT_FAILED = 1;
constexpr int EXIT_USAGE = 2;
constexpr size_t MAX_RANGE_VALUES = 100000;
constexpr size_t MAX_POINTS = 1000000;

const char USAGE[] =
    "usage: viosim sweep STUDY [--jobs N] [--out DIR] [--force] [--merge]\n"
    "       viosim sweep STUDY --emit slurm|parallel [--out DIR] [--force | --only-missing]\n"
    "                    [--points-per-task N] [--max-array-size N] [--sbatch-option OPT]...\n";

const char HELP[] =
    "\n"
    "Runs every point of a study's parameter grid as a `viosim run` in DIR/points/<index>\n"
    "and writes DIR/results.csv (one row per point), DIR/study.json, DIR/study-file.json\n"
    "(the study file as given) and DIR/command.txt.\n"
    "Points already done with the same settings are skipped (resumable), unless their\n"
    "stats.json changed since their run wrote it (a checksum in point.json), or their run\n"
    "was by another viosim version or of another resolved configuration (the provenance\n"
    "in point.json). See docs/sweeps.md.\n"
    "\n"
    "  STUDY            JSON: {\"base\": FILE or {...}, \"grid\": {\"key\": [v, ...] or\n"
    "                   {\"from\": a, \"to\": b, \"step\": s}}, \"zip\": [[\"k1\", \"k2\"]],\n"
    "                   \"metrics\": [\"throughput.tx_mpps\", ...],\n"
    "                   \"report\": {\"plots\": [{\"x\": KEY, \"y\": METRIC, ...}]}} (for\n"
    "                   scripts/report)\n"
    "  --jobs N         points run at once (default: the number of CPUs)\n"
    "  --out DIR        output directory (default: out/<study name>)\n"
    "  --force          run every point again, done or not (with --emit: clear their results)\n"
    "  --emit slurm     write DIR/jobs.txt, job arrays DIR/slurm/array-<k>.slurm, DIR/submit.sh\n"
    "                   (submits them, then the merge as a dependent job) and DIR/merge.sh;\n"
    "                   run nothing\n"
    "  --emit parallel  write DIR/jobs.txt (for GNU parallel) and DIR/merge.sh; run nothing\n"
    "  --only-missing   with --emit: only the points a resume would run (missing or failed)\n"
    "  --points-per-task N  points one array task runs (default: about a minute's worth,\n"
    "                   from each point's estimated cost)\n"
    "  --max-array-size N   tasks per job array at most (default 1000); more make more arrays\n"
    "  --sbatch-option OPT  an option for every sbatch of submit.sh, as one word\n"
    "                   (--partition=short); repeatable\n"
    "  --merge          build DIR/results.csv from the point directories, name the failed\n"
    "                   and missing points (and their array tasks); run nothing\n"
    "\n"
    "exit status: 0 every point ok; 1 a point failed or (with --merge) is missing;\n"
    "2 usage or study error (nothing was run).\n";

// Headline metrics collected when the study names none (docs/statistics.md).
const char *const DEFAULT_METRICS[] = {
    "sim.time_ns",           "throughput.tx_mpps",    "throughput.tx_gbps",
    "latency.p50_ns",        "latency.p99_ns",        "per_packet.interrupts",
    "per_packet.notifications", "per_packet.dma_reads", "link.up.utilisation",
    "link.down.utilisation",
};

struct study_error {
    std::string message;
};

using assignment = std::pair<std::string, std::string>; // key, value text

// One axis of the product: a single key, or the keys of one zip group varying together.
struct axis {
    std::vector<size_t> keys; // indices into study::keys
    size_t size = 0;
};

struct study {
    std::string path;        // the study file, as given
    std::string description;
    json_t *base = nullptr;  // owned: the base configuration object
    std::string base_origin; // the base file, or "" when inline
    std::vector<std::string> keys;                 // swept keys, in grid order
    std::vector<std::vector<std::string>> values;  // values[k]: key k's values as text
    std::vector<std::vector<std::string>> zip;
    std::vector<axis> axes;
    std::vector<std::string> metrics;
    json_t *report = nullptr; // owned: the "report" section (scripts/report), or null
    std::vector<std::vector<assignment>> points;   // per point, in key order
    std::vector<std::string> point_hashes;         // per point, its config_hash
    std::vector<double> point_costs;               // per point, point_cost_seconds

    study() = default;
    study(const study &) = delete;
    study &operator=(const study &) = delete;
    ~study()
    {
        json_decref(base);
        json_decref(report);
    }
};

// Input echoed in a message: quoted, control characters escaped (one line).
std::string in_quotes(const std::string &s) { return "'" + config_escaped(s) + "'"; }

// Quoting for a POSIX shell command line.
std::string shell_quoted(const std::string &s)
{
    std::string out = "'";
    for (char ch : s)
        out += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
    return out + "'";
}

std::string csv_field(const std::string &s)
{
    if (s.find_first_of(",\"\n\r") == std::string::npos)
        return s;
    std::string out = "\"";
    for (char ch : s)
        out += ch == '"' ? std::string("\"\"") : std::string(1, ch);
    return out + "\"";
}

std::string format_real(double v)
{
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.15g", v);
    return buf;
}

std::string slurp(const std::string &path)
{
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

// Writes text to path via path.tmp and a rename; false and err on failure.
bool write_file(const std::string &path, const std::string &text, std::string &err)
{
    std::string tmp = path + ".tmp";
    FILE *f = std::fopen(tmp.c_str(), "wb");
    if (!f) {
        err = "cannot write " + in_quotes(path) + ": " + std::strerror(errno);
        return false;
    }
    bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
    ok = std::fclose(f) == 0 && ok;
    if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
        err = "cannot write " + in_quotes(path) + ": " + std::strerror(errno);
        std::remove(tmp.c_str());
        return false;
    }
    return true;
}

// The text a grid value stands for, as `--set key=TEXT` takes it: strings as they are,
// numbers exactly, booleans as on/off, arrays as comma-separated lists.
bool value_text(const json_t *j, std::string &text)
{
    if (config_scalar_text(j, text))
        return true;
    if (json_is_boolean(j)) {
        text = json_is_true(j) ? "on" : "off";
        return true;
    }
    if (json_is_array(j)) {
        text.clear();
        size_t i;
        const json_t *element;
        json_array_foreach(j, i, element) {
            std::string part;
            if (json_is_array(element) || !value_text(element, part))
                return false;
            text += (i ? "," : "") + part;
        }
        return true;
    }
    return false;
}

// {"from": a, "to": b, "step": s}: a, a+s, ... up to and including b (within rounding).
std::vector<std::string> expand_range(const json_t *range, const std::string &where)
{
    const char *k;
    json_t *v;
    json_object_foreach(const_cast<json_t *>(range), k, v) {
        if (std::strcmp(k, "from") != 0 && std::strcmp(k, "to") != 0 && std::strcmp(k, "step") != 0)
            throw study_error{where + "unknown range field " + in_quotes(k) +
                              " (a range is {\"from\": a, \"to\": b, \"step\": s})"};
    }
    const json_t *from = json_object_get(range, "from"), *to = json_object_get(range, "to"),
                 *step = json_object_get(range, "step");
    for (const json_t *j : {from, to, step})
        if (!json_is_number(j))
            throw study_error{where + "a range needs numbers \"from\", \"to\" and \"step\""};
    std::vector<std::string> out;
    if (json_is_integer(from) && json_is_integer(to) && json_is_integer(step)) {
        json_int_t a = json_integer_value(from), b = json_integer_value(to),
                   s = json_integer_value(step);
        if (s == 0 || (s > 0 && b < a) || (s < 0 && b > a))
            throw study_error{where + "empty range (step 0 or pointing away from \"to\")"};
        // Counted in unsigned arithmetic, where the distance and the step's magnitude
        // are exact for any int64 ends (a loop adding the step would overflow past
        // INT64_MAX); value i is a + i * step, inside [a, b].
        const uint64_t distance = s > 0 ? uint64_t(b) - uint64_t(a) : uint64_t(a) - uint64_t(b);
        const uint64_t magnitude = s > 0 ? uint64_t(s) : uint64_t(-(s + 1)) + 1;
        const uint64_t steps = distance / magnitude; // values: steps + 1
        if (steps >= MAX_RANGE_VALUES)
            throw study_error{where + "range has more than " + std::to_string(MAX_RANGE_VALUES) +
                              " values"};
        for (uint64_t i = 0; i <= steps; i++)
            out.push_back(std::to_string(static_cast<long long>(uint64_t(a) + i * uint64_t(s))));
        return out;
    }
    double a = json_number_value(from), b = json_number_value(to), s = json_number_value(step);
    if (!std::isfinite(a) || !std::isfinite(b) || !std::isfinite(s) || s == 0 ||
        (s > 0 && b < a) || (s < 0 && b > a))
        throw study_error{where + "empty range (step 0 or pointing away from \"to\")"};
    // Counted, not accumulated, so 0.1 steps do not drift; a value within a millionth of a
    // step of "to" counts as reaching it.
    double n = std::floor((b - a) / s + 1e-6);
    if (n + 1 > static_cast<double>(MAX_RANGE_VALUES))
        throw study_error{where + "range has more than " + std::to_string(MAX_RANGE_VALUES) +
                          " values"};
    for (size_t i = 0; i <= static_cast<size_t>(n); i++)
        out.push_back(format_real(a + static_cast<double>(i) * s));
    return out;
}

json_t *load_json_object(const std::string &path, const std::string &what)
{
    json_error_t jerr;
    json_t *root = json_load_file(path.c_str(), JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        if (jerr.line < 1)
            throw study_error{"cannot read " + what + " " + in_quotes(path) + ": " + jerr.text};
        throw study_error{path + ":" + std::to_string(jerr.line) + ":" +
                          std::to_string(jerr.column) + ": JSON syntax error: " + jerr.text};
    }
    if (!json_is_object(root)) {
        json_decref(root);
        throw study_error{path + ": expected a JSON object"};
    }
    return root;
}

// The base configuration applied to the defaults, with the same rules as `viosim run
// CONFIG` (an inline base goes through a temporary file so the rules are the same).
vs_config base_config(const study &s)
{
    vs_config cfg = config_defaults();
    param_error err;
    if (!s.base_origin.empty()) {
        if (!config_apply_file(cfg, s.base_origin, err))
            throw study_error{s.path + ": base: " + err.message};
        return cfg;
    }
    char tmpl[] = "/tmp/viosim-sweep-base-XXXXXX";
    int fd = mkstemp(tmpl);
    if (fd < 0)
        throw study_error{std::string("cannot create a temporary file: ") + std::strerror(errno)};
    close(fd);
    std::string write_err;
    bool ok = write_file(tmpl, stats_json_text(s.base), write_err) &&
              config_apply_file(cfg, tmpl, err);
    std::remove(tmpl);
    if (!write_err.empty())
        throw study_error{write_err};
    if (!ok) {
        std::string message = err.message;
        size_t at = message.find(tmpl);
        if (at != std::string::npos)
            message.replace(at, std::strlen(tmpl), "base");
        throw study_error{s.path + ": " + message};
    }
    return cfg;
}

std::string point_label(const std::vector<assignment> &point)
{
    std::string out;
    for (const assignment &a : point)
        out += (out.empty() ? "" : " ") + a.first + "=" + a.second;
    return out;
}

// A column name list in the report section: one name or a list of names, each in allowed.
std::vector<std::string> report_columns(const json_t *j, const std::string &at, bool required,
                                        const std::vector<std::string> &allowed,
                                        const std::string &allowed_text)
{
    std::vector<std::string> names;
    if (json_is_string(j)) {
        names.push_back(json_string_value(j));
    } else if (json_is_array(j) && (json_array_size(j) > 0 || !required)) {
        size_t i;
        const json_t *name;
        json_array_foreach(j, i, name) {
            if (!json_is_string(name))
                throw study_error{at + "expected a column name or a list of column names"};
            names.push_back(json_string_value(name));
        }
    } else {
        throw study_error{at + "expected a column name or a" + (required ? " non-empty" : "") +
                          " list of column names"};
    }
    for (const std::string &name : names)
        if (std::find(allowed.begin(), allowed.end(), name) == allowed.end())
            throw study_error{at + "unknown column " + in_quotes(name) + " (" + allowed_text + ")"};
    return names;
}

// The "report" section, read by scripts/report (docs/sweeps.md): {"title": "...",
// "plots": [{"x": COLUMN, "y": METRIC or [METRIC...], "series": KEY or [KEY...],
// "logx": bool, "logy": bool, "title": "..."}], "labels": {...}}. Needs the grid keys
// and metrics.
void check_report(const study &s, const json_t *report, const std::string &where)
{
    if (!json_is_object(report))
        throw study_error{where + "\"report\" must be an object {\"title\": ..., \"plots\": [...]}"};
    const char *k;
    json_t *v;
    json_object_foreach(const_cast<json_t *>(report), k, v) {
        if (std::strcmp(k, "title") != 0 && std::strcmp(k, "plots") != 0 &&
            std::strcmp(k, "labels") != 0)
            throw study_error{where + "report: unknown field " + in_quotes(k) +
                              " (expected title, plots, labels)"};
    }
    const json_t *title = json_object_get(report, "title");
    if (title && !json_is_string(title))
        throw study_error{where + "report: \"title\" must be a string"};
    std::vector<std::string> columns = {"index"};
    columns.insert(columns.end(), s.keys.begin(), s.keys.end());
    columns.insert(columns.end(), s.metrics.begin(), s.metrics.end());
    // "labels": {COLUMN or "KEY=VALUE": text}, what the plots show instead of a column's
    // name or one value of a grid key. The value is not checked against the grid: a
    // study cut to fewer values (tests/studies/run-studies) keeps its labels.
    if (const json_t *labels = json_object_get(report, "labels")) {
        if (!json_is_object(labels))
            throw study_error{where + "report: \"labels\" must be an object "
                                      "{column or \"key=value\": text}"};
        json_object_foreach(const_cast<json_t *>(labels), k, v) {
            const std::string name = k;
            const size_t eq = name.find('=');
            if (!json_is_string(v))
                throw study_error{where + "report: \"labels\": the label of " + in_quotes(name) +
                                  " must be a string"};
            if (eq != std::string::npos &&
                std::find(s.keys.begin(), s.keys.end(), name.substr(0, eq)) == s.keys.end())
                throw study_error{where + "report: \"labels\": " + in_quotes(name) +
                                  " names " + in_quotes(name.substr(0, eq)) +
                                  ", which is not a grid key"};
            if (eq == std::string::npos &&
                std::find(columns.begin(), columns.end(), name) == columns.end())
                throw study_error{where + "report: \"labels\": unknown column " + in_quotes(name) +
                                  " (expected a grid key, a metric, index, or key=value)"};
        }
    }
    const json_t *plots = json_object_get(report, "plots");
    if (!plots)
        return;
    if (!json_is_array(plots) || json_array_size(plots) == 0)
        throw study_error{where + "report: \"plots\" must be a non-empty list of plots"};
    const std::vector<std::string> &x_allowed = columns;
    size_t pi;
    json_t *plot;
    json_array_foreach(plots, pi, plot) {
        const std::string at = where + "report plot " + std::to_string(pi) + ": ";
        if (!json_is_object(plot))
            throw study_error{at + "expected an object {\"x\": ..., \"y\": ...}"};
        json_object_foreach(plot, k, v) {
            static const std::set<std::string> known = {"x", "y", "series", "logx", "logy",
                                                        "title", "where"};
            if (!known.count(k))
                throw study_error{at + "unknown field " + in_quotes(k) +
                                  " (expected x, y, series, logx, logy, title, where)"};
        }
        const json_t *x = json_object_get(plot, "x");
        if (!json_is_string(x))
            throw study_error{at + "\"x\" must be a column name (a grid key, a metric or index)"};
        report_columns(x, at + "\"x\": ", true, x_allowed, "expected a grid key, a metric or index");
        if (!json_object_get(plot, "y"))
            throw study_error{at + "\"y\" is required (a metric or a list of metrics)"};
        report_columns(json_object_get(plot, "y"), at + "\"y\": ", true, s.metrics,
                       "expected one of the study's metrics");
        if (const json_t *series = json_object_get(plot, "series"))
            report_columns(series, at + "\"series\": ", false, s.keys, "expected a grid key");
        for (const char *flag : {"logx", "logy"}) {
            const json_t *b = json_object_get(plot, flag);
            if (b && !json_is_boolean(b))
                throw study_error{at + in_quotes(flag) + " must be true or false"};
        }
        const json_t *t = json_object_get(plot, "title");
        if (t && !json_is_string(t))
            throw study_error{at + "\"title\" must be a string"};
        if (const json_t *w = json_object_get(plot, "where")) {
            if (!json_is_object(w))
                throw study_error{at + "\"where\" must be an object {grid key: value or [values]}"};
            const char *wk;
            json_t *wv;
            json_object_foreach(const_cast<json_t *>(w), wk, wv)
                if (std::find(s.keys.begin(), s.keys.end(), wk) == s.keys.end())
                    throw study_error{at + "\"where\" names " + in_quotes(wk) +
                                      ", which is not a grid key"};
        }
    }
}

// Estimated wall-clock seconds of one point's `viosim run` on one core, from its
// configuration alone, to size cluster tasks (--emit slurm): a start-up cost, plus the
// work -- the frames the reference driver sends, or the dma_bench transfers -- at a cost
// per unit, but no more than the simulated time limit at a cost per simulated ms, where
// a run stops. Rough on purpose (docs/sweeps.md, "Sizing the tasks", has the rule and
// the measurements behind the constants): it aims tasks at about a minute.
constexpr double COST_START_S = 0.25;
constexpr double COST_PER_FRAME_S = 20e-6;
constexpr double COST_PER_TRANSFER_S = 2e-6;
constexpr double COST_PER_SIMULATED_MS_S = 0.025;
constexpr double TASK_TARGET_S = 60;

double point_cost_seconds(const vs_config &cfg)
{
    const double work = cfg.bench.enabled
                            ? static_cast<double>(cfg.bench.transfers_count) * COST_PER_TRANSFER_S
                            : static_cast<double>(cfg.drv.frames_count) * COST_PER_FRAME_S;
    const double limit = cfg.sim.time_limit_us / 1000.0 * COST_PER_SIMULATED_MS_S;
    return COST_START_S + std::min(work, limit);
}

// Parses and checks the whole study: every point must be a valid `viosim run`.
void load_study(study &s, const std::string &path)
{
    s.path = path;
    json_t *root = load_json_object(path, "study file");
    struct guard {
        json_t *j;
        ~guard() { json_decref(j); }
    } root_guard{root};
    const std::string where = path + ": ";

    const char *k;
    json_t *v;
    json_object_foreach(root, k, v) {
        static const std::set<std::string> known = {"description", "base", "grid", "zip",
                                                    "metrics", "report", "smoke"};
        if (!known.count(k))
            throw study_error{where + "unknown study field " + in_quotes(k) +
                              " (expected base, grid, zip, metrics, report, smoke, description)"};
    }

    const json_t *description = json_object_get(root, "description");
    if (description) {
        if (!json_is_string(description))
            throw study_error{where + "\"description\" must be a string"};
        s.description = json_string_value(description);
    }

    // base: a config file (relative to the study file) or an inline object.
    const json_t *base = json_object_get(root, "base");
    if (!base) {
        s.base = json_object();
    } else if (json_is_string(base)) {
        fs::path p = json_string_value(base);
        if (p.is_relative())
            p = fs::path(path).parent_path() / p;
        s.base_origin = p.lexically_normal().string();
        s.base = load_json_object(s.base_origin, "base config");
    } else if (json_is_object(base)) {
        s.base = json_deep_copy(base);
    } else {
        throw study_error{where + "\"base\" must be a config file name or an object"};
    }
    const vs_config base_cfg = base_config(s);

    // grid: key -> list of values or a range.
    const json_t *grid = json_object_get(root, "grid");
    if (!json_is_object(grid) || json_object_size(grid) == 0)
        throw study_error{where + "\"grid\" must be a non-empty object {\"key\": [values...]}"};
    json_object_foreach(const_cast<json_t *>(grid), k, v) {
        const std::string key = k, at = where + "grid " + in_quotes(key) + ": ";
        std::vector<std::string> texts;
        if (json_is_array(v)) {
            if (json_array_size(v) == 0)
                throw study_error{at + "empty list of values"};
            size_t i;
            json_t *element;
            json_array_foreach(v, i, element) {
                std::string text;
                if (!value_text(element, text))
                    throw study_error{at + "value " + std::to_string(i) +
                                      " must be a string, number, boolean or flat list"};
                texts.push_back(text);
            }
        } else if (json_is_object(v)) {
            texts = expand_range(v, at);
        } else {
            throw study_error{at + "expected a list of values or {\"from\", \"to\", \"step\"}"};
        }
        // Each value alone, on the base: unknown keys and bad values are named here
        // exactly as `viosim run --set` names them.
        for (const std::string &text : texts) {
            vs_config cfg = base_cfg;
            param_error err;
            if (!config_apply_set(cfg, key + "=" + text, err))
                throw study_error{at + err.message};
        }
        s.keys.push_back(key);
        s.values.push_back(texts);
    }

    // zip: groups of keys that vary together.
    std::map<std::string, size_t> zip_group; // key -> group
    const json_t *zip = json_object_get(root, "zip");
    if (zip && !json_is_array(zip))
        throw study_error{where + "\"zip\" must be a list of lists of grid keys"};
    size_t gi;
    json_t *group;
    json_array_foreach(zip, gi, group) {
        const std::string at = where + "zip group " + std::to_string(gi) + ": ";
        if (!json_is_array(group) || json_array_size(group) < 2)
            throw study_error{at + "expected a list of at least two grid keys"};
        std::vector<std::string> keys;
        size_t i;
        json_t *name;
        json_array_foreach(group, i, name) {
            if (!json_is_string(name))
                throw study_error{at + "expected key names (strings)"};
            std::string key = json_string_value(name);
            auto it = std::find(s.keys.begin(), s.keys.end(), key);
            if (it == s.keys.end())
                throw study_error{at + in_quotes(key) + " is not a grid key"};
            if (!zip_group.emplace(key, gi).second)
                throw study_error{at + in_quotes(key) + " is in more than one zip group"};
            size_t len = s.values[static_cast<size_t>(it - s.keys.begin())].size();
            size_t first_len =
                keys.empty() ? len
                             : s.values[static_cast<size_t>(
                                            std::find(s.keys.begin(), s.keys.end(), keys[0]) -
                                            s.keys.begin())]
                                   .size();
            if (len != first_len)
                throw study_error{at + in_quotes(key) + " has " + std::to_string(len) +
                                  " values but " + in_quotes(keys[0]) + " has " +
                                  std::to_string(first_len) + "; zipped keys need as many"};
            keys.push_back(key);
        }
        s.zip.push_back(keys);
    }

    // Axes in grid order; a zip group sits where its first key does.
    std::map<size_t, size_t> group_axis;
    for (size_t ki = 0; ki < s.keys.size(); ki++) {
        auto z = zip_group.find(s.keys[ki]);
        if (z != zip_group.end()) {
            auto ga = group_axis.find(z->second);
            if (ga != group_axis.end()) {
                s.axes[ga->second].keys.push_back(ki);
                continue;
            }
            group_axis.emplace(z->second, s.axes.size());
        }
        axis a;
        a.keys.push_back(ki);
        a.size = s.values[ki].size();
        s.axes.push_back(a);
    }

    // metrics
    const json_t *metrics = json_object_get(root, "metrics");
    if (!metrics) {
        s.metrics.assign(std::begin(DEFAULT_METRICS), std::end(DEFAULT_METRICS));
    } else {
        if (!json_is_array(metrics) || json_array_size(metrics) == 0)
            throw study_error{where + "\"metrics\" must be a non-empty list of statistic names"};
        size_t i;
        json_t *name;
        json_array_foreach(metrics, i, name) {
            if (!json_is_string(name) || json_string_length(name) == 0)
                throw study_error{where + "metric " + std::to_string(i) +
                                  " must be a statistic name (see docs/statistics.md)"};
            std::string m = json_string_value(name);
            if (std::find(s.metrics.begin(), s.metrics.end(), m) != s.metrics.end())
                throw study_error{where + "metric " + in_quotes(m) + " is listed twice"};
            // Named like an unknown parameter: before any point runs, with a guess.
            if (!stats_name_known(m)) {
                std::string message = where + "unknown metric " + in_quotes(m) +
                                      " (see docs/statistics.md)";
                const std::string guess = config_closest_name(m, stats_known_names());
                if (!guess.empty())
                    message += "; did you mean " + in_quotes(guess) + "?";
                throw study_error{message};
            }
            s.metrics.push_back(m);
        }
    }

    // smoke: the few points CI runs of this study (tests/studies/run-studies); the sweep
    // itself ignores it, but checks its shape so a typo does not go unnoticed.
    if (const json_t *smoke = json_object_get(root, "smoke")) {
        if (!json_is_object(smoke))
            throw study_error{where + "\"smoke\" must be an object"};
        const char *sk;
        json_t *sv;
        json_object_foreach(const_cast<json_t *>(smoke), sk, sv) {
            if (std::strcmp(sk, "frames_count") == 0) {
                if (!json_is_integer(sv) || json_integer_value(sv) < 1)
                    throw study_error{where + "smoke: \"frames_count\" must be a positive integer"};
            } else if (std::strcmp(sk, "grid") == 0) {
                if (!json_is_object(sv))
                    throw study_error{where + "smoke: \"grid\" must be an object"};
                const char *gk;
                json_t *gv;
                json_object_foreach(sv, gk, gv) {
                    if (std::find(s.keys.begin(), s.keys.end(), gk) == s.keys.end())
                        throw study_error{where + "smoke: grid key " + in_quotes(gk) +
                                          " is not a key of the study's grid"};
                    if (!json_is_array(gv) || json_array_size(gv) == 0)
                        throw study_error{where + "smoke: grid key " + in_quotes(gk) +
                                          " needs a non-empty list of values"};
                }
            } else {
                throw study_error{where + "smoke: unknown field " + in_quotes(sk) +
                                  " (expected grid, frames_count)"};
            }
        }
    }

    // report: checked here so a typo is found before the sweep runs, not after.
    if (const json_t *report = json_object_get(root, "report")) {
        check_report(s, report, where);
        s.report = json_deep_copy(report);
    }

    // Points: the product of the axes, the last axis varying fastest.
    size_t total = 1;
    for (const axis &a : s.axes) {
        if (total > MAX_POINTS / a.size)
            throw study_error{where + "the grid has more than " + std::to_string(MAX_POINTS) +
                              " points"};
        total *= a.size;
    }
    for (size_t p = 0; p < total; p++) {
        std::vector<size_t> pick(s.keys.size());
        size_t rest = p;
        for (size_t ai = s.axes.size(); ai-- > 0;) {
            size_t at = rest % s.axes[ai].size;
            rest /= s.axes[ai].size;
            for (size_t ki : s.axes[ai].keys)
                pick[ki] = at;
        }
        std::vector<assignment> point;
        for (size_t ki = 0; ki < s.keys.size(); ki++)
            point.emplace_back(s.keys[ki], s.values[ki][pick[ki]]);
        // The whole point, as the child will apply it, with the cross-parameter checks.
        vs_config cfg = base_cfg;
        param_error err;
        for (const assignment &a : point)
            if (!config_apply_set(cfg, a.first + "=" + a.second, err))
                throw study_error{where + "point " + std::to_string(p) + " (" +
                                  point_label(point) + "): " + err.message};
        if (!config_validate(cfg, err))
            throw study_error{where + "point " + std::to_string(p) + " (" + point_label(point) +
                              "): " + err.message};
        s.points.push_back(point);
        s.point_hashes.push_back(config_hash(cfg));
        s.point_costs.push_back(point_cost_seconds(cfg));
    }
}

// ---- Output directory ----

struct sweep_dirs {
    std::string out;       // DIR, absolute
    std::string base_json; // DIR/base.json
    std::string point(size_t i) const { return out + "/points/" + std::to_string(i); }
};

// DIR/points/<i>/point.json: what the point is, so a rerun can tell it is the same, and
// once its run has written stats.json, the provenance that file records (which viosim
// ran it, the hash of its resolved configuration, its seed) and its checksum
// (stats_checksum).
std::string point_json_text(const study &s, size_t i, const json_t *provenance = nullptr,
                            const std::string &stats_checksum = "")
{
    json_t *doc = json_object();
    json_object_set_new(doc, "index", json_integer(static_cast<json_int_t>(i)));
    json_t *set = json_object();
    for (const assignment &a : s.points[i])
        json_object_set_new(set, a.first.c_str(), json_string(a.second.c_str()));
    json_object_set_new(doc, "set", set);
    json_object_set(doc, "base", s.base);
    if (provenance)
        json_object_set(doc, "provenance", const_cast<json_t *>(provenance));
    if (!stats_checksum.empty())
        json_object_set_new(doc, "stats_checksum", json_string(stats_checksum.c_str()));
    std::string text = stats_json_text(doc);
    json_decref(doc);
    return text;
}

struct json_deleter {
    void operator()(json_t *j) const { json_decref(j); }
};
using json_ptr = std::unique_ptr<json_t, json_deleter>;

// What point.json says: whether it is this point with these settings, the provenance its
// run recorded (null if none) and the checksum it records for stats.json ("" if none).
struct point_record {
    bool same = false;
    json_ptr provenance;
    std::string checksum;
};

point_record read_point_record(const study &s, const sweep_dirs &d, size_t i)
{
    point_record r;
    const std::string text = slurp(d.point(i) + "/point.json");
    json_error_t jerr;
    json_t *doc = json_loadb(text.data(), text.size(), 0, &jerr);
    if (!doc)
        return r;
    if (const char *c = json_string_value(json_object_get(doc, "stats_checksum")))
        r.checksum = c;
    if (json_t *p = json_object_get(doc, "provenance"))
        r.provenance.reset(json_incref(p));
    json_decref(doc);
    r.same = text == point_json_text(s, i, r.provenance.get(), r.checksum);
    return r;
}

// Records in point i's point.json the provenance its stats.json holds (so the record says
// what the run itself reported, wherever it ran) and the file's checksum, as its run left
// it. Nothing to record if the run wrote no stats.json.
bool record_stats_checksum(const study &s, const sweep_dirs &d, size_t i, std::string &err)
{
    const std::string path = d.point(i) + "/stats.json";
    if (access(path.c_str(), F_OK) != 0)
        return true;
    const std::string text = slurp(path);
    json_error_t jerr;
    json_ptr stats(json_loadb(text.data(), text.size(), 0, &jerr));
    const json_t *provenance = json_object_get(stats.get(), "provenance");
    return write_file(d.point(i) + "/point.json",
                      point_json_text(s, i, json_is_object(provenance) ? provenance : nullptr,
                                      fnv1a64_text(text)),
                      err);
}

std::string study_json_text(const study &s)
{
    json_t *doc = json_object();
    json_object_set_new(doc, "study", json_string(fs::absolute(s.path).lexically_normal().c_str()));
    if (!s.description.empty())
        json_object_set_new(doc, "description", json_string(s.description.c_str()));
    if (!s.base_origin.empty())
        json_object_set_new(doc, "base_file",
                            json_string(fs::absolute(s.base_origin).lexically_normal().c_str()));
    json_object_set(doc, "base", s.base);
    json_t *grid = json_object();
    for (size_t k = 0; k < s.keys.size(); k++) {
        json_t *list = json_array();
        for (const std::string &text : s.values[k])
            json_array_append_new(list, json_string(text.c_str()));
        json_object_set_new(grid, s.keys[k].c_str(), list);
    }
    json_object_set_new(doc, "grid", grid);
    json_t *zip = json_array();
    for (const auto &group : s.zip) {
        json_t *g = json_array();
        for (const std::string &key : group)
            json_array_append_new(g, json_string(key.c_str()));
        json_array_append_new(zip, g);
    }
    json_object_set_new(doc, "zip", zip);
    json_t *metrics = json_array();
    for (const std::string &m : s.metrics)
        json_array_append_new(metrics, json_string(m.c_str()));
    json_object_set_new(doc, "metrics", metrics);
    if (s.report)
        json_object_set(doc, "report", s.report);
    json_object_set_new(doc, "points", json_integer(static_cast<json_int_t>(s.points.size())));
    json_object_set_new(doc, "viosim_version", json_string(VIOSIM_VERSION));
    json_object_set_new(doc, "provenance", build_provenance_json());
    std::string text = stats_json_text(doc);
    json_decref(doc);
    return text;
}

// The `viosim run` command line of point i.
std::vector<std::string> point_argv(const study &s, const sweep_dirs &d, const std::string &exe,
                                    size_t i)
{
    std::vector<std::string> args = {exe, "run", d.base_json, "--out", d.point(i)};
    for (const assignment &a : s.points[i]) {
        args.push_back("--set");
        args.push_back(a.first + "=" + a.second);
    }
    return args;
}

std::string shell_line(const std::vector<std::string> &args)
{
    std::string line;
    for (const std::string &a : args)
        line += (line.empty() ? "" : " ") + shell_quoted(a);
    return line;
}

// Why a stored stats.json is not trusted (it is not the file its run wrote) ...
const char UNTRUSTED_CHANGED[] = "its stats.json changed after its run wrote it";
const char UNTRUSTED_UNRECORDED[] = "no checksum of its stats.json was recorded";
// ... or not current: the run it records is not the one this viosim would do.
const char STALE_UNRECORDED[] = "its run recorded no viosim version or configuration hash";
const char STALE_CONFIG[] = "its resolved configuration changed since its run (another config_hash)";
const char STALE_VERSION[] = "it was run by another viosim version";
const char STALE_UNKNOWN[] =
    "this viosim was built outside a git checkout (version unknown), so it cannot tell its "
    "code from the one that ran it";
const char *const NOT_REUSED[] = {UNTRUSTED_CHANGED, UNTRUSTED_UNRECORDED, STALE_UNRECORDED,
                                  STALE_CONFIG, STALE_VERSION, STALE_UNKNOWN};

// Why point i's recorded run is not the one this viosim would do for it, or null: its
// configuration hash differs from the point's, or its version from this build's. A build
// of unknown version (no git) cannot show it is the same code, so it reuses nothing. A
// dirty tree's version carries a fingerprint of its uncommitted changes: the same
// changes are the same version, any other edit is another (docs/sweeps.md).
const char *stale_reason(const study &s, size_t i, const json_t *provenance)
{
    const char *version = json_string_value(json_object_get(provenance, "version"));
    const char *hash = json_string_value(json_object_get(provenance, "config_hash"));
    if (!version || !hash)
        return STALE_UNRECORDED;
    if (s.point_hashes[i] != hash)
        return STALE_CONFIG;
    if (!version_known())
        return STALE_UNKNOWN;
    if (std::strcmp(version, build_version) != 0)
        return STALE_VERSION;
    return nullptr;
}

// A point's outcome as recorded in its directory: "ok", "failed", or "missing" (not run,
// run with other settings, a stats.json that is not the one its run wrote, or a run by
// another viosim or of another resolved configuration: then `untrusted` says why).
std::string recorded_status(const study &s, const sweep_dirs &d, size_t i, json_t **stats_out,
                            const char **untrusted)
{
    *stats_out = nullptr;
    *untrusted = nullptr;
    const std::string dir = d.point(i);
    const point_record rec = read_point_record(s, d, i);
    if (!rec.same)
        return "missing";
    // Read whole, then parsed from memory: jansson's file reader takes a character at a
    // time, and a 100-point sweep reads 100 stats.json files.
    const std::string text = slurp(dir + "/stats.json");
    if (text.empty() && access((dir + "/stats.json").c_str(), F_OK) != 0)
        return "missing";
    // The checksum: FNV-1a 64 of the bytes; it guards against a file edited, truncated or
    // replaced after its run, not against malice.
    if (rec.checksum != fnv1a64_text(text)) {
        *untrusted = rec.checksum.empty() ? UNTRUSTED_UNRECORDED : UNTRUSTED_CHANGED;
        return "missing";
    }
    if ((*untrusted = stale_reason(s, i, rec.provenance.get())))
        return "missing";
    json_error_t jerr;
    json_t *stats = json_loadb(text.data(), text.size(), 0, &jerr);
    if (!stats)
        return "missing";
    *stats_out = stats;
    return json_is_true(json_object_get(json_object_get(stats, "result"), "ok")) ? "ok" : "failed";
}

std::string metric_text(const json_t *stats, const std::string &name, bool &found)
{
    const json_t *v = json_object_get(json_object_get(json_object_get(stats, "stats"), name.c_str()),
                                      "value");
    found = v != nullptr;
    if (json_is_integer(v)) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return buf;
    }
    if (json_is_real(v))
        return format_real(json_real_value(v));
    return "";
}

// One point's line of results.csv and whether the point is ok.
struct result_row {
    std::string line; // empty: not made yet
    bool ok = false;
    std::string status; // "ok", "failed" or "missing"
    const char *untrusted = nullptr; // why its stored stats.json was not used, if so (NOT_REUSED)
};

// Point i's row from what its directory records. `exit_status` ("ok" or "failed"), when
// not empty, is how its run ended in this sweep: a run that exited non-zero is "failed"
// whatever its stats.json says. Warns once per metric an ok point's stats lack.
result_row make_row(const study &s, const sweep_dirs &d, size_t i, const std::string &exit_status,
                    std::set<std::string> &warned)
{
    json_t *stats;
    result_row row;
    std::string status = recorded_status(s, d, i, &stats, &row.untrusted);
    if (!exit_status.empty() && status == "ok")
        status = exit_status;
    row.ok = status == "ok";
    row.status = status;
    row.line = std::to_string(i);
    for (const assignment &a : s.points[i])
        row.line += "," + csv_field(a.second);
    row.line += "," + status;
    for (const std::string &m : s.metrics) {
        bool found = false;
        std::string text = stats ? metric_text(stats, m, found) : "";
        if (stats && !found && row.ok && warned.insert(m).second)
            std::fprintf(stderr, "viosim sweep: warning: metric %s is not in %s/stats.json\n",
                         in_quotes(m).c_str(), d.point(i).c_str());
        row.line += "," + csv_field(text);
    }
    row.line += "\n";
    json_decref(stats);
    return row;
}

// DIR/results.csv, one row per point: rows already made (as each run ended) are used as
// they are, the others are made from the point directories. Returns the number of points
// not ok, or -1 (and err) if the file cannot be written.
long write_results(const study &s, const sweep_dirs &d, std::vector<result_row> &rows,
                   std::set<std::string> &warned, std::string &err)
{
    std::string csv = "index";
    for (const std::string &key : s.keys)
        csv += "," + csv_field(key);
    csv += ",status";
    for (const std::string &m : s.metrics)
        csv += "," + csv_field(m);
    csv += "\n";
    long not_ok = 0;
    for (size_t i = 0; i < s.points.size(); i++) {
        if (rows[i].line.empty())
            rows[i] = make_row(s, d, i, "", warned);
        csv += rows[i].line;
        not_ok += !rows[i].ok;
    }
    if (!write_file(d.out + "/results.csv", csv, err))
        return -1;
    return not_ok;
}

// One line per reason some points' stored stats.json were not used: how many, which, and
// what happens to them (`consequence`).
void report_untrusted(const std::vector<result_row> &rows, const char *consequence)
{
    for (const char *why : NOT_REUSED) {
        size_t count = 0;
        std::string which;
        for (size_t i = 0; i < rows.size(); i++) {
            if (rows[i].untrusted != why)
                continue;
            if (++count <= 10)
                which += (which.empty() ? "" : ", ") + std::to_string(i);
        }
        if (count > 10)
            which += ", ...";
        if (count)
            std::fprintf(stderr, "viosim sweep: %zu point%s (%s): %s; %s\n", count,
                         count == 1 ? "" : "s", which.c_str(), why, consequence);
    }
}

// ---- Running ----

std::string duration_text(double seconds)
{
    char buf[32];
    if (seconds < 60)
        std::snprintf(buf, sizeof buf, "%.1f s", seconds);
    else
        std::snprintf(buf, sizeof buf, "%dm%02ds", static_cast<int>(seconds / 60),
                      static_cast<int>(std::fmod(seconds, 60)));
    return buf;
}

// The last non-empty line of a point's log: usually the run's own error line.
std::string last_line(const std::string &path)
{
    std::string text = slurp(path);
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r'))
        text.pop_back();
    size_t nl = text.rfind('\n');
    return nl == std::string::npos ? text : text.substr(nl + 1);
}

// Starts `viosim run` for one point with stdout and stderr in DIR/points/<i>/run.log: a
// forked child that calls `run` in place. The parent has elaborated no SystemC model, so
// the child starts from the same state a fresh process would, minus the start-up cost.
pid_t launch(const std::vector<std::string> &args, const std::string &log, run_command run)
{
    std::vector<char *> argv;
    for (const std::string &a : args)
        argv.push_back(const_cast<char *>(a.c_str()));
    argv.push_back(nullptr);
    std::fflush(nullptr);
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0)
        _exit(127);
    close(fd);
    const int status = run(static_cast<int>(args.size()), argv.data());
    // _exit, as a forked child should: exit() would also run the parent's atexit work
    // and static destructors on the child's copy (and LeakSanitizer would report the
    // parent's sweep state, which the child cannot free, as leaks).
    std::fflush(nullptr);
    _exit(status);
}

struct progress {
    bool tty;
    size_t total, done = 0, failed = 0, to_run = 0, ran = 0;
    std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();

    std::string line() const
    {
        double elapsed =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        std::string remaining = "?";
        if (ran > 0)
            remaining = duration_text(elapsed * static_cast<double>(to_run - ran) /
                                      static_cast<double>(ran));
        char buf[160];
        std::snprintf(buf, sizeof buf, "[%zu/%zu] failed %zu, elapsed %s, remaining %s", done,
                      total, failed, duration_text(elapsed).c_str(), remaining.c_str());
        return buf;
    }
    // A message about one point, then the progress.
    void report(const std::string &message)
    {
        if (tty) {
            if (!message.empty())
                std::fprintf(stderr, "\r\033[K%s\n", message.c_str());
            std::fprintf(stderr, "\r\033[Kviosim sweep: %s", line().c_str());
        } else {
            std::fprintf(stderr, "viosim sweep: %s %s\n", message.c_str(), line().c_str());
        }
        std::fflush(stderr);
    }
};

// One line whatever the message echoes (a path, an option, a key from the input).
int usage_error(const std::string &message)
{
    std::fprintf(stderr, "viosim sweep: error: %s\n", config_escaped(message).c_str());
    return EXIT_USAGE;
}

// A whole decimal number from 1 to max, the whole text; false if it is not.
bool parse_count(const std::string &text, long max, size_t &out)
{
    char *end = nullptr;
    errno = 0;
    const long v = std::strtol(text.c_str(), &end, 10);
    if (errno || end == text.c_str() || *end || v < 1 || v > max)
        return false;
    out = static_cast<size_t>(v);
    return true;
}

std::string self_exe()
{
    std::error_code ec;
    fs::path p = fs::read_symlink("/proc/self/exe", ec);
    return ec ? std::string() : p.string();
}

// ---- Points run elsewhere: --emit and --merge ----

// Points run by emitted jobs record no checksum (`viosim run` does not know it is a
// point): each stats.json found without one is taken as it is now, and recorded, so a
// later resume can tell if it changes.
bool adopt_emitted_results(const study &s, const sweep_dirs &d, std::string &err)
{
    for (size_t i = 0; i < s.points.size(); i++) {
        const point_record rec = read_point_record(s, d, i);
        if (rec.same && rec.checksum.empty() && !record_stats_checksum(s, d, i, err))
            return false;
    }
    return true;
}

// Ascending indices as ranges joined by sep ("0-3, 7, 9-12"): the first `limit` ranges,
// then how many indices the rest hold.
std::string index_ranges(const std::vector<size_t> &v, const char *sep = ", ", size_t limit = 20)
{
    std::string out;
    size_t shown = 0, ranges = 0;
    for (size_t a = 0; a < v.size();) {
        size_t b = a;
        while (b + 1 < v.size() && v[b + 1] == v[b] + 1)
            b++;
        if (ranges++ == limit)
            return out + sep + "... (" + std::to_string(v.size() - shown) + " more)";
        out += (out.empty() ? "" : sep) + std::to_string(v[a]) +
               (b > a ? "-" + std::to_string(v[b]) : "");
        shown += b - a + 1;
        a = b + 1;
    }
    return out;
}

// Why an --sbatch-option is refused, or "". Each goes, quoted, on the command lines of
// submit.sh, so it must be one sbatch option ("--name=value" or "-Xvalue"): a word that
// is not an option would be taken by sbatch as the batch script. The options submit.sh
// sets itself for the chain (--array, --dependency, --parsable) or that replace the script
// (--wrap) are refused, and so are control characters.
std::string sbatch_option_problem(const std::string &o)
{
    for (unsigned char ch : o)
        if (ch < 0x20 || ch == 0x7f)
            return "contains a control character";
    if (o.size() < 2 || o[0] != '-')
        return "is not an sbatch option (give it as one word: --name=value or -Xvalue)";
    if (o[1] != '-')
        return o[1] == 'a' || o[1] == 'd' ? "sets what submit.sh sets itself (-a/-d)" : "";
    const std::string name = o.substr(0, o.find('='));
    // sbatch takes an unambiguous prefix of a long option too.
    for (const char *own : {"--array", "--dependency", "--parsable", "--wrap"})
        if (name.size() > 2 && std::string(own).compare(0, name.size(), name) == 0)
            return std::string("sets what submit.sh sets itself (") + own + ")";
    return "";
}

struct emit_options {
    std::string kind;             // "slurm" or "parallel"
    size_t points_per_task = 0;   // slurm; 0: sized so a task runs about TASK_TARGET_S
    size_t max_array_size = 1000; // slurm: tasks per job array
    bool only_missing = false;
    std::vector<std::string> sbatch_options;
};

// What --emit wrote, so --merge can say where a point ran (DIR/emit.json).
struct emit_layout {
    std::string kind;          // "slurm" or "parallel"
    std::vector<size_t> points; // the emitted points, in jobs.txt order
    size_t points_per_task = 1; // slurm: jobs.txt lines per array task
    size_t max_array_size = 1;  // slurm: tasks per array (the last one may have fewer)
    std::vector<std::string> sbatch_options; // slurm: --sbatch-option, for --merge's hint
};

// Identifies the study's points (their order and resolved configurations), so a layout
// emitted for another grid is not applied to this one.
std::string points_fingerprint(const study &s)
{
    std::string all;
    for (const std::string &h : s.point_hashes)
        all += h + "\n";
    return fnv1a64_text(all);
}

std::string emit_layout_text(const study &s, const emit_layout &l)
{
    json_t *doc = json_object();
    json_object_set_new(doc, "kind", json_string(l.kind.c_str()));
    json_object_set_new(doc, "points_fingerprint", json_string(points_fingerprint(s).c_str()));
    json_t *points = json_array();
    for (size_t i : l.points)
        json_array_append_new(points, json_integer(static_cast<json_int_t>(i)));
    json_object_set_new(doc, "points", points);
    json_object_set_new(doc, "points_per_task", json_integer(static_cast<json_int_t>(l.points_per_task)));
    json_object_set_new(doc, "max_array_size", json_integer(static_cast<json_int_t>(l.max_array_size)));
    json_t *options = json_array();
    for (const std::string &o : l.sbatch_options)
        json_array_append_new(options, json_string(o.c_str()));
    json_object_set_new(doc, "sbatch_options", options);
    std::string text = stats_json_text(doc);
    json_decref(doc);
    return text;
}

// DIR/emit.json, if it is of this study's points and well formed (the emitted points
// ascending, sbatch options that --sbatch-option takes).
bool read_emit_layout(const study &s, const sweep_dirs &d, emit_layout &l)
{
    json_error_t jerr;
    json_ptr doc(json_load_file((d.out + "/emit.json").c_str(), 0, &jerr));
    const char *kind = json_string_value(json_object_get(doc.get(), "kind"));
    const char *fp = json_string_value(json_object_get(doc.get(), "points_fingerprint"));
    const json_t *points = json_object_get(doc.get(), "points");
    const json_int_t ppt = json_integer_value(json_object_get(doc.get(), "points_per_task"));
    const json_int_t max = json_integer_value(json_object_get(doc.get(), "max_array_size"));
    const json_t *options = json_object_get(doc.get(), "sbatch_options");
    if (!kind || (std::strcmp(kind, "slurm") != 0 && std::strcmp(kind, "parallel") != 0) || !fp ||
        fp != points_fingerprint(s) || !json_is_array(points) || ppt < 1 || max < 1 ||
        !json_is_array(options))
        return false;
    l.kind = kind;
    l.points_per_task = static_cast<size_t>(ppt);
    l.max_array_size = static_cast<size_t>(max);
    size_t k;
    const json_t *p;
    json_array_foreach(points, k, p) {
        const json_int_t i = json_integer_value(p);
        if (!json_is_integer(p) || i < 0 || static_cast<size_t>(i) >= s.points.size() ||
            (!l.points.empty() && static_cast<size_t>(i) <= l.points.back()))
            return false;
        l.points.push_back(static_cast<size_t>(i));
    }
    json_array_foreach(options, k, p) {
        const char *o = json_string_value(p);
        if (!o || !sbatch_option_problem(o).empty())
            return false;
        l.sbatch_options.push_back(o);
    }
    return true;
}

// --merge: names the points that failed and those missing, and where the last --emit put
// them (array and task, or jobs.txt line), with the command that runs them again.
void report_not_ok(const study &s, const sweep_dirs &d, const std::vector<result_row> &rows,
                   const std::string &study_abs)
{
    std::vector<size_t> bad;
    for (const char *status : {"failed", "missing"}) {
        std::vector<size_t> these;
        for (size_t i = 0; i < rows.size(); i++)
            if (rows[i].status == status)
                these.push_back(i);
        if (!these.empty())
            std::fprintf(stderr, "viosim sweep: %s: %zu point%s: %s\n", status, these.size(),
                         these.size() == 1 ? "" : "s", index_ranges(these).c_str());
        bad.insert(bad.end(), these.begin(), these.end());
    }
    std::sort(bad.begin(), bad.end());
    emit_layout l;
    if (bad.empty() || !read_emit_layout(s, d, l))
        return;
    std::map<size_t, size_t> line_of; // point -> its position in jobs.txt
    for (size_t k = 0; k < l.points.size(); k++)
        line_of[l.points[k]] = k;
    std::map<size_t, std::vector<size_t>> tasks; // array -> its tasks that hold a bad point
    std::vector<size_t> lines, not_emitted;
    for (size_t i : bad) {
        auto it = line_of.find(i);
        if (it == line_of.end()) {
            not_emitted.push_back(i);
            continue;
        }
        lines.push_back(it->second + 1);
        const size_t task = it->second / l.points_per_task;
        std::vector<size_t> &t = tasks[task / l.max_array_size];
        if (t.empty() || t.back() != task % l.max_array_size)
            t.push_back(task % l.max_array_size);
    }
    std::string where;
    if (l.kind == "slurm") {
        for (const auto &a : tasks)
            where += std::string(where.empty() ? "" : "; ") + "array " + std::to_string(a.first) +
                     " (" + d.out + "/slurm/array-" + std::to_string(a.first) + ".slurm) tasks " +
                     index_ranges(a.second, ",");
    } else if (!lines.empty()) {
        where = "lines " + index_ranges(lines) + " of " + d.out + "/jobs.txt";
    }
    if (!where.empty())
        std::fprintf(stderr, "viosim sweep: the last --emit %s ran them as %s\n", l.kind.c_str(),
                     where.c_str());
    if (!not_emitted.empty())
        std::fprintf(stderr, "viosim sweep: not in the last --emit %s: %s\n", l.kind.c_str(),
                     index_ranges(not_emitted).c_str());
    std::string again = "viosim sweep " + shell_quoted(study_abs) + " --out " + shell_quoted(d.out) +
                        " --emit " + l.kind + " --only-missing";
    if (l.kind == "slurm" && l.max_array_size != emit_options().max_array_size)
        again += " --max-array-size " + std::to_string(l.max_array_size);
    for (const std::string &o : l.sbatch_options)
        again += " --sbatch-option " + shell_quoted(o);
    std::fprintf(stderr, "viosim sweep: to run them again: %s\n", config_escaped(again).c_str());
}

// What would break a point's command across lines of jobs.txt, or "": a line break in
// DIR, in the viosim binary's path or in a grid value (shell quoting keeps it, but a
// line-per-command reader splits the command there).
std::string emit_line_break(const study &s, const sweep_dirs &d, const std::string &exe)
{
    auto broken = [](const std::string &t) { return t.find_first_of("\n\r") != std::string::npos; };
    if (broken(d.out))
        return "the output directory " + in_quotes(d.out) + " has a line break";
    if (broken(exe))
        return "the viosim binary's path " + in_quotes(exe) + " has a line break";
    for (size_t i = 0; i < s.points.size(); i++)
        for (const assignment &a : s.points[i])
            if (broken(a.second))
                return "point " + std::to_string(i) + "'s value of " + in_quotes(a.first) +
                       " has a line break";
    return "";
}

// DIR/slurm/array-<k>.slurm: job array k runs sweep tasks k*max .. ; task t runs lines
// t*ppt+1 .. (t+1)*ppt of jobs.txt one after another, whatever each ends with, and
// exits 1 if one failed (--merge reports which points).
std::string array_script(const std::string &study_abs, const sweep_dirs &d, size_t k,
                         size_t arrays, size_t first_task, size_t tasks, size_t ppt,
                         size_t lines)
{
    const std::string task_last = std::to_string(tasks - 1);
    return "#!/bin/bash\n"
           "# viosim sweep of " + config_escaped(study_abs) + "\n"
           "# Job array " + std::to_string(k + 1) + " of " + std::to_string(arrays) +
           ": sweep tasks " + std::to_string(first_task) + "-" +
           std::to_string(first_task + tasks - 1) + ", " + std::to_string(ppt) +
           " point(s) each, the commands in jobs.txt.\n"
           "# Submitted by submit.sh, which also chains the merge.\n"
           "#SBATCH --job-name=viosim-sweep\n"
           "#SBATCH --array=0-" + task_last + "\n"
           "#SBATCH --ntasks=1\n"
           "#SBATCH --cpus-per-task=1\n"
           "set -u\n"
           "jobs=" + shell_quoted(d.out + "/jobs.txt") + "\n"
           "points=" + shell_quoted(d.out + "/points") + "\n"
           "id=${SLURM_ARRAY_TASK_ID-}\n"
           "case $id in\n"
           "''|*[!0-9]*) echo \"viosim sweep: SLURM_ARRAY_TASK_ID is '$id', not a task of 0-" +
           task_last + "\" >&2; exit 2 ;;\n"
           "esac\n"
           "if [ \"$id\" -gt " + task_last + " ]; then\n"
           "    echo \"viosim sweep: no task $id in this array (0-" + task_last + ")\" >&2; exit 2\n"
           "fi\n"
           "first=$(( (" + std::to_string(first_task) + " + id) * " + std::to_string(ppt) + " + 1 ))\n"
           "last=$(( first + " + std::to_string(ppt - 1) + " ))\n"
           "[ \"$last\" -le " + std::to_string(lines) + " ] || last=" + std::to_string(lines) + "\n"
           "failed=0\n"
           "while IFS= read -r command; do\n"
           "    eval \"$command\" </dev/null && continue\n"
           "    status=$?\n"
           "    point=${command##*# point }\n"
           "    echo \"viosim sweep: point $point failed (exit $status); its log: $points/$point/run.log\" >&2\n"
           "    failed=$((failed + 1))\n"
           "done < <(sed -n \"${first},${last}p\" \"$jobs\")\n"
           "[ \"$failed\" -eq 0 ]\n";
}

// DIR/submit.sh: sbatch's every array with --parsable, collects the job ids and submits
// merge.sh with --dependency=afterany on all of them. afterany, not afterok: a point that
// fails makes its task fail, and afterok would then never start the merge (Slurm leaves
// it pending, DependencyNeverSatisfied) -- yet the merge is what names the failed points
// and where they ran. Its own arguments go to every sbatch after the --sbatch-option ones.
std::string submit_script(const std::string &study_abs, const sweep_dirs &d, size_t arrays,
                          size_t tasks, size_t points, const std::vector<std::string> &options)
{
    std::string text = "#!/bin/bash\n"
                       "# viosim sweep of " + config_escaped(study_abs) + ": submits " +
                       std::to_string(arrays) + " job array(s) (" + std::to_string(tasks) +
                       " tasks, " + std::to_string(points) + " points), then the merge,\n"
                       "# which starts once every task has ended, however it ended\n"
                       "# (afterany: it is the merge that reports failed points).\n"
                       "# Usage: submit.sh [SBATCH_OPTION...] (each goes to every sbatch)\n"
                       "set -euo pipefail\n"
                       "cd " + shell_quoted(d.out) + "\n"
                       "options=(";
    for (size_t k = 0; k < options.size(); k++)
        text += (k ? " " : "") + shell_quoted(options[k]);
    text += ")\n"
            "options+=(\"$@\")\n";
    if (arrays == 0)
        return text + "echo 'viosim sweep: nothing to submit: no point was emitted' >&2\n";
    text += "ids=\n";
    for (size_t k = 0; k < arrays; k++) {
        const std::string a = std::to_string(k);
        text += "id=$(sbatch --parsable --output=slurm/logs/array-" + a +
                "-%a.out ${options[@]+\"${options[@]}\"} slurm/array-" + a + ".slurm)\n"
                "ids=$ids:${id%%;*}\n";
    }
    text += "merge=$(sbatch --parsable --job-name=viosim-merge --output=slurm/logs/merge.out "
            "${options[@]+\"${options[@]}\"} \"--dependency=afterany$ids\" merge.sh)\n"
            "echo \"viosim sweep: submitted job arrays ${ids#:}; merge job ${merge%%;*} "
            "runs when they have ended\"\n";
    return text;
}

int emit_jobs(const study &s, const sweep_dirs &d, const std::string &exe,
              const std::string &study_abs, const emit_options &o, bool force,
              std::vector<result_row> &rows, std::set<std::string> &warned)
{
    std::string err;
    std::error_code ec;
    const size_t n = s.points.size();
    // Every point, or with --only-missing those a resume would run: first what earlier
    // emitted jobs left is taken in, as --merge does.
    if (!adopt_emitted_results(s, d, err))
        return usage_error(err);
    emit_layout l;
    l.kind = o.kind;
    for (size_t i = 0; i < n; i++) {
        rows[i] = make_row(s, d, i, "", warned);
        if (!o.only_missing || !rows[i].ok)
            l.points.push_back(i);
    }
    if (o.only_missing)
        report_untrusted(rows, "emitting them");
    // Each emitted point's directory with a fresh point.json (no checksum) and no
    // stats.json, unless it holds a current ok result (the run gives the same bytes
    // again); --merge then takes in what the jobs write.
    for (size_t i : l.points) {
        const std::string dir = d.point(i);
        fs::create_directories(dir, ec);
        if (force || !rows[i].ok) {
            std::remove((dir + "/stats.json").c_str());
            if (!write_file(dir + "/point.json", point_json_text(s, i), err))
                return usage_error(err);
        }
    }
    std::string jobs;
    for (size_t i : l.points)
        jobs += shell_line(point_argv(s, d, exe, i)) + " >" +
                shell_quoted(d.point(i) + "/run.log") + " 2>&1 # point " + std::to_string(i) + "\n";
    const std::string jobs_path = d.out + "/jobs.txt", merge_path = d.out + "/merge.sh";
    const std::string merge_script =
        "#!/bin/sh\n"
        "# Builds results.csv from the point directories once the jobs have finished.\n"
        "exec " + shell_quoted(exe) + " sweep " + shell_quoted(study_abs) + " --out " +
        shell_quoted(d.out) + " --merge\n";
    if (!write_file(jobs_path, jobs, err) || !write_file(merge_path, merge_script, err))
        return usage_error(err);
    chmod(merge_path.c_str(), 0755);
    std::remove((d.out + "/sweep.slurm").c_str()); // an earlier viosim's single array

    if (o.kind == "slurm") {
        double cost = 0;
        for (size_t i : l.points)
            cost += s.point_costs[i];
        const double mean = l.points.empty() ? COST_START_S : cost / static_cast<double>(l.points.size());
        size_t ppt = o.points_per_task;
        if (!ppt)
            ppt = static_cast<size_t>(std::max(1.0, std::floor(TASK_TARGET_S / mean)));
        ppt = std::max<size_t>(1, std::min(ppt, l.points.size()));
        l.points_per_task = ppt;
        l.max_array_size = o.max_array_size;
        l.sbatch_options = o.sbatch_options;
        const size_t tasks = (l.points.size() + ppt - 1) / ppt;
        const size_t arrays = (tasks + o.max_array_size - 1) / o.max_array_size;
        const std::string slurm_dir = d.out + "/slurm";
        fs::create_directories(slurm_dir + "/logs", ec);
        if (ec)
            return usage_error("cannot create " + slurm_dir + "/logs: " + ec.message());
        // Arrays of an earlier emit that this one does not rewrite.
        for (size_t k = arrays;; k++)
            if (std::remove((slurm_dir + "/array-" + std::to_string(k) + ".slurm").c_str()) != 0)
                break;
        for (size_t k = 0; k < arrays; k++) {
            const size_t first = k * o.max_array_size;
            const std::string path = slurm_dir + "/array-" + std::to_string(k) + ".slurm";
            if (!write_file(path, array_script(study_abs, d, k, arrays, first,
                                               std::min(o.max_array_size, tasks - first), ppt,
                                               l.points.size()),
                            err))
                return usage_error(err);
            chmod(path.c_str(), 0755);
        }
        const std::string submit_path = d.out + "/submit.sh";
        if (!write_file(submit_path,
                        submit_script(study_abs, d, arrays, tasks, l.points.size(), o.sbatch_options),
                        err))
            return usage_error(err);
        chmod(submit_path.c_str(), 0755);
        std::fprintf(stderr,
                     "viosim sweep: %zu points in %zu task%s of %zu point%s (estimated %.2g s a "
                     "point, %.2g s a task), %zu job array%s of at most %zu tasks in %s/\n",
                     l.points.size(), tasks, tasks == 1 ? "" : "s", ppt, ppt == 1 ? "" : "s",
                     mean, mean * static_cast<double>(ppt), arrays, arrays == 1 ? "" : "s",
                     o.max_array_size, slurm_dir.c_str());
        std::fprintf(stderr, "viosim sweep: submit with: %s (the merge follows as a dependent job)\n",
                     shell_quoted(submit_path).c_str());
    } else {
        std::fprintf(stderr, "viosim sweep: wrote %s (%zu points) and %s\n", jobs_path.c_str(),
                     l.points.size(), merge_path.c_str());
        std::fprintf(stderr, "viosim sweep: run with: parallel < %s; %s\n",
                     shell_quoted(jobs_path).c_str(), shell_quoted(merge_path).c_str());
    }
    if (!write_file(d.out + "/emit.json", emit_layout_text(s, l), err))
        return usage_error(err);
    return 0;
}

} // namespace

int sweep_main(int argc, char **argv, run_command run)
{
    std::string study_path, out_dir, jobs_text, ppt_text, max_array_text;
    emit_options eo;
    std::string &emit = eo.kind;
    bool have_study = false, merge = false, force = false;
    for (int i = 2; i < argc; i++) {
        std::string value;
        bool missing = false;
        const char *arg = argv[i];
        if (take_option(argc, argv, i, "--jobs", value, missing)) {
            if (missing)
                return usage_error("--jobs needs a number");
            jobs_text = value;
        } else if (take_option(argc, argv, i, "--out", value, missing)) {
            if (missing || value.empty())
                return usage_error("--out needs a directory");
            out_dir = value;
        } else if (take_option(argc, argv, i, "--emit", value, missing)) {
            if (missing || (value != "slurm" && value != "parallel"))
                return usage_error("--emit needs 'slurm' or 'parallel'");
            emit = value;
        } else if (take_option(argc, argv, i, "--points-per-task", value, missing)) {
            if (missing)
                return usage_error("--points-per-task needs a number");
            ppt_text = value;
        } else if (take_option(argc, argv, i, "--max-array-size", value, missing)) {
            if (missing)
                return usage_error("--max-array-size needs a number");
            max_array_text = value;
        } else if (take_option(argc, argv, i, "--sbatch-option", value, missing)) {
            if (missing)
                return usage_error("--sbatch-option needs an sbatch option (--name=value)");
            const std::string problem = sbatch_option_problem(value);
            if (!problem.empty())
                return usage_error("--sbatch-option " + in_quotes(value) + " " + problem);
            eo.sbatch_options.push_back(value);
        } else if (std::strcmp(arg, "--only-missing") == 0) {
            eo.only_missing = true;
        } else if (std::strcmp(arg, "--merge") == 0) {
            merge = true;
        } else if (std::strcmp(arg, "--force") == 0) {
            force = true;
        } else if (std::strcmp(arg, "--help") == 0 || std::strcmp(arg, "-h") == 0) {
            std::fputs(USAGE, stdout);
            std::fputs(HELP, stdout);
            return 0;
        } else if (arg[0] == '-' && arg[1] != '\0') {
            return usage_error(std::string("unknown option '") + arg +
                               "' (see 'viosim sweep --help')");
        } else if (have_study) {
            return usage_error(std::string("more than one study file ('") + study_path + "', '" +
                               arg + "')");
        } else {
            study_path = arg;
            have_study = true;
        }
    }
    if (!have_study) {
        std::fputs(USAGE, stderr);
        return usage_error("no study file given");
    }
    if (merge && !emit.empty())
        return usage_error("--merge and --emit exclude each other");
    if (merge && force)
        return usage_error("--merge and --force exclude each other (--merge runs nothing)");
    if (eo.only_missing && emit.empty())
        return usage_error("--only-missing needs --emit (a sweep without --emit runs only the "
                           "missing points anyway)");
    if (eo.only_missing && force)
        return usage_error("--only-missing and --force exclude each other");
    if (emit != "slurm" && (!ppt_text.empty() || !max_array_text.empty() ||
                            !eo.sbatch_options.empty()))
        return usage_error("--points-per-task, --max-array-size and --sbatch-option need "
                           "--emit slurm");
    // Slurm's MaxArraySize is at most 4000001 (task ids up to 4000000).
    if (!ppt_text.empty() && !parse_count(ppt_text, 1000000, eo.points_per_task))
        return usage_error("--points-per-task needs a number from 1 to 1000000, got " +
                           in_quotes(ppt_text));
    if (!max_array_text.empty() && !parse_count(max_array_text, 4000000, eo.max_array_size))
        return usage_error("--max-array-size needs a number from 1 to 4000000, got " +
                           in_quotes(max_array_text));
    size_t jobs = static_cast<size_t>(std::max(1L, sysconf(_SC_NPROCESSORS_ONLN)));
    if (!jobs_text.empty() && !parse_count(jobs_text, 4096, jobs))
        return usage_error("--jobs needs a number from 1 to 4096, got '" + jobs_text + "'");

    // Everything is parsed and checked before anything is created or run.
    study s;
    try {
        load_study(s, study_path);
    } catch (const study_error &e) {
        return usage_error(e.message);
    }
    const std::string exe = self_exe();
    if (exe.empty())
        return usage_error("cannot find the viosim binary (/proc/self/exe)");
    if (out_dir.empty())
        out_dir = (fs::path("out") / fs::path(study_path).stem()).string();

    std::error_code ec;
    sweep_dirs d;
    d.out = fs::absolute(out_dir, ec).lexically_normal().string();
    while (d.out.size() > 1 && d.out.back() == '/')
        d.out.pop_back();
    d.base_json = d.out + "/base.json";
    if (!emit.empty()) {
        const std::string problem = emit_line_break(s, d, exe);
        if (!problem.empty())
            return usage_error("cannot emit: " + problem +
                               ": jobs.txt holds one command a line (GNU parallel and the Slurm tasks read it so)");
    }
    fs::create_directories(d.out + "/points", ec);
    if (ec)
        return usage_error("cannot create output directory '" + out_dir + "': " + ec.message());
    if (access(d.out.c_str(), W_OK) != 0)
        return usage_error("output directory '" + out_dir + "' is not writable");

    std::string err;
    const std::string study_abs = fs::absolute(study_path).lexically_normal().string();
    const std::string command = "viosim sweep " + shell_quoted(study_abs) + " --out " +
                                shell_quoted(d.out) + "\n";
    if (!write_file(d.base_json, stats_json_text(s.base), err) ||
        !write_file(d.out + "/study.json", study_json_text(s), err) ||
        !write_file(d.out + "/study-file.json", slurp(study_path), err) ||
        !write_file(d.out + "/command.txt", command, err))
        return usage_error(err);

    const size_t n = s.points.size();
    std::vector<result_row> rows(n);
    std::set<std::string> warned;

    if (merge) {
        if (!adopt_emitted_results(s, d, err))
            return usage_error(err);
        long not_ok = write_results(s, d, rows, warned, err);
        if (not_ok < 0)
            return usage_error(err);
        report_untrusted(rows, "counted as missing");
        report_not_ok(s, d, rows, study_abs);
        std::fprintf(stderr, "viosim sweep: merged %zu points (%ld not ok) into %s/results.csv\n", n,
                     not_ok, d.out.c_str());
        return not_ok ? EXIT_POINT_FAILED : 0;
    }

    if (!emit.empty())
        return emit_jobs(s, d, exe, study_abs, eo, force, rows, warned);

    // Which points are already done with the same settings.
    std::vector<size_t> pending;
    size_t skipped = 0;
    for (size_t i = 0; i < n; i++) {
        if (force) {
            pending.push_back(i);
            continue;
        }
        result_row row = make_row(s, d, i, "", warned);
        if (row.ok) {
            rows[i] = row;
            skipped++;
        } else {
            pending.push_back(i);
            rows[i].untrusted = row.untrusted;
        }
    }
    report_untrusted(rows, "rerunning them");

    progress prog;
    prog.tty = isatty(STDERR_FILENO) != 0;
    prog.total = n;
    prog.done = skipped;
    prog.to_run = pending.size();
    if (skipped)
        std::fprintf(stderr, "viosim sweep: %zu points, skipped %zu already done\n", n, skipped);
    if (force)
        std::fprintf(stderr, "viosim sweep: --force: running all %zu points again\n", n);

    if (prog.tty && !pending.empty())
        prog.report("");
    std::map<pid_t, size_t> running;
    size_t next = 0;
    while (next < pending.size() || !running.empty()) {
        while (next < pending.size() && running.size() < jobs) {
            size_t i = pending[next++];
            const std::string dir = d.point(i);
            fs::create_directories(dir, ec);
            // A stale stats.json must not pass for this point's if the run is cut short.
            std::remove((dir + "/stats.json").c_str());
            if (ec || !write_file(dir + "/point.json", point_json_text(s, i), err)) {
                rows[i] = make_row(s, d, i, "failed", warned);
                prog.done++;
                prog.failed++;
                prog.ran++;
                prog.report("point " + std::to_string(i) + " failed: " +
                            (ec ? "cannot create " + dir + ": " + ec.message() : err));
                continue;
            }
            pid_t pid = launch(point_argv(s, d, exe, i), dir + "/run.log", run);
            if (pid < 0) {
                rows[i] = make_row(s, d, i, "failed", warned);
                prog.done++;
                prog.failed++;
                prog.ran++;
                prog.report("point " + std::to_string(i) + " failed: cannot start: " +
                            std::strerror(errno));
                continue;
            }
            running.emplace(pid, i);
        }
        if (running.empty())
            continue;
        int st = 0;
        pid_t pid = waitpid(-1, &st, 0);
        if (pid < 0) {
            if (errno == EINTR)
                continue;
            std::fprintf(stderr, "viosim sweep: error: waitpid: %s\n", std::strerror(errno));
            break;
        }
        auto it = running.find(pid);
        if (it == running.end())
            continue;
        size_t i = it->second;
        running.erase(it);
        prog.done++;
        prog.ran++;
        const std::string label = "point " + std::to_string(i) + " (" + point_label(s.points[i]) + ")";
        // The row is made now, while other points still run, not in a serial tail.
        bool exited_ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
        if (!record_stats_checksum(s, d, i, err)) {
            std::fprintf(stderr, "viosim sweep: error: %s\n", err.c_str());
            exited_ok = false;
        }
        rows[i] = make_row(s, d, i, exited_ok ? "ok" : "failed", warned);
        if (exited_ok) {
            prog.report(prog.tty ? "" : label + " ok");
        } else {
            prog.failed++;
            std::string how = WIFEXITED(st) ? "exit " + std::to_string(WEXITSTATUS(st))
                                            : "signal " + std::to_string(WTERMSIG(st));
            prog.report(label + " failed (" + how + "): " + last_line(d.point(i) + "/run.log") +
                        " [log: " + d.point(i) + "/run.log]");
        }
    }
    if (prog.tty && prog.ran > 0)
        std::fputc('\n', stderr);

    long not_ok = write_results(s, d, rows, warned, err);
    if (not_ok < 0) {
        std::fprintf(stderr, "viosim sweep: error: %s\n", err.c_str());
        return EXIT_POINT_FAILED;
    }
    std::fprintf(stderr, "viosim sweep: %zu points: ran %zu, skipped %zu, failed %ld; results in %s/results.csv\n",
                 n, prog.ran, skipped, not_ok, d.out.c_str());
    return not_ok ? EXIT_POINT_FAILED : 0;
}

} // namespace viosim
