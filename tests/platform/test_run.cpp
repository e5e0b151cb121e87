// test_run.cpp -- whole-platform runs through the viosim binary: the reference driver
// brings the device up and moves frames through it on the timed PCIe path.

#include "common/viosim_run.hpp"

#include <sys/resource.h>

#include <cmath>

// "Device Initialization": the reference driver reaches DRIVER_OK and N frames of
// varied sizes go out and come back with their payloads intact (loopback backend).
Test(platform_run, loopback_varied_sizes_intact)
{
    run_out r;
    run(r, {"--set", "driver.frames_count=600", "--set",
            "driver.frame_sizes_bytes=60,61,128,577,1000,1514,2030"});
    expect_clean_loopback(r, 600);
    cr_expect_gt(r.stat("sim.time_ns"), 0);
    cr_expect_gt(r.stat("latency.p50_ns"), 0);
    cr_expect_leq(r.stat("latency.p50_ns"), r.stat("latency.p99_ns"));
    cr_expect_leq(r.stat("latency.p99_ns"), r.stat("latency.max_ns"));
    cr_expect_gt(r.stat("link.up.utilisation"), 0);
    cr_expect_lt(r.stat("link.up.utilisation"), 1.0);
}

// Packed ring wrap-around through the whole stack: a ring of 4 entries, many laps.
Test(platform_run, small_ring_many_laps)
{
    run_out r;
    run(r, {"--set", "driver.queue_size_entries=4", "--set", "driver.frames_count=300",
            "--set", "driver.frame_sizes_bytes=64"});
    expect_clean_loopback(r, 300);
}

// Ring size that is not a power of two (allowed for packed rings).
Test(platform_run, ring_size_not_power_of_two)
{
    run_out r;
    run(r, {"--set", "driver.queue_size_entries=9", "--set", "driver.frames_count=200"});
    expect_clean_loopback(r, 200);
}

// "Driver and Device Event Suppression": in polling mode the driver disables used
// buffer notifications, so no interrupt reaches it.
Test(platform_run, poll_mode_takes_no_interrupts)
{
    run_out r;
    run(r, {"--set", "driver.mode=poll", "--set", "driver.frames_count=300"});
    expect_clean_loopback(r, 300);
    cr_expect_eq(r.stat("driver.interrupts"), 0);
    cr_expect_eq(r.stat("device.interrupts_raised"), 0);
    cr_expect_gt(r.stat("driver.polls_empty"), 0);
}

// Interrupt mode: interrupts are taken, and no more than one per used buffer
// published (TX + RX); the device's suppression keeps notifications at most one per
// frame per queue.
Test(platform_run, interrupt_mode_bounded_by_suppression)
{
    run_out r;
    run(r, {"--set", "driver.frames_count=400"});
    expect_clean_loopback(r, 400);
    const double irqs = r.stat("driver.interrupts");
    cr_expect_gt(irqs, 0);
    cr_expect_leq(irqs, 2 * 400);
    cr_expect_leq(r.stat("driver.notifications"), 2 * 400 + 2);
    // Every message sent was decided by the device, and every interrupt the driver took
    // was sent (a message decided just before the driver's final reset may be dropped).
    cr_expect_leq(r.stat("device.msix_sent"), r.stat("device.interrupts_raised"));
    cr_expect_geq(r.stat("device.msix_sent"), r.stat("driver.interrupts"));
    // With MSI-X enabled the INTx pin never moves (PCI Local Bus 3.0 §6.8.2, and the
    // driver sets Interrupt Disable): every interrupt is a message.
    cr_expect_eq(r.stat("device.intx_asserts"), 0);
    cr_expect_eq(r.stat("device.intx_deasserts"), 0);
    cr_expect_eq(r.stat("cpu.intx_interrupts"), 0);
}

// Without EVENT_IDX (declined by the driver) the flag-based suppression is used.
Test(platform_run, flags_suppression_without_event_idx)
{
    run_out r;
    run(r, {"--set", "driver.decline_features=EVENT_IDX,NOTIFICATION_DATA", "--set",
            "driver.frames_count=300"});
    expect_clean_loopback(r, 300);
}

// Sink backend: frames go out and are dropped by the device; nothing comes back.
Test(platform_run, sink_backend)
{
    run_out r;
    run(r, {"--set", "device.backend=sink", "--set", "driver.frames_count=250"});
    cr_assert_eq(r.status, 0, "stdout:\n%s\nstderr:\n%s", r.out.c_str(), r.err.c_str());
    cr_expect_eq(r.stat("driver.tx.frames"), 250);
    cr_expect_eq(r.stat("device.sink.frames"), 250);
    cr_expect_eq(r.stat("driver.rx.frames"), 0);
}

