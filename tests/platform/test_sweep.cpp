// test_sweep.cpp -- `viosim sweep` through the binary: grid expansion (lists, ranges,
// zipped keys), up-front validation, failed points, resuming, cluster emission, merging.
#include <criterion/criterion.h>
#include <jansson.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <utility>
#include <vector>

#include "stats.h"

using namespace viosim; // the platform's modules and configuration (platform/)

namespace {

struct sweep_out {
    int status = -1;
    std::string err;
    std::vector<std::string> rows; // results.csv lines, header first
};

std::string slurp(const std::string &path)
{
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

std::vector<std::string> lines(const std::string &text)
{
    std::vector<std::string> out;
    std::stringstream ss(text);
    std::string line;
    while (std::getline(ss, line))
        out.push_back(line);
    return out;
}

std::string temp_dir()
{
    char tmpl[] = "/tmp/viosim-sweep-test-XXXXXX";
    const char *d = mkdtemp(tmpl);
    cr_assert_not_null(d);
    return d;
}

// Writes DIR/study.json with the given text; returns its path.
std::string write_study(const std::string &dir, const std::string &json)
{
    std::string path = dir + "/study.json.in";
    std::ofstream(path) << json;
    return path;
}

// Quoting for a POSIX shell command line.
std::string sh_quoted(const std::string &s)
{
    std::string out = "'";
    for (char ch : s)
        out += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
    return out + "'";
}

// Runs `viosim sweep STUDY --out DIR/out --jobs 2 args...`.
void sweep(sweep_out &r, const std::string &dir, const std::string &study,
           const std::vector<std::string> &args = {})
{
    const char *bin = std::getenv("VIOSIM");
    if (!bin)
        cr_skip_test("VIOSIM is not set (run through ctest)");
    std::string cmd = std::string(bin) + " sweep '" + study + "' --out " + dir + "/out --jobs 2";
    for (const auto &a : args)
        cmd += " " + sh_quoted(a);
    cmd += " >" + dir + "/stdout 2>" + dir + "/stderr";
    const int st = std::system(cmd.c_str());
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    r.err = slurp(dir + "/stderr");
    r.rows = lines(slurp(dir + "/out/results.csv"));
}

bool exists(const std::string &path)
{
    struct stat st;
    return stat(path.c_str(), &st) == 0;
}

const char SMALL_GRID[] = R"({
  "base": {"driver": {"frames_count": 50}},
  "grid": {"driver.frame_sizes_bytes": [64, 1500], "pcie.lanes": [4, 8]},
  "metrics": ["throughput.tx_mpps", "driver.tx.frames"]
})";

} // namespace

// A 2x2 grid: four rows in point order (last key fastest) with the metrics; a rerun
// skips every point and gives the same bytes; --merge rebuilds the same csv.
Test(platform_sweep, grid_runs_resumes_and_merges)
{
    const std::string dir = temp_dir();
    sweep_out r;
    sweep(r, dir, write_study(dir, SMALL_GRID));
    cr_assert_eq(r.status, 0, "exit %d\n%s", r.status, r.err.c_str());
    cr_assert_eq(r.rows.size(), 5u, "%s", r.err.c_str());
    cr_expect_eq(r.rows[0], "index,driver.frame_sizes_bytes,pcie.lanes,status,"
                            "throughput.tx_mpps,driver.tx.frames");
    const char *prefixes[] = {"0,64,4,ok,", "1,64,8,ok,", "2,1500,4,ok,", "3,1500,8,ok,"};
    for (size_t i = 0; i < 4; i++) {
        cr_expect_eq(r.rows[i + 1].rfind(prefixes[i], 0), 0u, "row %zu: %s", i,
                     r.rows[i + 1].c_str());
        cr_expect(r.rows[i + 1].size() > 4 && r.rows[i + 1].substr(r.rows[i + 1].size() - 3) == ",50",
                  "row %zu: %s", i, r.rows[i + 1].c_str());
    }
    cr_expect(exists(dir + "/out/points/3/stats.json"));
    cr_expect(exists(dir + "/out/points/3/point.json"));
    cr_expect(exists(dir + "/out/study.json"));
    cr_expect(exists(dir + "/out/command.txt"));
    const std::string csv = slurp(dir + "/out/results.csv");

    sweep_out again;
    sweep(again, dir, write_study(dir, SMALL_GRID));
    cr_assert_eq(again.status, 0, "%s", again.err.c_str());
    cr_expect_neq(again.err.find("skipped 4"), std::string::npos, "%s", again.err.c_str());
    cr_expect_neq(again.err.find("ran 0"), std::string::npos, "%s", again.err.c_str());
    cr_expect_eq(slurp(dir + "/out/results.csv"), csv);

    std::remove((dir + "/out/results.csv").c_str());
    sweep_out merged;
    sweep(merged, dir, write_study(dir, SMALL_GRID), {"--merge"});
    cr_assert_eq(merged.status, 0, "%s", merged.err.c_str());
    cr_expect_eq(slurp(dir + "/out/results.csv"), csv);

    // A changed value is a different point: only it runs again.
    std::string changed = SMALL_GRID;
    changed.replace(changed.find("[4, 8]"), 6, "[4, 2]");
    sweep_out rerun;
    sweep(rerun, dir, write_study(dir, changed));
    cr_assert_eq(rerun.status, 0, "%s", rerun.err.c_str());
    cr_expect_neq(rerun.err.find("ran 2, skipped 2"), std::string::npos, "%s", rerun.err.c_str());
}

// A point runs in a child forked from the sweep, not a new process: its stats.json must
// be the bytes `viosim run` gives for the same base config and settings.
Test(platform_sweep, point_matches_a_standalone_run)
{
    const std::string dir = temp_dir();
    sweep_out r;
    sweep(r, dir, write_study(dir, SMALL_GRID));
    cr_assert_eq(r.status, 0, "exit %d\n%s", r.status, r.err.c_str());
    const std::string cmd = std::string(std::getenv("VIOSIM")) + " run " + dir +
                            "/out/base.json --set driver.frame_sizes_bytes=1500 --set pcie.lanes=8 --out " +
                            dir + "/alone >/dev/null 2>&1";
    cr_assert_eq(std::system(cmd.c_str()), 0);
    const std::string alone = slurp(dir + "/alone/stats.json");
    cr_assert(!alone.empty());
    cr_expect(alone == slurp(dir + "/out/points/3/stats.json"), "point 3 differs from viosim run");
}

