/* test_refdrv_intx.c -- the reference driver against a function presented the legacy
 * way (issue 16): no MSI-X capability (device.msix=off), so interrupts are INTx, and
 * 32-bit BARs (device.bar_width_bits=32), each with packed and split rings.
 *
 * The untimed rig of tests/common/host_rig.h delivers INTx as a level: whenever the
 * driver waits and the function's INTA# is asserted (pt_intx_asserted), wait_interrupt
 * answers VS_HOST_IRQ_INTX, and keeps answering it until the driver reads ISR status.
 * The driver ("Driver Handling Interrupts", MSI-X disabled) reads ISR on each interrupt,
 * which deasserts the line, and then services its queues; bit 1 sends it to the device
 * status.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "common/host_rig.h"
#include "refdrv.h"
#include "vdev.h"

#define MEM_BASE   0x40000000ull
#define MEM_SIZE   (16ull << 20)
#define FRAMES     500u

static struct host_rig *rig_new(bool bars_32bit, bool no_msix)
{
    struct vdev_params dp = host_rig_default_params();
    dp.used_batch_max = 4;
    dp.bars_32bit = bars_32bit;
    dp.no_msix = no_msix;
    cr_assert_null(vdev_check_params(&dp));
    struct host_rig *r = host_rig_new(MEM_BASE, MEM_SIZE, &dp);
    cr_assert_not_null(r);
    return r;
}

static struct refdrv_params drv_params(enum refdrv_mode mode, bool split)
{
    const uint32_t sizes[] = {64, 1514, 300, 60};
    struct refdrv_params p = host_rig_refdrv_params(FRAMES, sizes, 4, 5);
    p.queue_size_entries = 64;
    p.mode = mode;
    vs_feature_set(&p.decline, VIRTIO_F_ACCESS_PLATFORM_BIT);
    if (split)
        vs_feature_set(&p.decline, VIRTIO_F_RING_PACKED_BIT);
    return p;
}

static bool had_ctrl_vq(const struct host_rig *r)
{
    return vs_feature_has(&r->negotiated, VIRTIO_NET_F_CTRL_VQ_BIT);
}

/* Run; every frame must come back intact in the ring format asked for. */
static void run_ok(struct host_rig *r, const struct refdrv_params *p, bool split, struct refdrv_stats *st)
{
    memset(st, 0, sizeof *st);
    enum refdrv_result res = refdrv_run(&r->host, p, st);
    cr_assert_eq(res, REFDRV_OK, "result %s (device error %s)", refdrv_result_name(res),
                 vs_reason_name(r->dev.tp.error));
    cr_expect_eq(st->tx_frames, FRAMES);
    cr_expect_eq(st->rx_frames, FRAMES);
    cr_expect_eq(st->rx_bad_payload, 0);
    cr_expect_eq(r->out_of_range, 0);
    cr_expect_eq(r->msi_misaddressed, 0);
    for (uint16_t q = 0; q < 2; q++) {
        cr_assert_not_null(r->format[q], "queue %u never went live", q);
        cr_expect_str_eq(r->format[q], split ? "split" : "packed", "queue %u", q);
    }
    cr_expect_eq(r->dev.tp.error, VS_REASON_NONE);
}

/* "Used Buffer Notifications" and "Driver Handling Interrupts" with no MSI-X
 * capability: a lazy device (it runs only while the driver waits) gets every frame
 * back to the driver only through INTx interrupts the driver asked for; each one it
 * took, it acknowledged by reading ISR (the line is down at the end, no MSI-X message
 * was ever sent, no vector mapped). Packed and split rings. */
Test(refdrv_intx, no_msix_interrupts_wake_the_driver)
{
    for (int split = 0; split < 2; split++) {
        struct host_rig *r = rig_new(false, true);
        r->lazy = true;
        struct refdrv_params p = drv_params(REFDRV_MODE_INTERRUPT, split);
        struct refdrv_stats st;
        run_ok(r, &p, split, &st);
        cr_expect_gt(r->intx_taken, 0, "split=%d", split);
        cr_expect_eq(st.interrupts, r->intx_taken, "every interrupt the driver took was INTx");
        cr_expect_geq(r->dev.tp.vpci.stats.isr_reads, r->intx_taken, "ISR read on each");
        cr_expect_gt(r->dev.tp.stats.intx_asserts, 0);
        cr_expect_not(pt_intx_asserted(&r->dev.tp));
        cr_expect_eq(r->dev.tp.msix.stats.sent, 0);
        cr_expect_eq(r->dev.tp.vpci.stats.msix_vectors_refused, 0, "the driver maps no vector");
        cr_expect_eq(pt_cfg_read(&r->dev.tp, PCI_COMMAND, 2) & PCI_COMMAND_INTX_DISABLE_MASK, 0,
                     "the driver let INTx through");
        host_rig_free(r);
    }
}

