// test_compare.cpp -- `viosim compare` through the binary: an injected regression in a
// real sweep, directions and thresholds on hand-written stats.json files, the JUnit file
// read by an XML parser, usage errors and hostile inputs (each exit 2, naming the cause).
#include <criterion/criterion.h>
#include <jansson.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace {

struct cmd_out {
    int status = -1;
    std::string out, err;
};

std::string slurp(const std::string &path)
{
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

void spit(const std::string &path, const std::string &text) { std::ofstream(path) << text; }

std::string temp_dir()
{
    char tmpl[] = "/tmp/viosim-compare-test-XXXXXX";
    const char *d = mkdtemp(tmpl);
    cr_assert_not_null(d);
    return d;
}

std::string quoted(const std::string &s)
{
    std::string out = "'";
    for (char ch : s)
        out += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
    return out + "'";
}

const char *viosim()
{
    const char *bin = std::getenv("VIOSIM");
    if (!bin)
        cr_skip_test("VIOSIM is not set (run through ctest)");
    return bin;
}

cmd_out run(const std::string &dir, const std::vector<std::string> &args)
{
    std::string cmd = quoted(viosim());
    for (const std::string &a : args)
        cmd += " " + quoted(a);
    cmd += " >" + dir + "/stdout 2>" + dir + "/stderr";
    const int st = std::system(cmd.c_str());
    cmd_out r;
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    r.out = slurp(dir + "/stdout");
    r.err = slurp(dir + "/stderr");
    return r;
}

cmd_out compare(const std::string &dir, std::vector<std::string> args)
{
    args.insert(args.begin(), "compare");
    return run(dir, args);
}

bool has(const std::string &text, const std::string &what) { return text.find(what) != std::string::npos; }

// One statistic of a hand-written stats.json: its value as JSON text, unit, direction.
struct stat {
    std::string value, unit, better; // better "" leaves the key out
};

std::string stats_text(const std::map<std::string, stat> &stats, bool ok = true)
{
    std::string s = "{\"result\": {\"ok\": " + std::string(ok ? "true" : "false") +
                    ", \"reason\": \"\"}, \"stats\": {";
    bool first = true;
    for (const auto &kv : stats) {
        s += std::string(first ? "" : ", ") + "\"" + kv.first + "\": {\"value\": " + kv.second.value +
             ", \"unit\": \"" + kv.second.unit + "\"";
        if (!kv.second.better.empty())
            s += ", \"better\": \"" + kv.second.better + "\"";
        s += ", \"description\": \"d\"}";
        first = false;
    }
    return s + "}}\n";
}

// A sweep output directory by hand: study.json with the grid keys, and per point its
// point.json ("set") and stats.json.
void fake_sweep(const std::string &dir, const std::vector<std::string> &keys,
                const std::vector<std::vector<std::string>> &values,
                const std::vector<std::string> &stats)
{
    mkdir(dir.c_str(), 0755);
    mkdir((dir + "/points").c_str(), 0755);
    json_t *study = json_object(), *grid = json_object();
    for (const std::string &k : keys)
        json_object_set_new(grid, k.c_str(), json_array());
    json_object_set_new(study, "grid", grid);
    json_object_set_new(study, "points", json_integer(static_cast<json_int_t>(values.size())));
    char *text = json_dumps(study, 0);
    spit(dir + "/study.json", text);
    std::free(text);
    json_decref(study);
    for (size_t i = 0; i < values.size(); i++) {
        const std::string p = dir + "/points/" + std::to_string(i);
        mkdir(p.c_str(), 0755);
        json_t *point = json_object(), *set = json_object();
        for (size_t k = 0; k < keys.size(); k++)
            json_object_set_new(set, keys[k].c_str(), json_string(values[i][k].c_str()));
        json_object_set_new(point, "index", json_integer(static_cast<json_int_t>(i)));
        json_object_set_new(point, "set", set);
        text = json_dumps(point, 0);
        spit(p + "/point.json", text);
        std::free(text);
        json_decref(point);
        spit(p + "/stats.json", stats[i]);
    }
}

// Runs /usr/bin/python3 with a program on stdin-less argv; its exit status.
int python(const std::string &dir, const std::string &program, const std::string &arg)
{
    if (access("/usr/bin/python3", X_OK) != 0)
        cr_skip_test("no /usr/bin/python3 to parse the XML");
    spit(dir + "/check.py", program);
    const std::string cmd = "/usr/bin/python3 " + quoted(dir + "/check.py") + " " + quoted(arg) +
                            " >" + dir + "/py.out 2>&1";
    const int st = std::system(cmd.c_str());
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// A JUnit file as GitLab and Jenkins read it: <testsuites> and each <testsuite> with
// tests/failures/errors/skipped counts that add up, <testcase> with classname and name,
// a <failure message=...> per regression. Prints "classname|name|failed" per test case.
const char JUNIT_CHECK[] = R"PY(
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
assert root.tag == "testsuites", root.tag
for a in ("tests", "failures", "errors", "skipped"):
    assert a in root.attrib, a
totals = {"tests": 0, "failures": 0, "skipped": 0}
suites = root.findall("testsuite")
assert suites
for s in suites:
    for a in ("name", "tests", "failures", "errors", "skipped"):
        assert a in s.attrib, ("testsuite", a)
    cases = s.findall("testcase")
    assert int(s.get("tests")) == len(cases)
    assert int(s.get("failures")) == sum(1 for c in cases if c.find("failure") is not None)
    assert int(s.get("skipped")) == sum(1 for c in cases if c.find("skipped") is not None)
    assert s.get("errors") == "0"
    for c in cases:
        assert c.get("classname") is not None and c.get("name")
        f = c.find("failure")
        if f is not None:
            assert f.get("message"), "failure without a message"
        print(f"{c.get('classname')}|{c.get('name')}|{'failed' if f is not None else 'passed'}")
    totals["tests"] += len(cases)
    totals["failures"] += int(s.get("failures"))
    totals["skipped"] += int(s.get("skipped"))
for k, v in totals.items():
    assert int(root.get(k)) == v, (k, root.get(k), v)
)PY";

const char SWEEP_STUDY[] = R"({
  "base": {"driver": {"frames_count": 300}, "device": {"packet_cycles": %d}},
  "grid": {"driver.frame_sizes_bytes": [64, 1500]},
  "metrics": ["throughput.tx_mpps", "latency.p50_ns"]
})";

