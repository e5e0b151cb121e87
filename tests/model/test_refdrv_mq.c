/* test_refdrv_mq.c -- the reference driver over several queue pairs (VIRTIO_NET_F_MQ) and
 * with merged receive buffers (VIRTIO_NET_F_MRG_RXBUF), end to end against the device
 * kernel, against the spec sections that say what the driver does:
 *  - "Network Device / Device Initialization" (receive and transmit queues up to N =
 *    max_virtqueue_pairs with MQ, else 1; the control queue; receive queues filled;
 *    VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET to use more than receiveq1 and transmitq1);
 *  - "Control Virtqueue / Automatic receive steering in multiqueue mode" (the driver
 *    configures the queues before enabling them, queues packets only on transmitq1 before
 *    the command, never asks for 0 or more than max_virtqueue_pairs);
 *  - "Network Device / Virtqueues" (receiveqN 2(N-1), transmitqN 2(N-1)+1, controlq
 *    2 * max_virtqueue_pairs);
 *  - "Device Operation / Processing of Incoming Packets" (num_buffers, a frame spread
 *    over several buffers with MRG_RXBUF).
 *
 * An untimed rig (tests/common/host_rig.h): refdrv_run drives the device kernel through
 * its host ops; the device runs every queue to idle after each MMIO write. Without RSS
 * the device steers automatically ("Automatic receive steering in multiqueue mode": the
 * reply to a packet sent on transmitqX is queued on receiveqX), and loopback's reply is
 * the frame itself, so the tests check that every frame comes back intact, counted once,
 * on the receive queue of the pair that sent it.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "common/host_rig.h"
#include "refdrv.h"
#include "vdev.h"

#define MEM_BASE   0x40000000ull
#define MEM_SIZE   (64ull << 20)
#define QUEUE_SIZE 32u

static struct host_rig *rig_new(uint16_t device_pairs, bool mrg_rxbuf)
{
    struct vdev_params dp = host_rig_default_params();
    dp.queue_pairs = device_pairs;
    dp.mrg_rxbuf = mrg_rxbuf;
    struct host_rig *r = host_rig_new(MEM_BASE, MEM_SIZE, &dp);
    cr_assert_not_null(r);
    return r;
}

static void rig_free(struct host_rig *r)
{
    cr_expect_eq(r->msi_misaddressed, 0, "MSI-X messages not at HOST_RIG_MSI_BASE");
    cr_expect_eq(r->out_of_range, 0, "device DMA outside guest memory");
    host_rig_free(r);
}

/* Loopback of `frames` flow frames (sizes cycling 64, 1514, 300, 60) from `flows` flows
 * over `pairs` pairs wanted. */
static struct refdrv_params params(uint64_t frames, uint32_t flows, uint16_t pairs, bool packed)
{
    static const uint32_t sizes[] = {64, 1514, 300, 60};
    struct refdrv_params p = host_rig_refdrv_params(frames, sizes, 4, 11);
    p.queue_size_entries = QUEUE_SIZE;
    p.flows_count = flows;
    p.queue_pairs_count = pairs;
    if (!packed)
        vs_feature_set(&p.decline, VIRTIO_F_RING_PACKED_BIT);
    return p;
}

static enum refdrv_result run(struct host_rig *r, const struct refdrv_params *p, struct refdrv_stats *st)
{
    memset(st, 0, sizeof *st);
    return refdrv_run(&r->host, p, st);
}

/* Every frame back intact, counted once, over `pairs` pairs; transmit queue k carried
 * exactly the frames of the flows f with f mod pairs == k, and the device agrees on what
 * each queue carried. */