/* The same in NAPI and polling modes (interrupts only between budgets, or none). */
Test(refdrv_intx, no_msix_napi_and_poll)
{
    const enum refdrv_mode modes[] = {REFDRV_MODE_NAPI, REFDRV_MODE_POLL};
    for (unsigned m = 0; m < 2; m++) {
        for (int split = 0; split < 2; split++) {
            struct host_rig *r = rig_new(false, true);
            struct refdrv_params p = drv_params(modes[m], split);
            struct refdrv_stats st;
            run_ok(r, &p, split, &st);
            cr_expect_not(pt_intx_asserted(&r->dev.tp));
            host_rig_free(r);
        }
    }
}

/* The control queue over INTx: static notification coalescing ("Notifications
 * Coalescing"), whose commands the driver sends and whose acks it polls for (the
 * control queue has no vector) while the data queues' INTx interrupts come and go; it
 * reads back what it set. Also a lazy device, so frames still arrive by interrupt. */
Test(refdrv_intx, no_msix_control_queue_static_coalescing)
{
    for (int lazy = 0; lazy < 2; lazy++) {
        struct host_rig *r = rig_new(false, true);
        r->lazy = lazy;
        struct refdrv_params p = drv_params(REFDRV_MODE_INTERRUPT, false);
        p.coal_policy = REFDRV_COAL_STATIC;
        p.coal_rx = (struct refdrv_coal){8, 50};
        p.coal_tx = (struct refdrv_coal){8, 50};
        struct refdrv_stats st;
        run_ok(r, &p, false, &st);
        cr_expect_geq(st.ctrl_commands, 2, "RX_SET and TX_SET at least");
        cr_expect_eq(st.ctrl_errors, 0);
        cr_expect(had_ctrl_vq(r));
        cr_expect_not(pt_intx_asserted(&r->dev.tp));
        host_rig_free(r);
    }
}

/* 32-bit BARs (PCI Local Bus 3.0 §6.2.5.1, type 00b): the driver sizes and places them
 * below 4 GiB; with MSI-X it finds the table in BAR1 and runs on MSI-X as usual; without
 * it (the presentation QEMU's proxy device can use) there is BAR0 alone and INTx. */
Test(refdrv_intx, bars_32bit_with_and_without_msix)
{
    for (int no_msix = 0; no_msix < 2; no_msix++) {
        for (int split = 0; split < 2; split++) {
            struct host_rig *r = rig_new(true, no_msix);
            r->lazy = true;
            struct refdrv_params p = drv_params(REFDRV_MODE_INTERRUPT, split);
            struct refdrv_stats st;
            run_ok(r, &p, split, &st);
            cr_expect_eq(r->intx_taken > 0, no_msix == 1, "no_msix=%d", no_msix);
            cr_expect_eq(r->dev.tp.msix.stats.sent > 0, no_msix == 0, "no_msix=%d", no_msix);
            cr_expect_eq(r->dev.tp.pci.bar_size[1] != 0, no_msix == 0, "BAR1 holds the MSI-X table");
            for (int bar = 0; bar < 2 - no_msix; bar++) {
                const uint64_t base = pci_cfg_bar_base(&r->dev.tp.pci, bar);
                cr_expect(base >= HOST_RIG_MMIO_BASE &&
                              base + r->dev.tp.pci.bar_size[bar] <= 0x100000000ull,
                          "BAR%d at %#llx", bar, (unsigned long long)base);
            }
            host_rig_free(r);
        }
    }
}

/* "Notification of Device Configuration Changes" over INTx: a driver mistake the device
 * answers with DEVICE_NEEDS_RESET ("Device Status Field") raises the ISR's bit 1 and the
 * line; the driver reads ISR, sees the configuration change, reads the status and gives
 * up with a device error instead of waiting out its idle timeout. */
Test(refdrv_intx, configuration_change_over_intx)
{
    struct host_rig *r = rig_new(false, true);
    r->lazy = true;
    struct refdrv_params p = drv_params(REFDRV_MODE_INTERRUPT, false);
    p.idle_timeout_ns = 1000000000ull; /* 1 s: only the interrupt ends the run early */
    p.tx_layout = REFDRV_TX_ONE_DESC;
    p.inject = REFDRV_INJECT_TX_HAS_WRITABLE;
    struct refdrv_stats st;
    memset(&st, 0, sizeof st);
    enum refdrv_result res = refdrv_run(&r->host, &p, &st);
    cr_assert_eq(res, REFDRV_DEVICE_ERROR, "result %s", refdrv_result_name(res));
    cr_expect_gt(r->intx_taken, 0);
    cr_expect_gt(r->dev.tp.stats.config_interrupts, 0);
    cr_expect_lt(r->now_ps, 10000000000ull, "ended by the interrupt (%llu ps), well before the first status check (62.5 ms)", (unsigned long long)r->now_ps);
    host_rig_free(r);
}
