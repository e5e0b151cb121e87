// viosim_run.hpp -- running the viosim binary from a Criterion test and reading its
// stats.json (header-only; shared by the platform tests).
#ifndef VIOSIM_TESTS_VIOSIM_RUN_HPP
#define VIOSIM_TESTS_VIOSIM_RUN_HPP

#include <criterion/criterion.h>
#include <jansson.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

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
    std::string result(const char *key) const
    {
        json_t *v = json_object_get(json_object_get(stats, "result"), key);
        return json_is_string(v) ? json_string_value(v) : "";
    }
};

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