// "Feature Bits" quirk: withdrawing RING_PACKED makes driver and device fall back to
// split rings ("Split Virtqueues"); withdrawing VERSION_1 (which this driver requires)
// makes initialisation fail cleanly: exit 1, a named driver result.
Test(platform_run, withdrawn_features)
{
    run_out split, refused;
    run(split, {"--set", "device.withdraw_features=RING_PACKED", "--set", "driver.frames_count=300",
                "--set", "driver.frame_sizes_bytes=64,1500"});
    expect_clean_loopback(split, 300);
    run(refused, {"--set", "device.withdraw_features=VERSION_1", "--set", "driver.frames_count=10"});
    cr_expect_eq(refused.status, 1, "stdout:\n%s\nstderr:\n%s", refused.out.c_str(), refused.err.c_str());
    cr_assert_not_null(refused.stats);
    cr_expect_eq(refused.result("driver_result"), "features_refused");
    cr_expect_eq(refused.stat("driver.tx.frames"), 0);
    // stats.json records what was negotiated, {"NAME": bit}: nothing when refused.
    const json_t *none = json_object_get(json_object_get(refused.stats, "result"), "negotiated_features");
    cr_assert(json_is_object(none));
    cr_expect_eq(json_object_size(none), 0u);
    const json_t *f = json_object_get(json_object_get(split.stats, "result"), "negotiated_features");
    cr_expect_eq(json_integer_value(json_object_get(f, "VERSION_1")), 32);
    cr_expect_null(json_object_get(f, "RING_PACKED"), "withdrawn, so not negotiated");
}

// Split rings through the whole platform: small ring (many laps of the 16-bit index is
// covered by the kernel tests), flag-based suppression, polling, IOMMU.
Test(platform_run, split_rings_variants)
{
    run_out a, b, c;
    run(a, {"--set", "driver.decline_features=RING_PACKED", "--set", "driver.queue_size_entries=4",
            "--set", "driver.frames_count=300"});
    expect_clean_loopback(a, 300);
    run(b, {"--set", "driver.decline_features=RING_PACKED,EVENT_IDX,NOTIFICATION_DATA", "--set",
            "driver.frames_count=300"});
    expect_clean_loopback(b, 300);
    run(c, {"--set", "driver.decline_features=RING_PACKED", "--set", "driver.mode=poll", "--set",
            "driver.tx_layout=indirect", "--set", "driver.frames_count=300"});
    expect_clean_loopback(c, 300);
    cr_expect_eq(c.stat("driver.interrupts"), 0);
    cr_expect_gt(c.stat("iommu.requests"), 0);
}

// Same configuration and seed: byte-identical stats.json.
Test(platform_run, deterministic_stats)
{
    const std::string a = temp_dir(), b = temp_dir();
    run_out r1, r2;
    run(r1, {"--set", "driver.frames_count=300", "--seed", "7"}, a);
    run(r2, {"--set", "driver.frames_count=300", "--seed", "7"}, b);
    cr_assert_eq(r1.status, 0);
    cr_assert_eq(r2.status, 0);
    const std::string s1 = slurp(a + "/stats.json"), s2 = slurp(b + "/stats.json");
    cr_expect_gt(s1.size(), 100u);
    cr_expect(s1 == s2, "stats.json differs between identical runs");
}

// A faster link moves large frames faster: Gen4 x16 against Gen1 x1.
Test(platform_run, link_speed_matters)
{
    run_out slow, fast;
    run(slow, {"--set", "pcie.gen=1", "--set", "pcie.lanes=1", "--set",
               "driver.frame_sizes_bytes=1500", "--set", "driver.frames_count=200"});
    run(fast, {"--set", "pcie.gen=4", "--set", "pcie.lanes=16", "--set",
               "driver.frame_sizes_bytes=1500", "--set", "driver.frames_count=200"});
    expect_clean_loopback(slow, 200);
    expect_clean_loopback(fast, 200);
    cr_expect_gt(slow.stat("sim.time_ns"), fast.stat("sim.time_ns"));
    cr_expect_gt(slow.stat("link.up.utilisation"), fast.stat("link.up.utilisation"));
}

// Transmit buffers as two-descriptor chains and as indirect tables ("Next Flag:
// Descriptor Chaining", "Indirect Flag: Scatter-Gather Support").
Test(platform_run, tx_chains_and_indirect_tables)
{
    run_out chain, indirect;
    run(chain, {"--set", "driver.tx_layout=chain", "--set", "driver.frames_count=300"});
    run(indirect, {"--set", "driver.tx_layout=indirect", "--set", "driver.frames_count=300"});
    expect_clean_loopback(chain, 300);
    expect_clean_loopback(indirect, 300);
}

// docs/statistics.md lists every statistic a run writes, with its unit and which way
// it is better as the run says.
Test(platform_run, every_statistic_is_documented)
{
    run_out net, bench;
    run(net, {"--set", "driver.frames_count=50"});
    run(bench, {"--set", "sim.workload=dma_bench", "--set", "bench.transfers_count=50", "--set",
                "bench.iommu=on"});
    cr_assert_eq(net.status, 0);
    cr_assert_eq(bench.status, 0);
    const char *src = std::getenv("VIOSIM_SOURCE_DIR");
    cr_assert_not_null(src);
    const std::string doc = slurp(std::string(src) + "/docs/statistics.md");
    for (const run_out *r : {&net, &bench}) {
        const char *key;
        json_t *v;
        json_object_foreach(json_object_get(r->stats, "stats"), key, v)
        {
            // Per-PASID rows are documented once, as iommu.pasid.<n>.*.
            std::string name = key;
            const std::string pasid = "iommu.pasid.";
            if (name.rfind(pasid, 0) == 0)
                name = pasid + "<n>" + name.substr(name.find('.', pasid.size()));
            cr_expect(doc.find("`" + name + "`") != std::string::npos,
                      "statistic %s is not in docs/statistics.md (run scripts/gen-docs)", key);
            const char *unit = json_string_value(json_object_get(v, "unit"));
            const char *better = json_string_value(json_object_get(v, "better"));
            const std::string row = "| `" + name + "` | " + (unit ? unit : "") + " | " +
                                    (better ? better : "") + " |";
            cr_expect(doc.find(row) != std::string::npos,
                      "no row starting %s in docs/statistics.md (run scripts/gen-docs)", row.c_str());
        }
    }
}

