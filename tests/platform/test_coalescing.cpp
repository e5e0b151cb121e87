// test_coalescing.cpp -- virtio-net notification coalescing ("Network Device / Device
// Operation / Control Virtqueue / Notifications Coalescing") end to end through the
// viosim binary: the reference driver's control queue, the device's counting and its
// max_usecs timers, and the adaptive policy.

#include "common/viosim_run.hpp"

namespace {

// One offered load for every run here: 0.5 Mpps of 64-byte frames in loopback.
std::vector<std::string> load(unsigned frames = 3000)
{
    return {"--set", "driver.tx_rate_mpps=0.5", "--set", "driver.frame_sizes_bytes=64",
            "--set", "driver.frames_count=" + std::to_string(frames)};
}

std::vector<std::string> static_coal(unsigned packets, unsigned us, unsigned frames = 3000)
{
    std::vector<std::string> a = load(frames);
    const std::string p = std::to_string(packets), u = std::to_string(us);
    a.insert(a.end(), {"--set", "driver.coal_policy=static", "--set", "driver.coal_rx_max_packets=" + p,
                       "--set", "driver.coal_rx_max_us=" + u, "--set", "driver.coal_tx_max_packets=" + p,
                       "--set", "driver.coal_tx_max_us=" + u});
    return a;
}

} // namespace

// Without driver.coal_policy nothing of the control queue is used: no commands, no
// coalescing statistics move.
Test(coalescing, off_by_default_sends_no_command)
{
    run_out r;
    run(r, load(500));
    expect_clean_loopback(r, 500);
    cr_expect_eq(r.stat("driver.ctrl.commands"), 0);
    cr_expect_eq(r.stat("device.ctrl.commands"), 0);
    cr_expect_eq(r.stat("device.queue.rx.coal.timer_arms"), 0);
    cr_expect_eq(r.stat("device.queue.rx.coal.notify_by_packets"), 0);
}

// The static policy: RX_SET, TX_SET and a VQ_GET of each queue, all answered OK and
// read back as set. At a fixed offered load, more coalescing (max_packets 1, 8, 32
// with a max_usecs that never ends a window first) never gives more interrupts per
// packet, and max_packets 8 cuts them well below one per 8 packets' worth of windows.
Test(coalescing, more_packets_never_more_interrupts)
{
    double prev = 1e9;
    for (unsigned packets : {1u, 8u, 32u}) {
        run_out r;
        run(r, static_coal(packets, 1000));
        expect_clean_loopback(r, 3000);
        cr_expect_eq(r.stat("driver.ctrl.commands"), 4);
        cr_expect_eq(r.stat("device.ctrl.ok"), 4);
        cr_expect_eq(r.stat("driver.ctrl.errors"), 0);
        const double ipp = r.stat("per_packet.interrupts");
        cr_expect_leq(ipp, prev, "max_packets %u: %f interrupts per packet after %f", packets, ipp, prev);
        if (packets > 1) {
            cr_expect_gt(r.stat("device.queue.rx.coal.notify_by_packets"), 0);
            cr_expect_leq(ipp, 1.0 / packets + 0.02, "max_packets %u: %f", packets, ipp);
        }
        prev = ipp;
    }
}

// A max_usecs bound: 32 packets take 64 us at 0.5 Mpps, so with max_usecs 5 most
// windows end by the timer, the notifications show as notify_by_timer, and every
// frame still comes back.
Test(coalescing, max_usecs_ends_windows_by_timer)
{
    run_out r;
    run(r, static_coal(32, 5));
    expect_clean_loopback(r, 3000);
    cr_expect_gt(r.stat("device.queue.rx.coal.timer_expiries"), 0);
    cr_expect_gt(r.stat("device.queue.rx.coal.notify_by_timer"), 0);
    cr_expect_leq(r.stat("device.queue.rx.coal.timer_expiries"),
                  r.stat("device.queue.rx.coal.timer_arms"));
    // The timer bounds the wait of the last frames: no frame waits for a 32-packet
    // window that never fills (max_usecs 1000 leaves them waiting about 1 ms).
    run_out slow;
    run(slow, static_coal(32, 1000));
    expect_clean_loopback(slow, 3000);
    cr_expect_lt(r.stat("latency.max_ns"), 100000);
    cr_expect_gt(slow.stat("latency.max_ns"), 500000);
}

// The adaptive policy measures the packet rate and moves its profile, with one VQ_SET
// per change, every one answered OK.
Test(coalescing, adaptive_policy_retunes)
{
    run_out r;
    std::vector<std::string> a = load();
    a.insert(a.end(), {"--set", "driver.coal_policy=adaptive", "--set",
                       "driver.coal_adaptive_interval_us=20"});
    run(r, a);
    expect_clean_loopback(r, 3000);
    cr_expect_gt(r.stat("driver.coal.retunes"), 0);
    cr_expect_eq(r.stat("driver.ctrl.commands"), r.stat("driver.coal.retunes"));
    cr_expect_eq(r.stat("device.ctrl.ok"), r.stat("driver.ctrl.commands"));
    cr_expect_eq(r.stat("driver.ctrl.errors"), 0);
    cr_expect_gt(r.stat("device.queue.rx.coal.notify_by_packets") +
                     r.stat("device.queue.rx.coal.notify_by_timer"), 0);
}

// Coalescing with the control queue in an address space of its own (ACCESS_PLATFORM is
// negotiated by default, so its ring and command buffer are mapped in PASID 2).
Test(coalescing, control_queue_in_its_own_pasid)
{
    run_out r;
    std::vector<std::string> a = static_coal(8, 50, 500);
    a.insert(a.end(), {"--set", "device.ctrl_pasid=2"});
    run(r, a);
    expect_clean_loopback(r, 500);
    cr_expect_eq(r.stat("device.ctrl.ok"), 4);
}

// Same configuration and seed: byte-identical stats.json with coalescing timers too.
Test(coalescing, same_seed_identical_results)
{
    run_out a, b;
    const std::string da = temp_dir(), db = temp_dir();
    std::vector<std::string> args = static_coal(16, 10, 1000);
    args.insert(args.end(), {"--set", "driver.arrival=poisson"});
    run(a, args, da);
    run(b, args, db);
    expect_clean_loopback(a, 1000);
    cr_expect(slurp(da + "/stats.json") == slurp(db + "/stats.json"));
}

// Static values without the static policy are a configuration error naming the key.
Test(coalescing, static_values_need_static_policy)
{
    run_out r;
    run(r, {"--set", "driver.coal_policy=adaptive", "--set", "driver.coal_tx_max_us=8"});
    cr_expect_eq(r.status, 2);
    cr_expect_neq(r.err.find("driver.coal_tx_max_us"), std::string::npos, "%s", r.err.c_str());
}