std::string sweep_study(const std::string &dir, const char *name, int packet_cycles)
{
    char text[512];
    std::snprintf(text, sizeof text, SWEEP_STUDY, packet_cycles);
    const std::string path = dir + "/" + name + ".json";
    spit(path, text);
    return path;
}

void sweep(const std::string &dir, const std::string &study, const std::string &out)
{
    cmd_out r = run(dir, {"sweep", study, "--out", out, "--jobs", "2"});
    cr_assert_eq(r.status, 0, "sweep %s: exit %d\n%s", study.c_str(), r.status, r.err.c_str());
}

// Whether every statistic row of a stats.json declares a direction ("better").
bool declares_directions(const std::string &stats_path)
{
    json_error_t e;
    json_t *doc = json_load_file(stats_path.c_str(), 0, &e);
    cr_assert_not_null(doc, "%s: %s", stats_path.c_str(), e.text);
    const json_t *stats = json_object_get(doc, "stats");
    const char *k;
    json_t *v;
    bool all = json_object_size(stats) > 0;
    json_object_foreach(const_cast<json_t *>(stats), k, v) all = all && json_object_get(v, "better");
    json_decref(doc);
    return all;
}

} // namespace

// The contract of issue 14: a tiny sweep run twice with the same study is unchanged (exit
// 0); run with device.packet_cycles doubled in the study's base it regresses (exit 1),
// with the slower statistics named first and a JUnit failure for each.
Test(platform_compare, injected_regression_and_unchanged_pair)
{
    const std::string dir = temp_dir();
    // Slow device processing (200 cycles a frame) so that doubling it shows.
    const std::string same = sweep_study(dir, "same", 200), slow = sweep_study(dir, "slow", 400);
    sweep(dir, same, dir + "/base");
    sweep(dir, same, dir + "/again");
    sweep(dir, slow, dir + "/slow");

    cmd_out r = compare(dir, {dir + "/base", dir + "/again", "--junit", dir + "/same.xml"});
    cr_assert_eq(r.status, 0, "exit %d\n%s\n%s", r.status, r.out.c_str(), r.err.c_str());
    cr_expect(has(r.out, "0 regressed, 0 improved, 0 changed"), "%s", r.out.c_str());
    cr_expect(has(r.out, "deterministic"), "%s", r.out.c_str());
    cr_expect_eq(python(dir, JUNIT_CHECK, dir + "/same.xml"), 0, "%s", slurp(dir + "/py.out").c_str());
    cr_expect(!has(slurp(dir + "/py.out"), "|failed"));

    // A signed threshold says which way is worse even where the files record no direction.
    r = compare(dir, {dir + "/base", dir + "/slow", "--threshold", "throughput.tx_mpps=-1%",
                      "--junit", dir + "/slow.xml", "--json", dir + "/slow.json", "--markdown",
                      dir + "/slow.md"});
    cr_assert_eq(r.status, 1, "exit %d\n%s\n%s", r.status, r.out.c_str(), r.err.c_str());
    cr_expect_eq(r.out.rfind("regressions (", 0), 0u, "regressions first:\n%s", r.out.c_str());
    const std::string regressions = r.out.substr(0, r.out.find("\n\n"));
    cr_expect(has(regressions, "throughput.tx_mpps"), "%s", r.out.c_str());
    cr_expect(!has(regressions, "driver.tx.frames"), "%s", r.out.c_str());
    cr_expect_eq(python(dir, JUNIT_CHECK, dir + "/slow.xml"), 0, "%s", slurp(dir + "/py.out").c_str());
    const std::string cases = slurp(dir + "/py.out");
    cr_expect(has(cases, "driver.frame_sizes_bytes=64|throughput.tx_mpps|failed"), "%s", cases.c_str());
    cr_expect(has(cases, "driver.frame_sizes_bytes=1500|driver.tx.frames|passed"), "%s", cases.c_str());
    cr_expect(has(slurp(dir + "/slow.md"), "| **regressed** | driver.frame\\_sizes\\_bytes=64 | "
                                           "throughput.tx\\_mpps |"),
              "%s", slurp(dir + "/slow.md").c_str());
    json_error_t e;
    json_t *doc = json_load_file((dir + "/slow.json").c_str(), 0, &e);
    cr_assert_not_null(doc, "%s", e.text);
    const json_t *summary = json_object_get(doc, "summary");
    cr_expect_eq(json_integer_value(json_object_get(summary, "exit_status")), 1);
    cr_expect_geq(json_integer_value(json_object_get(summary, "regressed")), 1);
    const json_t *first = json_array_get(json_object_get(doc, "rows"), 0);
    cr_expect_str_eq(json_string_value(json_object_get(first, "status")), "regressed");
    json_decref(doc);

    // With the directions stats.json declares, no threshold option is needed; files that
    // declare none are compared as neutral, and the report says so.
    r = compare(dir, {dir + "/base", dir + "/slow"});
    if (declares_directions(dir + "/base/points/0/stats.json")) {
        cr_expect_eq(r.status, 1, "exit %d\n%s\n%s", r.status, r.out.c_str(), r.err.c_str());
    } else {
        cr_expect_eq(r.status, 0, "exit %d\n%s\n%s", r.status, r.out.c_str(), r.err.c_str());
        cr_expect(has(r.out, "declare no direction"), "%s", r.out.c_str());
    }
}