// Every statistic of a default run and of a DMA benchmark says which way is better
// (issue 14: viosim compare judges a change by it), as docs/statistics.md does, and
// these say it the right way round.
Test(platform_run, every_statistic_says_which_way_is_better)
{
    run_out net, bench;
    run(net, {});
    run(bench, {"--set", "sim.workload=dma_bench", "--set", "bench.transfers_count=200", "--set",
                "bench.iommu=on"});
    cr_assert_eq(net.status, 0, "%s", net.err.c_str());
    cr_assert_eq(bench.status, 0, "%s", bench.err.c_str());
    cr_expect_gt(expect_every_better(net, "virtio_net"), 100u);
    cr_expect_gt(expect_every_better(bench, "dma_bench"), 50u);
    const struct {
        const run_out *run;
        const char *name, *better;
    } rows[] = {
        {&net, "sim.time_ns", "lower"}, // for a fixed number of frames
        {&net, "throughput.tx_mpps", "higher"},
        {&net, "latency.p99_ns", "lower"},
        {&net, "per_packet.interrupts", "lower"},
        {&net, "per_packet.dma_reads", "lower"},
        {&net, "per_packet.tlps", "lower"},
        {&net, "driver.tx.frames", "neutral"}, // the workload
        {&net, "latency.samples", "neutral"},
        {&net, "driver.rx.bad_payload", "lower"},
        {&net, "device.rx.dropped_too_big", "lower"},
        {&net, "conformance.violations", "lower"},
        {&net, "link.up.utilisation", "neutral"},
        {&net, "cpu.utilisation", "neutral"},
        {&net, "device.time_to_interrupt.hist.lt_16_ns", "neutral"},
        {&net, "device.queue.tx.fetch.entries_per_read", "higher"},
        {&net, "iommu.iotlb.hits", "higher"},
        {&net, "iommu.iotlb.misses", "lower"},
        {&net, "iommu.iotlb.hit_rate", "higher"},
        {&net, "iommu.faults", "lower"},
        {&bench, "sim.time_ns", "lower"},
        {&bench, "bench.bandwidth_gbps", "higher"},
        {&bench, "bench.transfers_per_us", "higher"},
        {&bench, "bench.bytes", "neutral"},
        {&bench, "dma.read_latency.p50_ns", "lower"},
        {&bench, "dma.tag_waits", "lower"},
        {&bench, "dma.tags.mean_in_flight", "neutral"},
        {&bench, "iommu.psc.level2.hits", "higher"},
        {&bench, "iommu.walker_wait_ns", "lower"},
    };
    for (const auto &row : rows)
        cr_expect_eq(row.run->better(row.name), row.better, "%s is better %s, not %s", row.name,
                     row.run->better(row.name).c_str(), row.better);
}

// "Reserved Feature Bits" (VIRTIO_F_ACCESS_PLATFORM): negotiated by default, so every
// device access is translated by the platform IOMMU through the page tables the driver
// built; nothing faults and frames come back intact.
Test(platform_run, access_platform_translates_through_iommu)
{
    run_out r;
    run(r, {"--set", "driver.frames_count=300"});
    expect_clean_loopback(r, 300);
    cr_expect_gt(r.stat("iommu.requests"), 0);
    cr_expect_gt(r.stat("iommu.walks"), 0);
    cr_expect_eq(r.stat("iommu.faults"), 0);
}

// Without ACCESS_PLATFORM the device uses physical addresses: the IOMMU is bypassed.
Test(platform_run, without_access_platform_iommu_is_bypassed)
{
    run_out r;
    run(r, {"--set", "driver.decline_features=ACCESS_PLATFORM", "--set", "driver.frames_count=200"});
    expect_clean_loopback(r, 200);
    cr_expect_eq(r.stat("iommu.requests"), 0);
}

// PASIDs: RX and TX queues in different address spaces, each translated in its own;
// and 2 MiB pages, which need far fewer walks than 4 KiB pages.
Test(platform_run, per_queue_pasids_and_large_pages)
{
    run_out split, small, large;
    run(split, {"--set", "device.rx_pasid=3", "--set", "device.tx_pasid=5", "--set",
                "driver.frames_count=200"});
    expect_clean_loopback(split, 200);
    cr_expect_gt(split.stat("iommu.pasid.3.lookups"), 0);
    cr_expect_gt(split.stat("iommu.pasid.5.lookups"), 0);
    cr_expect_eq(split.stat("iommu.faults"), 0);

    run(small, {"--set", "driver.frames_count=400", "--set", "iommu.iotlb_entries=8", "--set",
                "iommu.iotlb_ways=2"});
    run(large, {"--set", "driver.frames_count=400", "--set", "iommu.iotlb_entries=8", "--set",
                "iommu.iotlb_ways=2", "--set", "driver.iommu_page_bytes=2097152"});
    expect_clean_loopback(small, 400);
    expect_clean_loopback(large, 400);
    cr_expect_lt(large.stat("iommu.walks"), small.stat("iommu.walks"));
}

