// test_mq_platform.cpp -- the timed platform with several queue pairs offered
// (device.queue_pairs_count > 1, "Network Device / Virtqueues": 2N + 1 queues, receiveqK
// at 2(K-1), transmitqK at 2(K-1)+1, controlq at 2N), through the viosim binary.
//
// The reference driver does not negotiate VIRTIO_NET_F_MQ, so only receiveq1 and
// transmitq1 carry traffic ("Device Initialization": "only receiveq1, transmitq1 and
// controlq are used by default"); `viosim run --offer-unused-pairs` runs such a device.
// What must hold: pair 1 gives exactly the one-pair results, the queues the driver never
// used have no rows in stats.json and no processes, and memory grows modestly with the
// pairs offered.
#include "common/viosim_run.hpp"

#include <sys/resource.h>

namespace {

const std::vector<std::string> small = {"--set", "driver.frames_count=400"};

std::vector<std::string> with(std::vector<std::string> a, const std::vector<std::string> &more)
{
    a.insert(a.end(), more.begin(), more.end());
    return a;
}

std::vector<std::string> offered(unsigned pairs, const std::vector<std::string> &args)
{
    return with(args, {"--set",
                       "device.queue_pairs_count=" + std::to_string(pairs)});
}

// Every statistic of `one` has the same value in `many` (which may have more rows:
// the larger MSI-X table's vectors that carried messages, device.queue_pairs.*).
void expect_same_values(const run_out &one, const run_out &many, const char *what)
{
    cr_assert_eq(one.status, 0, "%s: one pair: exit %d: %s", what, one.status, one.err.c_str());
    cr_assert_eq(many.status, 0, "%s: exit %d: %s", what, many.status, many.err.c_str());
    const char *key;
    json_t *row;
    size_t n = 0;
    json_object_foreach(json_object_get(one.stats, "stats"), key, row)
    {
        json_t *other = json_object_get(json_object_get(many.stats, "stats"), key);
        cr_expect_not_null(other, "%s: %s missing", what, key);
        if (!other)
            continue;
        n++;
        cr_expect(json_equal(json_object_get(row, "value"), json_object_get(other, "value")),
                  "%s: %s is %g with one pair, %g", what, key,
                  json_number_value(json_object_get(row, "value")),
                  json_number_value(json_object_get(other, "value")));
    }
    cr_expect_gt(n, 100u, "%s: compared %zu statistics", what, n);
    cr_expect_eq(many.result("driver_result"), "ok");
}

bool has_stat(const run_out &r, const char *name)
{
    return json_object_get(json_object_get(r.stats, "stats"), name) != nullptr;
}

// Largest resident set of the processes this test waited for, KiB.
long children_max_rss_kib()
{
    struct rusage u = {};
    getrusage(RUSAGE_CHILDREN, &u);
    return u.ru_maxrss;
}

} // namespace

// The reference driver on 4 of 4 pairs ("Automatic receive steering in multiqueue
// mode"): every frame comes back, each pair carries traffic both ways, and the
// statistics have rows for the pairs in use.
Test(mq_platform, four_pairs_in_use_move_every_frame)
{
    run_out r;
    run(r, with(small, {"--set", "device.queue_pairs_count=4", "--set", "driver.queue_pairs_count=4",
                        "--set", "driver.flows_count=16"}));
    cr_assert_eq(r.status, 0, "exit %d: %s", r.status, r.err.c_str());
    cr_expect(r.out.find("driver result                  ok") != std::string::npos, "%s", r.out.c_str());
    cr_expect_eq(r.stat("driver.rx.frames"), r.stat("driver.tx.frames"));
    for (unsigned k = 1; k <= 4; k++) {
        const std::string tx = "driver.pair." + std::to_string(k) + ".tx.frames";
        const std::string rx = "driver.pair." + std::to_string(k) + ".rx.frames";
        cr_expect_gt(r.stat(tx.c_str()), 0, "%s", tx.c_str());
        cr_expect_gt(r.stat(rx.c_str()), 0, "%s", rx.c_str());
    }
    cr_expect_gt(r.stat("device.queue.tx4.buffers"), 0);
}