// Directions and default thresholds on hand-written files: a lower-better latency that
// rises 2 % regresses (default 1 %), one that rises 0.5 % is a change within threshold; a
// whole count of errors that rises by one regresses (default 0); a neutral count never
// regresses; a higher-better rate that rises is an improvement.
Test(platform_compare, directions_and_default_thresholds)
{
    const std::string dir = temp_dir();
    spit(dir + "/a.json", stats_text({{"latency.p50_ns", {"1000.0", "ns", "lower"}},
                                      {"latency.p99_ns", {"1000.0", "ns", "lower"}},
                                      {"device.rx.dropped_too_big", {"0", "frames", "lower"}},
                                      {"driver.tx.frames", {"100", "frames", "neutral"}},
                                      {"throughput.tx_mpps", {"2.0", "Mpps", "higher"}}}));
    spit(dir + "/b.json", stats_text({{"latency.p50_ns", {"1020.0", "ns", "lower"}},
                                      {"latency.p99_ns", {"1005.0", "ns", "lower"}},
                                      {"device.rx.dropped_too_big", {"1", "frames", "lower"}},
                                      {"driver.tx.frames", {"200", "frames", "neutral"}},
                                      {"throughput.tx_mpps", {"3.0", "Mpps", "higher"}}}));
    cmd_out r = compare(dir, {dir + "/a.json", dir + "/b.json", "--json", dir + "/out.json"});
    cr_assert_eq(r.status, 1, "%s%s", r.out.c_str(), r.err.c_str());
    json_error_t e;
    json_t *doc = json_load_file((dir + "/out.json").c_str(), 0, &e);
    cr_assert_not_null(doc, "%s", e.text);
    std::map<std::string, std::string> status;
    size_t i;
    json_t *row;
    json_array_foreach(json_object_get(doc, "rows"), i, row)
        status[json_string_value(json_object_get(row, "statistic"))] =
            json_string_value(json_object_get(row, "status"));
    cr_expect_eq(status["latency.p50_ns"], "regressed");
    cr_expect_eq(status["latency.p99_ns"], "changed");
    cr_expect_eq(status["device.rx.dropped_too_big"], "regressed");
    cr_expect_eq(status["driver.tx.frames"], "changed");
    cr_expect_eq(status["throughput.tx_mpps"], "improved");
    cr_expect_eq(status["result.ok"], "unchanged");
    json_decref(doc);
    // Exactly at the threshold is not beyond it; just past it is.
    r = compare(dir, {dir + "/a.json", dir + "/b.json", "--threshold", "latency.p50_ns=2%",
                      "--threshold", "device.rx.dropped_too_big=1"});
    cr_expect_eq(r.status, 0, "%s%s", r.out.c_str(), r.err.c_str());
    r = compare(dir, {dir + "/a.json", dir + "/b.json", "--threshold", "latency.p50_ns=+19",
                      "--threshold", "device.rx.dropped_too_big=1"});
    cr_expect_eq(r.status, 1, "%s%s", r.out.c_str(), r.err.c_str());
    // --metrics: only those (and the run's outcome); a metric one side lacks is named.
    r = compare(dir, {dir + "/a.json", dir + "/b.json", "--metrics", "latency.p99_ns,throughput.tx_mpps"});
    cr_expect_eq(r.status, 0, "%s%s", r.out.c_str(), r.err.c_str());
    cr_expect(has(r.out, "1 point, 2 statistics, 3 comparisons: 0 regressed, 1 improved, 1 changed"),
              "%s", r.out.c_str());
    spit(dir + "/fewer.json", stats_text({{"latency.p50_ns", {"1000.0", "ns", "lower"}}}));
    r = compare(dir, {dir + "/a.json", dir + "/fewer.json", "--metrics", "latency.p99_ns"});
    cr_expect_eq(r.status, 2, "%s%s", r.out.c_str(), r.err.c_str());
    cr_expect(has(r.err, "'latency.p99_ns' is not in CUR point run (" + dir + "/fewer.json)"), "%s",
              r.err.c_str());
    // Without --metrics, statistics on one side only are listed, not compared.
    r = compare(dir, {dir + "/a.json", dir + "/fewer.json"});
    cr_expect_eq(r.status, 0, "%s%s", r.out.c_str(), r.err.c_str());
    cr_expect(has(r.out, "4 statistics only in BASE, not compared: run: device.rx.dropped_too_big"),
              "%s", r.out.c_str());

    // A run that worked in BASE and failed in CUR is a regression of result.ok.
    spit(dir + "/c.json", stats_text({{"latency.p50_ns", {"1000.0", "ns", "lower"}}}, true));
    spit(dir + "/d.json", stats_text({{"latency.p50_ns", {"1000.0", "ns", "lower"}}}, false));
    r = compare(dir, {dir + "/c.json", dir + "/d.json"});
    cr_expect_eq(r.status, 1, "%s%s", r.out.c_str(), r.err.c_str());
    cr_expect(has(r.out, "result.ok"), "%s", r.out.c_str());
}