// Zipped keys form one axis; a range expands from..to by step, inclusive.
Test(platform_sweep, zip_and_range)
{
    const std::string dir = temp_dir();
    sweep_out r;
    sweep(r, dir, write_study(dir, R"({
      "base": {"driver.frames_count": 50},
      "grid": {"pcie.gen": [3, 4], "dma.read_tags_count": {"from": 4, "to": 12, "step": 4},
               "pcie.lanes": [8, 16]},
      "zip": [["pcie.gen", "pcie.lanes"]],
      "metrics": ["driver.tx.frames"]
    })"));
    cr_assert_eq(r.status, 0, "exit %d\n%s", r.status, r.err.c_str());
    std::vector<std::string> want = {
        "index,pcie.gen,dma.read_tags_count,pcie.lanes,status,driver.tx.frames",
        "0,3,4,8,ok,50", "1,3,8,8,ok,50", "2,3,12,8,ok,50",
        "3,4,4,16,ok,50", "4,4,8,16,ok,50", "5,4,12,16,ok,50"};
    cr_expect_eq(r.rows.size(), want.size());
    for (size_t i = 0; i < want.size() && i < r.rows.size(); i++)
        cr_expect_eq(r.rows[i], want[i], "row %zu: %s", i, r.rows[i].c_str());
}

// Real ranges count steps instead of accumulating them; --emit parallel writes one
// command per point and a merge script, and runs nothing.
Test(platform_sweep, real_range_and_emit_parallel)
{
    const std::string dir = temp_dir();
    sweep_out r;
    sweep(r, dir, write_study(dir, R"({
      "grid": {"host.memory_latency_ns": {"from": 0.1, "to": 0.5, "step": 0.1}}
    })"), {"--emit", "parallel"});
    cr_assert_eq(r.status, 0, "exit %d\n%s", r.status, r.err.c_str());
    std::vector<std::string> jobs = lines(slurp(dir + "/out/jobs.txt"));
    cr_assert_eq(jobs.size(), 5u);
    cr_expect_neq(jobs[2].find("'host.memory_latency_ns=0.3'"), std::string::npos, "%s",
                  jobs[2].c_str());
    cr_expect_neq(jobs[4].find("/points/4'"), std::string::npos, "%s", jobs[4].c_str());
    cr_expect_neq(slurp(dir + "/out/merge.sh").find("--merge"), std::string::npos);
    cr_expect_not(exists(dir + "/out/points/0/stats.json"));
    cr_expect_not(exists(dir + "/out/results.csv"));

    // Merging before anything ran: every point is missing, exit 1.
    sweep_out merged;
    sweep(merged, dir, write_study(dir, R"({
      "grid": {"host.memory_latency_ns": {"from": 0.1, "to": 0.5, "step": 0.1}}
    })"), {"--merge"});
    cr_expect_eq(merged.status, 1, "%s", merged.err.c_str());
    cr_assert_eq(merged.rows.size(), 6u);
    cr_expect_neq(merged.rows[1].find(",missing,"), std::string::npos, "%s", merged.rows[1].c_str());
}