// 4 and 64 pairs offered, the driver on pair 1: every statistic as with one pair, for
// the same seed; no rows and no processes for the pairs the driver never used.
Test(mq_platform, unused_pairs_leave_pair_one_unchanged)
{
    run_out one, four, many;
    run(one, small);
    run(four, offered(4, small));
    run(many, offered(64, small));
    expect_same_values(one, four, "4 pairs");
    expect_same_values(one, many, "64 pairs");
    for (const run_out *r : {&four, &many}) {
        cr_expect_eq(r->stat("device.queue_pairs.used"), 1);
        // Engines of receiveq1, transmitq1 and controlq, two coalescing timers, the
        // MSI-X sender: what a one-pair device runs.
        cr_expect_eq(r->stat("device.processes"), 6);
        cr_expect(!has_stat(*r, "device.queue.rx2.kicks"));
        cr_expect(!has_stat(*r, "device.queue.tx2.kicks"));
        cr_expect(!has_stat(*r, "device.msix.vector.9.messages")); // no messages there
        expect_every_better(*r, "offered pairs");
    }
    cr_expect_eq(four.stat("device.queue_pairs.offered"), 4);
    cr_expect_eq(many.stat("device.queue_pairs.offered"), 64);
    // A one-pair stats.json has none of the multiqueue rows.
    cr_expect(!has_stat(one, "device.queue_pairs.offered"));
    cr_expect(!has_stat(one, "device.processes"));
}

// driver.coal_policy=static: the reference driver negotiates CTRL_VQ but not MQ, so
// with 4 pairs offered the control queue is queue 2 ("Network Device / Virtqueues":
// controlq is 2N, N = 1 when neither VIRTIO_NET_F_MQ nor VIRTIO_NET_F_RSS is
// negotiated). The run ends clean, the control queue (queue 2, one engine) answers
// the coalescing commands, and every statistic is the one-pair run's.
Test(mq_platform, control_queue_at_2_without_mq)
{
    const std::vector<std::string> coal = with(small, {"--set", "driver.coal_policy=static"});
    run_out one, four;
    run(one, coal);
    run(four, offered(4, coal));
    expect_same_values(one, four, "4 pairs, static coalescing");
    cr_expect_eq(four.result("driver_result"), "ok");
    cr_expect_eq(four.stat("device.queue.ctrl.buffers"), four.stat("driver.ctrl.commands"));
    cr_expect_gt(four.stat("device.ctrl.ok"), 0);
    cr_expect_eq(four.stat("device.queue_pairs.used"), 1);
    cr_expect(!has_stat(four, "device.queue.rx2.kicks"));
    cr_expect(!has_stat(four, "device.queue.rx5.kicks"));
}

// Several engines per queue, split rings and a DMA channel arbiter: still pair 1's
// results (the arbiter serves 2N + 1 requesters in turn; the unused never ask).
Test(mq_platform, unused_pairs_with_engines_and_channels)
{
    const std::vector<std::string> engines =
        with(small, {"--set", "device.queue_engines=4", "--set", "device.fetch_batch_descriptors=8",
                     "--set", "driver.decline_features=RING_PACKED"});
    run_out one, four;
    run(one, engines);
    run(four, offered(4, engines));
    expect_same_values(one, four, "4 engines, 4 pairs");
    cr_expect_eq(four.stat("device.processes"), 4 + 4 + 1 + 2 + 1);

    const std::vector<std::string> channels = with(small, {"--set", "dma.channels_count=1"});
    run_out one_ch, four_ch;
    run(one_ch, channels);
    run(four_ch, offered(4, channels));
    expect_same_values(one_ch, four_ch, "1 DMA channel, 4 pairs");
    cr_expect(!has_stat(four_ch, "dma.channel.rx2.grants"));
}

// 256 pairs offered (513 queues, 514 MSI-X vectors): the device starts no process for
// the 255 unused pairs, and the run's memory stays within a few tens of MiB of the
// one-pair run's (the kernel's per-queue ring state; the platform allocates per queue
// only what a started queue needs).
Test(mq_platform, memory_and_processes_scale_with_pairs_used)
{
    run_out one;
    run(one, small);
    const long one_kib = children_max_rss_kib();
    run_out most;
    run(most, offered(256, small));
    const long most_kib = children_max_rss_kib();
    expect_same_values(one, most, "256 pairs");
    cr_expect_eq(most.stat("device.processes"), 6);
    cr_expect_lt(most_kib, one_kib + 64 * 1024, "one pair %ld KiB, 256 pairs %ld KiB", one_kib,
                 most_kib);
}