static void expect_all_back(const struct host_rig *r, const struct refdrv_params *p,
                            const struct refdrv_stats *st, uint16_t pairs)
{
    uint64_t tx_expect[REFDRV_PAIRS_MAX] = {0};
    uint64_t rx_sum = 0, tx_sum = 0, dev_rx = 0;

    cr_expect_eq(st->mq_pairs, pairs);
    cr_expect_eq(st->tx_frames, p->frames_count);
    cr_expect_eq(st->rx_frames, p->frames_count);
    cr_expect_eq(st->rx_bad_payload, 0);
    if (p->flows_count != 0)
        cr_expect_eq(st->rx_flow_frames, p->frames_count);
    for (uint64_t k = 0; k < p->frames_count; k++) {
        uint64_t pair = p->flows_count != 0 ? (k % p->flows_count) % pairs : k % pairs;
        tx_expect[pair]++;
    }
    for (uint16_t k = 0; k < REFDRV_PAIRS_MAX; k++) {
        if (k >= pairs) {
            cr_expect_eq(st->tx_frames_pair[k], 0, "pair %u not in use", k);
            cr_expect_eq(st->rx_frames_pair[k], 0, "pair %u not in use", k);
            continue;
        }
        cr_expect_eq(st->tx_frames_pair[k], tx_expect[k], "pair %u", k);
        cr_expect_eq(st->rx_frames_pair[k], tx_expect[k], "pair %u: replies on its own receiveq", k);
        /* The device's count of transmitq(k+1)'s buffers: the same frames. */
        cr_expect_eq(r->used[2u * k + 1u], tx_expect[k], "transmitq%u", k + 1u);
        cr_expect_str_eq(r->format[2u * k],
                         vs_feature_has(&p->decline, VIRTIO_F_RING_PACKED_BIT) ? "split" : "packed");
        tx_sum += st->tx_frames_pair[k];
        rx_sum += st->rx_frames_pair[k];
        dev_rx += r->used[2u * k];
    }
    cr_expect_eq(tx_sum, p->frames_count);
    cr_expect_eq(rx_sum, p->frames_count);
    cr_expect_eq(dev_rx, st->rx_buffers, "the device used as many receive buffers as the driver took");
}

/* P pairs offered and wanted, flows over them: all 2P + 1 queues live, MQ negotiated,
 * every frame back. */
static void mq_loopback(uint16_t pairs, bool packed)
{
    struct host_rig *r = rig_new(pairs, false);
    const uint64_t frames = pairs >= 64u ? 10u * pairs : 400u;
    struct refdrv_params p = params(frames, 3u * pairs + 1u, pairs, packed);
    struct refdrv_stats st;

    cr_assert_eq(run(r, &p, &st), REFDRV_OK, "%u pairs", pairs);
    expect_all_back(r, &p, &st, pairs);
    cr_expect_eq(vs_feature_has(&r->negotiated, VIRTIO_NET_F_MQ_BIT), pairs > 1u);
    if (pairs > 1u) {
        /* The control queue is 2 * max_virtqueue_pairs; one VQ_PAIRS_SET, answered OK. */
        cr_expect_not_null(r->format[2u * pairs], "control queue %u live", 2u * pairs);
        cr_expect_eq(r->used[2u * pairs], 1);
        cr_expect_eq(r->dev.net.stats.mq_pairs_set, 1);
        cr_expect_eq(st.ctrl_commands, 1);
    } else {
        cr_expect_eq(st.ctrl_commands, 0);
    }
    cr_expect_eq(st.ctrl_errors, 0);
    cr_expect_eq(r->dev.tp.vpci.conf.total, 0, "no driver rule broken");
    rig_free(r);
}

Test(refdrv_mq, one_pair_packed) { mq_loopback(1, true); }
Test(refdrv_mq, one_pair_split) { mq_loopback(1, false); }
Test(refdrv_mq, two_pairs_packed) { mq_loopback(2, true); }
Test(refdrv_mq, two_pairs_split) { mq_loopback(2, false); }
Test(refdrv_mq, four_pairs_packed) { mq_loopback(4, true); }
Test(refdrv_mq, four_pairs_split) { mq_loopback(4, false); }
Test(refdrv_mq, sixty_four_pairs_packed) { mq_loopback(64, true); }
Test(refdrv_mq, sixty_four_pairs_split) { mq_loopback(64, false); }

/* Without flows frames go round robin over the pairs. */
Test(refdrv_mq, plain_frames_round_robin)
{
    struct host_rig *r = rig_new(4, false);
    struct refdrv_params p = params(403, 0, 4, true);
    struct refdrv_stats st;

    cr_assert_eq(run(r, &p, &st), REFDRV_OK);
    expect_all_back(r, &p, &st, 4);
    cr_expect_eq(st.rx_flow_frames, 0);
    rig_free(r);
}

