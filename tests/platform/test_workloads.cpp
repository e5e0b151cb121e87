// test_workloads.cpp -- the traffic generators and driver modes through the viosim
// binary: arrival processes, frame-size mixes and NAPI, with every frame checked.

#include "common/viosim_run.hpp"

// Poisson arrivals at 0.3 Mpps: every frame comes back intact, and the achieved rate is
// near the offered one (the device is not the bottleneck at that rate).
Test(workloads, poisson_frames_intact_at_offered_rate)
{
    run_out r;
    run(r, {"--set", "driver.arrival=poisson", "--set", "driver.tx_rate_mpps=0.3", "--set",
            "driver.frames_count=1500"});
    expect_clean_loopback(r, 1500);
    const double mpps = r.stat("driver.tx.frames") / r.stat("sim.time_ns") * 1e3;
    cr_expect(mpps > 0.24 && mpps < 0.36, "achieved %f Mpps", mpps);
}

// Poisson spreads departures where constant spaces them evenly: frames that find others
// queued wait, so the mean latency is higher at the same offered rate.
Test(workloads, poisson_queues_more_than_constant)
{
    run_out c, p;
    const std::vector<std::string> common = {"--set", "driver.tx_rate_mpps=0.5", "--set",
                                             "driver.frames_count=1500", "--set",
                                             "driver.frame_sizes_bytes=512"};
    std::vector<std::string> a = common, b = common;
    b.insert(b.end(), {"--set", "driver.arrival=poisson"});
    run(c, a);
    run(p, b);
    expect_clean_loopback(c, 1500);
    expect_clean_loopback(p, 1500);
    cr_expect_gt(p.stat("latency.p99_ns"), c.stat("latency.p99_ns"));
}

// On/off bursts with exponential periods complete, and sending only during on periods
// (a quarter of the time) brings the achieved rate well below the on-rate.
Test(workloads, onoff_exponential_frames_intact)
{
    run_out r;
    run(r, {"--set", "driver.arrival=onoff", "--set", "driver.tx_rate_mpps=0.4", "--set",
            "driver.onoff_on_us=20", "--set", "driver.onoff_off_us=60", "--set",
            "driver.onoff_periods=exponential", "--set", "driver.frames_count=1000"});
    expect_clean_loopback(r, 1000);
    const double mpps = r.stat("driver.tx.frames") / r.stat("sim.time_ns") * 1e3;
    cr_expect_lt(mpps, 0.2, "achieved %f Mpps", mpps);
}

// Closed loop: N requests in flight, each answered by its looped-back frame. Little's
// law ties them together: rate x latency stays at (just under) N, since the only time a
// request is not in flight is the driver's turn-around between reaping a response and
// posting the next request. More requests in flight raise the rate until the device
// saturates, and past that only the latency grows.
Test(workloads, closed_loop_obeys_littles_law)
{
    double rate[3], p50[3];
    const unsigned n[3] = {1, 4, 32};
    for (int i = 0; i < 3; i++) {
        run_out r;
        run(r, {"--set", "driver.arrival=closed", "--set",
                "driver.closed_loop_requests=" + std::to_string(n[i]), "--set",
                "driver.frames_count=3000"});
        expect_clean_loopback(r, 3000);
        rate[i] = r.stat("driver.rx.frames") / r.stat("sim.time_ns") * 1e3; // Mpps
        p50[i] = r.stat("latency.p50_ns") / 1e3;                            // us
        const double in_flight = rate[i] * p50[i];
        cr_expect(in_flight > 0.8 * n[i] && in_flight < 1.05 * n[i],
                  "N=%u: rate %.3f Mpps x p50 %.3f us = %.2f requests", n[i], rate[i], p50[i],
                  in_flight);
    }
    cr_expect_gt(rate[1], 1.5 * rate[0], "4 requests in flight should beat 1");
    cr_expect_gt(p50[2], 4 * p50[1], "past saturation, more requests only add latency");
}

Test(workloads, closed_loop_needs_loopback_and_no_rate)
{
    run_out a, b;
    run(a, {"--set", "driver.arrival=closed", "--set", "device.backend=sink"});
    cr_expect_eq(a.status, 2);
    cr_expect_neq(a.err.find("driver.arrival"), std::string::npos, "%s", a.err.c_str());
    run(b, {"--set", "driver.arrival=closed", "--set", "driver.tx_rate_mpps=0.5"});
    cr_expect_eq(b.status, 2);
    cr_expect_neq(b.err.find("driver.tx_rate_mpps"), std::string::npos, "%s", b.err.c_str());
}