namespace {

// Runs a shell command line in dir; returns its exit status, stderr in `err`.
int shell(const std::string &dir, const std::string &command, std::string &err)
{
    const int st = std::system((command + " >" + dir + "/sh.out 2>" + dir + "/sh.err").c_str());
    err = slurp(dir + "/sh.err");
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// A fake sbatch first on PATH: it logs each call's arguments (one per line, "call N"
// first) to DIR/sbatch.log and answers as `sbatch --parsable` does, "<job id>;<cluster>",
// with job ids 101, 102, ...
std::string fake_sbatch_path(const std::string &dir)
{
    const std::string bin = dir + "/bin";
    mkdir(bin.c_str(), 0755);
    std::ofstream(bin + "/sbatch") << "#!/bin/bash\n"
                                      "log=" << sh_quoted(dir + "/sbatch.log") << "\n"
                                      "n=$(( $(grep -c '^call ' \"$log\" 2>/dev/null) + 101 ))\n"
                                      "{ echo \"call $n\"; printf 'arg %s\\n' \"$@\"; } >>\"$log\"\n"
                                      "echo \"$n;cluster\"\n";
    chmod((bin + "/sbatch").c_str(), 0755);
    return "PATH=" + sh_quoted(bin) + ":\"$PATH\" ";
}

// The arguments of each logged sbatch call.
std::vector<std::vector<std::string>> sbatch_calls(const std::string &dir)
{
    std::vector<std::vector<std::string>> calls;
    for (const std::string &line : lines(slurp(dir + "/sbatch.log"))) {
        if (line.rfind("call ", 0) == 0)
            calls.emplace_back();
        else if (!calls.empty() && line.rfind("arg ", 0) == 0)
            calls.back().push_back(line.substr(4));
    }
    return calls;
}

bool contains(const std::string &text, const std::string &part)
{
    return text.find(part) != std::string::npos;
}

// A 2,500-point study; each point sends `frames` frames.
std::string big_study(const std::string &dir, int frames)
{
    return write_study(dir, R"({"base": {"driver": {"frames_count": )" + std::to_string(frames) +
                                R"(}}, "grid": {"sim.seed": {"from": 1, "to": 2500, "step": 1}}})");
}

} // namespace

// --emit slurm on a tiny study: jobs.txt has one command per point, the array script
// one task per --points-per-task points, and submit.sh chains the merge.
Test(platform_sweep, emit_slurm)
{
    const std::string dir = temp_dir();
    sweep_out r;
    sweep(r, dir, write_study(dir, SMALL_GRID), {"--emit", "slurm", "--points-per-task", "3"});
    cr_assert_eq(r.status, 0, "exit %d\n%s", r.status, r.err.c_str());
    cr_expect_eq(lines(slurp(dir + "/out/jobs.txt")).size(), 4u);
    const std::string script = slurp(dir + "/out/slurm/array-0.slurm");
    cr_expect(contains(script, "#SBATCH --array=0-1\n"), "%s", script.c_str());
    cr_expect(contains(script, "first=$(( (0 + id) * 3 + 1 ))"), "%s", script.c_str());
    cr_expect_not(exists(dir + "/out/slurm/array-1.slurm"));
    cr_expect(exists(dir + "/out/merge.sh"));
    cr_expect(exists(dir + "/out/submit.sh"));
    cr_expect(contains(r.err, "4 points in 2 tasks of 3 points"), "%s", r.err.c_str());
    cr_expect_not(exists(dir + "/out/results.csv"));
}

// The Slurm scripts of a 2,500-point study, as text and through a fake sbatch: tasks
// sized from the points' estimated cost (docs/sweeps.md, "Sizing the tasks"), no array
// over --max-array-size, the merge submitted with afterany on every array, and the
// --sbatch-option values reaching sbatch unchanged however hostile to a shell.
Test(platform_sweep, emit_slurm_2500_points)
{
    const std::string dir = temp_dir();
    // 100,000 frames: 0.25 s + 100000 * 20 us = 2.25 s a point, 26 points to a minute's
    // task: 97 tasks, one array.
    sweep_out r;
    sweep(r, dir, big_study(dir, 100000), {"--emit", "slurm"});
    cr_assert_eq(r.status, 0, "exit %d\n%s", r.status, r.err.c_str());
    cr_expect(contains(r.err, "2500 points in 97 tasks of 26 points"), "%s", r.err.c_str());
    std::string a0 = slurp(dir + "/out/slurm/array-0.slurm");
    cr_expect(contains(a0, "#SBATCH --array=0-96\n"), "%s", a0.c_str());
    cr_expect(contains(a0, "* 26 + 1 ))"), "%s", a0.c_str());
    cr_expect_not(exists(dir + "/out/slurm/array-1.slurm"));

    // 1,000,000 frames: capped by the 1000 ms simulated time limit at 25 s, 2 points a
    // task: 1,250 tasks in two arrays, 1000 and 250.
    sweep(r, dir, big_study(dir, 1000000), {"--emit", "slurm"});
    cr_assert_eq(r.status, 0, "exit %d\n%s", r.status, r.err.c_str());
    cr_expect(contains(r.err, "2500 points in 1250 tasks of 2 points"), "%s", r.err.c_str());
    cr_expect(contains(slurp(dir + "/out/slurm/array-0.slurm"), "#SBATCH --array=0-999\n"));
    a0 = slurp(dir + "/out/slurm/array-1.slurm");
    cr_expect(contains(a0, "#SBATCH --array=0-249\n"), "%s", a0.c_str());
    cr_expect(contains(a0, "first=$(( (1000 + id) * 2 + 1 ))"), "%s", a0.c_str());

    // One point a task, hostile options: three arrays (1000, 1000, 500).
    const std::string hostile = "--comment=it's $(touch " + dir + "/X) `touch " + dir + "/Y` \"; a\\b";
    sweep(r, dir, big_study(dir, 50),
          {"--emit", "slurm", "--points-per-task", "1", "--sbatch-option", hostile,
           "--sbatch-option=--partition=short"});
    cr_assert_eq(r.status, 0, "exit %d\n%s", r.status, r.err.c_str());
    const char *const ranges[] = {"0-999", "0-999", "0-499"};
    for (int k = 0; k < 3; k++) {
        const std::string path = dir + "/out/slurm/array-" + std::to_string(k) + ".slurm";
        const std::string text = slurp(path);
        cr_expect(contains(text, std::string("#SBATCH --array=") + ranges[k] + "\n"), "%d: %s", k,
                  text.c_str());
        cr_expect(contains(text, "first=$(( (" + std::to_string(k * 1000) + " + id) * 1 + 1 ))"),
                  "%d: %s", k, text.c_str());
        std::string err;
        cr_expect_eq(shell(dir, "bash -n " + sh_quoted(path), err), 0, "%s", err.c_str());
    }
    cr_expect_not(exists(dir + "/out/slurm/array-3.slurm"));
    const std::string submit = slurp(dir + "/out/submit.sh");
    cr_expect(contains(submit, "\"--dependency=afterany$ids\" merge.sh"), "%s", submit.c_str());
    std::string err;
    cr_expect_eq(shell(dir, "bash -n " + sh_quoted(dir + "/out/submit.sh"), err), 0, "%s", err.c_str());

    // submit.sh through the fake sbatch, with an option of its own.
    cr_assert_eq(shell(dir, fake_sbatch_path(dir) + sh_quoted(dir + "/out/submit.sh") + " --time=5", err),
                 0, "%s", err.c_str());
    const auto calls = sbatch_calls(dir);
    cr_assert_eq(calls.size(), 4u);
    for (size_t k = 0; k < 4; k++) {
        const std::vector<std::string> &c = calls[k];
        cr_assert_geq(c.size(), 5u);
        cr_expect_eq(c[0], "--parsable");
        // ..., the --sbatch-options, submit.sh's own arguments, [--dependency,] script.
        const size_t tail = k < 3 ? 1 : 2;
        cr_expect_eq(c[c.size() - tail - 3], hostile, "call %zu: %s", k, c[c.size() - tail - 3].c_str());
        cr_expect_eq(c[c.size() - tail - 2], "--partition=short");
        cr_expect_eq(c[c.size() - tail - 1], "--time=5");
        cr_expect_eq(c.back(), k < 3 ? "slurm/array-" + std::to_string(k) + ".slurm" : "merge.sh");
    }
    cr_expect_eq(calls[3][calls[3].size() - 2], "--dependency=afterany:101:102:103");
    cr_expect_not(exists(dir + "/X"));
    cr_expect_not(exists(dir + "/Y"));

    // Two points a task, at most 600 tasks an array: 1,250 tasks in 600, 600 and 50.
    sweep(r, dir, big_study(dir, 50),
          {"--emit", "slurm", "--points-per-task", "2", "--max-array-size", "600"});
    cr_assert_eq(r.status, 0, "exit %d\n%s", r.status, r.err.c_str());
    cr_expect(contains(slurp(dir + "/out/slurm/array-1.slurm"), "#SBATCH --array=0-599\n"));
    cr_expect(contains(slurp(dir + "/out/slurm/array-2.slurm"), "#SBATCH --array=0-49\n"));
    cr_expect(contains(slurp(dir + "/out/slurm/array-2.slurm"), "(1200 + id) * 2 + 1"));
    cr_expect(contains(slurp(dir + "/out/submit.sh"), "slurm/array-2.slurm"));
}

// One task of the emitted array, run here as Slurm would (SLURM_ARRAY_TASK_ID set), runs
// its points and no others; --merge names the missing points and their tasks, and
// --only-missing emits just those.
Test(platform_sweep, emitted_task_runs_its_points)
{
    const std::string dir = temp_dir();
    sweep_out r;
    sweep(r, dir, write_study(dir, SMALL_GRID), {"--emit", "slurm", "--points-per-task", "2"});
    cr_assert_eq(r.status, 0, "exit %d\n%s", r.status, r.err.c_str());
    const std::string array = sh_quoted(dir + "/out/slurm/array-0.slurm");
    std::string err;
    cr_expect_eq(shell(dir, "SLURM_ARRAY_TASK_ID=1 bash " + array, err), 0, "%s", err.c_str());
    for (int i = 0; i < 4; i++)
        cr_expect_eq(exists(dir + "/out/points/" + std::to_string(i) + "/stats.json"), i >= 2,
                     "point %d", i);
    // A task the array does not have, and no task id at all.
    cr_expect_eq(shell(dir, "SLURM_ARRAY_TASK_ID=2 bash " + array, err), 2);
    cr_expect(contains(err, "no task 2"), "%s", err.c_str());
    cr_expect_eq(shell(dir, "env -u SLURM_ARRAY_TASK_ID bash " + array, err), 2);

    sweep_out merged;
    sweep(merged, dir, write_study(dir, SMALL_GRID), {"--merge"});
    cr_expect_eq(merged.status, 1, "%s", merged.err.c_str());
    cr_expect(contains(merged.err, "missing: 2 points: 0-1\n"), "%s", merged.err.c_str());
    cr_expect(contains(merged.err, "slurm/array-0.slurm) tasks 0\n"), "%s", merged.err.c_str());
    cr_expect(contains(merged.err, "--emit slurm --only-missing"), "%s", merged.err.c_str());
    cr_assert_eq(merged.rows.size(), 5u);
    cr_expect_eq(merged.rows[3].rfind("2,1500,4,ok,", 0), 0u, "%s", merged.rows[3].c_str());

    sweep(r, dir, write_study(dir, SMALL_GRID), {"--emit", "slurm", "--only-missing"});
    cr_assert_eq(r.status, 0, "exit %d\n%s", r.status, r.err.c_str());
    const std::vector<std::string> jobs = lines(slurp(dir + "/out/jobs.txt"));
    cr_assert_eq(jobs.size(), 2u);
    cr_expect(contains(jobs[0], "/points/0'"), "%s", jobs[0].c_str());
    cr_expect(contains(jobs[1], "/points/1'"), "%s", jobs[1].c_str());
    cr_expect_eq(shell(dir, "SLURM_ARRAY_TASK_ID=0 bash " + array, err), 0, "%s", err.c_str());
    sweep(merged, dir, write_study(dir, SMALL_GRID), {"--merge"});
    cr_expect_eq(merged.status, 0, "%s", merged.err.c_str());
    // Nothing left: --only-missing emits no point, and submit.sh submits nothing.
    sweep(r, dir, write_study(dir, SMALL_GRID), {"--emit", "slurm", "--only-missing"});
    cr_assert_eq(r.status, 0, "exit %d\n%s", r.status, r.err.c_str());
    cr_expect_eq(slurp(dir + "/out/jobs.txt"), "");
    cr_expect_not(exists(dir + "/out/slurm/array-0.slurm"));
    cr_expect_eq(shell(dir, fake_sbatch_path(dir) + sh_quoted(dir + "/out/submit.sh"), err), 0,
                 "%s", err.c_str());
    cr_expect_not(exists(dir + "/sbatch.log"));
}

// A point that fails: its task exits 1 after running its other points, and --merge names
// it as failed with the array task that ran it; the same with --emit parallel and its
// jobs.txt line.
Test(platform_sweep, merge_names_failed_points)
{
    const std::string dir = temp_dir();
    const std::string study = write_study(dir, R"({
      "base": {"driver.frames_count": 50},
      "grid": {"device.withdraw_features": ["", "VERSION_1", "", "VERSION_1", ""]},
      "metrics": ["driver.tx.frames"]
    })");
    sweep_out r;
    sweep(r, dir, study, {"--emit", "slurm", "--points-per-task", "2", "--max-array-size", "2",
                          "--sbatch-option", "--comment=it's"});
    cr_assert_eq(r.status, 0, "exit %d\n%s", r.status, r.err.c_str());
    std::string err;
    cr_expect_eq(shell(dir, "SLURM_ARRAY_TASK_ID=0 bash " + sh_quoted(dir + "/out/slurm/array-0.slurm"), err), 1);
    cr_expect(contains(err, "point 1 failed (exit 1); its log: " + dir + "/out/points/1/run.log\n"), "%s", err.c_str());
    cr_expect(exists(dir + "/out/points/0/stats.json"));
    cr_expect_eq(shell(dir, "SLURM_ARRAY_TASK_ID=1 bash " + sh_quoted(dir + "/out/slurm/array-0.slurm"), err), 1);
    sweep_out merged;
    sweep(merged, dir, study, {"--merge"});
    cr_expect_eq(merged.status, 1, "%s", merged.err.c_str());
    cr_expect(contains(merged.err, "failed: 2 points: 1, 3\n"), "%s", merged.err.c_str());
    cr_expect(contains(merged.err, "missing: 1 point: 4\n"), "%s", merged.err.c_str());
    cr_expect(contains(merged.err, "array 0 (" + dir + "/out/slurm/array-0.slurm) tasks 0-1; array 1 (" +
                                       dir + "/out/slurm/array-1.slurm) tasks 0\n"),
              "%s", merged.err.c_str());
    // The command that emits them again keeps the array size and the sbatch options.
    cr_expect(contains(merged.err, "--out " + sh_quoted(dir + "/out") + " --emit slurm --only-missing "
                                   "--max-array-size 2 --sbatch-option '--comment=it'\\''s'\n"),
              "%s", merged.err.c_str());