/* One vector per queue when the table has room ("MSI-X Vector Configuration"; as Linux
 * assigns them): the device's table is 1 + num_queues entries, so receiveqN and
 * transmitqN get vectors 2N-1 and 2N; the control queue none (the driver polls its
 * acks); and interrupts wake the driver. */
Test(refdrv_mq, one_vector_per_queue)
{
    struct host_rig *r = rig_new(4, false);
    struct refdrv_params p = params(400, 16, 4, true);
    struct refdrv_stats st;

    r->lazy = true; /* the device runs only while the driver waits: interrupts wake it */
    cr_assert_eq(run(r, &p, &st), REFDRV_OK);
    expect_all_back(r, &p, &st, 4);
    cr_expect_gt(st.interrupts, 0);
    for (uint16_t q = 0; q < 8; q++)
        cr_expect_eq(r->vector[q], q + 1u, "queue %u", q);
    cr_expect_eq(r->vector[8], VIRTIO_MSI_NO_VECTOR, "control queue");
    rig_free(r);
}

/* A table too small for one vector per queue: the data queues share vector 1, as
 * Linux's fallback does. The rig's device is made to announce 2 entries. */
static uint32_t small_table_cfg_read(void *ctx, uint32_t off, unsigned size)
{
    struct host_rig *r = ctx;
    uint32_t v = host_rig_cfg_read(ctx, off, size);
    if (off == r->dev.tp.cap_msix + 2u && size == 2u)
        v = (v & ~(uint32_t)MSIX_MSGCTL_TABLE_SIZE_MASK) | 1u; /* N - 1 */
    return v;
}

Test(refdrv_mq, small_table_shares_one_vector)
{
    struct host_rig *r = rig_new(4, false);
    struct refdrv_params p = params(400, 16, 4, false);
    struct refdrv_stats st;

    r->host.cfg_read = small_table_cfg_read;
    r->lazy = true;
    cr_assert_eq(run(r, &p, &st), REFDRV_OK);
    expect_all_back(r, &p, &st, 4);
    for (uint16_t q = 0; q < 8; q++)
        cr_expect_eq(r->vector[q], 1, "queue %u", q);
    rig_free(r);
}

/* A CPU per pair (vs_host_ops.cpu_for_pair, host.cpus_count): the driver tags each
 * pair's work with its pair, so with four CPUs each builds exactly its pair's frames,
 * the pairs' work overlaps and the same traffic takes less time than on one CPU; the
 * frames and what the device did are the same. Two CPUs for four pairs: pairs 0 and 2
 * on CPU 0, 1 and 3 on CPU 1. */
static uint64_t run_on_cpus(uint32_t cpus, uint64_t *per_cpu, uint64_t *dev_tx)
{
    struct host_rig *r = rig_new(4, false);
    struct refdrv_params p = params(400, 16, 4, true);
    struct refdrv_stats st;
    uint64_t t;

    host_rig_use_cpus(r, cpus);
    cr_assert_eq(run(r, &p, &st), REFDRV_OK);
    expect_all_back(r, &p, &st, 4);
    cr_expect(!r->in_pass, "every pass joined");
    for (uint32_t c = 0; c < 4; c++)
        per_cpu[c] = r->tx_packets_on_cpu[c];
    for (uint16_t k = 0; k < 4; k++)
        dev_tx[k] = r->used[2u * k + 1u];
    t = r->now_ps;
    rig_free(r);
    return t;
}

Test(refdrv_mq, cpu_per_pair_overlaps_the_pairs)
{
    uint64_t one[4], four[4], two[4], dev1[4], dev4[4], dev2[4];
    const uint64_t t1 = run_on_cpus(1, one, dev1);
    const uint64_t t4 = run_on_cpus(4, four, dev4);
    const uint64_t t2 = run_on_cpus(2, two, dev2);

    cr_expect_eq(one[0], 400, "one CPU builds every frame");
    for (uint32_t c = 0; c < 4; c++) {
        cr_expect_eq(four[c], 100, "CPU %u builds its pair's 100 frames", c);
        cr_expect_eq(dev4[c], dev1[c], "transmitq%u carried the same frames", c + 1u);
    }
    cr_expect_eq(two[0], 200);
    cr_expect_eq(two[1], 200);
    cr_expect_lt(t4, t1, "four CPUs: %llu ps, one: %llu ps", (unsigned long long)t4,
                 (unsigned long long)t1);
    cr_expect_lt(t2, t1);
}