Test(workloads, poisson_and_onoff_need_a_rate)
{
    for (const char *arrival : {"driver.arrival=poisson", "driver.arrival=onoff"}) {
        run_out r;
        run(r, {"--set", arrival});
        cr_expect_eq(r.status, 2);
        cr_expect_neq(r.err.find("driver.arrival"), std::string::npos, "%s", r.err.c_str());
    }
}

// IMIX: 7:4:1 of 60, 566, 1514 bytes; 1200 frames are 100 whole cycles, so the byte count
// is exact: 100 * (7 * 60 + 4 * 566 + 1514).
Test(workloads, imix_frames_intact_exact_bytes)
{
    run_out r;
    run(r, {"--set", "driver.frame_size_mix=imix", "--set", "driver.frames_count=1200"});
    expect_clean_loopback(r, 1200);
    cr_expect_eq(r.stat("driver.tx.bytes"), 100.0 * (7 * 60 + 4 * 566 + 1514));
}

// IMIX's largest frame must fit a receive buffer (with the 12-byte header).
Test(workloads, imix_rejected_when_rx_buffer_too_small)
{
    run_out r;
    run(r, {"--set", "driver.frame_size_mix=imix", "--set", "driver.rx_buffer_bytes=1500",
            "--set", "driver.frame_sizes_bytes=64"});
    cr_expect_eq(r.status, 2);
    cr_expect_neq(r.err.find("driver.frame_size_mix"), std::string::npos, "%s", r.err.c_str());
}

// Random picks: every frame intact; the byte count differs from cycling the same list.
Test(workloads, random_sizes_intact)
{
    run_out r, c;
    run(r, {"--set", "driver.frame_size_mix=random", "--set", "driver.frames_count=999"});
    run(c, {"--set", "driver.frames_count=999"});
    expect_clean_loopback(r, 999);
    expect_clean_loopback(c, 999);
    cr_expect_neq(r.stat("driver.tx.bytes"), c.stat("driver.tx.bytes"));
}

// Under load (as fast as the rings allow) NAPI takes an interrupt and then polls through
// the gaps until its budget is spent: far fewer interrupts than interrupt mode, which
// sleeps (and asks for an interrupt) whenever a poll finds nothing.
Test(workloads, napi_takes_fewer_interrupts_under_load)
{
    run_out irq, napi;
    run(irq, {"--set", "driver.mode=interrupt", "--set", "driver.frames_count=2000"});
    run(napi, {"--set", "driver.mode=napi", "--set", "driver.frames_count=2000"});
    expect_clean_loopback(irq, 2000);
    expect_clean_loopback(napi, 2000);
    cr_expect_gt(napi.stat("driver.interrupts"), 0);
    cr_expect_lt(napi.stat("driver.interrupts") * 4, irq.stat("driver.interrupts"));
    // One interrupt buys a budget's worth of polling; frames the driver finds while busy
    // anyway (before it ever sleeps) come free, so the count is near frames / budget.
    cr_expect_geq(napi.stat("driver.interrupts"), 2000.0 / 64 / 2);
}

// A smaller budget means more interrupts.
Test(workloads, napi_budget_bounds_frames_per_interrupt)
{
    run_out small, big;
    run(small, {"--set", "driver.mode=napi", "--set", "driver.napi_budget_frames=8", "--set",
                "driver.frames_count=1000"});
    run(big, {"--set", "driver.mode=napi", "--set", "driver.napi_budget_frames=256", "--set",
              "driver.frames_count=1000"});
    expect_clean_loopback(small, 1000);
    expect_clean_loopback(big, 1000);
    cr_expect_geq(small.stat("driver.interrupts"), 1000.0 / 8 / 2);
    cr_expect_lt(big.stat("driver.interrupts"), small.stat("driver.interrupts"));
}

