// test_event_suppression.cpp -- where the driver's event suppression fields live, through
// the viosim binary: the spec's placement in host RAM (the device reads them by DMA before
// every interrupt decision) against the viosim-specific, non-standard extension
// VIOSIM_NET_F_DEVMEM_EVENT (docs/event-suppression.md), both ring formats, every frame
// checked.

#include "common/viosim_run.hpp"

namespace {

const std::vector<std::string> small_frames = {"--set", "driver.frames_count=2000", "--set",
                                               "driver.frame_sizes_bytes=64"};
const std::vector<std::string> devmem = {"--set", "device.event_suppression_devmem=on", "--set",
                                         "driver.event_suppression_location=device_memory"};

std::vector<std::string> with(std::vector<std::string> a, const std::vector<std::string> &b)
{
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

double link_event_reads(const run_out &r)
{
    return r.stat("device.queue.rx.event_reads_link") + r.stat("device.queue.tx.event_reads_link") +
           r.stat("device.queue.ctrl.event_reads_link");
}

double local_event_reads(const run_out &r)
{
    return r.stat("device.queue.rx.event_reads_local") + r.stat("device.queue.tx.event_reads_local") +
           r.stat("device.queue.ctrl.event_reads_local");
}

// 64-byte frames: with the fields in device memory no interrupt decision reads across the
// link, and the time from publication to MSI-X is no longer than with RAM placement.
void compare_at_64_bytes(const std::vector<std::string> &format)
{
    run_out ram, dev;
    run(ram, with(small_frames, format));
    run(dev, with(with(small_frames, format), devmem));
    expect_clean_loopback(ram, 2000);
    expect_clean_loopback(dev, 2000);

    cr_expect_eq(ram.stat("driver.event_suppression.devmem_negotiated"), 0);
    cr_expect_gt(link_event_reads(ram), 0);
    cr_expect_eq(local_event_reads(ram), 0);
    cr_expect_eq(link_event_reads(ram), ram.stat("device.dma.event_read.reads"));

    cr_expect_eq(dev.stat("driver.event_suppression.devmem_negotiated"), 1);
    cr_expect_eq(link_event_reads(dev), 0);
    cr_expect_eq(dev.stat("device.dma.event_read.reads"), 0);
    cr_expect_gt(local_event_reads(dev), 0);
    cr_expect_gt(dev.stat("driver.event_suppression.mmio_writes"), 0);
    cr_expect_eq(dev.stat("driver.event_suppression.mmio_writes"),
                 dev.stat("device.event_suppression.slot_writes"));
    cr_expect_leq(dev.stat("driver.event_suppression.mmio_writes"), dev.stat("driver.mmio_writes"));

    cr_expect_gt(ram.stat("device.time_to_interrupt.samples"), 0);
    cr_expect_gt(dev.stat("device.time_to_interrupt.samples"), 0);
    cr_expect_leq(dev.stat("device.time_to_interrupt.mean_ns"),
                  ram.stat("device.time_to_interrupt.mean_ns"));
    cr_expect_leq(dev.stat("device.time_to_interrupt.p99_ns"),
                  ram.stat("device.time_to_interrupt.p99_ns"));
}

} // namespace

Test(event_suppression, packed_devmem_no_link_reads_and_faster_interrupts)
{
    compare_at_64_bytes({});
}

Test(event_suppression, split_devmem_no_link_reads_and_faster_interrupts)
{
    compare_at_64_bytes({"--set", "driver.decline_features=RING_PACKED"});
}

// A standard driver on a device that offers the extension: it ignores the vendor data
// capability, does not accept the bit, and the device reads the Driver Area by DMA.
Test(event_suppression, standard_driver_on_offering_device_uses_ram)
{
    run_out r;
    run(r, with(small_frames, {"--set", "device.event_suppression_devmem=on"}));
    expect_clean_loopback(r, 2000);
    cr_expect_eq(r.stat("driver.event_suppression.devmem_negotiated"), 0);
    cr_expect_eq(r.stat("driver.event_suppression.mmio_writes"), 0);
    cr_expect_gt(link_event_reads(r), 0);
    cr_expect_eq(local_event_reads(r), 0);
    cr_expect_eq(r.stat("device.event_suppression.slot_writes_ignored"), 0);
}

// A driver that asks for device memory on a standard device falls back to RAM.
Test(event_suppression, devmem_driver_on_standard_device_uses_ram)
{
    run_out r;
    run(r, with(small_frames, {"--set", "driver.event_suppression_location=device_memory"}));
    expect_clean_loopback(r, 2000);
    cr_expect_eq(r.stat("driver.event_suppression.devmem_negotiated"), 0);
    cr_expect_gt(link_event_reads(r), 0);
    cr_expect_eq(local_event_reads(r), 0);
}

// NAPI mode disables and re-enables interrupts around every poll phase: the extension
// must not lose an interrupt there either (every frame comes back, no timeout).
Test(event_suppression, devmem_napi_and_event_idx_declined)
{
    run_out a, b;
    run(a, with(with(small_frames, devmem), {"--set", "driver.mode=napi"}));
    expect_clean_loopback(a, 2000);
    cr_expect_eq(link_event_reads(a), 0);
    run(b, with(with(small_frames, devmem), {"--set", "driver.decline_features=EVENT_IDX,RING_PACKED"}));
    expect_clean_loopback(b, 2000);
    cr_expect_eq(link_event_reads(b), 0);
}

Test(event_suppression, bad_values_name_the_key)
{
    for (const char *kv : {"device.event_suppression_devmem=maybe",
                           "driver.event_suppression_location=disk"}) {
        run_out r;
        run(r, {"--set", kv});
        cr_expect_eq(r.status, 2);
        const std::string key(kv, std::string(kv).find('='));
        cr_expect_neq(r.err.find(key), std::string::npos, "%s", r.err.c_str());
    }
}

// Why the driver reads from the device after asking for notifications: its suppression
// writes are posted, and a used buffer the device publishes while one is in flight is
// decided on with the old fields. At a low Poisson rate such a frame waits for the next
// departure to be noticed. With the read no frame waits; without it (the unsafe
// driver.event_suppression_flush=none) some wait tens of microseconds.
Test(event_suppression, flush_read_prevents_lost_interrupts)
{
    const std::vector<std::string> sparse = {
        "--set", "driver.frames_count=3000", "--set", "driver.tx_rate_mpps=0.02",
        "--set", "driver.arrival=poisson",   "--set", "driver.frame_sizes_bytes=64"};
    run_out safe, unsafe;
    run(safe, with(sparse, devmem));
    run(unsafe, with(with(sparse, devmem), {"--set", "driver.event_suppression_flush=none"}));
    expect_clean_loopback(safe, 3000);
    expect_clean_loopback(unsafe, 3000);
    cr_expect_gt(safe.stat("driver.event_suppression.flush_reads"), 0);
    cr_expect_eq(unsafe.stat("driver.event_suppression.flush_reads"), 0);
    cr_expect_lt(safe.stat("latency.max_ns"), 20000);
    cr_expect_gt(unsafe.stat("latency.max_ns"), 10 * safe.stat("latency.max_ns"));

    // The device that re-decides on every slot write (VIOSIM_NET_F_DEVMEM_EVENT_RECHECK)
    // closes the race itself: no flushing reads, no frame waits.
    for (const char *fmt : {"driver.decline_features=", "driver.decline_features=RING_PACKED"}) {
        run_out rc;
        run(rc, with(with(sparse, devmem),
                     {"--set", "device.event_suppression_devmem_recheck=on", "--set", fmt}));
        expect_clean_loopback(rc, 3000);
        cr_expect_eq(rc.stat("driver.event_suppression.recheck_negotiated"), 1);
        cr_expect_eq(rc.stat("driver.event_suppression.flush_reads"), 0);
        cr_expect_gt(rc.stat("device.event_suppression.recheck_interrupts"), 0);
        cr_expect_eq(link_event_reads(rc), 0);
        cr_expect_lt(rc.stat("latency.max_ns"), 20000, "%s", fmt);
    }
}

Test(event_suppression, recheck_needs_devmem)
{
    run_out r;
    run(r, {"--set", "device.event_suppression_devmem_recheck=on"});
    cr_expect_eq(r.status, 2);
    cr_expect_neq(r.err.find("device.event_suppression_devmem_recheck"), std::string::npos, "%s",
                  r.err.c_str());
}