/* The device offers fewer pairs than wanted: the driver uses max_virtqueue_pairs. More
 * offered than wanted: the control queue is still 2 * max_virtqueue_pairs and the
 * queues of the pairs not used stay disabled. */
Test(refdrv_mq, device_offers_fewer_pairs)
{
    struct host_rig *r = rig_new(2, false);
    struct refdrv_params p = params(300, 8, 8, true);
    struct refdrv_stats st;

    cr_assert_eq(run(r, &p, &st), REFDRV_OK);
    expect_all_back(r, &p, &st, 2);
    cr_expect_not_null(r->format[4], "control queue 4 live");
    rig_free(r);
}

Test(refdrv_mq, device_offers_more_pairs)
{
    struct host_rig *r = rig_new(8, false);
    struct refdrv_params p = params(300, 8, 2, false);
    struct refdrv_stats st;

    cr_assert_eq(run(r, &p, &st), REFDRV_OK);
    expect_all_back(r, &p, &st, 2);
    cr_expect_not_null(r->format[16], "control queue 2 * max_virtqueue_pairs live");
    for (uint16_t q = 4; q < 16; q++)
        cr_expect_null(r->format[q], "queue %u of a pair not used stays disabled", q);
    rig_free(r);
}

/* MQ not offered (one pair): the driver runs as a one-pair driver, without the control
 * queue it asked for MQ's sake, with the same results. */
Test(refdrv_mq, mq_not_offered_runs_as_one_pair)
{
    struct host_rig *r = rig_new(1, false), *r1 = rig_new(1, false);
    struct refdrv_params p = params(300, 8, 4, true), p1 = params(300, 8, 1, true);
    struct refdrv_stats st, st1;

    cr_assert_eq(run(r, &p, &st), REFDRV_OK);
    cr_assert_eq(run(r1, &p1, &st1), REFDRV_OK);
    expect_all_back(r, &p, &st, 1);
    cr_expect(!vs_feature_has(&r->negotiated, VIRTIO_NET_F_MQ_BIT));
    cr_expect(!vs_feature_has(&r->negotiated, VIRTIO_NET_F_CTRL_VQ_BIT));
    cr_expect_eq(st.ctrl_commands, 0);
    cr_expect_eq(st.notifications, st1.notifications);
    cr_expect_eq(st.interrupts, st1.interrupts);
    /* Only difference: MSI-X entries are programmed before the features are known, for
     * the pairs wanted: all four of the table's (config + 3 queues) instead of three. */
    cr_expect_eq(st.mmio_writes, st1.mmio_writes + 4u);
    cr_expect_eq(st.mmio_reads, st1.mmio_reads);
    rig_free(r);
    rig_free(r1);
}

/* A device that refuses VQ_PAIRS_SET (answers VIRTIO_NET_ERR to a valid request): the
 * driver reports REFDRV_MQ_REFUSED, counts the error, and has transmitted nothing on
 * any queue ("MUST queue packets only on any transmitq1 before the command"; it never
 * got to transmit at all). The rig's device is made to refuse by lowering its own
 * bound once the driver set DRIVER_OK (max_virtqueue_pairs already read as 4). */
static void refusing_mmio_write(void *ctx, uint64_t addr, unsigned size, uint64_t value)
{
    struct host_rig *r = ctx;
    host_rig_mmio_write(ctx, addr, size, value);
    if (r->dev.tp.vpci.status & VIRTIO_STATUS_DRIVER_OK)
        r->dev.net.pairs_max = 1;
}