// Same config and seed: byte-identical statistics; another seed: a different schedule.
Test(workloads, same_seed_identical_results)
{
    const std::vector<std::string> args = {
        "--set", "driver.arrival=poisson", "--set", "driver.tx_rate_mpps=0.4",
        "--set", "driver.frame_size_mix=random", "--set", "driver.mode=napi",
        "--set", "driver.frames_count=800"};
    const std::string d1 = temp_dir(), d2 = temp_dir(), d3 = temp_dir();
    run_out a, b, c;
    run(a, args, d1);
    run(b, args, d2);
    std::vector<std::string> other = args;
    other.insert(other.end(), {"--seed", "2"});
    run(c, other, d3);
    expect_clean_loopback(a, 800);
    expect_clean_loopback(c, 800);
    cr_assert_eq(slurp(d1 + "/stats.json"), slurp(d2 + "/stats.json"));
    cr_expect_neq(a.stat("sim.time_ns"), c.stat("sim.time_ns"));
}

// A polling driver's thread sleeps through the polls that find nothing (sim.poll_sleep,
// host_cpu::op_poll_idle): every statistic must be what one wait per poll gives, in
// poll mode and in NAPI's polling, with frames due at a rate (deadlines) and as fast as
// the rings allow (device writes), packed and split rings, zero per-frame CPU costs.
Test(workloads, poll_sleep_keeps_results)
{
    const std::vector<std::vector<std::string>> cases = {
        {"--set", "driver.mode=poll"},
        {"--set", "driver.mode=poll", "--set", "driver.tx_rate_mpps=0.3"},
        {"--set", "driver.mode=poll", "--set", "driver.decline_features=RING_PACKED", "--set",
         "driver.tx_rate_mpps=2"},
        {"--set", "driver.mode=poll", "--set", "device.fetch_source=read_ahead", "--set",
         "device.fetch_batch_descriptors=32", "--set", "host.tx_packet_cycles=0", "--set",
         "host.rx_packet_cycles=0", "--set", "host.tx_reap_cycles=0", "--set",
         "host.rx_refill_cycles=0"},
        {"--set", "driver.mode=napi"},
    };
    for (const auto &c : cases) {
        std::vector<std::string> on = {"--set", "driver.frames_count=1000", "--set", "sim.poll_sleep=on"};
        std::vector<std::string> off = {"--set", "driver.frames_count=1000", "--set", "sim.poll_sleep=off"};
        on.insert(on.end(), c.begin(), c.end());
        off.insert(off.end(), c.begin(), c.end());
        run_out a, b;
        run(a, on);
        run(b, off);
        expect_clean_loopback(a, 1000);
        cr_expect_gt(a.stat("driver.polls_empty"), 0);
        char *sa = json_dumps(json_object_get(a.stats, "stats"), JSON_SORT_KEYS);
        char *sb = json_dumps(json_object_get(b.stats, "stats"), JSON_SORT_KEYS);
        cr_expect_str_eq(sa, sb, "%s: statistics differ with sim.poll_sleep on and off", c.back().c_str());
        free(sa);
        free(sb);
    }
}

// Several engines per queue are refused: ties between them are ordered by SystemC's event
// queue, which the sleeping CPU no longer fills the same way.
Test(workloads, poll_sleep_needs_one_engine)
{
    run_out r;
    run(r, {"--set", "sim.poll_sleep=on", "--set", "device.queue_engines=4"});
    cr_expect_eq(r.status, 2);
    cr_expect(r.err.find("sim.poll_sleep") != std::string::npos, "%s", r.err.c_str());
}

// driver.flows_count: the frames are flow frames (IPv4/UDP) of several flows, checked
// byte for byte when they come back like plain ones, of the lengths asked for (the
// smallest size the configuration takes, 60 bytes, is the flow frame's minimum).
Test(workloads, flow_frames_come_back_intact)
{
    run_out r, plain;
    run(r, {"--set", "driver.flows_count=8", "--set", "driver.frames_count=400", "--set",
            "driver.frame_sizes_bytes=60,64,1500"});
    run(plain, {"--set", "driver.frames_count=400", "--set", "driver.frame_sizes_bytes=60,64,1500"});
    expect_clean_loopback(r, 400);
    expect_clean_loopback(plain, 400);
    cr_expect_eq(r.stat("driver.tx.bytes"), plain.stat("driver.tx.bytes"));
    cr_expect_eq(r.stat("driver.rx.flow_frames"), 400);
    cr_expect_eq(plain.stat("driver.rx.flow_frames"), 0);
}
