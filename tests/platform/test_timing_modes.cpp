// test_timing_modes.cpp -- sim.timing=decoupled against the exact default through the
// viosim binary (docs/timing.md, "Synchronisation"): deterministic, the exact mode's
// figures within the tolerance scripts/validate states (identical with one engine per
// queue), the time limit kept, a device failure and reset survived, and refused with
// sim.poll_sleep=on.

#include "common/viosim_run.hpp"

#include <cmath>

namespace {

std::vector<std::string> with(std::vector<std::string> a, const std::vector<std::string> &more)
{
    a.insert(a.end(), more.begin(), more.end());
    return a;
}

std::vector<std::string> timing(const char *mode, const std::vector<std::string> &args)
{
    return with({"--set", std::string("sim.timing=") + mode}, args);
}

// The parallel-fetch study's fastest point (scripts/bench's): Gen4 x16, 32 engines,
// read-ahead of 32, 64 read tags, no IOMMU, a polling driver with no per-frame cost.
const std::vector<std::string> fastest = {
    "--set", "driver.frames_count=2000", "--set", "driver.frame_sizes_bytes=64",
    "--set", "driver.mode=poll", "--set", "host.tx_packet_cycles=0",
    "--set", "host.rx_packet_cycles=0", "--set", "host.tx_reap_cycles=0",
    "--set", "host.rx_refill_cycles=0", "--set", "device.fetch_source=read_ahead",
    "--set", "device.fetch_batch_descriptors=32", "--set", "device.queue_engines=32",
    "--set", "dma.read_tags_count=64", "--set", "driver.decline_features=ACCESS_PLATFORM",
    "--set", "pcie.gen=4", "--set", "pcie.lanes=16"};

std::string stats_text(const run_out &r)
{
    char *s = json_dumps(json_object_get(r.stats, "stats"), JSON_SORT_KEYS);
    std::string out = s ? s : "";
    free(s);
    return out;
}

double rel(double a, double b)
{
    return a != 0 ? std::fabs(b - a) / a : std::fabs(b);
}

} // namespace

// The same seed gives a byte-identical stats.json, with several engines too (where the
// mode's run-ahead depends on every other process's pending events).
Test(timing_modes, decoupled_is_deterministic)
{
    const std::string a = temp_dir(), b = temp_dir();
    run_out ra, rb;
    run(ra, timing("decoupled", fastest), a);
    run(rb, timing("decoupled", fastest), b);
    expect_clean_loopback(ra, 2000);
    const std::string sa = slurp(a + "/stats.json"), sb = slurp(b + "/stats.json");
    cr_assert_gt(sa.size(), 0u);
    cr_expect(sa == sb, "stats.json differs between identical decoupled runs");
}

// One engine per queue: every statistic as in the exact mode, in each driver mode (the
// polling CPU is what runs ahead most).
Test(timing_modes, one_engine_identical_to_exact)
{
    const std::vector<std::vector<std::string>> cases = {
        {"--set", "driver.frames_count=1000"},
        {"--set", "driver.frames_count=1000", "--set", "driver.mode=poll"},
        {"--set", "driver.frames_count=1000", "--set", "driver.mode=napi"},
        {"--set", "driver.frames_count=1000", "--set", "driver.decline_features=RING_PACKED",
         "--set", "driver.coal_policy=static"},
        with(fastest, {"--set", "device.queue_engines=1"}),
    };
    for (const auto &c : cases) {
        run_out e, d;
        run(e, timing("exact", c));
        run(d, timing("decoupled", c));
        cr_assert_eq(d.status, 0, "exit %d: %s", d.status, d.err.c_str());
        cr_expect(stats_text(e) == stats_text(d), "%s: statistics differ from the exact mode",
                  c.back().c_str());
    }
}

