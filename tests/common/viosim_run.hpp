// viosim_run.hpp -- running the viosim binary from a Criterion test and reading its
// stats.json (header-only; shared by the platform tests).
#ifndef VIOSIM_TESTS_VIOSIM_RUN_HPP
#define VIOSIM_TESTS_VIOSIM_RUN_HPP

#include <criterion/criterion.h>
#include <jansson.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include "stats.h"

using namespace viosim; // the platform's modules and configuration (platform/)

namespace {

struct run_out {
    int status = -1;
    std::string out, err;
    json_t *stats = nullptr; // owned

    run_out() = default;
    run_out(const run_out &) = delete;
    run_out &operator=(const run_out &) = delete;
    ~run_out() { json_decref(stats); }

    double stat(const char *name) const
    {
        json_t *s = json_object_get(json_object_get(stats, "stats"), name);
        cr_assert_not_null(s, "stat %s missing", name);
        return json_number_value(json_object_get(s, "value"));
    }
    // The statistic's "better" ("higher", "lower", "neutral"), "" if it has none.
    std::string better(const char *name) const
    {
        json_t *s = json_object_get(json_object_get(stats, "stats"), name);
        cr_assert_not_null(s, "stat %s missing", name);
        const char *b = json_string_value(json_object_get(s, "better"));
        return b ? b : "";
    }
    std::string result(const char *key) const
    {
        json_t *v = json_object_get(json_object_get(stats, "result"), key);
        return json_is_string(v) ? json_string_value(v) : "";
    }
};

// Every statistic of r's stats.json says which way is better, as its keys "value",
// "unit", "better", "description" in this order; a documented one (docs/statistics.md,
// built in) as the document's better column says. Returns how many statistics it saw.
inline size_t expect_every_better(const run_out &r, const char *what)
{
    size_t n = 0;
    const char *key;
    json_t *row;
    json_object_foreach(json_object_get(r.stats, "stats"), key, row)
    {
        n++;
        std::string keys;
        const char *k;
        json_t *v;
        json_object_foreach(row, k, v)
        {
            (void)v;
            keys += std::string(keys.empty() ? "" : ",") + k;
        }
        cr_expect(keys == "value,unit,better,description", "%s: %s has keys %s", what, key,
                  keys.c_str());
        const char *b = json_string_value(json_object_get(row, "better"));
        stat_better known;
        if (stats_known_direction(key, known))
            cr_expect(b && std::strcmp(b, stat_better_name(known)) == 0,
                      "%s: %s is better %s, docs/statistics.md says %s", what, key, b ? b : "(none)",
                      stat_better_name(known));
        else
            cr_expect(b && (std::strcmp(b, "higher") == 0 || std::strcmp(b, "lower") == 0 ||
                            std::strcmp(b, "neutral") == 0),
                      "%s: %s is better %s", what, key, b ? b : "(none)");
    }
    return n;
}

inline std::string slurp(const std::string &path)
{
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

inline std::string temp_dir()
{
    char tmpl[] = "/tmp/viosim-test-XXXXXX";
    const char *d = mkdtemp(tmpl);
    cr_assert_not_null(d);
    return d;
}

// Runs `viosim run --out DIR args...`; loads DIR/stats.json when it exists.
inline void run(run_out &r, const std::vector<std::string> &args, const std::string &dir = temp_dir())
{
    const char *bin = std::getenv("VIOSIM");
    if (!bin)
        cr_skip_test("VIOSIM is not set (run through ctest)");
    std::string cmd = std::string(bin) + " run --out " + dir;
    for (const auto &a : args)
        cmd += " '" + a + "'";
    cmd += " >" + dir + "/stdout 2>" + dir + "/stderr";
    const int st = std::system(cmd.c_str());
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    r.out = slurp(dir + "/stdout");
    r.err = slurp(dir + "/stderr");
    json_error_t e;
    r.stats = json_load_file((dir + "/stats.json").c_str(), 0, &e);
}

inline void expect_clean_loopback(const run_out &r, double frames)
{
    cr_assert_eq(r.status, 0, "exit %d\nstdout:\n%s\nstderr:\n%s", r.status, r.out.c_str(),
                 r.err.c_str());
    cr_assert_not_null(r.stats);
    cr_expect_eq(r.result("driver_result"), "ok");
    cr_expect_eq(r.result("device_error"), "");
    cr_expect_eq(r.stat("driver.tx.frames"), frames);
    cr_expect_eq(r.stat("driver.rx.frames"), frames);
    cr_expect_eq(r.stat("device.tx.frames"), frames);
    cr_expect_eq(r.stat("driver.rx.bad_payload"), 0);
    cr_expect_eq(r.stat("driver.tx.bytes"), r.stat("driver.rx.bytes"));
}

} // namespace

#endif