    sweep(r, dir, study, {"--emit", "parallel", "--only-missing"});
    cr_assert_eq(r.status, 0, "exit %d\n%s", r.status, r.err.c_str());
    cr_expect_eq(lines(slurp(dir + "/out/jobs.txt")).size(), 3u);
    sweep(merged, dir, study, {"--merge"});
    cr_expect_eq(merged.status, 1, "%s", merged.err.c_str());
    cr_expect(contains(merged.err, "missing: 3 points: 1, 3-4\n"), "%s", merged.err.c_str());
    cr_expect(contains(merged.err, "ran them as lines 1-3 of " + dir + "/out/jobs.txt\n"), "%s",
              merged.err.c_str());
}

// Options that cannot go to sbatch as given, and emit options without --emit slurm, are
// refused before anything is written (exit 2, one line naming the value).
Test(platform_sweep, hostile_emit_options_refused)
{
    const std::string dir = temp_dir();
    const std::vector<std::vector<std::string>> bad = {
        {"--emit", "slurm", "--sbatch-option", "partition=short"},
        {"--emit", "slurm", "--sbatch-option", "--comment=a\nb"},
        {"--emit", "slurm", "--sbatch-option", ""},
        {"--emit", "slurm", "--sbatch-option", "--array=0-3"},
        {"--emit", "slurm", "--sbatch-option", "--dep=afterok:1"},
        {"--emit", "slurm", "--sbatch-option", "-d", "afterok:1"},
        {"--emit", "slurm", "--sbatch-option", "--wrap=rm -rf /"},
        {"--emit", "slurm", "--points-per-task", "0"},
        {"--emit", "slurm", "--points-per-task", "2x"},
        {"--emit", "slurm", "--max-array-size", "-1"},
        {"--emit", "slurm", "--max-array-size", "4000001"},
        {"--emit", "parallel", "--points-per-task", "2"},
        {"--emit", "parallel", "--sbatch-option", "--partition=short"},
        {"--only-missing"},
        {"--emit", "slurm", "--only-missing", "--force"},
    };
    for (const auto &args : bad) {
        sweep_out r;
        sweep(r, dir, write_study(dir, SMALL_GRID), args);
        cr_expect_eq(r.status, 2, "%s: exit %d\n%s", args.back().c_str(), r.status, r.err.c_str());
        cr_expect_eq(lines(r.err).size(), 1u, "%s", r.err.c_str());
        cr_expect_not(exists(dir + "/out"), "%s", args.back().c_str());
    }
    // A line break in DIR would split each command of jobs.txt in two.
    sweep_out r;
    sweep(r, dir, write_study(dir, SMALL_GRID), {"--emit", "parallel", "--out", dir + "/a\nb"});
    cr_expect_eq(r.status, 2, "exit %d\n%s", r.status, r.err.c_str());
    cr_expect(contains(r.err, "line break"), "%s", r.err.c_str());
    cr_expect_not(exists(dir + "/a\nb"));
}