Test(refdrv_mq, pairs_set_refused_is_reported)
{
    struct host_rig *r = rig_new(4, false);
    struct refdrv_params p = params(100, 8, 4, true);
    struct refdrv_stats st;

    r->host.mmio_write = refusing_mmio_write;
    cr_expect_eq(run(r, &p, &st), REFDRV_MQ_REFUSED);
    cr_expect_str_eq(refdrv_result_name(REFDRV_MQ_REFUSED), "mq_refused");
    cr_expect_eq(st.ctrl_commands, 1);
    cr_expect_eq(st.ctrl_errors, 1);
    cr_expect_eq(st.mq_pairs, 1);
    cr_expect_eq(st.tx_frames, 0);
    for (uint16_t k = 0; k < 4; k++)
        cr_expect_eq(r->used[2u * k + 1u], 0, "nothing transmitted on transmitq%u", k + 1u);
    r->dev.net.pairs_max = 4; /* what the device allocated for: vnet_free frees that many */
    rig_free(r);
}

/* driver.inject_violation CTRL_MQ_PAIRS: one VQ_PAIRS_SET above max_virtqueue_pairs (the
 * device answers ERR and records the rule), then the right one; the run goes on. */
Test(refdrv_mq, inject_pairs_above_max)
{
    struct host_rig *r = rig_new(4, false);
    struct refdrv_params p = params(200, 8, 4, true);
    struct refdrv_stats st;

    p.inject = REFDRV_INJECT_CTRL_MQ_PAIRS;
    cr_assert_eq(run(r, &p, &st), REFDRV_OK);
    expect_all_back(r, &p, &st, 4);
    cr_expect_eq(st.ctrl_commands, 2);
    cr_expect_eq(st.ctrl_errors, 1);
    cr_expect_eq(r->dev.tp.vpci.conf.per_rule[VS_RULE_CTRL_MQ_PAIRS], 1);
    cr_expect_eq(r->dev.tp.vpci.conf.total, 1);
    rig_free(r);
}

/* driver.inject_violation CTRL_MQ_PAIRS_NOT_ENABLED: the driver uses 2 of the device's
 * 4 pairs and first asks for 3 ("The driver MUST configure the virtqueues before
 * enabling them with the VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET command"); the device takes it
 * and records the rule, then the right count; every frame comes back on its pair. */
Test(refdrv_mq, inject_pairs_not_enabled)
{
    struct host_rig *r = rig_new(4, false);
    struct refdrv_params p = params(200, 8, 2, true);
    struct refdrv_stats st;

    p.inject = REFDRV_INJECT_CTRL_MQ_PAIRS_NOT_ENABLED;
    cr_assert_eq(run(r, &p, &st), REFDRV_OK);
    expect_all_back(r, &p, &st, 2);
    cr_expect_eq(st.ctrl_commands, 2);
    cr_expect_eq(st.ctrl_errors, 0, "the device takes it");
    cr_expect_eq(r->dev.tp.vpci.conf.per_rule[VS_RULE_CTRL_MQ_PAIRS_NOT_ENABLED], 1);
    cr_expect_eq(r->dev.tp.vpci.conf.log[0].seen, 3);
    cr_expect_eq(r->dev.tp.vpci.conf.log[0].expected, 2);
    cr_expect_eq(r->dev.tp.vpci.conf.total, 1);
    cr_expect_eq(st.mq_pairs, 2);
    rig_free(r);
}

/* driver.inject_violation TX_QUEUE_NOT_IN_USE: before its VQ_PAIRS_SET(2) the driver
 * posts its first frame on transmitq2 and notifies ("The driver MUST queue packets only
 * on any transmitq1 before the VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET command", "Automatic
 * receive steering in multiqueue mode"); the device records it once, with transmitq2,
 * one buffer and one pair in use, leaves the frame waiting, and sends it once the pair
 * is in use: every frame comes back. Both ring formats. */