// Several engines: within scripts/validate's tolerance of the exact mode (regime 11:
// throughput 2 %, median latency 5 %).
Test(timing_modes, several_engines_within_tolerance)
{
    const std::vector<std::vector<std::string>> cases = {
        fastest,
        with(fastest, {"--set", "device.queue_engines=4", "--set", "device.fetch_source=one"}),
        with(fastest, {"--set", "device.queue_engines=16", "--set", "dma.read_tags_count=32",
                       "--set", "driver.decline_features="}),
    };
    for (const auto &c : cases) {
        run_out e, d;
        run(e, timing("exact", c));
        run(d, timing("decoupled", c));
        expect_clean_loopback(d, 2000);
        cr_expect_leq(rel(e.stat("throughput.tx_mpps"), d.stat("throughput.tx_mpps")), 0.02,
                      "throughput %g (exact) against %g", e.stat("throughput.tx_mpps"),
                      d.stat("throughput.tx_mpps"));
        cr_expect_leq(rel(e.stat("latency.p50_ns"), d.stat("latency.p50_ns")), 0.05,
                      "median latency %g (exact) against %g", e.stat("latency.p50_ns"),
                      d.stat("latency.p50_ns"));
    }
}

// A run cut by sim.time_limit_ms stops there: no process runs ahead past the limit, so
// the simulated time and the work done by then are the exact mode's.
Test(timing_modes, time_limit_respected)
{
    for (const auto &c : {std::vector<std::string>{"--set", "driver.mode=poll"}, fastest}) {
        const auto limited = with(c, {"--set", "driver.frames_count=1000000", "--set",
                                      "sim.time_limit_ms=1"});
        run_out e, d;
        run(e, timing("exact", limited));
        run(d, timing("decoupled", limited));
        cr_assert_not_null(d.stats, "%s", d.err.c_str());
        cr_expect_eq(d.status, 1, "exit %d", d.status);
        cr_expect(d.err.find("sim.time_limit_ms") != std::string::npos, "%s", d.err.c_str());
        cr_expect_leq(d.stat("sim.time_ns"), 1e6);
        cr_expect_eq(d.stat("sim.time_ns"), e.stat("sim.time_ns"));
        cr_expect_gt(d.stat("driver.tx.frames"), 0);
        // With one engine the same frames by then; with several, about as many.
        cr_expect_leq(rel(e.stat("driver.tx.frames"), d.stat("driver.tx.frames")), 0.02,
                      "frames by the limit: %g (exact) against %g", e.stat("driver.tx.frames"),
                      d.stat("driver.tx.frames"));
    }
}

// The device fails (FAILED set, then the driver resets it and starts again; or a ring
// rule broken, NEEDS_RESET, with engines in flight): the run ends as in the exact mode.
Test(timing_modes, device_failure_and_reset)
{
    const std::vector<std::vector<std::string>> cases = {
        {"--set", "driver.frames_count=200", "--set", "driver.inject_violation=init_after_failed"},
        with(fastest, {"--set", "driver.frames_count=200", "--set",
                       "driver.inject_violation=init_after_failed"}),
        with(fastest, {"--set", "driver.frames_count=200", "--set",
                       "driver.inject_violation=tx_has_writable"}),
        {"--set", "driver.frames_count=200", "--set", "driver.inject_violation=rx_buffer_too_small"},
    };
    for (const auto &c : cases) {
        run_out e, d;
        run(e, timing("exact", c));
        run(d, timing("decoupled", c));
        cr_assert_not_null(d.stats, "%s: %s", c.back().c_str(), d.err.c_str());
        cr_expect_eq(d.status, e.status, "%s: exit %d, exact %d", c.back().c_str(), d.status,
                     e.status);
        cr_expect_eq(d.result("driver_result"), e.result("driver_result"), "%s",
                     c.back().c_str());
        cr_expect_eq(d.result("device_error"), e.result("device_error"), "%s", c.back().c_str());
        cr_expect_eq(d.stat("driver.tx.frames"), e.stat("driver.tx.frames"), "%s",
                     c.back().c_str());
        cr_expect_eq(d.stat("driver.rx.bad_payload"), 0);
    }
    // After the reset the driver runs to the end.
    run_out d;
    run(d, timing("decoupled", with(fastest, {"--set", "driver.inject_violation=init_after_failed"})));
    expect_clean_loopback(d, 2000);
}

// The sleeping poller is woken at the writer's SystemC time, which a queue engine running
// ahead has left behind: refused, naming the key.
Test(timing_modes, refused_with_poll_sleep)
{
    run_out r;
    run(r, {"--set", "sim.timing=decoupled", "--set", "sim.poll_sleep=on"});
    cr_expect_eq(r.status, 2);
    cr_expect(r.err.find("sim.timing") != std::string::npos, "%s", r.err.c_str());
}