// CUR's declared direction wins over BASE's; without either, a statistic viosim knows is
// judged by its table, another is neutral, and the report says so; values that look
// equal at 4 significant digits are shown exactly.
Test(platform_compare, direction_source_and_exact_values)
{
    const std::string dir = temp_dir();
    spit(dir + "/a.json", stats_text({{"x.time_ns", {"1.00001", "ns", "higher"}},
                                      {"y.time_ns", {"5.0", "ns", ""}}}));
    spit(dir + "/b.json", stats_text({{"x.time_ns", {"1.5", "ns", "lower"}},
                                      {"y.time_ns", {"9.0", "ns", ""}}}));
    cmd_out r = compare(dir, {dir + "/a.json", dir + "/b.json"});
    cr_expect_eq(r.status, 1, "CUR says lower is better:\n%s%s", r.out.c_str(), r.err.c_str());
    cr_expect(has(r.out, "declare no direction"), "%s", r.out.c_str());
    cr_expect(has(r.out, "neutral (not recorded)"), "%s", r.out.c_str());

    // A file that declares no direction for a statistic viosim knows (written before
    // stats.json said "better") is judged by docs/statistics.md's table.
    spit(dir + "/old-a.json", stats_text({{"latency.p50_ns", {"1000.0", "ns", ""}}}));
    spit(dir + "/old-b.json", stats_text({{"latency.p50_ns", {"1020.0", "ns", ""}}}));
    r = compare(dir, {dir + "/old-a.json", dir + "/old-b.json"});
    cr_expect_eq(r.status, 1, "%s%s", r.out.c_str(), r.err.c_str());
    cr_expect(has(r.out, "lower (table)"), "%s", r.out.c_str());
    cr_expect(has(r.out, "judged in the direction docs/statistics.md gives them"), "%s", r.out.c_str());

    spit(dir + "/c.json", stats_text({{"x.time_ns", {"1.00001", "ns", "lower"}}}));
    spit(dir + "/d.json", stats_text({{"x.time_ns", {"1.00002", "ns", "lower"}}}));
    r = compare(dir, {dir + "/c.json", dir + "/d.json"});
    cr_expect_eq(r.status, 0, "%s%s", r.out.c_str(), r.err.c_str());
    cr_expect(has(r.out, "1.00001") && has(r.out, "1.00002"), "exact values:\n%s", r.out.c_str());
}