// An unknown key is rejected up front, named as `viosim run --set` names it; nothing runs.
Test(platform_sweep, unknown_key_rejected_before_running)
{
    const std::string dir = temp_dir();
    sweep_out r;
    sweep(r, dir, write_study(dir, R"({
      "base": {"driver.frames_count": 50},
      "grid": {"pcie.lanes": [4, 8], "pcie.bogus_ns": [1, 2]}
    })"));
    cr_expect_eq(r.status, 2, "%s", r.err.c_str());
    cr_expect_neq(r.err.find("pcie.bogus_ns"), std::string::npos, "%s", r.err.c_str());
    cr_expect_not(exists(dir + "/out"));

    // A bad value and a bad base are named too.
    sweep_out bad;
    sweep(bad, dir, write_study(dir, R"({"grid": {"pcie.lanes": [4, 3]}})"));
    cr_expect_eq(bad.status, 2);
    cr_expect_neq(bad.err.find("pcie.lanes"), std::string::npos, "%s", bad.err.c_str());
    sweep_out base;
    sweep(base, dir, write_study(dir, R"({"base": "missing.json", "grid": {"pcie.lanes": [4]}})"));
    cr_expect_eq(base.status, 2);
    cr_expect_neq(base.err.find("missing.json"), std::string::npos, "%s", base.err.c_str());
    cr_expect_not(exists(dir + "/out"));
}

// A failing point is reported and the others complete; the sweep exits 1.
Test(platform_sweep, failed_point_does_not_stop_others)
{
    const std::string dir = temp_dir();
    sweep_out r;
    sweep(r, dir, write_study(dir, R"({
      "base": {"driver.frames_count": 50},
      "grid": {"device.withdraw_features": ["", "VERSION_1", ""], "pcie.lanes": [8]},
      "metrics": ["driver.tx.frames"]
    })"));
    cr_expect_eq(r.status, 1, "%s", r.err.c_str());
    cr_expect_neq(r.err.find("point 1"), std::string::npos, "%s", r.err.c_str());
    cr_expect_neq(r.err.find("failed"), std::string::npos, "%s", r.err.c_str());
    cr_assert_eq(r.rows.size(), 4u);
    cr_expect_eq(r.rows[1], "0,,8,ok,50");
    cr_expect_eq(r.rows[2], "1,VERSION_1,8,failed,0");
    cr_expect_eq(r.rows[3], "2,,8,ok,50");

    // Resuming reruns only the failed point.
    sweep_out again;
    sweep(again, dir, write_study(dir, R"({
      "base": {"driver.frames_count": 50},
      "grid": {"device.withdraw_features": ["", "VERSION_1", ""], "pcie.lanes": [8]},
      "metrics": ["driver.tx.frames"]
    })"));
    cr_expect_eq(again.status, 1);
    cr_expect_neq(again.err.find("ran 1, skipped 2"), std::string::npos, "%s", again.err.c_str());
}

// The optional "report" section (for scripts/report) is checked before anything runs:
// its columns must be grid keys, metrics or index (a label's key=value names a grid key);
// a valid one is kept in study.json, and
// the study file itself is copied verbatim to study-file.json.
Test(platform_sweep, report_section_checked_and_preserved)
{
    const std::string dir = temp_dir();
    const std::string good = R"({
      "base": {"driver.frames_count": 50},
      "grid": {"pcie.lanes": [4, 8], "driver.frame_sizes_bytes": [64]},
      "metrics": ["throughput.tx_mpps", "latency.p99_ns"],
      "report": {"title": "lanes", "plots": [{"x": "pcie.lanes", "y": ["throughput.tx_mpps"],
                 "series": "driver.frame_sizes_bytes", "logy": true, "title": "t"}],
                 "labels": {"pcie.lanes": "link width", "driver.frame_sizes_bytes=1500": "MTU"}}
    })";
    sweep_out r;
    sweep(r, dir, write_study(dir, good));
    cr_assert_eq(r.status, 0, "exit %d\n%s", r.status, r.err.c_str());
    const std::string recorded = slurp(dir + "/out/study.json");
    cr_expect_neq(recorded.find("\"report\""), std::string::npos, "%s", recorded.c_str());
    cr_expect_neq(recorded.find("\"logy\": true"), std::string::npos, "%s", recorded.c_str());
    cr_expect_neq(recorded.find("\"MTU\""), std::string::npos, "%s", recorded.c_str());
    cr_expect_neq(recorded.find("\"viosim_version\""), std::string::npos, "%s", recorded.c_str());
    cr_expect_eq(slurp(dir + "/out/study-file.json"), good);

    struct {
        const char *report, *named;
    } bad[] = {
        {R"({"plots": [{"x": "pcie.lane", "y": "throughput.tx_mpps"}]})", "'pcie.lane'"},
        {R"({"plots": [{"x": "pcie.lanes", "y": ["throughput.tx_mpps", "sim.time_ns"]}]})",
         "'sim.time_ns'"},
        {R"({"plots": [{"x": "pcie.lanes", "y": "latency.p99_ns", "series": ["pcie.gen"]}]})",
         "'pcie.gen'"},
        {R"({"plots": [{"x": "pcie.lanes"}]})", "\"y\" is required"},
        {R"({"plots": [{"x": "pcie.lanes", "y": "latency.p99_ns", "logx": "yes"}]})", "'logx'"},
        {R"({"plots": [{"x": "index", "y": "latency.p99_ns", "colour": "red"}]})", "'colour'"},
        {R"({"plot": []})", "'plot'"},
        {R"([1])", "\"report\" must be an object"},
        {R"({"labels": ["pcie.lanes"]})", "\"labels\" must be an object"},
        {R"({"labels": {"pcie.lane": "width"}})", "'pcie.lane'"},
        {R"({"labels": {"pcie.gen=3": "Gen3"}})", "'pcie.gen'"},
        {R"({"labels": {"pcie.lanes": 8}})", "must be a string"},
    };
    for (const auto &b : bad) {
        const std::string bad_dir = temp_dir();
        std::string text = good;
        const size_t at = text.find("\"report\": ") + 10;
        text = text.substr(0, at) + b.report + "\n    }";
        sweep_out e;
        sweep(e, bad_dir, write_study(bad_dir, text));
        cr_expect_eq(e.status, 2, "%s: exit %d", b.report, e.status);
        cr_expect_neq(e.err.find(b.named), std::string::npos, "%s: %s", b.report, e.err.c_str());
        cr_expect_neq(e.err.find("report"), std::string::npos, "%s: %s", b.report, e.err.c_str());
        cr_expect_not(exists(bad_dir + "/out"), "%s", b.report);
    }
}