// DMA benchmark: reads through the IOMMU with a window larger than the IOTLB reach
// miss and walk; a lone read without the IOMMU takes the calibrated latency.
Test(platform_run, dma_bench_basics)
{
    run_out plain, translated;
    run(plain, {"--set", "sim.workload=dma_bench", "--set", "bench.transfers_count=1"});
    cr_assert_eq(plain.status, 0, "stderr:\n%s", plain.err.c_str());
    cr_expect_float_eq(plain.stat("dma.read_latency.p50_ns"), 550.0, 0.01);
    run(translated, {"--set", "sim.workload=dma_bench", "--set", "bench.iommu=on", "--set",
                     "bench.access_pattern=random", "--set", "bench.window_bytes=4194304",
                     "--set", "bench.transfers_count=2000"});
    cr_assert_eq(translated.status, 0, "stderr:\n%s", translated.err.c_str());
    cr_expect_gt(translated.stat("iommu.iotlb.misses"), translated.stat("iommu.iotlb.hits"));
    cr_expect_eq(translated.stat("iommu.faults"), 0);
    // With the IOMMU in the device the benchmark's window is mapped in the device's
    // IOMMU: its walks find the tables.
    run_out in_device;
    run(in_device, {"--set", "sim.workload=dma_bench", "--set", "bench.iommu=on", "--set",
                    "bench.access_pattern=random", "--set", "bench.window_bytes=4194304", "--set",
                    "bench.transfers_count=500", "--set", "iommu.walk_location=device"});
    cr_assert_eq(in_device.status, 0, "stderr:\n%s", in_device.err.c_str());
    cr_expect_gt(in_device.stat("iommu.walks"), 0);
    cr_expect_eq(in_device.stat("iommu.faults"), 0);
}

// Paging-structure caches at the root complex: with a level-2 cache that covers the
// window every walk after the first few reads only the leaf; the walk-read overhead
// adds exactly its time to each read of a walk (one read at a time, so nothing else
// moves).
Test(platform_run, dma_bench_paging_structure_caches)
{
    const std::vector<std::string> bench = {
        "--set", "sim.workload=dma_bench", "--set", "bench.iommu=on", "--set",
        "bench.access_pattern=random", "--set", "bench.window_bytes=4194304", "--set",
        "bench.transfers_count=2000", "--set", "dma.read_tags_count=1"};
    auto with = [&](std::vector<std::string> extra) {
        std::vector<std::string> a = bench;
        a.insert(a.end(), extra.begin(), extra.end());
        return a;
    };
    run_out none, cached, slower;
    run(none, bench);
    run(cached, with({"--set", "iommu.psc_level4_entries=1", "--set", "iommu.psc_level3_entries=1",
                      "--set", "iommu.psc_level2_entries=2"}));
    run(slower, with({"--set", "iommu.psc_level4_entries=1", "--set", "iommu.psc_level3_entries=1",
                      "--set", "iommu.psc_level2_entries=2", "--set",
                      "iommu.walk_read_overhead_ns=100"}));
    for (const run_out *r : {&none, &cached, &slower})
        cr_assert_eq(r->status, 0, "stderr:\n%s", r->err.c_str());
    cr_expect_eq(none.stat("iommu.walk_reads"), 4 * none.stat("iommu.walks"));
    cr_expect_eq(none.stat("iommu.psc.level2.misses"), 0, "no cache, no probe");
    const double walks = cached.stat("iommu.walks");
    // The window is two 2 MiB regions: the first walk reads all four levels, the first
    // into the other region two (its level-3 entry is cached), the rest only the leaf.
    cr_expect_eq(cached.stat("iommu.walk_reads"), walks + 3 + 1);
    cr_expect_eq(cached.stat("iommu.psc.level2.hits"), walks - 2);
    cr_expect_eq(cached.stat("iommu.psc.level3.hits"), 1);
    cr_expect_lt(cached.stat("dma.read_latency.mean_ns"), none.stat("dma.read_latency.mean_ns"));
    cr_expect_eq(slower.stat("iommu.walk_reads"), cached.stat("iommu.walk_reads"));
    cr_expect_float_eq(slower.stat("iommu.walk_time_ns") - cached.stat("iommu.walk_time_ns"),
                       100.0 * cached.stat("iommu.walk_reads"), 1e-3);
}