static void inject_tx_not_in_use(bool packed)
{
    struct host_rig *r = rig_new(4, false);
    struct refdrv_params p = params(200, 8, 2, packed);
    struct refdrv_stats st;

    p.inject = REFDRV_INJECT_TX_QUEUE_NOT_IN_USE;
    cr_assert_eq(run(r, &p, &st), REFDRV_OK);
    /* Every frame back intact; frame 0 went out on pair 2 instead of pair 1, the flows
     * after it as usual (f mod 2 == k). */
    cr_expect_eq(st.tx_frames, p.frames_count);
    cr_expect_eq(st.rx_frames, p.frames_count);
    cr_expect_eq(st.rx_bad_payload, 0);
    cr_expect_eq(st.tx_frames_pair[0], p.frames_count / 2u - 1u);
    cr_expect_eq(st.tx_frames_pair[1], p.frames_count / 2u + 1u);
    cr_expect_eq(r->used[3], p.frames_count / 2u + 1u, "the device sent the early frame");
    cr_expect_eq(st.ctrl_commands, 1);
    cr_expect_eq(r->dev.tp.vpci.conf.per_rule[VS_RULE_TX_QUEUE_NOT_IN_USE], 1);
    cr_expect_eq(r->dev.tp.vpci.conf.log[0].queue, 3);
    cr_expect_eq(r->dev.tp.vpci.conf.log[0].seen, 1);
    cr_expect_eq(r->dev.tp.vpci.conf.log[0].expected, 1);
    cr_expect_eq(r->dev.tp.vpci.conf.total, 1);
    cr_expect_eq(st.mq_pairs, 2);
    rig_free(r);
}

Test(refdrv_mq, inject_tx_not_in_use_packed) { inject_tx_not_in_use(true); }
Test(refdrv_mq, inject_tx_not_in_use_split) { inject_tx_not_in_use(false); }

/* MRG_RXBUF: 256-byte receive buffers, frames up to 1514 bytes: a frame comes in up to
 * seven buffers, num_buffers in the first one's header; every frame is put back together
 * and checked. */
static void mrg_loopback(uint16_t pairs, bool packed)
{
    struct host_rig *r = rig_new(pairs, true);
    struct refdrv_params p = params(300, pairs > 1u ? 8u : 0u, pairs, packed);
    struct refdrv_stats st;

    p.mrg_rxbuf = true;
    p.rx_buffer_bytes = 256;
    cr_assert_eq(run(r, &p, &st), REFDRV_OK);
    expect_all_back(r, &p, &st, pairs);
    cr_expect(vs_feature_has(&r->negotiated, VIRTIO_NET_F_MRG_RXBUF_BIT));
    cr_expect_eq(st.mrg_rxbuf_negotiated, 1);
    /* 64 and 60-byte frames fit one buffer (with the 12-byte header); 300 and 1514 do not. */
    cr_expect_eq(st.rx_merged_frames, 150);
    cr_expect_eq(r->dev.net.stats.rx_merged_frames, 150);
    /* Per 256-byte buffer: 64 + 12 in 1, 1514 + 12 in 6, 300 + 12 in 2, 60 + 12 in 1. */
    cr_expect_eq(st.rx_buffers, 75u * (1u + 6u + 2u + 1u));
    cr_expect_eq(r->dev.net.stats.rx_dropped_too_big, 0);
    rig_free(r);
}

Test(refdrv_mrg, frames_over_several_buffers_packed) { mrg_loopback(1, true); }
Test(refdrv_mrg, frames_over_several_buffers_split) { mrg_loopback(1, false); }
Test(refdrv_mrg, with_four_pairs) { mrg_loopback(4, true); }

/* Offered but not asked for: not negotiated, one buffer per frame as before. */
Test(refdrv_mrg, offered_not_asked)
{
    struct host_rig *r = rig_new(1, true);
    struct refdrv_params p = params(100, 0, 1, true);
    struct refdrv_stats st;

    cr_assert_eq(run(r, &p, &st), REFDRV_OK);
    expect_all_back(r, &p, &st, 1);
    cr_expect(!vs_feature_has(&r->negotiated, VIRTIO_NET_F_MRG_RXBUF_BIT));
    cr_expect_eq(st.rx_merged_frames, 0);
    cr_expect_eq(st.rx_buffers, 100);
    rig_free(r);
}

/* Asked for, not offered: 2048-byte buffers by default (rx_buffer_bytes 0), frames in
 * one buffer each. */
Test(refdrv_mrg, asked_not_offered)
{
    struct host_rig *r = rig_new(1, false);
    struct refdrv_params p = params(100, 0, 1, false);
    struct refdrv_stats st;

    p.mrg_rxbuf = true;
    p.rx_buffer_bytes = 0;
    cr_assert_eq(run(r, &p, &st), REFDRV_OK);
    expect_all_back(r, &p, &st, 1);
    cr_expect_eq(st.mrg_rxbuf_negotiated, 0);
    cr_expect_eq(st.rx_merged_frames, 0);
    rig_free(r);
}