// An integer range is counted without overflow: near INT64_MAX a loop adding the step
// overflowed (UBSan), and a range of two values was refused as "more than 100000".
// sim.seed takes any of them; the sweep is only emitted, nothing runs.
Test(platform_sweep, integer_range_near_int64_max)
{
    const std::string dir = temp_dir();
    sweep_out r;
    sweep(r, dir, write_study(dir, R"({
      "grid": {"sim.seed": {"from": 9223372036854775806, "to": 9223372036854775807, "step": 1}}
    })"), {"--emit", "parallel"});
    cr_assert_eq(r.status, 0, "exit %d\n%s", r.status, r.err.c_str());
    std::vector<std::string> jobs = lines(slurp(dir + "/out/jobs.txt"));
    cr_assert_eq(jobs.size(), 2u);
    cr_expect_neq(jobs[0].find("'sim.seed=9223372036854775806'"), std::string::npos, "%s", jobs[0].c_str());
    cr_expect_neq(jobs[1].find("'sim.seed=9223372036854775807'"), std::string::npos, "%s", jobs[1].c_str());

    // Descending to INT64_MIN's neighbourhood, and the whole int64 line in three steps.
    const std::string down = temp_dir();
    sweep_out d;
    sweep(d, down, write_study(down, R"({
      "grid": {"pcie.gen": [3],
               "sim.seed": {"from": 9223372036854775807, "to": -9223372036854775808,
                            "step": 9223372036854775807}}
    })"), {"--emit", "parallel"});
    // The values are -1 and below: sim.seed refuses them, naming the key (not a range
    // error): the range itself expanded.
    cr_expect_eq(d.status, 2, "%s", d.err.c_str());
    cr_expect_neq(d.err.find("sim.seed"), std::string::npos, "%s", d.err.c_str());
    cr_expect_eq(d.err.find("more than"), std::string::npos, "%s", d.err.c_str());

    const std::string wide = temp_dir();
    sweep_out w;
    sweep(w, wide, write_study(wide, R"({
      "grid": {"sim.seed": {"from": -9223372036854775808, "to": 9223372036854775807, "step": 1}}
    })"), {"--emit", "parallel"});
    cr_expect_eq(w.status, 2, "%s", w.err.c_str());
    cr_expect_neq(w.err.find("more than 100000 values"), std::string::npos, "%s", w.err.c_str());
}

// A base with an unknown section that sets nothing is refused like any unknown key.
Test(platform_sweep, unknown_empty_section_in_base)
{
    const std::string dir = temp_dir();
    sweep_out r;
    sweep(r, dir, write_study(dir, R"({"base": {"driver": {"frames_count": 50}, "foo": {}},
                                        "grid": {"pcie.lanes": [4]}})"));
    cr_expect_eq(r.status, 2, "%s", r.err.c_str());
    cr_expect_neq(r.err.find("unknown parameter 'foo'"), std::string::npos, "%s", r.err.c_str());
    cr_expect_not(exists(dir + "/out"));

    std::ofstream(dir + "/base.json") << R"({"pcie": {"bar": {}}})";
    sweep_out f;
    sweep(f, dir, write_study(dir, R"({"base": "base.json", "grid": {"pcie.lanes": [4]}})"));
    cr_expect_eq(f.status, 2, "%s", f.err.c_str());
    cr_expect_neq(f.err.find("unknown parameter 'pcie.bar'"), std::string::npos, "%s", f.err.c_str());
}

// A grid key holding a newline is named escaped, on one line.
Test(platform_sweep, echoed_key_stays_on_one_line)
{
    const std::string dir = temp_dir();
    sweep_out r;
    sweep(r, dir, write_study(dir, "{\"grid\": {\"pcie.\\nlanes\": [4]}}"));
    cr_expect_eq(r.status, 2, "%s", r.err.c_str());
    cr_expect_neq(r.err.find("'pcie.\\nlanes'"), std::string::npos, "%s", r.err.c_str());
    cr_expect_eq(r.err.find('\n'), r.err.size() - 1, "not one line: %s", r.err.c_str());
}

// A stored result is trusted only while its stats.json is the file its run wrote:
// point.json records the file's checksum. A stats.json that says "ok": true and holds
// no statistics, or whose numbers were edited, was trusted on resume (empty or edited
// cells, exit 0); now those points run again, and the sweep says how many and why.
Test(platform_sweep, edited_results_are_rerun)
{
    const std::string dir = temp_dir();
    sweep_out r;
    sweep(r, dir, write_study(dir, SMALL_GRID));
    cr_assert_eq(r.status, 0, "exit %d\n%s", r.status, r.err.c_str());
    const std::string csv = slurp(dir + "/out/results.csv");
    const std::string point1 = slurp(dir + "/out/points/1/point.json");
    cr_expect_neq(point1.find("\"stats_checksum\": \"fnv1a64:"), std::string::npos, "%s",
                  point1.c_str());

    // Point 1: ok but empty. Point 2: one number edited, same length.
    std::ofstream(dir + "/out/points/1/stats.json") << "{\"result\": {\"ok\": true}}\n";
    std::string two = slurp(dir + "/out/points/2/stats.json");
    const size_t at = two.find("\"driver.tx.frames\"");
    cr_assert_neq(at, std::string::npos);
    const size_t value = two.find("\"value\": 50", at);
    cr_assert_neq(value, std::string::npos);
    two.replace(value + 10, 2, "51");
    std::ofstream(dir + "/out/points/2/stats.json") << two;

    sweep_out again;
    sweep(again, dir, write_study(dir, SMALL_GRID));
    cr_assert_eq(again.status, 0, "%s", again.err.c_str());
    cr_expect_neq(again.err.find("2 points (1, 2): its stats.json changed after its run wrote it; "
                                 "rerunning them"),
                  std::string::npos, "%s", again.err.c_str());
    cr_expect_neq(again.err.find("ran 2, skipped 2"), std::string::npos, "%s", again.err.c_str());
    cr_expect_eq(slurp(dir + "/out/results.csv"), csv);

    // A point without a recorded checksum (its run ended, the sweep did not record it)
    // runs again too; --merge records what it finds (points run by --emit record none).
    const std::string point3 = slurp(dir + "/out/points/3/point.json");
    const size_t checksum = point3.find(",\n  \"stats_checksum\"");
    cr_assert_neq(checksum, std::string::npos, "%s", point3.c_str());
    std::ofstream(dir + "/out/points/3/point.json") << point3.substr(0, checksum) + "\n}\n";
    sweep_out unrecorded;
    sweep(unrecorded, dir, write_study(dir, SMALL_GRID));
    cr_expect_neq(unrecorded.err.find("1 point (3): no checksum of its stats.json was recorded"),
                  std::string::npos, "%s", unrecorded.err.c_str());
    cr_expect_neq(unrecorded.err.find("ran 1, skipped 3"), std::string::npos, "%s",
                  unrecorded.err.c_str());

    // --merge counts a changed file as missing.
    std::ofstream(dir + "/out/points/0/stats.json") << "{}\n";
    sweep_out merged;
    sweep(merged, dir, write_study(dir, SMALL_GRID), {"--merge"});
    cr_expect_eq(merged.status, 1, "%s", merged.err.c_str());
    cr_expect_neq(merged.err.find("1 point (0): its stats.json changed"), std::string::npos, "%s",
                  merged.err.c_str());
    cr_assert_eq(merged.rows.size(), 5u);
    cr_expect_eq(merged.rows[1].rfind("0,64,4,missing,", 0), 0u, "%s", merged.rows[1].c_str());
}