// The device's own IOMMU (iommu.walk_location=device) has the same caches: fewer walk
// reads cross the link.
Test(platform_run, device_iommu_paging_structure_caches)
{
    run_out plain, cached;
    run(plain, {"--set", "iommu.walk_location=device", "--set", "driver.frames_count=300",
                "--set", "iommu.iotlb_entries=4", "--set", "iommu.iotlb_ways=4"});
    run(cached, {"--set", "iommu.walk_location=device", "--set", "driver.frames_count=300",
                 "--set", "iommu.iotlb_entries=4", "--set", "iommu.iotlb_ways=4", "--set",
                 "iommu.psc_level2_entries=4", "--set", "iommu.psc_level3_entries=2"});
    expect_clean_loopback(plain, 300);
    expect_clean_loopback(cached, 300);
    cr_expect_eq(plain.stat("iommu.walk_reads"), 4 * plain.stat("iommu.walks"));
    // Every walk probes the level-2 cache; only its misses read more than the leaf.
    const double walks = cached.stat("iommu.walks"), l2_misses = cached.stat("iommu.psc.level2.misses");
    cr_expect_eq(cached.stat("iommu.psc.level2.hits") + l2_misses, walks);
    cr_expect_gt(cached.stat("iommu.psc.level2.hits"), 0);
    cr_expect_leq(cached.stat("iommu.walk_reads"), walks + 3 * l2_misses);
    // The device's walk reads are link round trips: a walk of about one read takes
    // about a quarter of a four-read one (the runs' traffic differs otherwise, as their
    // timing does, so compare per walk).
    const double plain_walk_ns = plain.stat("iommu.walk_time_ns") / plain.stat("iommu.walks");
    const double cached_walk_ns = cached.stat("iommu.walk_time_ns") / walks;
    cr_expect_lt(cached_walk_ns, 0.4 * plain_walk_ns, "%f ns vs %f ns per walk", cached_walk_ns,
                 plain_walk_ns);
}

// Software-device profile: the same driver and device model with the device as a
// thread on another CPU: frames intact, no PCIe traffic at all.
Test(platform_run, software_device_profile)
{
    run_out r;
    run(r, {"--set", "sim.device_profile=software", "--set", "driver.frames_count=300"});
    expect_clean_loopback(r, 300);
    cr_expect_eq(r.stat("link.up.tlps"), 0);
    cr_expect_eq(r.stat("link.down.tlps"), 0);
    cr_expect_gt(r.stat("dma.reads"), 0);
}

// ATS: the device translates with its own cache, filled by Translation Requests that
// cross the link; the root complex then sees only those requests, not the DMA.
Test(platform_run, ats_translates_in_the_device)
{
    run_out r;
    run(r, {"--set", "iommu.ats=on", "--set", "driver.frames_count=300"});
    expect_clean_loopback(r, 300);
    cr_expect_gt(r.stat("iommu.ats.translation_requests"), 0);
    cr_expect_gt(r.stat("iommu.ats.atc_hits"), r.stat("iommu.ats.atc_misses"));
    cr_expect_eq(r.stat("iommu.requests"), r.stat("iommu.ats.translation_requests"));
    cr_expect_eq(r.stat("iommu.faults"), 0);
}

// "Reserved Feature Bits" (VIRTIO_F_ORDER_PLATFORM): negotiated by default, so the
// device relies on PCIe write ordering; declined, the device reads back before each
// publication and the driver uses the cheaper CPU-to-CPU barriers.
Test(platform_run, order_platform)
{
    run_out with, without;
    run(with, {"--set", "driver.frames_count=300"});
    run(without, {"--set", "driver.decline_features=ORDER_PLATFORM", "--set", "driver.frames_count=300"});
    expect_clean_loopback(with, 300);
    expect_clean_loopback(without, 300);
    cr_expect_eq(with.stat("device.dma.flush_read.reads"), 0);
    cr_expect_gt(without.stat("device.dma.flush_read.reads"), 0);
}

// DMA channels shared by the queue engines: with one channel the RX and TX engines
// wait for each other (and the run gets slower), with enough channels nobody waits.
Test(platform_run, dma_channels_shared_by_queues)
{
    run_out one, many;
    run(one, {"--set", "dma.channels_count=1", "--set", "driver.frames_count=400"});
    run(many, {"--set", "dma.channels_count=4", "--set", "dma.arbitration=fixed_priority", "--set",
               "driver.frames_count=400"});
    expect_clean_loopback(one, 400);
    expect_clean_loopback(many, 400);
    cr_expect_gt(one.stat("dma.channel.rx.waits") + one.stat("dma.channel.tx.waits"), 0);
    cr_expect_eq(many.stat("dma.channel.rx.waits") + many.stat("dma.channel.tx.waits"), 0);
    cr_expect_gt(one.stat("sim.time_ns"), many.stat("sim.time_ns"));
}