// Points are joined on their grid values, not their index: the same points in another
// order match; a point on one side only is a usage error naming it.
Test(platform_compare, joins_points_on_grid_values)
{
    const std::string dir = temp_dir();
    const std::string s1 = stats_text({{"latency.p50_ns", {"100.0", "ns", "lower"}}}),
                      s2 = stats_text({{"latency.p50_ns", {"200.0", "ns", "lower"}}});
    fake_sweep(dir + "/a", {"pcie.lanes"}, {{"4"}, {"8"}}, {s1, s2});
    fake_sweep(dir + "/b", {"pcie.lanes"}, {{"8"}, {"4"}}, {s2, s1});
    cmd_out r = compare(dir, {dir + "/a", dir + "/b"});
    cr_expect_eq(r.status, 0, "%s%s", r.out.c_str(), r.err.c_str());
    cr_expect(has(r.out, "2 points"), "%s", r.out.c_str());

    fake_sweep(dir + "/c", {"pcie.lanes"}, {{"4"}, {"16"}}, {s1, s2});
    r = compare(dir, {dir + "/a", dir + "/c"});
    cr_expect_eq(r.status, 2, "%s%s", r.out.c_str(), r.err.c_str());
    cr_expect(has(r.err, "only in BASE: point 1 (pcie.lanes=8)"), "%s", r.err.c_str());
    cr_expect(has(r.err, "only in CUR: point 1 (pcie.lanes=16)"), "%s", r.err.c_str());

    fake_sweep(dir + "/d", {"pcie.gen"}, {{"4"}, {"8"}}, {s1, s2});
    r = compare(dir, {dir + "/a", dir + "/d"});
    cr_expect_eq(r.status, 2);
    cr_expect(has(r.err, "different grid keys"), "%s", r.err.c_str());

    r = compare(dir, {dir + "/a", dir + "/a/points/0/stats.json"});
    cr_expect_eq(r.status, 2);
    cr_expect(has(r.err, "compare two sweeps or two stats.json files"), "%s", r.err.c_str());
}