// The object `key` of the JSON file at path, as compact text ("" if absent).
static std::string json_member_text(const std::string &path, const char *key)
{
    json_error_t jerr;
    json_t *doc = json_load_file(path.c_str(), 0, &jerr);
    char *text = json_dumps(json_object_get(doc, key), JSON_COMPACT | JSON_PRESERVE_ORDER);
    std::string out = text ? text : "";
    std::free(text);
    json_decref(doc);
    return out;
}

// Replaces the first `from` in the file at path (after `after`) by `to`.
static void edit_file(const std::string &path, const std::string &after, const std::string &from,
                      const std::string &to)
{
    std::string text = slurp(path);
    const size_t at = text.find(from, text.find(after));
    cr_assert_neq(at, std::string::npos, "%s: no %s in\n%s", path.c_str(), from.c_str(), text.c_str());
    text.replace(at, from.size(), to);
    std::ofstream(path) << text;
}

// Every stats.json and point.json records which viosim ran the point (the build's version:
// commit and tree state), the hash of its resolved configuration and its seed, apart from
// the results. A sweep reruns exactly the points whose recorded configuration hash or
// version is not this build's, and says how many and why; --force reruns every point.
// Before, a rebuilt viosim reused every stored point without a word.
Test(platform_sweep, provenance_recorded_and_changed_points_rerun)
{
    const std::string dir = temp_dir();
    sweep_out r;
    sweep(r, dir, write_study(dir, SMALL_GRID));
    cr_assert_eq(r.status, 0, "exit %d\n%s", r.status, r.err.c_str());
    const std::string csv = slurp(dir + "/out/results.csv");
    // The binary's version, as it prints it ("viosim V\ncommit C\ntree T\n").
    const std::string cmd = std::string(std::getenv("VIOSIM")) + " --version >" + dir + "/version";
    cr_assert_eq(std::system(cmd.c_str()), 0);
    char version[128] = "", commit[64] = "";
    cr_assert_eq(std::sscanf(slurp(dir + "/version").c_str(), "viosim %127s\ncommit %63s", version,
                             commit), 2);
    const bool version_known = std::string(commit) != "unknown";
    for (int i = 0; i < 4; i++) {
        const std::string point = dir + "/out/points/" + std::to_string(i);
        const std::string prov = json_member_text(point + "/stats.json", "provenance");
        cr_expect_eq(prov, json_member_text(point + "/point.json", "provenance"), "point %d", i);
        cr_expect_neq(prov.find(std::string("{\"version\":\"") + version + "\",\"commit\":\"" + commit +
                                "\",\"dirty\":"),
                      std::string::npos, "%s", prov.c_str());
        cr_expect_neq(prov.find("\"config_hash\":\"fnv1a64:"), std::string::npos, "%s", prov.c_str());
        cr_expect_neq(prov.find("\"seed\":1}"), std::string::npos, "%s", prov.c_str());
    }
    // Each point's configuration has its own hash.
    cr_expect_neq(json_member_text(dir + "/out/points/0/stats.json", "provenance"),
                  json_member_text(dir + "/out/points/1/stats.json", "provenance"));

    // Point 1's record says another configuration, point 2's another viosim version.
    std::string p1 = slurp(dir + "/out/points/1/point.json");
    const std::string hash_key = "\"config_hash\": \"fnv1a64:";
    const size_t hash_at = p1.find(hash_key);
    cr_assert_neq(hash_at, std::string::npos, "%s", p1.c_str());
    p1.replace(hash_at + hash_key.size(), 16, "0123456789abcdef");
    std::ofstream(dir + "/out/points/1/point.json") << p1;
    edit_file(dir + "/out/points/2/point.json", "\"provenance\"",
              std::string("\"version\": \"") + version + "\"",
              "\"version\": \"0.1+000000000000\"");
    sweep_out again;
    sweep(again, dir, write_study(dir, SMALL_GRID));
    cr_assert_eq(again.status, 0, "%s", again.err.c_str());
    cr_expect_neq(again.err.find("viosim sweep: 1 point (1): its resolved configuration changed since "
                                 "its run (another config_hash); rerunning them\n"),
                  std::string::npos, "%s", again.err.c_str());
    if (version_known) {
        cr_expect_neq(again.err.find("viosim sweep: 1 point (2): it was run by another viosim version; "
                                     "rerunning them\n"),
                      std::string::npos, "%s", again.err.c_str());
        cr_expect_neq(again.err.find("ran 2, skipped 2"), std::string::npos, "%s", again.err.c_str());
    } else { // built outside git: nothing shows the stored runs are this code's
        cr_expect_neq(again.err.find("3 points (0, 2, 3): this viosim was built outside a git checkout"),
                      std::string::npos, "%s", again.err.c_str());
    }
    cr_expect_eq(slurp(dir + "/out/results.csv"), csv);
    cr_expect_eq(json_member_text(dir + "/out/points/2/point.json", "provenance"),
                 json_member_text(dir + "/out/points/2/stats.json", "provenance"));

    // A record from before provenance (the object removed) is not taken as current.
    std::string p3 = slurp(dir + "/out/points/3/point.json");
    const size_t from = p3.find("  \"provenance\""), to = p3.find("  \"stats_checksum\"");
    cr_assert(from != std::string::npos && to != std::string::npos && from < to, "%s", p3.c_str());
    p3.erase(from, to - from);
    std::ofstream(dir + "/out/points/3/point.json") << p3;
    sweep_out old;
    sweep(old, dir, write_study(dir, SMALL_GRID));
    cr_expect_neq(old.err.find("1 point (3): its run recorded no viosim version or configuration hash; "
                               "rerunning them"),
                  std::string::npos, "%s", old.err.c_str());

    // --force runs every point again, with the same results.
    sweep_out forced;
    sweep(forced, dir, write_study(dir, SMALL_GRID), {"--force"});
    cr_assert_eq(forced.status, 0, "%s", forced.err.c_str());
    cr_expect_neq(forced.err.find("ran 4, skipped 0"), std::string::npos, "%s", forced.err.c_str());
    cr_expect_eq(slurp(dir + "/out/results.csv"), csv);
    sweep_out both;
    sweep(both, dir, write_study(dir, SMALL_GRID), {"--force", "--merge"});
    cr_expect_eq(both.status, 2, "%s", both.err.c_str());
}