// `--trace FILE`: a Chrome/Perfetto trace-event timeline with the queue engines' DMA,
// the link's TLPs, doorbells and MSI-X messages; tracing does not change the results.
Test(platform_run, trace_timeline)
{
    const std::string a = temp_dir(), b = temp_dir();
    run_out traced, plain;
    run(traced, {"--set", "driver.frames_count=100", "--trace", a + "/trace.json"}, a);
    run(plain, {"--set", "driver.frames_count=100"}, b);
    expect_clean_loopback(traced, 100);
    cr_expect(slurp(a + "/stats.json") == slurp(b + "/stats.json"), "tracing changed stats.json");
    json_error_t e;
    json_t *doc = json_load_file((a + "/trace.json").c_str(), 0, &e);
    cr_assert_not_null(doc, "trace is not JSON: %s (line %d)", e.text, e.line);
    json_t *events = json_object_get(doc, "traceEvents");
    cr_assert(json_is_array(events));
    bool desc_read = false, tlp = false, doorbell = false, msix = false;
    size_t i;
    json_t *ev;
    json_array_foreach(events, i, ev)
    {
        const char *name = json_string_value(json_object_get(ev, "name"));
        const json_int_t tid = json_integer_value(json_object_get(ev, "tid"));
        cr_assert_not_null(name);
        desc_read |= std::string(name) == "desc_read" && tid == 2;
        tlp |= std::string(name) == "MRd" && tid == 10;
        doorbell |= tid == 20;
        msix |= std::string(name) == "MSI-X" && tid == 21;
    }
    cr_expect(desc_read && tlp && doorbell && msix, "desc %d tlp %d doorbell %d msix %d", desc_read,
              tlp, doorbell, msix);
    json_decref(doc);
}

// `--trace-window START_US:END_US`: the trace keeps exactly the events of the whole-run
// trace that reach into the window (spans overlapping it, instants inside it), in the same
// order, and the statistics are still those of an untraced run.
Test(platform_run, trace_window_keeps_only_that_stretch)
{
    const std::string a = temp_dir(), b = temp_dir();
    run_out full, windowed;
    run(full, {"--set", "driver.frames_count=100", "--trace", a + "/trace.json"}, a);
    run(windowed, {"--set", "driver.frames_count=100", "--trace", b + "/trace.json",
                   "--trace-window", "100:120.5"}, b);
    expect_clean_loopback(full, 100);
    expect_clean_loopback(windowed, 100);
    cr_expect(slurp(a + "/stats.json") == slurp(b + "/stats.json"), "the window changed stats.json");
    json_error_t e;
    json_t *all = json_load_file((a + "/trace.json").c_str(), 0, &e);
    json_t *part = json_load_file((b + "/trace.json").c_str(), 0, &e);
    cr_assert_not_null(all);
    cr_assert_not_null(part, "windowed trace is not JSON: %s (line %d)", e.text, e.line);
    const json_t *w = json_object_get(json_object_get(part, "otherData"), "viosim_trace_window_us");
    cr_expect_float_eq(json_number_value(json_object_get(w, "from")), 100.0, 1e-9);
    cr_expect_float_eq(json_number_value(json_object_get(w, "to")), 120.5, 1e-9);
    std::vector<std::string> want, got;
    size_t i, outside = 0;
    json_t *ev;
    auto key = [](const json_t *event) {
        char *text = json_dumps(event, JSON_COMPACT | JSON_SORT_KEYS);
        std::string k = text ? text : "";
        std::free(text);
        return k;
    };
    json_array_foreach(json_object_get(all, "traceEvents"), i, ev)
    {
        const std::string ph = json_string_value(json_object_get(ev, "ph"));
        const double ts = json_number_value(json_object_get(ev, "ts"));
        const double end = ts + json_number_value(json_object_get(ev, "dur"));
        const bool inside = ph == "M" || (ph == "X" ? end >= 100.0 && ts < 120.5
                                                    : ts >= 100.0 && ts < 120.5);
        if (inside)
            want.push_back(key(ev));
        else
            outside++;
    }
    json_array_foreach(json_object_get(part, "traceEvents"), i, ev)
        got.push_back(key(ev));
    cr_expect_gt(outside, 1000u, "the window should leave most of the run out");
    cr_expect_gt(want.size(), 100u, "the window should hold events");
    cr_expect_eq(got.size(), want.size());
    for (size_t k = 0; k < got.size() && k < want.size(); k++)
        cr_expect_eq(got[k], want[k], "event %zu: %s vs %s", k, got[k].c_str(), want[k].c_str());
    json_decref(all);
    json_decref(part);

    // An open end: from 200 us to the end of the run; the file says "to": null.
    run_out tail;
    run(tail, {"--set", "driver.frames_count=100", "--trace", b + "/tail.json", "--trace-window",
               "200:"}, b);
    expect_clean_loopback(tail, 100);
    json_t *late = json_load_file((b + "/tail.json").c_str(), 0, &e);
    cr_assert_not_null(late, "open-ended trace is not JSON: %s", e.text);
    cr_expect(json_is_null(json_object_get(
        json_object_get(json_object_get(late, "otherData"), "viosim_trace_window_us"), "to")));
    size_t kept = 0;
    json_array_foreach(json_object_get(late, "traceEvents"), i, ev)
    {
        if (std::string(json_string_value(json_object_get(ev, "ph"))) == "M")
            continue;
        kept++;
        const double end = json_number_value(json_object_get(ev, "ts")) +
                           json_number_value(json_object_get(ev, "dur"));
        cr_expect_geq(end, 200.0, "event ends at %f, before the window", end);
    }
    cr_expect_gt(kept, 10u);
    json_decref(late);

    // A window is checked before anything runs: exit 2, the option named.
    const char *bad[] = {"120:100", "abc", "1:2:3", "-5:10", "10:inf", ""};
    for (const char *window : bad) {
        run_out r;
        run(r, {"--trace", b + "/bad.json", "--trace-window", window});
        cr_expect_eq(r.status, 2, "--trace-window '%s': exit %d", window, r.status);
        cr_expect_neq(r.err.find("--trace-window"), std::string::npos, "%s", r.err.c_str());
    }
    run_out no_trace;
    run(no_trace, {"--trace-window", "1:2"});
    cr_expect_eq(no_trace.status, 2);
    cr_expect_neq(no_trace.err.find("--trace-window needs --trace"), std::string::npos, "%s",
                  no_trace.err.c_str());
}