// Grid values are hostile text: XML's special characters and control characters in a
// point's label still give a JUnit file that an XML parser reads.
Test(platform_compare, junit_escapes_hostile_labels)
{
    const std::string dir = temp_dir();
    const std::string a = stats_text({{"latency.p50_ns", {"100.0", "ns", "lower"}}}),
                      b = stats_text({{"latency.p50_ns", {"200.0", "ns", "lower"}}});
    const std::string nasty = "<a&b>\"q'\x01]]>";
    fake_sweep(dir + "/a", {"driver.name"}, {{nasty}}, {a});
    fake_sweep(dir + "/b", {"driver.name"}, {{nasty}}, {b});
    cmd_out r = compare(dir, {dir + "/a", dir + "/b", "--junit", dir + "/j.xml"});
    cr_assert_eq(r.status, 1, "%s%s", r.out.c_str(), r.err.c_str());
    cr_expect_eq(python(dir, JUNIT_CHECK, dir + "/j.xml"), 0, "%s", slurp(dir + "/py.out").c_str());
    cr_expect(has(slurp(dir + "/py.out"), "driver.name=<a&b>\"q'\\x01]]>|latency.p50_ns|failed"),
              "%s", slurp(dir + "/py.out").c_str());
}

// Usage errors: exit 2 and one line naming the cause.
Test(platform_compare, usage_errors)
{
    const std::string dir = temp_dir();
    spit(dir + "/a.json", stats_text({{"throughput.tx_mpps", {"2.0", "Mpps", "higher"}},
                                      {"driver.tx.frames", {"10", "frames", "neutral"}}}));
    struct {
        std::vector<std::string> args;
        const char *says;
    } cases[] = {
        {{dir + "/a.json"}, "needs BASE and CUR"},
        {{dir + "/a.json", dir + "/missing"}, "CUR '"},
        {{dir + "/a.json", dir + "/a.json", "--metrics", "throughput.tx_mpp"},
         "unknown metric 'throughput.tx_mpp'"},
        {{dir + "/a.json", dir + "/a.json", "--metrics", "throughput.tx_mpp"},
         "did you mean 'throughput.tx_mpps'?"},
        {{dir + "/a.json", dir + "/a.json", "--threshold", "throughput.tx_mpps=fast"}, "bad value 'fast'"},
        {{dir + "/a.json", dir + "/a.json", "--threshold", "throughput.tx_mpps=2%%"}, "bad value '2%%'"},
        {{dir + "/a.json", dir + "/a.json", "--threshold", "throughput.tx_mpps=-"}, "bad value '-'"},
        {{dir + "/a.json", dir + "/a.json", "--threshold", "throughput.tx_mpps=nan"}, "bad value 'nan'"},
        {{dir + "/a.json", dir + "/a.json", "--threshold", "throughput.tx_mpps"}, "needs NAME=VALUE"},
        {{dir + "/a.json", dir + "/a.json", "--threshold", "throughput.tx_mps=2%"},
         "did you mean 'throughput.tx_mpps'?"},
        {{dir + "/a.json", dir + "/a.json", "--threshold", "throughput.tx_mpps=+2%"},
         "higher-better, so it gets worse by falling: write -2%"},
        {{dir + "/a.json", dir + "/a.json", "--threshold", "driver.tx.frames=2%"}, "is neutral"},
        {{dir + "/a.json", dir + "/a.json", "--bogus"}, "unknown option '--bogus'"},
        {{dir + "/a.json", dir + "/a.json", "--junit", dir + "/no/such/dir/j.xml"}, "--junit: cannot write"},
    };
    for (auto &c : cases) {
        cmd_out r = compare(dir, c.args);
        cr_expect_eq(r.status, 2, "%s: exit %d\n%s", c.says, r.status, r.err.c_str());
        cr_expect(has(r.err, c.says), "expected '%s' in: %s", c.says, r.err.c_str());
        cr_expect(r.err.find('\n') == r.err.size() - 1 || has(r.err, "usage:"), "one line: %s",
                  r.err.c_str());
    }
    cmd_out r = compare(dir, {dir + "/missing", dir + "/a.json"});
    cr_expect_eq(r.status, 2);
    cr_expect(has(r.err, "BASE '" + dir + "/missing': No such file or directory"), "%s", r.err.c_str());
    mkdir((dir + "/empty").c_str(), 0755);
    r = compare(dir, {dir + "/empty", dir + "/empty"});
    cr_expect_eq(r.status, 2);
    cr_expect(has(r.err, "without study.json"), "%s", r.err.c_str());
}