// The timeline names the tracks of the queues in use only, by the spec's names.
Test(mq_platform, trace_names_queues_in_use)
{
    const std::string dir = temp_dir();
    run_out r;
    run(r, offered(8, with(small, {"--trace", dir + "/trace.json"})), dir);
    cr_assert_eq(r.status, 0, "%s", r.err.c_str());
    const std::string t = slurp(dir + "/trace.json");
    cr_expect(t.find("device: receiveq1 engine") != std::string::npos);
    cr_expect(t.find("device: transmitq1 engine") != std::string::npos);
    cr_expect(t.find("device: controlq engine") != std::string::npos);
    cr_expect(t.find("receiveq2") == std::string::npos);
    cr_expect(t.find("notify transmitq1") != std::string::npos);
}

// A notification of a queue the driver never set up (a violation of "Basic
// Facilities of a Virtio Device / Virtqueues": the driver notifies only queues that
// exist and are enabled): with 4 pairs offered and neither MQ nor RSS negotiated, index
// 2 is where the control queue would be ("Network Device / Virtqueues": controlq is 2N,
// N = 1), not receiveq2 (without CTRL_VQ it does not exist). The device records the
// violation against queue 2, names the notification by the queue it hit, and starts
// nothing for it.
Test(mq_platform, kick_of_an_unused_pair_starts_nothing)
{
    const std::string dir = temp_dir();
    run_out r;
    run(r, offered(4, with(small, {"--set", "driver.inject_violation=notify_queue_not_enabled",
                                   "--trace", dir + "/trace.json"})),
        dir);
    cr_assert_eq(r.status, 0, "%s", r.err.c_str());
    cr_expect_eq(r.result("driver_result"), "ok");
    json_t *first = json_array_get(
        json_object_get(json_object_get(json_object_get(r.stats, "result"), "conformance"), "first"), 0);
    cr_assert_not_null(first);
    cr_expect_str_eq(json_string_value(json_object_get(first, "rule")), "NOTIFY_QUEUE_NOT_ENABLED");
    cr_expect_eq(json_integer_value(json_object_get(first, "queue")), 2);
    const std::string t = slurp(dir + "/trace.json");
    cr_expect(t.find("\"notify controlq\"") != std::string::npos);
    cr_expect(t.find("\"notify receiveq2\"") == std::string::npos);
    cr_expect_eq(r.stat("device.processes"), 6);
    cr_expect_eq(r.stat("device.queue_pairs.used"), 1);
    cr_expect(!has_stat(r, "device.queue.rx2.kicks"));
    cr_expect_eq(r.stat("device.queue.ctrl.kicks"), 0);
}

// sim.engine_wakeup = next wakes a blocked receive or transmit engine only when a step
// gave its queue work (the personality's pt_wake marks: a frame in its pair's FIFO, room
// in it), all wakes every blocked engine of the signal for each step. On 8 pairs with
// one-frame FIFOs (so transmit queues also wait for room), both modes move every frame
// on every pair, and next wakes the receive engines markedly less often (about half as
// often here: most of the rest are the driver's register writes, each of which wakes
// every blocked engine in both modes).
Test(mq_platform, engine_wakeup_next_wakes_only_the_pairs_given_work)
{
    double rx_wakeups[2] = {0, 0};
    for (int next = 0; next < 2; next++) {
        run_out r;
        run(r, {"--set", "driver.frames_count=4000", "--set", "device.queue_pairs_count=8",
                "--set", "driver.queue_pairs_count=8", "--set", "driver.flows_count=64",
                "--set", "host.cpus_count=8", "--set", "device.rx_fifo_frames=1",
                "--set", "driver.queue_size_entries=8",
                "--set", next ? "sim.engine_wakeup=next" : "sim.engine_wakeup=all"});
        cr_assert_eq(r.status, 0, "exit %d: %s", r.status, r.err.c_str());
        cr_expect_eq(r.result("driver_result"), "ok");
        cr_expect_eq(r.stat("driver.rx.frames"), 4000);
        for (unsigned k = 1; k <= 8; k++) {
            const std::string p = "driver.pair." + std::to_string(k);
            cr_expect_gt(r.stat((p + ".tx.frames").c_str()), 0, "pair %u", k);
            cr_expect_eq(r.stat((p + ".rx.frames").c_str()), r.stat((p + ".tx.frames").c_str()),
                         "pair %u", k);
            rx_wakeups[next] += r.stat(k == 1 ? "device.queue.rx.wakeups"
                                              : ("device.queue.rx" + std::to_string(k) + ".wakeups").c_str());
        }
    }
    cr_expect_lt(rx_wakeups[1], 0.6 * rx_wakeups[0], "receive engines woke %g times (next), %g (all)",
                 rx_wakeups[1], rx_wakeups[0]);
}