// The device IOMMU's walkers are a shared resource (iommu.walkers_count), as the root
// complex's are: with four engines per queue missing a 4-entry IOTLB, more misses are
// in flight than walkers, so walks wait, and one walker's walks never overlap (their
// summed duration fits in the run; without the limit it exceeded it by 67 %).
Test(platform_run, device_walks_wait_for_a_walker)
{
    const std::vector<std::string> base = {
        "--set", "iommu.walk_location=device", "--set", "device.queue_engines=4", "--set",
        "driver.frames_count=300", "--set", "iommu.iotlb_entries=4", "--set",
        "iommu.iotlb_ways=4"};
    run_out one, two;
    std::vector<std::string> a = base;
    a.insert(a.end(), {"--set", "iommu.walkers_count=1"});
    run(one, a);
    a = base;
    a.insert(a.end(), {"--set", "iommu.walkers_count=2"});
    run(two, a);
    expect_clean_loopback(one, 300);
    expect_clean_loopback(two, 300);
    for (const run_out *r : {&one, &two}) {
        cr_expect_eq(r->stat("iommu.faults"), 0);
        cr_expect_gt(r->stat("iommu.walker_waits"), 0);
        cr_expect_gt(r->stat("iommu.walker_wait_ns"), 0.0);
    }
    cr_expect_leq(one.stat("iommu.walk_time_ns"), one.stat("sim.time_ns"));
    cr_expect_leq(two.stat("iommu.walk_time_ns"), 2 * two.stat("sim.time_ns"));
    // A second walker takes waits away.
    cr_expect_lt(two.stat("iommu.walker_wait_ns"), one.stat("iommu.walker_wait_ns"));
}

// iommu.walk_location=device: the device translates with its own IOTLB and walks the
// page tables itself; every table read is a read request across the link.
Test(platform_run, iommu_walks_in_the_device)
{
    run_out rc, dev;
    run(rc, {"--set", "driver.frames_count=300"});
    run(dev, {"--set", "iommu.walk_location=device", "--set", "driver.frames_count=300"});
    expect_clean_loopback(rc, 300);
    expect_clean_loopback(dev, 300);
    cr_expect_gt(dev.stat("iommu.walk_reads"), 0);
    cr_expect_eq(dev.stat("iommu.faults"), 0);
    // The walks' reads travel the link: more read requests than at the root complex.
    cr_expect_gt(dev.stat("link.up.tlps.mrd"), rc.stat("link.up.tlps.mrd"));
    cr_expect_gt(dev.stat("iommu.walk_time_ns"), rc.stat("iommu.walk_time_ns"));
}

// No allocation scales with a configured count before the count is reached: a billion
// frames with a 20 us time limit used to allocate 7.8 GB up front (one latency slot per
// frame), now its peak resident memory is that of any short run. The bound is loose
// (a 10-frame run peaks at about 10 MiB; guest memory is calloc'd and barely touched).
Test(platform_run, frames_count_allocates_nothing_up_front)
{
    const char *bin = std::getenv("VIOSIM");
    if (!bin)
        cr_skip_test("VIOSIM is not set (run through ctest)");
    const std::string dir = temp_dir();
    const pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        if (!std::freopen("/dev/null", "w", stdout) || !std::freopen("/dev/null", "w", stderr))
            _exit(127);
        execl(bin, bin, "run", "--out", dir.c_str(), "--set", "driver.frames_count=1000000000",
              "--set", "bench.transfers_count=1000000000", "--set", "sim.time_limit_ms=0.02",
              static_cast<char *>(nullptr));
        _exit(127);
    }
    int st = 0;
    struct rusage ru {};
    cr_assert_eq(wait4(pid, &st, 0, &ru), pid);
    // Not completed within the limit: exit 1 with stats.json, after a normal run.
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1, "status %d", st);
    cr_expect_neq(slurp(dir + "/stats.json").find("\"completed\": false"), std::string::npos);
    const long peak_kib = ru.ru_maxrss;
    cr_expect_lt(peak_kib, 200L * 1024, "peak RSS %ld KiB", peak_kib);
}