// Hostile files: malformed JSON, wrong types, a thresholds file that is not what it
// should be. Each ends in exit 2 naming the file (and the statistic or key).
Test(platform_compare, hostile_inputs)
{
    const std::string dir = temp_dir();
    spit(dir + "/good.json", stats_text({{"throughput.tx_mpps", {"2.0", "Mpps", "higher"}}}));
    struct {
        const char *name, *text, *says;
    } files[] = {
        {"truncated.json", "{\"stats\": {\"a\": {\"value\": 1", "JSON syntax error"},
        {"array.json", "[1, 2]", "expected a JSON object"},
        {"nostats.json", "{\"result\": {}}", "no \"stats\" object"},
        {"string_value.json", "{\"stats\": {\"throughput.tx_mpps\": {\"value\": \"fast\", \"unit\": \"Mpps\"}}}",
         "statistic 'throughput.tx_mpps': \"value\" must be a number or null"},
        {"row_number.json", "{\"stats\": {\"x\": 3}}", "statistic 'x': expected an object"},
        {"unit_missing.json", "{\"stats\": {\"x\": {\"value\": 3}}}", "\"unit\" must be a string"},
        {"bad_better.json", "{\"stats\": {\"x\": {\"value\": 3, \"unit\": \"ns\", \"better\": \"up\"}}}",
         "\"better\" must be"},
        {"bad_ok.json", "{\"result\": {\"ok\": 1}, \"stats\": {}}", "\"ok\" must be true or false"},
        {"duplicate.json", "{\"stats\": {}, \"stats\": {}}", "duplicate"},
        {"nul.json", "{\"stats\": {\"a\\u0000b\": {\"value\": 1, \"unit\": \"ns\"}}}", "nul.json"},
    };
    for (auto &f : files) {
        const std::string path = dir + "/" + f.name;
        spit(path, f.text);
        cmd_out r = compare(dir, {dir + "/good.json", path});
        cr_expect_eq(r.status, 2, "%s: exit %d\n%s", f.name, r.status, r.err.c_str());
        cr_expect(has(r.err, path) || has(r.err, f.name), "%s: names the file: %s", f.name, r.err.c_str());
        cr_expect(has(r.err, f.says), "%s: expected '%s' in: %s", f.name, f.says, r.err.c_str());
    }
    struct {
        const char *text, *says;
    } thresholds[] = {
        {"[\"2%\"]", "expected a JSON object"},
        {"{\"throughput.tx_mpps\": true}", "threshold 'throughput.tx_mpps': expected a string"},
        {"{\"throughput.tx_mpps\": {\"x\": 1}}", "threshold 'throughput.tx_mpps': expected a string"},
        {"{\"throughput.tx_mpps\": \"lots\"}", "threshold 'throughput.tx_mpps': bad value 'lots'"},
        {"{\"throughput.tx_mpps\": -1e999}", "JSON syntax error"},
        {"{\"nope\": \"2%\"}", "unknown metric 'nope'"},
        {"{\"throughput.tx_mpps\": \"2%\"", "JSON syntax error"},
    };
    for (auto &t : thresholds) {
        spit(dir + "/th.json", t.text);
        cmd_out r = compare(dir, {dir + "/good.json", dir + "/good.json", "--thresholds", dir + "/th.json"});
        cr_expect_eq(r.status, 2, "%s: exit %d\n%s", t.text, r.status, r.err.c_str());
        cr_expect(has(r.err, dir + "/th.json"), "names the file: %s", r.err.c_str());
        cr_expect(has(r.err, t.says), "expected '%s' in: %s", t.says, r.err.c_str());
    }
    // A number and a string from the file are both thresholds; --threshold wins.
    spit(dir + "/th.json", "{\"throughput.tx_mpps\": \"-5%\"}");
    spit(dir + "/worse.json", stats_text({{"throughput.tx_mpps", {"1.92", "Mpps", "higher"}}}));
    cmd_out r = compare(dir, {dir + "/good.json", dir + "/worse.json", "--thresholds", dir + "/th.json"});
    cr_expect_eq(r.status, 0, "%s%s", r.out.c_str(), r.err.c_str());
    r = compare(dir, {dir + "/good.json", dir + "/worse.json", "--thresholds", dir + "/th.json",
                      "--threshold", "throughput.tx_mpps=0.05"});
    cr_expect_eq(r.status, 1, "%s%s", r.out.c_str(), r.err.c_str());

    // Sweep directories with broken parts.
    const std::string s = stats_text({{"latency.p50_ns", {"100.0", "ns", "lower"}}});
    fake_sweep(dir + "/sw", {"pcie.lanes"}, {{"4"}, {"8"}}, {s, s});
    fake_sweep(dir + "/sw2", {"pcie.lanes"}, {{"4"}, {"8"}}, {s, s});
    std::remove((dir + "/sw2/points/1/stats.json").c_str());
    r = compare(dir, {dir + "/sw", dir + "/sw2"});
    cr_expect_eq(r.status, 2);
    cr_expect(has(r.err, "point 1 has no stats.json"), "%s", r.err.c_str());
    spit(dir + "/sw2/points/1/stats.json", s);
    spit(dir + "/sw2/points/1/point.json", "{\"index\": 1, \"set\": {\"pcie.lanes\": 8}}");
    r = compare(dir, {dir + "/sw", dir + "/sw2"});
    cr_expect_eq(r.status, 2);
    cr_expect(has(r.err, dir + "/sw2/points/1/point.json") && has(r.err, "no value (a string)"), "%s",
              r.err.c_str());
    spit(dir + "/sw2/study.json", "{\"grid\": {\"pcie.lanes\": []}, \"points\": 100000000000}");
    r = compare(dir, {dir + "/sw", dir + "/sw2"});
    cr_expect_eq(r.status, 2);
    cr_expect(has(r.err, "\"points\" must be a number of points"), "%s", r.err.c_str());
}