// A study's metric must be a statistic a run can write: a misspelt one is refused before
// any point runs (exit 2, one line naming it, with the closest known name), as an unknown
// parameter is. Before, the sweep ran every point and left the column empty.
Test(platform_sweep, unknown_metric_rejected_before_running)
{
    const std::string dir = temp_dir();
    const std::string study = dir + "/study.json.in";
    for (const auto &[metric, guess] : std::vector<std::pair<std::string, std::string>>{
             {"throughput.tx_mps", "throughput.tx_mpps"},
             {"latency.p50", "latency.p50_ns"},
             {"no.such.statistic", ""}}) {
        sweep_out r;
        sweep(r, dir, write_study(dir, R"({"base": {"driver.frames_count": 50},
          "grid": {"pcie.lanes": [4, 8]},
          "metrics": ["throughput.tx_gbps", ")" + metric + R"("]})"));
        cr_expect_eq(r.status, 2, "%s", r.err.c_str());
        std::string want = "viosim sweep: error: " + study + ": unknown metric '" + metric +
                           "' (see docs/statistics.md)";
        want += guess.empty() ? "\n" : "; did you mean '" + guess + "'?\n";
        cr_expect_eq(r.err, want);
        cr_expect_not(exists(dir + "/out"));
    }

    // Statistics of the families whose rows appear only when something occurred, and
    // numbered rows beyond those the documentation shows, are known.
    sweep_out ok;
    sweep(ok, dir, write_study(dir, R"({"base": {"driver.frames_count": 50},
      "grid": {"pcie.lanes": [4]},
      "metrics": ["device.msix.vector.7.messages", "device.dma.pt_read.reads",
                  "iommu.pasid.3.hits", "device.error.reason", "throughput.tx_mpps"]})"));
    cr_expect_eq(ok.status, 0, "%s", ok.err.c_str());
    cr_assert_eq(ok.rows.size(), 2u, "%s", ok.err.c_str());
}

// Every statistic a run writes is a known metric name (the list is built in from
// docs/statistics.md, which test_run checks is complete).
Test(platform_sweep, every_written_statistic_is_a_known_metric)
{
    const std::string dir = temp_dir();
    for (const char *workload : {"virtio_net", "dma_bench"}) {
        const std::string cmd = std::string(std::getenv("VIOSIM")) + " run --set sim.workload=" +
                                workload + " --set driver.frames_count=20 --set bench.transfers_count=20" +
                                " --set bench.iommu=on --out " + dir + "/" + workload + " >/dev/null";
        cr_assert_eq(std::system(cmd.c_str()), 0, "%s", cmd.c_str());
        json_error_t jerr;
        json_t *doc = json_load_file((dir + "/" + workload + "/stats.json").c_str(), 0, &jerr);
        cr_assert_not_null(doc, "%s", jerr.text);
        const char *key;
        json_t *v;
        size_t n = 0;
        json_object_foreach(json_object_get(doc, "stats"), key, v) {
            (void)v;
            n++;
            cr_expect(stats_name_known(key), "%s: %s", workload, key);
        }
        cr_expect_gt(n, 50u);
        json_decref(doc);
    }
    cr_expect_not(stats_name_known("device.dma.read_byte"));
    cr_expect_not(stats_name_known("device.msix.vector.x.messages"));
    cr_expect_not(stats_name_known("throughput"));
}

// Which way a statistic is better, for a result written before stats.json said so
// (viosim compare): from docs/statistics.md's better column, numbered rows and the
// families included.
Test(platform_sweep, known_direction_of_documented_statistics)
{
    const struct {
        const char *name;
        stat_better better;
    } known[] = {
        {"throughput.tx_mpps", stat_better::higher},
        {"latency.p99_ns", stat_better::lower},
        {"driver.tx.frames", stat_better::neutral},
        {"bench.bandwidth_gbps", stat_better::higher},
        {"iommu.pasid.3.hits", stat_better::higher},           // <n>
        {"device.msix.vector.7.messages", stat_better::lower}, // any vector
        {"device.dma.pt_read.writes", stat_better::lower},     // a family
        {"device.error.reason", stat_better::neutral},
        {"iommu.first_fault.iova", stat_better::neutral},
    };
    for (const auto &k : known) {
        stat_better b = stat_better::neutral;
        cr_expect(stats_known_direction(k.name, b), "%s unknown", k.name);
        cr_expect(b == k.better, "%s: %s, not %s", k.name, stat_better_name(b),
                  stat_better_name(k.better));
    }
    stat_better b = stat_better::higher;
    cr_expect_not(stats_known_direction("throughput", b));
    cr_expect_not(stats_known_direction("vhost.connections", b)); // serve's own (bring-up.md)
    cr_expect(b == stat_better::higher, "left alone when unknown");
    cr_expect_str_eq(stat_better_name(stat_better::higher), "higher");
    cr_expect_str_eq(stat_better_name(stat_better::lower), "lower");
    cr_expect_str_eq(stat_better_name(stat_better::neutral), "neutral");
}

// --merge lists at most 20 ranges of indices, then how many more there are.
Test(platform_sweep, merge_truncates_long_index_lists)
{
    const std::string dir = temp_dir();
    std::string features;
    for (int i = 0; i < 44; i++)
        features += std::string(i ? ", " : "") + (i % 2 ? "\"VERSION_1\"" : "\"\"");
    const std::string study = write_study(dir, R"({"base": {"driver.frames_count": 1},
      "grid": {"device.withdraw_features": [)" + features + "]}}");
    sweep_out r;
    sweep(r, dir, study);
    cr_expect_eq(r.status, 1, "%s", r.err.c_str());
    sweep_out merged;
    sweep(merged, dir, study, {"--merge"});
    cr_expect_eq(merged.status, 1, "%s", merged.err.c_str());
    cr_expect(contains(merged.err, "failed: 22 points: 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, "
                                   "25, 27, 29, 31, 33, 35, 37, 39, ... (2 more)\n"),
              "%s", merged.err.c_str());
    cr_expect_not(contains(merged.err, "missing:"), "%s", merged.err.c_str());
}