// device.bar_width_bits=32 (PCI Local Bus 3.0 §6.2.5.1, type 00b): the reference driver
// sizes both BARs as 32-bit and places them in the platform's MMIO window below 4 GiB
// (platform/address_map.h), finds the MSI-X table in BAR1, and the run is the 64-bit one
// but for two configuration writes fewer (the upper halves it no longer programs) and
// what their time shifts. Packed and split.
Test(platform_run, bar_width_32)
{
    for (const char *ring : {"", "driver.decline_features=RING_PACKED"}) {
        std::vector<std::string> args = {"--set", "driver.frames_count=300"};
        if (*ring) {
            args.push_back("--set");
            args.push_back(ring);
        }
        run_out wide;
        run(wide, args);
        expect_clean_loopback(wide, 300);
        args.push_back("--set");
        args.push_back("device.bar_width_bits=32");
        run_out narrow;
        run(narrow, args);
        expect_clean_loopback(narrow, 300);
        cr_expect_gt(narrow.stat("driver.interrupts"), 0);
        cr_expect_eq(narrow.stat("driver.interrupts"), wide.stat("driver.interrupts"), "%s", ring);
        cr_expect_eq(narrow.stat("driver.cfg_writes") + 2, wide.stat("driver.cfg_writes"), "%s", ring);
        cr_expect_eq(narrow.stat("device.interrupts_raised"), wide.stat("device.interrupts_raised"));
        cr_expect_lt(std::fabs(narrow.stat("sim.time_ns") / wide.stat("sim.time_ns") - 1.0), 0.01,
                     "%s", ring);
    }
}

// device.msix=off: no MSI-X capability, so the function interrupts by legacy INTx
// ("ISR status capability": with MSI-X absent the device asserts INT#x while ISR status
// is non-zero, and reading ISR status deasserts it). The timed platform carries the
// pin's level to the CPU (host.intx_latency_ns); every frame comes back on either ring
// format, in each driver mode, and the interrupts the driver took are the line's.
namespace {
void expect_intx_run(const char *mode, bool split, const char *bar_width = "64")
{
    run_out r;
    std::vector<std::string> args = {"--set", "device.msix=off", "--set",
                                     std::string("driver.mode=") + mode, "--set",
                                     "driver.frames_count=400", "--set",
                                     std::string("device.bar_width_bits=") + bar_width};
    if (split)
        args.insert(args.end(), {"--set", "driver.decline_features=RING_PACKED"});
    run(r, args);
    expect_clean_loopback(r, 400);
    cr_expect_eq(r.stat("device.msix_sent"), 0, "%s: no MSI-X capability, no message", mode);
    const double asserts = r.stat("device.intx_asserts");
    const double taken = r.stat("cpu.intx_interrupts");
    // Each interrupt taken was an asserted line the driver then read ISR status for:
    // at most one per assertion, and every assertion but a last one pending at the final
    // reset was deasserted by the driver's read.
    cr_expect_eq(r.stat("driver.interrupts"), taken, "%s", mode);
    cr_expect_leq(taken, asserts, "%s", mode);
    cr_expect_leq(asserts, r.stat("device.interrupts_raised") + r.stat("device.config_interrupts"),
                  "%s", mode);
    cr_expect_leq(asserts - r.stat("device.intx_deasserts"), 1, "%s", mode);
    if (std::string(mode) == "poll") {
        cr_expect_eq(taken, 0, "poll mode suppresses used buffer notifications");
    } else {
        cr_expect_gt(taken, 0, "%s: interrupts were taken on INTx", mode);
        cr_expect_geq(taken + 1, asserts, "%s: an assertion not taken", mode);
    }
    const json_t *f = json_object_get(json_object_get(r.stats, "result"), "negotiated_features");
    cr_assert(json_is_object(f));
    cr_expect_eq(split, json_object_get(f, "RING_PACKED") == nullptr, "%s: ring format", mode);
}
} // namespace

Test(platform_run, intx_packed_interrupt) { expect_intx_run("interrupt", false); }
Test(platform_run, intx_split_interrupt) { expect_intx_run("interrupt", true); }
Test(platform_run, intx_packed_napi) { expect_intx_run("napi", false); }
Test(platform_run, intx_split_napi) { expect_intx_run("napi", true); }
Test(platform_run, intx_packed_poll) { expect_intx_run("poll", false); }
Test(platform_run, intx_split_poll) { expect_intx_run("poll", true); }
// What QEMU's proxy device will present: 32-bit BARs and no MSI-X.
Test(platform_run, intx_32bit_bars) { expect_intx_run("interrupt", false, "32"); }
Test(platform_run, intx_32bit_bars_split_napi) { expect_intx_run("napi", true, "32"); }

// host.intx_latency_ns is the pin's flight to the interrupt controller: a longer one
// delays every interrupt, so the same frames take longer in interrupt mode.
Test(platform_run, intx_latency_slows_interrupt_mode)
{
    run_out fast, slow;
    run(fast, {"--set", "device.msix=off", "--set", "driver.frames_count=300", "--set",
               "host.intx_latency_ns=0"});
    run(slow, {"--set", "device.msix=off", "--set", "driver.frames_count=300", "--set",
               "host.intx_latency_ns=20000"});
    expect_clean_loopback(fast, 300);
    expect_clean_loopback(slow, 300);
    cr_expect_gt(slow.stat("sim.time_ns"), fast.stat("sim.time_ns"));
    cr_expect_gt(fast.stat("cpu.intx_interrupts"), 0);
    cr_expect_gt(slow.stat("cpu.intx_interrupts"), 0);
    // The ISR read's completion does not pass the Deassert_INTx sent before it, so even
    // a flight far longer than the read's round trip takes no spurious interrupt: one
    // per assertion at most.
    cr_expect_leq(slow.stat("cpu.intx_interrupts"), slow.stat("device.intx_asserts"));
}
