// test_parallel_fetch.cpp -- descriptor fetch batching and parallel queue engines
// through the viosim binary (docs/parallel-fetch.md): faster than one buffer at a time,
// every frame intact, hints waste nothing, read-ahead counts its waste, deterministic.

#include "common/viosim_run.hpp"

namespace {

const std::vector<std::string> small64 = {"--set", "driver.frame_sizes_bytes=64", "--set",
                                          "driver.frames_count=2000"};

std::vector<std::string> with(std::vector<std::string> a, const std::vector<std::string> &more)
{
    a.insert(a.end(), more.begin(), more.end());
    return a;
}

std::vector<std::string> parallel(const char *source)
{
    return with(small64, {"--set", "device.queue_engines=4", "--set",
                          "device.fetch_batch_descriptors=16", "--set",
                          std::string("device.fetch_source=") + source});
}

} // namespace

// 64-byte frames: four engines and batches of 16 beat one buffer at a time on the same
// link, and every frame still comes back intact and in order.
Test(parallel_fetch, engines_and_batches_raise_64B_throughput)
{
    run_out one, par;
    run(one, small64);
    run(par, parallel("hint"));
    expect_clean_loopback(one, 2000);
    expect_clean_loopback(par, 2000);
    cr_expect_gt(par.stat("throughput.tx_mpps"), one.stat("throughput.tx_mpps") * 1.5,
                 "parallel %f Mpps vs one at a time %f Mpps", par.stat("throughput.tx_mpps"),
                 one.stat("throughput.tx_mpps"));
    cr_expect_gt(par.stat("device.queue.tx.in_flight_max"), 1);
    cr_expect_eq(one.stat("device.queue.tx.in_flight_max"), 1);
    cr_expect_eq(one.stat("device.queue.tx.fetch.entries_per_read"), 1.0);
}

// Engines alone (one descriptor per read) already overlap the buffers' DMA.
Test(parallel_fetch, engines_alone_raise_throughput)
{
    run_out one, par;
    run(one, small64);
    run(par, with(small64, {"--set", "device.queue_engines=4"}));
    expect_clean_loopback(par, 2000);
    cr_expect_gt(par.stat("throughput.tx_mpps"), one.stat("throughput.tx_mpps"));
}

// The hint says exactly what the driver made available: nothing read is wasted, and
// some reads carry several descriptors.
Test(parallel_fetch, hint_wastes_nothing)
{
    run_out r;
    run(r, parallel("hint"));
    expect_clean_loopback(r, 2000);
    for (const char *q : {"tx", "rx"}) {
        const std::string n = std::string("device.queue.") + q + ".fetch.";
        cr_expect_eq(r.stat((n + "wasted_entries").c_str()), 0, "%s", q);
        cr_expect_eq(r.stat((n + "wasted_bytes").c_str()), 0, "%s", q);
    }
    cr_expect_gt(r.stat("device.queue.tx.fetch.hint_reads"), 0);
    cr_expect_gt(r.stat("device.queue.tx.fetch.entries_per_read"), 1.0);
}

// Read-ahead reads whole batches: more descriptors per read, and the ones not yet
// available are counted as waste (16 bytes each on the packed ring).
Test(parallel_fetch, read_ahead_counts_waste)
{
    run_out r;
    run(r, parallel("read_ahead"));
    expect_clean_loopback(r, 2000);
    const double wasted = r.stat("device.queue.tx.fetch.wasted_entries");
    cr_expect_gt(wasted, 0);
    cr_expect_eq(r.stat("device.queue.tx.fetch.wasted_bytes"), wasted * 16);
    cr_expect_eq(r.stat("device.queue.tx.fetch.hint_reads"), 0);
}

// The split ring with IN_ORDER and without: batches of available ring entries and
// parallel engines deliver every frame.
Test(parallel_fetch, split_ring_parallel_frames_intact)
{
    for (const char *decline : {"RING_PACKED", "RING_PACKED,IN_ORDER"}) {
        run_out r;
        run(r, with(parallel("read_ahead"), {"--set", std::string("driver.decline_features=") + decline}));
        expect_clean_loopback(r, 2000);
        cr_expect_gt(r.stat("device.queue.tx.fetch.entries_per_read"), 1.0, "%s", decline);
    }
}

// Same config and seed: byte-identical stats.json, with several engines interleaving.
Test(parallel_fetch, deterministic)
{
    const std::string a = temp_dir(), b = temp_dir();
    run_out ra, rb;
    run(ra, parallel("read_ahead"), a);
    run(rb, parallel("read_ahead"), b);
    expect_clean_loopback(ra, 2000);
    const std::string sa = slurp(a + "/stats.json"), sb = slurp(b + "/stats.json");
    cr_assert_gt(sa.size(), 0u);
    cr_expect(sa == sb, "stats.json differs between identical runs");
}

// Sixteen engines on eight read tags behind the IOMMU: a read whose translation waits
// for a page walker completes after reads issued behind it, and with in-order completion
// consumption (the default) their tags and data wait for it, which dma.in_order_holds
// counts (issue 12: since the link fills gaps, completions can come back out of issue
// order). Out of order nothing waits.
Test(parallel_fetch, in_order_completion_holds_counted)
{
    const std::vector<std::string> busy =
        with(small64, {"--set", "device.queue_engines=16", "--set", "device.fetch_batch_descriptors=32",
                       "--set", "device.fetch_source=read_ahead", "--set", "dma.read_tags_count=8",
                       "--set", "driver.mode=poll"});
    run_out in, out;
    run(in, busy);
    run(out, with(busy, {"--set", "dma.completion_order=out_of_order"}));
    expect_clean_loopback(in, 2000);
    expect_clean_loopback(out, 2000);
    cr_expect_gt(in.stat("dma.in_order_holds"), 0);
    cr_expect_gt(in.stat("dma.in_order_hold_ns"), 0);
    cr_expect_eq(out.stat("dma.in_order_holds"), 0);
    cr_expect_eq(out.stat("dma.in_order_hold_ns"), 0);
}

// The DMA channel arbiter serves one engine per queue: combining it with several
// engines is refused, naming the key.
Test(parallel_fetch, engines_with_channels_refused)
{
    run_out r;
    run(r, {"--set", "device.queue_engines=2", "--set", "dma.channels_count=1"});
    cr_expect_eq(r.status, 2);
    cr_expect_neq(r.err.find("device.queue_engines"), std::string::npos, "%s", r.err.c_str());
}