// --html DIR: compare.json and index.html with the verdict, the regression's row and a
// before/after plot (a line per build: base and current) of the statistic that moved.
Test(platform_compare, html_page)
{
    const std::string dir = temp_dir();
    if (access("/usr/bin/python3", X_OK) != 0)
        cr_skip_test("no /usr/bin/python3 to draw the page");
    const std::string a1 = stats_text({{"latency.p50_ns", {"100.0", "ns", "lower"}}}),
                      a2 = stats_text({{"latency.p50_ns", {"150.0", "ns", "lower"}}}),
                      b2 = stats_text({{"latency.p50_ns", {"300.0", "ns", "lower"}}});
    fake_sweep(dir + "/a", {"pcie.lanes"}, {{"4"}, {"8"}}, {a1, a2});
    fake_sweep(dir + "/b", {"pcie.lanes"}, {{"4"}, {"8"}}, {a1, b2});
    cmd_out r = compare(dir, {dir + "/a", dir + "/b", "--html", dir + "/page"});
    cr_assert_eq(r.status, 1, "%s%s", r.out.c_str(), r.err.c_str());
    const std::string page = slurp(dir + "/page/index.html");
    cr_expect(has(page, "viosim compare: 1 regressed"), "%s", page.c_str());
    cr_expect(has(page, "<td class=\"regressed\">regressed</td>"), "%s", page.c_str());
    cr_expect(has(page, "<td>+100%</td>") || has(page, "+100%"), "%s", page.c_str());
    cr_expect(has(page, "id=\"viosim-compare-1-panel-1-series-1\""), "base line");
    cr_expect(has(page, "id=\"viosim-compare-1-panel-1-series-2\""), "current line");
    cr_expect(!has(page, "id=\"viosim-compare-2-"), "only the statistic that moved is drawn");
    json_error_t e;
    json_t *doc = json_load_file((dir + "/page/compare.json").c_str(), 0, &e);
    cr_expect_not_null(doc, "%s", e.text);
    json_decref(doc);
}
