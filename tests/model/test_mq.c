/* test_mq.c -- virtio-net with several queue pairs, against the spec sections that say
 * what the device does:
 *  - "Network Device / Feature bits" (VIRTIO_NET_F_MQ, and its need of CTRL_VQ);
 *  - "Network Device / Device configuration layout" (max_virtqueue_pairs);
 *  - "Network Device / Virtqueues" (receiveqN 2(N-1), transmitqN 2(N-1)+1, controlq
 *    2N; num_queues of "Common configuration structure layout");
 *  - "MSI-X Vector Configuration" (one vector per queue plus configuration changes);
 *  - "Control Virtqueue / Automatic receive steering in multiqueue mode"
 *    (VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET: 1 .. max_virtqueue_pairs, only receiveq1 and
 *    transmitq1 after initialisation, none of the pairs past the ones set in use);
 *  - "Device Reset" (one pair again);
 *  - "Automatic receive steering in multiqueue mode" again for where frames go: the
 *    answer to a frame transmitted on transmitqX is received on receiveqX, each pair
 *    with its own FIFO of device.rx_fifo_frames;
 *  - "Receive-side scaling (RSS)" ("Setting RSS parameters", "RSS processing") and
 *    VIRTIO_NET_F_RSS's configuration fields and feature requirement: RSS_CONFIG read
 *    whole over several descriptors, frames steered by the Toeplitz hash to the queue
 *    the indirection table names (checked against the published hash values of
 *    tests/common/rss_vectors.h), hostile commands refused with VIRTIO_NET_ERR and a
 *    named CTRL_RSS_* violation;
 *  - "Virtqueues" again: controlq at 2N with N = 1 unless VIRTIO_NET_F_MQ or
 *    VIRTIO_NET_F_RSS is negotiated, fixed at FEATURES_OK.
 */
#include <criterion/criterion.h>
#include <stddef.h>
#include <string.h>

#include "common/rss_vectors.h"
#include "common/vdev_rig.h"
#include "net_wire.h"

#define GUEST_BASE 0x100000ull
#define RING_SIZE  16u
#define HDR        ((uint32_t)sizeof(struct virtio_net_hdr))

static struct vdev_rig rig;

/* Ring positions of the driver, per queue (packed rings). */
static struct {
    uint16_t pos;
    bool wrap;
} side[VNET_QUEUES_MAX];
static unsigned commands;

static uint64_t buffers(uint16_t pairs)
{
    return GUEST_BASE + (uint64_t)vnet_queues(pairs) * VDEV_RIG_QUEUE_WINDOW;
}

/* The rig with p (p.queue_pairs pairs). */
static void rig_up_params(const struct vdev_params *p)
{
    cr_assert(vdev_rig_init(&rig, p, GUEST_BASE,
                            (uint64_t)vnet_queues(p->queue_pairs) * VDEV_RIG_QUEUE_WINDOW + 0x100000u));
    pt_rig_map_bars(&rig.dev.tp);
}

static void rig_up_rss(uint16_t pairs, bool rss)
{
    struct vdev_params p = vdev_rig_default_params();
    p.queue_pairs = pairs;
    p.rss = rss;
    rig_up_params(&p);
}

static void rig_up(uint16_t pairs)
{
    rig_up_rss(pairs, false);
}

static void rig_down(void)
{
    vdev_rig_fini(&rig);
}

static vs_features driver_features(bool mq, bool ctrl_vq)
{
    vs_features f;
    memset(&f, 0, sizeof f);
    vs_feature_set(&f, VIRTIO_F_VERSION_1_BIT);
    vs_feature_set(&f, VIRTIO_F_RING_PACKED_BIT);
    vs_feature_set(&f, VIRTIO_NET_F_MAC_BIT);
    if (ctrl_vq)
        vs_feature_set(&f, VIRTIO_NET_F_CTRL_VQ_BIT);
    if (mq)
        vs_feature_set(&f, VIRTIO_NET_F_MQ_BIT);
    return f;
}

/* The initialisation sequence with features f on every queue of the function (the
 * control queue only with CTRL_VQ, at 2N: without MQ and RSS the queues are receiveq1,
 * transmitq1 and controlq 2; rings cleared). */
static void clear_rings(void)
{
    const uint16_t nq = rig.dev.net.num_queues;
    memset(fake_guest_ptr(&rig.g, GUEST_BASE, nq * VDEV_RIG_QUEUE_WINDOW), 0,
           nq * VDEV_RIG_QUEUE_WINDOW);
    for (unsigned q = 0; q < nq; q++) {
        side[q].pos = 0;
        side[q].wrap = true;
    }
}

static bool bring_up_with(const vs_features *f)
{
    const uint16_t nq = rig.dev.net.num_queues;
    clear_rings();
    const bool ctrl_vq = vs_feature_has(f, VIRTIO_NET_F_CTRL_VQ_BIT);
    const bool all_pairs = vs_feature_has(f, VIRTIO_NET_F_MQ_BIT) ||
                           vs_feature_has(f, VIRTIO_NET_F_RSS_BIT);
    return vdev_rig_bring_up(&rig, f, !ctrl_vq ? nq - 1u : all_pairs ? nq : 3u, RING_SIZE);
}

static bool bring_up(bool mq, bool ctrl_vq)
{
    const vs_features f = driver_features(mq, ctrl_vq);
    return bring_up_with(&f);
}

/* Make one packed descriptor available on queue q. */
static void post(uint16_t q, uint64_t addr, uint32_t len, uint16_t flags)
{
    const uint64_t at = vdev_rig_desc(&rig, q) + 16u * side[q].pos;
    fake_guest_put64(&rig.g, at, addr);
    fake_guest_put32(&rig.g, at + 8, len);
    fake_guest_put16(&rig.g, at + PVIRTQ_DESC_OFF_ID, side[q].pos);
    flags |= side[q].wrap ? VIRTQ_DESC_F_AVAIL_MASK : VIRTQ_DESC_F_USED_MASK;
    fake_guest_put16(&rig.g, at + PVIRTQ_DESC_OFF_FLAGS, flags);
    if (++side[q].pos == RING_SIZE) {
        side[q].pos = 0;
        side[q].wrap = !side[q].wrap;
    }
}

/* Make one control command available (rlen readable bytes, then one writable ack
 * byte, 0xff until the device answers); returns the ack byte's address. */
static uint64_t post_ctrl(const uint8_t *in, uint32_t rlen)
{
    const uint16_t cq = vnet_ctrl_queue(&rig.dev.net);
    const uint64_t rbuf = buffers(rig.dev.net.pairs_max) + 0x100u * (commands++ % 16u);
    const uint64_t ack = rbuf + 0x80;
    memcpy(fake_guest_ptr(&rig.g, rbuf, rlen), in, rlen);
    *fake_guest_ptr(&rig.g, ack, 1) = 0xff;
    post(cq, rbuf, rlen, VIRTQ_DESC_F_NEXT_MASK);
    post(cq, ack, 1, VIRTQ_DESC_F_WRITE_MASK);
    return ack;
}

/* One control command, stepped. Returns the ack, or 0xfe when the control step did not
 * complete. */
static uint8_t ctrl(const uint8_t *in, uint32_t rlen)
{
    const uint64_t ack = post_ctrl(in, rlen);
    struct pt_work w = {0};
    if (vnet_ctrl_step(&rig.dev.net, &rig.ops, &w) != PT_STEP_DONE)
        return 0xfe;
    return *fake_guest_ptr(&rig.g, ack, 1);
}

static uint8_t pairs_set(uint16_t pairs)
{
    uint8_t in[4] = {VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET};
    vs_put_le16(in + 2, pairs);
    return ctrl(in, sizeof in);
}

static uint64_t violations(enum vs_rule r)
{
    return rig.dev.tp.vpci.conf.per_rule[r];
}

static uint64_t bar0(uint8_t cfg_type)
{
    const uint8_t cap = pt_rig_find_vcap(&rig.dev.tp, cfg_type);
    cr_assert(cap);
    return PT_RIG_BAR0 + pt_cfg_read(&rig.dev.tp, cap + 8u, 4);
}

static uint8_t msix_cap(void)
{
    uint8_t off = (uint8_t)pt_cfg_read(&rig.dev.tp, PCI_CAPABILITY_LIST, 1);
    for (int n = 0; off && n < 48; n++) {
        if (pt_cfg_read(&rig.dev.tp, off, 1) == PCI_CAP_ID_MSIX)
            return off;
        off = (uint8_t)pt_cfg_read(&rig.dev.tp, off + 1u, 1);
    }
    cr_assert_fail("no MSI-X capability");
    return 0;
}

/* What the driver sees of a function with `pairs` pairs before it negotiates anything:
 * the MQ offer, max_virtqueue_pairs, num_queues, the queues that exist, the MSI-X table
 * size, and a table and PBA that do not overlap inside BAR2. */
static void check_offer(uint16_t pairs)
{
    rig_up(pairs);
    struct pt *tp = &rig.dev.tp;
    uint64_t v = 0;

    pt_rig_wr(tp, VIRTIO_PCI_COMMON_DFSELECT, 4, 0);
    const uint32_t lo = (uint32_t)pt_rig_rd(tp, VIRTIO_PCI_COMMON_DF, 4);
    cr_expect_eq((lo >> VIRTIO_NET_F_MQ_BIT) & 1u, pairs > 1, "MQ offered with %u pairs", pairs);
    cr_expect((lo >> VIRTIO_NET_F_CTRL_VQ_BIT) & 1u);

    cr_assert(pt_mmio_read(tp, bar0(VIRTIO_PCI_CAP_DEVICE_CFG) +
                                   offsetof(struct virtio_net_config, max_virtqueue_pairs),
                           2, &v));
    cr_expect_eq(v, pairs, "max_virtqueue_pairs");

    cr_expect_eq(pt_rig_rd(tp, VIRTIO_PCI_COMMON_NUMQ, 2), 2u * pairs + 1u, "num_queues");
    const uint16_t last = (uint16_t)(2u * pairs);
    pt_rig_wr(tp, VIRTIO_PCI_COMMON_Q_SELECT, 2, last);
    cr_expect_eq(pt_rig_rd(tp, VIRTIO_PCI_COMMON_Q_SIZE, 2), 1024u, "controlq %u exists", last);
    pt_rig_wr(tp, VIRTIO_PCI_COMMON_Q_SELECT, 2, last + 1u);
    cr_expect_eq(pt_rig_rd(tp, VIRTIO_PCI_COMMON_Q_SIZE, 2), 0u, "no queue past controlq");
    cr_expect_eq(vnet_queue_role(last, rig.dev.net.num_queues),
                 vnet_queue_role(VNET_QUEUE_CTRL, VNET_QUEUES), "controlq last");
    cr_expect_eq(vnet_queue_role((uint16_t)(last - 1u), rig.dev.net.num_queues),
                 vnet_queue_role(VNET_QUEUE_TX, VNET_QUEUES), "transmitqN before it");

    const uint8_t cap = msix_cap();
    const uint32_t ctl = pt_cfg_read(tp, cap + 2u, 2);
    cr_expect_eq((ctl & MSIX_MSGCTL_TABLE_SIZE_MASK) + 1u, 2u * pairs + 2u,
                 "one vector per queue plus configuration changes");
    const uint32_t table = pt_cfg_read(tp, cap + 4u, 4), pba = pt_cfg_read(tp, cap + 8u, 4);
    cr_expect_eq(table & 7u, 2u, "table in BAR2");
    cr_expect_eq(pba & 7u, 2u, "PBA in BAR2");
    const uint32_t table_end = (table & ~7u) + (2u * pairs + 2u) * MSIX_ENTRY_SIZE;
    cr_expect_geq(pba & ~7u, table_end, "PBA after the table");
    cr_expect_eq((pba & ~7u) % 8u, 0u, "PBA qword aligned");
    /* BAR2's size, the standard way: all ones, read back. */
    pt_cfg_write(tp, PCI_BAR0 + 8, 4, 0xffffffffu);
    const uint32_t size = ~(pt_cfg_read(tp, PCI_BAR0 + 8, 4) & ~0xfu) + 1u;
    cr_expect_geq(size, (pba & ~7u) + ((2u * pairs + 2u) + 63u) / 64u * 8u, "PBA inside BAR2");
    if (pairs == 1) {
        /* Byte for byte today's function. */
        cr_expect_eq(pba & ~7u, 0x800u);
        cr_expect_eq(size, 0x1000u);
    }
    rig_down();
}

Test(mq, offer_and_layout_one_pair) { check_offer(1); }
Test(mq, offer_and_layout_two_pairs) { check_offer(2); }
Test(mq, offer_and_layout_256_pairs) { check_offer(256); }

/* "Feature bit requirements": VIRTIO_NET_F_MQ requires VIRTIO_NET_F_CTRL_VQ. */
Test(mq, mq_needs_ctrl_vq)
{
    rig_up(4);
    cr_expect_not(bring_up(true, false));
    cr_expect(bring_up(true, true));
    rig_down();
}

Test(mq, params_refused_past_256)
{
    struct vdev_params p = vdev_rig_default_params();
    p.queue_pairs = 256;
    cr_expect_null(vdev_check_params(&p));
    p.queue_pairs = 257;
    cr_expect_not_null(vdev_check_params(&p));
}

/* "The driver MUST configure the virtqueues before enabling them with the
 * VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET command": of 4 pairs the driver enables pairs 1 and 2
 * and the control queue. VQ_PAIRS_SET 2 breaks no rule; 3 and 4 are taken (well formed)
 * but named, with the pairs asked for and the pairs enabled; 5 is CTRL_MQ_PAIRS only. */
Test(mq, vq_pairs_set_of_pairs_not_enabled)
{
    rig_up(4);
    const vs_features f = driver_features(true, true);
    const uint16_t queues[] = {0, 1, 2, 3, vnet_ctrl_queue(&rig.dev.net)};
    clear_rings();
    cr_assert(vdev_rig_bring_up_queues(&rig, &f, queues, 5, RING_SIZE));
    cr_expect_eq(pairs_set(2), VIRTIO_NET_OK);
    cr_expect_eq(rig.dev.tp.vpci.conf.total, 0, "pairs 1 and 2 are enabled");
    cr_expect_eq(pairs_set(3), VIRTIO_NET_OK);
    cr_expect_eq(rig.dev.net.pairs, 3, "taken");
    cr_expect_eq(violations(VS_RULE_CTRL_MQ_PAIRS_NOT_ENABLED), 1);
    const struct vs_violation *v = &rig.dev.tp.vpci.conf.log[0];
    cr_expect_eq(v->rule, VS_RULE_CTRL_MQ_PAIRS_NOT_ENABLED);
    cr_expect_eq(v->queue, vnet_ctrl_queue(&rig.dev.net));
    cr_expect_eq(v->seen, 3);
    cr_expect_eq(v->expected, 2);
    cr_expect_eq(pairs_set(4), VIRTIO_NET_OK);
    cr_expect_eq(violations(VS_RULE_CTRL_MQ_PAIRS_NOT_ENABLED), 2);
    cr_expect_eq(pairs_set(5), VIRTIO_NET_ERR);
    cr_expect_eq(violations(VS_RULE_CTRL_MQ_PAIRS_NOT_ENABLED), 2, "refused before");
    cr_expect_eq(violations(VS_RULE_CTRL_MQ_PAIRS), 1);
    cr_expect_eq(pairs_set(1), VIRTIO_NET_OK);
    cr_expect_eq(rig.dev.tp.vpci.conf.total, 3);
    cr_expect_eq(rig.dev.tp.error, VS_REASON_NONE, "never a reset");
    rig_down();
}

/* "Automatic receive steering in multiqueue mode": only pair 1 after initialisation;
 * virtqueue_pairs 1 .. max_virtqueue_pairs is taken, anything else is refused with
 * VIRTIO_NET_ERR and a named violation, and the device keeps working. */
Test(mq, vq_pairs_set_values)
{
    rig_up(4);
    cr_assert(bring_up(true, true));
    cr_expect_eq(rig.dev.net.pairs, 1);

    cr_expect_eq(pairs_set(0), VIRTIO_NET_ERR);
    cr_expect_eq(violations(VS_RULE_CTRL_MQ_PAIRS), 1);
    cr_expect_eq(rig.dev.net.pairs, 1);
    cr_expect_eq(pairs_set(4), VIRTIO_NET_OK);
    cr_expect_eq(rig.dev.net.pairs, 4);
    cr_expect_eq(pairs_set(5), VIRTIO_NET_ERR);
    cr_expect_eq(pairs_set(0xffff), VIRTIO_NET_ERR);
    cr_expect_eq(violations(VS_RULE_CTRL_MQ_PAIRS), 3);
    cr_expect_eq(rig.dev.net.pairs, 4, "a refused command changes nothing");
    cr_expect_eq(pairs_set(1), VIRTIO_NET_OK);
    cr_expect_eq(rig.dev.net.pairs, 1);

    /* Short: class, command and one byte of the le16. ERR; not a rule broken. */
    const uint8_t shorter[3] = {VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, 2};
    cr_expect_eq(ctrl(shorter, sizeof shorter), VIRTIO_NET_ERR);
    const uint8_t bare[2] = {VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET};
    cr_expect_eq(ctrl(bare, sizeof bare), VIRTIO_NET_ERR);
    cr_expect_eq(rig.dev.net.pairs, 1);
    /* RSS_CONFIG and HASH_CONFIG: not offered, so not negotiated. */
    const uint8_t rss[4] = {VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_RSS_CONFIG, 0, 0};
    cr_expect_eq(ctrl(rss, sizeof rss), VIRTIO_NET_ERR);
    cr_expect_eq(violations(VS_RULE_CTRL_RSS_NOT_NEGOTIATED), 1);
    cr_expect_eq(violations(VS_RULE_CTRL_MQ_PAIRS), 3);
    cr_expect_eq(violations(VS_RULE_CTRL_MQ_NOT_NEGOTIATED), 0);
    cr_expect_eq(rig.dev.net.stats.mq_pairs_set, 2);
    cr_expect_eq(rig.dev.tp.error, VS_REASON_NONE, "never a reset");
    rig_down();
}

Test(mq, vq_pairs_set_256)
{
    rig_up(256);
    cr_assert(bring_up(true, true));
    cr_expect_eq(vnet_ctrl_queue(&rig.dev.net), 512);
    cr_expect_eq(pairs_set(256), VIRTIO_NET_OK);
    cr_expect_eq(rig.dev.net.pairs, 256);
    cr_expect_eq(pairs_set(257), VIRTIO_NET_ERR);
    cr_expect_eq(rig.dev.net.pairs, 256);
    cr_expect_eq(rig.dev.tp.error, VS_REASON_NONE);
    rig_down();
}

/* The MQ class without VIRTIO_NET_F_MQ negotiated: declined by the driver, or not
 * offered (one pair). */
Test(mq, vq_pairs_set_without_mq)
{
    rig_up(4);
    cr_assert(bring_up(false, true));
    cr_expect_eq(pairs_set(2), VIRTIO_NET_ERR);
    cr_expect_eq(violations(VS_RULE_CTRL_MQ_NOT_NEGOTIATED), 1);
    cr_expect_eq(rig.dev.net.pairs, 1);
    rig_down();

    rig_up(1);
    cr_assert(bring_up(false, true));
    cr_expect_eq(pairs_set(1), VIRTIO_NET_ERR);
    cr_expect_eq(violations(VS_RULE_CTRL_MQ_NOT_NEGOTIATED), 1);
    cr_expect_eq(rig.dev.tp.error, VS_REASON_NONE);
    rig_down();
}

/* A frame on transmit queue q (loopback) after a zeroed virtio-net header; a receive
 * buffer on receive queue q. */
static void post_tx_frame(uint16_t q, const uint8_t *frame, uint32_t len)
{
    const uint64_t buf = buffers(rig.dev.net.pairs_max) + 0x10000u + 0x100u * q;
    memset(fake_guest_ptr(&rig.g, buf, HDR), 0, HDR);
    memcpy(fake_guest_ptr(&rig.g, buf + HDR, len), frame, len);
    post(q, buf, HDR + len, 0);
}

/* A 60-byte frame of byte `fill` (EtherType 0xXXXX of the same bytes: not IP). */
static void post_tx_fill(uint16_t q, uint8_t fill)
{
    uint8_t f[60];
    memset(f, fill, sizeof f);
    post_tx_frame(q, f, sizeof f);
}

static void post_tx(uint16_t q)
{
    post_tx_fill(q, 0x5a);
}

/* The frame receive queue q's buffer holds (after the header). */
static const uint8_t *rx_frame(uint16_t q)
{
    return fake_guest_ptr(&rig.g, buffers(rig.dev.net.pairs_max) + 0x20000u + 0x800u * q + HDR, 60);
}

static void post_rx(uint16_t q)
{
    const uint64_t buf = buffers(rig.dev.net.pairs_max) + 0x20000u + 0x800u * q;
    post(q, buf, 0x800u, VIRTQ_DESC_F_WRITE_MASK);
}

static enum pt_step step(uint16_t q)
{
    struct pt_work w = {0};
    return pt_step_one(&rig.dev.tp, q, &rig.ops, &w);
}

/* Queues of pairs not in use take no buffer: transmitq2 leaves its frame, receiveq2
 * takes nothing; both work once VQ_PAIRS_SET enables pair 2, and transmitq1's frame
 * stays receiveq1's ("Automatic receive steering in multiqueue mode"). */
Test(mq, queues_of_pairs_not_in_use_are_not_processed)
{
    rig_up(2);
    cr_assert(bring_up(true, true));
    post_tx(3);
    cr_expect_eq(step(3), PT_STEP_IDLE, "transmitq2 of a pair not in use");
    cr_expect_eq(rig.dev.net.stats.tx_frames, 0);
    post_tx(1);
    cr_expect_eq(step(1), PT_STEP_DONE, "transmitq1");
    cr_expect_eq(vnet_fifo_frames(&rig.dev.net), 1);
    post_rx(2);
    cr_expect_eq(step(2), PT_STEP_IDLE, "receiveq2 of a pair not in use");
    cr_expect_eq(vnet_fifo_frames(&rig.dev.net), 1, "the frame stays for an enabled queue");

    cr_expect_eq(pairs_set(2), VIRTIO_NET_OK);
    cr_expect_eq(step(2), PT_STEP_IDLE, "receiveq2 in use: transmitq1's frame is not its");
    cr_expect_eq(step(3), PT_STEP_DONE, "transmitq2 in use");
    cr_expect_eq(rig.dev.net.stats.tx_frames, 2);
    cr_expect_eq(vnet_pair_fifo_frames(&rig.dev.net, 1), 1);
    cr_expect_eq(step(2), PT_STEP_DONE, "receiveq2 takes transmitq2's frame");
    cr_expect_eq(rig.dev.net.stats.rx_frames, 1);
    cr_expect_eq(vnet_pair_fifo_frames(&rig.dev.net, 0), 1, "transmitq1's waits for receiveq1");
    cr_expect_eq(rig.dev.tp.error, VS_REASON_NONE);
    rig_down();
}

/* "Device Reset": the pairs in use go back to one, so pair 2 stops again. */
Test(mq, reset_returns_to_one_pair)
{
    rig_up(2);
    cr_assert(bring_up(true, true));
    cr_expect_eq(pairs_set(2), VIRTIO_NET_OK);
    cr_expect_eq(rig.dev.net.pairs, 2);
    cr_assert(bring_up(true, true)); /* writes 0 to device_status first */
    cr_expect_eq(rig.dev.net.pairs, 1);
    post_tx(3);
    cr_expect_eq(step(3), PT_STEP_IDLE);
    cr_expect_eq(rig.dev.net.stats.tx_frames, 0);
    rig_down();
}

/* TX_SET and RX_SET apply to every transmit / receive queue ("Notifications
 * Coalescing"); VQ_SET names any data queue of the function, not the control queue. */
Test(mq, coalescing_classes_cover_every_pair)
{
    rig_up(3);
    vs_features f = driver_features(true, true);
    vs_feature_set(&f, VIRTIO_NET_F_NOTF_COAL_BIT);
    vs_feature_set(&f, VIRTIO_NET_F_VQ_NOTF_COAL_BIT);
    cr_assert(bring_up_with(&f));
    uint8_t tx[10] = {VIRTIO_NET_CTRL_NOTF_COAL, VIRTIO_NET_CTRL_NOTF_COAL_TX_SET};
    vs_put_le32(tx + 2, 7);
    vs_put_le32(tx + 6, 0);
    cr_expect_eq(ctrl(tx, sizeof tx), VIRTIO_NET_OK);
    for (uint16_t q = 0; q < 6; q++)
        cr_expect_eq(rig.dev.net.coal[q].p.max_packets, q % 2u ? 7u : 0u, "queue %u", q);
    uint8_t vq[14] = {VIRTIO_NET_CTRL_NOTF_COAL, VIRTIO_NET_CTRL_NOTF_COAL_VQ_SET};
    vs_put_le16(vq + 2, 4);
    vs_put_le32(vq + 6, 3);
    cr_expect_eq(ctrl(vq, sizeof vq), VIRTIO_NET_OK);
    cr_expect_eq(rig.dev.net.coal[4].p.max_packets, 3u);
    vs_put_le16(vq + 2, 6); /* the control queue */
    cr_expect_eq(ctrl(vq, sizeof vq), VIRTIO_NET_ERR);
    cr_expect_eq(violations(VS_RULE_CTRL_COAL_VQ_INDEX), 1);
    rig_down();
}

/* ---- Where received frames go ---- */

/* "Automatic receive steering in multiqueue mode": with VQ_PAIRS_SET in force and no
 * RSS, the answer to a frame transmitted on transmitqX waits in pair X's FIFO and is
 * received on receiveqX only; the queues given work are marked for a wake-up
 * (pt_take_wake): each frame's receive queue, then each receive's transmit queue. */
Test(mq, automatic_steering_answers_on_the_pair_of_the_transmit_queue)
{
    rig_up(4);
    cr_assert(bring_up(true, true));
    cr_expect_eq(pairs_set(4), VIRTIO_NET_OK);
    uint16_t q;
    while (pt_take_wake(&rig.dev.tp, &q))
        ;
    for (uint16_t k = 0; k < 4; k++) {
        post_tx_fill((uint16_t)(2u * k + 1u), (uint8_t)(0x10 + k));
        cr_expect_eq(step((uint16_t)(2u * k + 1u)), PT_STEP_DONE, "transmitq%u", k + 1u);
    }
    for (uint16_t k = 0; k < 4; k++) {
        cr_expect_eq(vnet_pair_fifo_frames(&rig.dev.net, k), 1, "pair %u's FIFO", k);
        cr_expect(pt_take_wake(&rig.dev.tp, &q));
        cr_expect_eq(q, 2u * k, "receiveq%u marked", k + 1u);
    }
    cr_expect_not(pt_take_wake(&rig.dev.tp, &q));
    /* Each receive queue takes its own pair's frame, in any order. */
    for (int k = 3; k >= 0; k--) {
        post_rx((uint16_t)(2 * k));
        cr_expect_eq(step((uint16_t)(2 * k)), PT_STEP_DONE, "receiveq%d", k + 1);
        cr_expect_eq(rx_frame((uint16_t)(2 * k))[0], 0x10 + k, "receiveq%d got transmitq%d's frame",
                     k + 1, k + 1);
        cr_expect_eq(step((uint16_t)(2 * k)), PT_STEP_IDLE, "and nothing else");
    }
    for (uint16_t k = 0; k < 4; k++) {
        cr_expect(pt_take_wake(&rig.dev.tp, &q));
        cr_expect_eq(q, 2u * k + 1u, "transmitq%u marked: FIFO space", k + 1u);
    }
    cr_expect_eq(rig.dev.net.stats.rx_frames, 4);
    cr_expect_eq(rig.dev.net.stats.rx_steer_dropped, 0);
    cr_expect_eq(rig.dev.net.stats.rx_steered_hash + rig.dev.net.stats.rx_steered_unclassified, 0);
    rig_down();
}

/* device.rx_fifo_frames is per pair: a pair whose FIFO is full holds its transmit
 * queue back (BLOCKED, the role's still_blocked true for it) while another pair's
 * transmits; the roles' still_blocked hooks answer for the queue they are asked about. */
Test(mq, each_pair_has_its_own_fifo)
{
    rig_up(2);
    cr_assert(bring_up(true, true));
    cr_expect_eq(pairs_set(2), VIRTIO_NET_OK);
    const struct pt_role *rx = rig.dev.tp.role[0], *tx = rig.dev.tp.role[1];
    const void *ctx = rig.dev.tp.dev_ctx;
    cr_expect(rx->still_blocked(ctx, 0), "receiveq1: no frame yet");
    for (unsigned i = 0; i < rig.dev.net.p.rx_fifo_frames; i++) {
        post_tx(1);
        cr_assert_eq(step(1), PT_STEP_DONE, "frame %u", i);
    }
    post_tx(1);
    cr_expect_eq(step(1), PT_STEP_BLOCKED, "pair 1's FIFO is full");
    cr_expect(tx->still_blocked(ctx, 1));
    cr_expect_not(tx->still_blocked(ctx, 3), "pair 2's FIFO is not");
    cr_expect_not(rx->still_blocked(ctx, 0));
    cr_expect(rx->still_blocked(ctx, 2));
    post_tx(3);
    cr_expect_eq(step(3), PT_STEP_DONE, "transmitq2 goes on");
    cr_expect_not(rx->still_blocked(ctx, 2));
    post_rx(0);
    cr_expect_eq(step(0), PT_STEP_DONE);
    cr_expect_not(tx->still_blocked(ctx, 1), "one place free");
    cr_expect_eq(step(1), PT_STEP_DONE, "the held frame goes");
    cr_expect_eq(vnet_fifo_frames(&rig.dev.net), rig.dev.net.p.rx_fifo_frames + 1u);
    cr_expect_eq(rig.dev.tp.error, VS_REASON_NONE);
    rig_down();
}

/* A front end without registers (vhost-user: pt_fe_attach, rings started with
 * pt_fe_queue_start) keeps the control queue itself: it answers the driver's
 * VQ_PAIRS_SET and tells the device the pairs in use with vnet_fe_set_pairs, which
 * takes what VQ_PAIRS_SET takes ("Automatic receive steering in multiqueue mode":
 * 1 .. max_virtqueue_pairs) and only 1 without VIRTIO_NET_F_MQ ("Virtqueues": N = 1).
 * With 3 of 4 pairs in use transmitq3's frame comes back on receiveq3 only, and pair
 * 4's queues take nothing; a reset (a new attach) puts one pair in use again. */
static void fe_start_all(bool mq)
{
    vs_features f = driver_features(mq, false);
    pt_fe_attach(&rig.dev.tp, &f);
    const uint16_t data_queues = (uint16_t)(mq ? 2u * rig.dev.net.pairs_max : 2u);
    memset(fake_guest_ptr(&rig.g, GUEST_BASE, data_queues * VDEV_RIG_QUEUE_WINDOW), 0,
           data_queues * VDEV_RIG_QUEUE_WINDOW);
    for (uint16_t q = 0; q < data_queues; q++) {
        side[q].pos = 0;
        side[q].wrap = true;
        /* Packed: next offset 0, Driver Ring Wrap Counter 1 (bit 15). */
        const struct pt_fe_ring r = {RING_SIZE, vdev_rig_desc(&rig, q),
                                     vdev_rig_driver_area(&rig, q), vdev_rig_device_area(&rig, q),
                                     0x8000u};
        enum vs_reason why;
        cr_assert_eq(pt_fe_queue_start(&rig.dev.tp, q, &r, &why), PT_FE_STARTED, "queue %u: %s",
                     q, vs_reason_name(why));
    }
}

Test(mq, front_end_sets_the_pairs_in_use)
{
    rig_up(4);
    fe_start_all(true);
    cr_expect_eq(rig.dev.net.pairs, 1, "one pair after the attach (a reset)");
    cr_expect_not(vnet_fe_set_pairs(&rig.dev.net, 0));
    cr_expect_not(vnet_fe_set_pairs(&rig.dev.net, 5), "more than max_virtqueue_pairs");
    cr_expect_eq(rig.dev.net.pairs, 1, "refusals change nothing");
    cr_assert(vnet_fe_set_pairs(&rig.dev.net, 3));
    cr_expect_eq(rig.dev.net.pairs, 3);
    post_tx_fill(5, 0x33);
    cr_expect_eq(step(5), PT_STEP_DONE, "transmitq3 in use");
    cr_expect_eq(vnet_pair_fifo_frames(&rig.dev.net, 2), 1, "its frame waits in pair 3's FIFO");
    post_tx_fill(7, 0x44);
    cr_expect_eq(step(7), PT_STEP_IDLE, "transmitq4: pair 4 not in use");
    post_rx(6);
    cr_expect_eq(step(6), PT_STEP_IDLE, "receiveq4: pair 4 not in use");
    post_rx(0);
    cr_expect_eq(step(0), PT_STEP_IDLE, "receiveq1: transmitq3's frame is not its");
    post_rx(4);
    cr_expect_eq(step(4), PT_STEP_DONE, "receiveq3");
    cr_expect_eq(rx_frame(4)[0], 0x33, "receiveq3 got transmitq3's frame");
    cr_expect_eq(rig.dev.net.stats.tx_frames, 1);
    cr_expect_eq(rig.dev.net.stats.rx_frames, 1);
    cr_assert(vnet_fe_set_pairs(&rig.dev.net, 4));
    cr_expect_eq(step(7), PT_STEP_DONE, "transmitq4 once pair 4 is in use");
    cr_expect_eq(step(6), PT_STEP_DONE, "receiveq4 takes its frame");
    cr_expect_eq(rx_frame(6)[0], 0x44);
    cr_expect_eq(rig.dev.net.stats.mq_pairs_set, 0, "no control command was answered");
    cr_expect_eq(rig.dev.tp.vpci.conf.total, 0, "a front end's request is no violation");
    cr_expect_eq(rig.dev.tp.error, VS_REASON_NONE);

    fe_start_all(false);
    cr_expect_eq(rig.dev.net.pairs, 1);
    cr_expect_not(vnet_fe_set_pairs(&rig.dev.net, 2), "without VIRTIO_NET_F_MQ");
    cr_expect(vnet_fe_set_pairs(&rig.dev.net, 1));
    cr_expect_eq(rig.dev.net.pairs, 1);
    rig_down();
}

/* ---- Receive-side scaling ---- */

#define RSS_KEY_BYTES 40u
#define RSS_TABLE_LEN 128u

static vs_features rss_features(void)
{
    vs_features f = driver_features(true, true);
    vs_feature_set(&f, VIRTIO_NET_F_RSS_BIT);
    return f;
}

/* A VIRTIO_NET_CTRL_MQ_RSS_CONFIG command ("Setting RSS parameters"): class, command,
 * then struct virtio_net_rss_config with `entries` table entries, entry i naming
 * receive queue i % spread, and a key of key_len bytes of the published key (repeated
 * past its 40 bytes). Returns its length. */
static uint8_t cmd_buf[0x20000];
static uint32_t rss_cmd(uint32_t types, uint32_t entries, uint16_t spread, uint16_t unclassified,
                        uint16_t max_tx_vq, uint8_t key_len)
{
    uint8_t *b = cmd_buf;
    b[0] = VIRTIO_NET_CTRL_MQ;
    b[1] = VIRTIO_NET_CTRL_MQ_RSS_CONFIG;
    vs_put_le32(b + 2, types);
    vs_put_le16(b + 6, (uint16_t)(entries - 1u));
    vs_put_le16(b + 8, unclassified);
    uint32_t off = 10;
    for (uint32_t i = 0; i < entries; i++, off += 2)
        vs_put_le16(b + off, (uint16_t)(i % spread));
    vs_put_le16(b + off, max_tx_vq);
    b[off + 2] = key_len;
    off += 3;
    for (uint32_t k = 0; k < key_len; k++)
        b[off++] = ms_key[k % sizeof ms_key];
    return off;
}

/* One control command of rlen readable bytes spread over descriptors of `chunk` bytes
 * (the last may be shorter), then the ack byte. Returns the ack (0xfe: the step did not
 * complete) and the bytes the device read in *read. */
static uint8_t ctrl_chunks(const uint8_t *in, uint32_t rlen, uint32_t chunk, uint32_t *read)
{
    const uint16_t cq = vnet_ctrl_queue(&rig.dev.net);
    const uint64_t rbuf = buffers(rig.dev.net.pairs_max) + 0x80000u;
    const uint64_t ack = rbuf + rlen + 16u;
    memcpy(fake_guest_ptr(&rig.g, rbuf, rlen), in, rlen);
    *fake_guest_ptr(&rig.g, ack, 1) = 0xff;
    for (uint32_t off = 0; off < rlen; off += chunk)
        post(cq, rbuf + off, rlen - off < chunk ? rlen - off : chunk, VIRTQ_DESC_F_NEXT_MASK);
    post(cq, ack, 1, VIRTQ_DESC_F_WRITE_MASK);
    struct pt_work w = {0};
    const enum pt_step st = vnet_ctrl_step(&rig.dev.net, &rig.ops, &w);
    if (read)
        *read = w.bytes_read;
    return st == PT_STEP_DONE ? *fake_guest_ptr(&rig.g, ack, 1) : 0xfe;
}

/* A 60-byte Ethernet frame carrying row i of the published IPv4 suite as TCP (tcp) or
 * as a protocol with no ports (then the hash covers the addresses only). */
static void frame_v4(uint8_t *f, unsigned i, bool tcp)
{
    memset(f, 0, 60);
    f[12] = 0x08; /* EtherType IPv4 */
    uint8_t *ip = f + 14;
    ip[0] = 0x45;
    vs_put_be16(ip + 2, 40);
    ip[8] = 64;
    ip[9] = tcp ? 6 : 47; /* TCP, or GRE */
    memcpy(ip + 12, ms_v4[i].src, 4);
    memcpy(ip + 16, ms_v4[i].dst, 4);
    vs_put_be16(ip + 20, ms_v4[i].sport);
    vs_put_be16(ip + 22, ms_v4[i].dport);
    ip[32] = 0x50; /* TCP data offset: 5 words */
}

/* Row i of the published IPv6 suite as TCP: 74 bytes. */
static uint32_t frame_v6(uint8_t *f, unsigned i)
{
    memset(f, 0, 74);
    f[12] = 0x86, f[13] = 0xdd;
    uint8_t *ip = f + 14;
    ip[0] = 0x60;
    vs_put_be16(ip + 4, 20);
    ip[6] = 6;
    ip[7] = 64;
    memcpy(ip + 8, ms_v6[i].src, 16);
    memcpy(ip + 24, ms_v6[i].dst, 16);
    vs_put_be16(ip + 40, ms_v6[i].sport);
    vs_put_be16(ip + 42, ms_v6[i].dport);
    ip[52] = 0x50;
    return 74;
}

static uint64_t cfg_read(uint32_t off, unsigned size)
{
    uint64_t v = 0;
    cr_assert(pt_mmio_read(&rig.dev.tp, bar0(VIRTIO_PCI_CAP_DEVICE_CFG) + off, size, &v));
    return v;
}

/* "Device configuration layout": with VIRTIO_NET_F_RSS offered, rss_max_key_size (at
 * least 40), rss_max_indirection_table_length (at least 128) and supported_hash_types;
 * without it the bit is not offered and the fields read 0. "Feature bit requirements":
 * VIRTIO_NET_F_RSS requires VIRTIO_NET_F_CTRL_VQ. */
Test(mq, rss_offer_and_configuration_fields)
{
    for (int on = 0; on < 2; on++) {
        rig_up_rss(4, on);
        pt_rig_wr(&rig.dev.tp, VIRTIO_PCI_COMMON_DFSELECT, 4, 1);
        const uint32_t hi = (uint32_t)pt_rig_rd(&rig.dev.tp, VIRTIO_PCI_COMMON_DF, 4);
        cr_expect_eq((hi >> (VIRTIO_NET_F_RSS_BIT - 32)) & 1u, (unsigned)on);
        cr_expect_eq(cfg_read(offsetof(struct virtio_net_config, rss_max_key_size), 1),
                     on ? RSS_KEY_BYTES : 0u);
        cr_expect_eq(cfg_read(offsetof(struct virtio_net_config, rss_max_indirection_table_length), 2),
                     on ? RSS_TABLE_LEN : 0u);
        cr_expect_eq(cfg_read(offsetof(struct virtio_net_config, supported_hash_types), 4),
                     on ? RSS_HASH_TYPES_IMPLEMENTED : 0u);
        rig_down();
    }
    rig_up_rss(4, true);
    vs_features f = rss_features();
    vs_feature_clear(&f, VIRTIO_NET_F_CTRL_VQ_BIT);
    vs_feature_clear(&f, VIRTIO_NET_F_MQ_BIT);
    cr_expect_not(bring_up_with(&f), "RSS without CTRL_VQ");
    f = rss_features();
    cr_expect(bring_up_with(&f));
    rig_down();
}

/* "RSS processing": a frame goes to indirection_table[hash & mask], the hash the
 * Toeplitz function over the fields of the enabled hash types ("Hash calculation for
 * incoming packets"); a frame no enabled type applies to goes to unclassified_queue.
 * The expected queues come from the published hash values, not from the model. The
 * command arrives in 37-byte descriptors ("read whole over several descriptors"). */
Test(mq, rss_steers_by_the_toeplitz_hash)
{
    rig_up_rss(4, true);
    vs_features f = rss_features();
    cr_assert(bring_up_with(&f));
    const uint32_t types = VIRTIO_NET_HASH_TYPE_IPV4_MASK | VIRTIO_NET_HASH_TYPE_TCPV4_MASK |
                           VIRTIO_NET_HASH_TYPE_TCPV6_MASK;
    const uint32_t len = rss_cmd(types, RSS_TABLE_LEN, 4, 3, 4, RSS_KEY_BYTES);
    uint32_t read = 0;
    cr_assert_eq(ctrl_chunks(cmd_buf, len, 37, &read), VIRTIO_NET_OK);
    cr_expect_eq(read, len, "the whole command read");
    cr_expect_eq(rig.dev.net.pairs, 4, "the configuration's queues are in use");
    cr_expect_eq(rig.dev.net.stats.rss_config_set, 1);

    uint8_t fr[80];
    uint32_t expect[4] = {0};
    for (unsigned i = 0; i < sizeof ms_v4 / sizeof ms_v4[0]; i++) {
        for (int tcp = 0; tcp < 2; tcp++) {
            frame_v4(fr, i, tcp);
            const uint32_t hash = tcp ? ms_v4[i].tcp : ms_v4[i].ip;
            const uint16_t want = (uint16_t)((hash & (RSS_TABLE_LEN - 1u)) % 4u);
            post_tx_frame(1, fr, 60);
            cr_assert_eq(step(1), PT_STEP_DONE);
            expect[want]++;
            cr_expect_eq(vnet_pair_fifo_frames(&rig.dev.net, want), expect[want],
                         "row %u %s: receiveq%u", i, tcp ? "TCPv4" : "IPv4", want + 1u);
        }
    }
    for (unsigned i = 0; i < sizeof ms_v6 / sizeof ms_v6[0]; i++) {
        const uint32_t n = frame_v6(fr, i);
        const uint16_t want = (uint16_t)((ms_v6[i].tcp & (RSS_TABLE_LEN - 1u)) % 4u);
        post_tx_frame(3, fr, n);
        cr_assert_eq(step(3), PT_STEP_DONE);
        expect[want]++;
        cr_expect_eq(vnet_pair_fifo_frames(&rig.dev.net, want), expect[want], "IPv6 row %u", i);
    }
    cr_expect_eq(rig.dev.net.stats.rx_steered_hash, 2u * 5u + 3u);
    /* Not IP: unclassified_queue (3). */
    post_tx(5);
    cr_assert_eq(step(5), PT_STEP_DONE);
    cr_expect_eq(vnet_pair_fifo_frames(&rig.dev.net, 3), expect[3] + 1u);
    cr_expect_eq(rig.dev.net.stats.rx_steered_unclassified, 1);
    cr_expect_eq(rig.dev.net.stats.rx_steer_dropped, 0);
    /* And a receive queue takes what its FIFO holds. */
    post_rx(6);
    cr_expect_eq(step(6), PT_STEP_DONE);
    cr_expect_eq(rig.dev.net.stats.rx_frames, 1);

    /* "If more than one multiqueue mode is negotiated, the resulting device
     * configuration is defined by the last command sent by the driver": VQ_PAIRS_SET
     * turns hashing off, frames go back to their transmit queue's pair. */
    cr_expect_eq(pairs_set(2), VIRTIO_NET_OK);
    const uint32_t before = vnet_pair_fifo_frames(&rig.dev.net, 1);
    frame_v4(fr, 0, true);
    post_tx_frame(3, fr, 60);
    cr_assert_eq(step(3), PT_STEP_DONE);
    cr_expect_eq(vnet_pair_fifo_frames(&rig.dev.net, 1), before + 1u);
    cr_expect_eq(rig.dev.net.stats.rx_steered_hash, 2u * 5u + 3u);
    cr_expect_eq(rig.dev.tp.error, VS_REASON_NONE);
    rig_down();
}

/* The command is read no further than the longest one the device can accept: a
 * readable part of 70,000 bytes (a valid configuration, then noise) is read up to that
 * bound and taken ("Setting RSS parameters": bytes past the structure mean nothing). */
Test(mq, rss_config_read_is_bounded)
{
    rig_up_rss(2, true);
    vs_features f = rss_features();
    cr_assert(bring_up_with(&f));
    const uint32_t len = rss_cmd(VIRTIO_NET_HASH_TYPE_IPV4_MASK, 4, 2, 0, 2, RSS_KEY_BYTES);
    memset(cmd_buf + len, 0xee, 70000u - len);
    uint32_t read = 0;
    cr_expect_eq(ctrl_chunks(cmd_buf, 70000u, 17500u, &read), VIRTIO_NET_OK);
    cr_expect_eq(read, rig.dev.net.ctrl_cap);
    cr_expect_eq(rig.dev.net.ctrl_cap, 2u + 8u + 2u * RSS_TABLE_LEN + 3u + RSS_KEY_BYTES);
    cr_expect_eq(rig.dev.tp.error, VS_REASON_NONE);
    rig_down();
}

/* One hostile command: ERR, one violation of `rule`, the configuration in force and
 * the device unchanged. */
static void refused(uint32_t len, enum vs_rule rule, uint64_t seen, uint64_t expected)
{
    const uint64_t before = violations(rule), total = rig.dev.tp.vpci.conf.total;
    const struct rss_state saved = *rig.dev.net.rss;
    const uint16_t pairs = rig.dev.net.pairs;
    cr_expect_eq(ctrl_chunks(cmd_buf, len, 64, NULL), VIRTIO_NET_ERR, "%s", vs_rule_name(rule));
    cr_expect_eq(violations(rule), before + 1u, "%s", vs_rule_name(rule));
    cr_expect_eq(rig.dev.tp.vpci.conf.total, total + 1u);
    cr_assert_lt(total, VS_CONF_LOG, "the record is in the log");
    const struct vs_violation *v = &rig.dev.tp.vpci.conf.log[rig.dev.tp.vpci.conf.logged - 1u];
    cr_expect_eq(v->rule, rule);
    cr_expect_eq(v->queue, vnet_ctrl_queue(&rig.dev.net));
    cr_expect_eq(v->seen, seen, "%s seen", vs_rule_name(rule));
    cr_expect_eq(v->expected, expected, "%s expected", vs_rule_name(rule));
    cr_expect_eq(memcmp(&saved, rig.dev.net.rss, sizeof saved), 0, "configuration unchanged");
    cr_expect_eq(rig.dev.net.pairs, pairs);
    cr_expect_eq(rig.dev.tp.error, VS_REASON_NONE, "never a reset");
}

/* "Setting RSS parameters", every driver MUST the device can see broken: an
 * indirection table naming a queue that does not exist (or is not enabled), a table
 * length that is not a power of two or is too long, a key longer than rss_max_key_size,
 * hash types not offered, a reserved queue-id bit, max_tx_vq 0 or too large, the data
 * cut short at every length; HASH_CONFIG without VIRTIO_NET_F_HASH_REPORT. */
Test(mq, rss_hostile_commands_are_refused_and_named)
{
    rig_up_rss(4, true);
    vs_features f = rss_features();
    cr_assert(bring_up_with(&f));
    const uint32_t all = RSS_HASH_TYPES_IMPLEMENTED;
    cr_assert_eq(ctrl_chunks(cmd_buf, rss_cmd(all, 8, 4, 0, 4, 40), 64, NULL), VIRTIO_NET_OK);

    refused(rss_cmd(all, 8, 5, 0, 4, 40), VS_RULE_CTRL_RSS_QUEUE, 4, 4); /* entry 4 */
    refused(rss_cmd(all, 8, 4, 4, 4, 40), VS_RULE_CTRL_RSS_QUEUE, 4, 4); /* unclassified */
    refused(rss_cmd(all, 8, 4, 0, 0, 40), VS_RULE_CTRL_RSS_QUEUE, 0, 4); /* max_tx_vq 0 */
    refused(rss_cmd(all, 8, 4, 0, 5, 40), VS_RULE_CTRL_RSS_QUEUE, 5, 4);
    refused(rss_cmd(all, 8, 4, 0x8000u, 4, 40), VS_RULE_CTRL_RSS_RESERVED, 0x8000u, 0);
    refused(rss_cmd(all, 6, 4, 0, 4, 40), VS_RULE_CTRL_RSS_TABLE_LENGTH, 6, 0);
    refused(rss_cmd(all, 256, 4, 0, 4, 40), VS_RULE_CTRL_RSS_TABLE_LENGTH, 255, RSS_TABLE_LEN);
    refused(rss_cmd(all, 8, 4, 0, 4, 41), VS_RULE_CTRL_RSS_KEY_LENGTH, 41, RSS_KEY_BYTES);
    refused(rss_cmd(all, 8, 4, 0, 4, 0), VS_RULE_CTRL_RSS_KEY_LENGTH, 0, 1);
    refused(rss_cmd(VIRTIO_NET_HASH_TYPE_IP_EX_MASK, 8, 4, 0, 4, 40), VS_RULE_CTRL_RSS_HASH_TYPES,
            VIRTIO_NET_HASH_TYPE_IP_EX_MASK, all);
    /* HASH_CONFIG: VIRTIO_NET_F_HASH_REPORT is not offered. */
    uint8_t hc[2 + 13] = {VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_HASH_CONFIG};
    memcpy(cmd_buf, hc, sizeof hc);
    refused(sizeof hc, VS_RULE_CTRL_RSS_NOT_NEGOTIATED, VIRTIO_NET_CTRL_MQ_HASH_CONFIG,
            VIRTIO_NET_F_HASH_REPORT_BIT);
    /* Cut at every length: the class and command are there, the structure is not. */
    const uint32_t full = rss_cmd(all, 8, 4, 0, 4, 40);
    for (uint32_t len = 2; len < full; len++) {
        const uint64_t before = violations(VS_RULE_CTRL_RSS_TRUNCATED);
        cr_expect_eq(ctrl_chunks(cmd_buf, len, 64, NULL), VIRTIO_NET_ERR, "cut at %u", len);
        cr_expect_eq(violations(VS_RULE_CTRL_RSS_TRUNCATED), before + 1u, "cut at %u", len);
    }
    /* The configuration accepted first is still the one in force. */
    cr_expect(rig.dev.net.rss->configured);
    cr_expect_eq(rig.dev.net.rss->table_len, 8);
    rig_down();
}

/* RSS_CONFIG without VIRTIO_NET_F_RSS negotiated (offered or not): ERR and
 * CTRL_RSS_NOT_NEGOTIATED ("A driver MUST NOT send the VIRTIO_NET_CTRL_MQ_RSS_CONFIG
 * command if the feature VIRTIO_NET_F_RSS has not been negotiated"); frames keep
 * automatic steering. */
Test(mq, rss_config_without_the_feature)
{
    for (int offered = 0; offered < 2; offered++) {
        rig_up_rss(2, offered);
        cr_assert(bring_up(true, true));
        const uint32_t len = rss_cmd(VIRTIO_NET_HASH_TYPE_IPV4_MASK, 4, 2, 1, 2, 40);
        cr_expect_eq(ctrl_chunks(cmd_buf, len, 64, NULL), VIRTIO_NET_ERR);
        cr_expect_eq(violations(VS_RULE_CTRL_RSS_NOT_NEGOTIATED), 1);
        const struct vs_violation *v = &rig.dev.tp.vpci.conf.log[rig.dev.tp.vpci.conf.logged - 1u];
        cr_expect_eq(v->seen, VIRTIO_NET_CTRL_MQ_RSS_CONFIG);
        cr_expect_eq(v->expected, VIRTIO_NET_F_RSS_BIT);
        cr_expect_eq(rig.dev.net.pairs, 1);
        post_tx(1);
        cr_expect_eq(step(1), PT_STEP_DONE);
        cr_expect_eq(vnet_pair_fifo_frames(&rig.dev.net, 0), 1);
        cr_expect_eq(rig.dev.tp.error, VS_REASON_NONE);
        rig_down();
    }
}

/* "RSS processing": "If the destination receive queue is being reset ..., the device
 * MUST drop the packet": a frame whose queue the driver has since disabled by a reset
 * of that queue goes nowhere (rx_steer_dropped), the others still arrive. */
Test(mq, rss_drops_frames_for_a_queue_being_reset)
{
    rig_up_rss(2, true);
    vs_features f = rss_features();
    vs_feature_set(&f, VIRTIO_F_RING_RESET_BIT);
    cr_assert(bring_up_with(&f));
    /* Every frame to receiveq2: a one-entry table naming it, and unclassified_queue 1. */
    const uint32_t len = rss_cmd(RSS_HASH_TYPES_IMPLEMENTED, 1, 1, 1, 2, 40);
    vs_put_le16(cmd_buf + 10, 1);
    cr_assert_eq(ctrl_chunks(cmd_buf, len, 64, NULL), VIRTIO_NET_OK);
    post_tx(1);
    cr_assert_eq(step(1), PT_STEP_DONE);
    cr_expect_eq(vnet_pair_fifo_frames(&rig.dev.net, 1), 1);
    pt_rig_wr(&rig.dev.tp, VIRTIO_PCI_COMMON_Q_SELECT, 2, 2);
    pt_rig_wr(&rig.dev.tp, VIRTIO_PCI_COMMON_Q_RESET, 2, 1);
    post_tx(1);
    cr_assert_eq(step(1), PT_STEP_DONE);
    cr_expect_eq(rig.dev.net.stats.rx_steer_dropped, 1);
    cr_expect_eq(vnet_pair_fifo_frames(&rig.dev.net, 1), 1);
    cr_expect_eq(rig.dev.tp.error, VS_REASON_NONE);
    rig_down();
}

/* "RSS processing" puts a frame in another pair's FIFO: the step marks that pair's
 * receive queue for a wake-up (pt_take_wake), not the transmitting pair's; the receive
 * that takes the frame marks the transmit queue of its own pair (whose FIFO got room,
 * what that queue's take waits for), and a frame dropped for a queue being reset marks
 * nothing. Every push into a FIFO and every pop out of one marks, so the data roles say
 * their wake-ups are all marked (woken_by_mark) and a platform may wake those queues
 * alone; the control queue waits on no signal. */
Test(mq, rss_steering_marks_the_queue_it_chose)
{
    rig_up_rss(2, true);
    vs_features f = rss_features();
    vs_feature_set(&f, VIRTIO_F_RING_RESET_BIT);
    cr_assert(bring_up_with(&f));
    /* Every frame to receiveq2: a one-entry table naming it, and unclassified_queue 1. */
    const uint32_t len = rss_cmd(RSS_HASH_TYPES_IMPLEMENTED, 1, 1, 1, 2, 40);
    vs_put_le16(cmd_buf + 10, 1);
    cr_assert_eq(ctrl_chunks(cmd_buf, len, 64, NULL), VIRTIO_NET_OK);
    uint16_t q;
    while (pt_take_wake(&rig.dev.tp, &q))
        ;
    post_tx(1);
    cr_assert_eq(step(1), PT_STEP_DONE);
    cr_expect_eq(vnet_pair_fifo_frames(&rig.dev.net, 1), 1);
    cr_expect(pt_take_wake(&rig.dev.tp, &q));
    cr_expect_eq(q, 2, "receiveq2 marked, not receiveq1");
    cr_expect_not(pt_take_wake(&rig.dev.tp, &q), "and nothing else");
    post_rx(2);
    cr_expect_eq(step(2), PT_STEP_DONE);
    cr_expect(pt_take_wake(&rig.dev.tp, &q));
    cr_expect_eq(q, 3, "transmitq2 marked: its pair's FIFO has room");
    cr_expect_not(pt_take_wake(&rig.dev.tp, &q), "and nothing else");
    pt_rig_wr(&rig.dev.tp, VIRTIO_PCI_COMMON_Q_SELECT, 2, 2);
    pt_rig_wr(&rig.dev.tp, VIRTIO_PCI_COMMON_Q_RESET, 2, 1);
    post_tx(1);
    cr_assert_eq(step(1), PT_STEP_DONE);
    cr_expect_eq(rig.dev.net.stats.rx_steer_dropped, 1);
    cr_expect_not(pt_take_wake(&rig.dev.tp, &q), "a dropped frame gives no queue work");
    for (uint16_t k = 0; k < 4; k++)
        cr_expect(rig.dev.tp.role[k]->woken_by_mark, "queue %u", k);
    const struct pt_role *ctrl_r = rig.dev.tp.role[vnet_ctrl_queue(&rig.dev.net)];
    cr_expect(ctrl_r->waits_on == 0 && !ctrl_r->woken_by_mark);
    cr_expect_eq(rig.dev.tp.error, VS_REASON_NONE);
    rig_down();
}

/* The wake marks cover all 513 queues of 256 pairs, lowest first across words. */
Test(mq, wake_marks_cover_every_queue)
{
    rig_up(256);
    uint16_t q;
    while (pt_take_wake(&rig.dev.tp, &q))
        ;
    const uint16_t marked[] = {512, 64, 3, 63, 511};
    for (unsigned i = 0; i < sizeof marked / sizeof marked[0]; i++)
        pt_wake(&rig.dev.tp, marked[i]);
    pt_wake(&rig.dev.tp, 513); /* no such queue */
    const uint16_t order[] = {3, 63, 64, 511, 512};
    for (unsigned i = 0; i < sizeof order / sizeof order[0]; i++) {
        cr_expect(pt_take_wake(&rig.dev.tp, &q));
        cr_expect_eq(q, order[i]);
    }
    cr_expect_not(pt_take_wake(&rig.dev.tp, &q));
    rig_down();
}

/* ---- "Network Device / Virtqueues": controlq is 2N, N = max_virtqueue_pairs only
 * when VIRTIO_NET_F_MQ or VIRTIO_NET_F_RSS is negotiated, else 1 ---- */

static const struct pt_role *role_of(uint16_t q)
{
    return rig.dev.tp.role[q];
}

static const struct pt_role *ctrl_role_(void)
{
    return vnet_queue_role(VNET_QUEUE_CTRL, VNET_QUEUES);
}

/* Set up and enable queue q alone (after FEATURES_OK). */
static void enable_queue(uint16_t q)
{
    struct pt *tp = &rig.dev.tp;
    pt_rig_wr(tp, VIRTIO_PCI_COMMON_Q_SELECT, 2, q);
    pt_rig_wr(tp, VIRTIO_PCI_COMMON_Q_SIZE, 2, RING_SIZE);
    pt_rig_wr(tp, VIRTIO_PCI_COMMON_Q_DESCLO, 4, (uint32_t)vdev_rig_desc(&rig, q));
    pt_rig_wr(tp, VIRTIO_PCI_COMMON_Q_AVAILLO, 4, (uint32_t)vdev_rig_driver_area(&rig, q));
    pt_rig_wr(tp, VIRTIO_PCI_COMMON_Q_USEDLO, 4, (uint32_t)vdev_rig_device_area(&rig, q));
    pt_rig_wr(tp, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
}

/* 4 pairs offered, CTRL_VQ without MQ: N = 1, the control queue is queue 2 and answers
 * there; num_queues still reads the offered 9; queue 8 is not the control queue. */
Test(mq, ctrl_queue_at_2_without_mq)
{
    rig_up(4);
    cr_expect_eq(vnet_ctrl_queue(&rig.dev.net), 8, "before FEATURES_OK: the offered numbering");
    cr_assert(bring_up(false, true));
    cr_expect_eq(vnet_ctrl_queue(&rig.dev.net), 2);
    cr_expect_eq(role_of(2), ctrl_role_(), "queue 2 has the control role");
    cr_expect_neq(role_of(8), ctrl_role_(), "queue 8 is not the control queue");
    cr_expect_eq(pt_rig_rd(&rig.dev.tp, VIRTIO_PCI_COMMON_NUMQ, 2), 9u, "num_queues: the offer");
    const uint64_t before = rig.dev.net.stats.ctrl_commands;
    cr_expect_eq(pairs_set(2), VIRTIO_NET_ERR, "answered on queue 2 (MQ not negotiated)");
    cr_expect_eq(rig.dev.net.stats.ctrl_commands, before + 1u);
    cr_expect_eq(rig.dev.tp.q[2].kicks + rig.dev.tp.q[8].kicks, 0u);
    cr_expect_eq(rig.dev.tp.error, VS_REASON_NONE);
    /* Data still flows on pair 1 alongside. */
    post_tx(1);
    cr_expect_eq(step(1), PT_STEP_DONE);
    post_rx(0);
    cr_expect_eq(step(0), PT_STEP_DONE);
    cr_expect_eq(rig.dev.net.stats.rx_frames, 1);
    /* Queue 8 does not exist with these features: enabling it needs a reset, as the
     * control queue does without CTRL_VQ. */
    enable_queue(8);
    cr_expect_eq(rig.dev.tp.error, VS_REASON_QUEUE_SIZE_INVALID);
    rig_down();
}

/* Without MQ the queues of pairs 2..4 past the control queue (3..7) may be set up (no
 * driver requirement forbids it) but never carry traffic: their pair is never in use,
 * since only VQ_PAIRS_SET, which needs MQ, changes that ("Automatic receive steering
 * in multiqueue mode"). */
Test(mq, queues_past_2n_without_mq_carry_nothing)
{
    rig_up(4);
    cr_assert(bring_up(false, true));
    enable_queue(3);
    enable_queue(4);
    cr_expect_eq(rig.dev.tp.error, VS_REASON_NONE);
    post_tx(3);
    cr_expect_eq(step(3), PT_STEP_IDLE);
    post_rx(4);
    cr_expect_eq(step(4), PT_STEP_IDLE);
    cr_expect_eq(rig.dev.net.stats.tx_frames, 0);
    rig_down();
}

/* With MQ: N = max_virtqueue_pairs, the control queue is 8; queue 2 is receiveq2. A
 * reset and renegotiation without MQ moves it to 2 again, and back. */
Test(mq, ctrl_queue_at_2n_with_mq)
{
    rig_up(4);
    cr_assert(bring_up(true, true));
    cr_expect_eq(vnet_ctrl_queue(&rig.dev.net), 8);
    cr_expect_eq(role_of(8), ctrl_role_());
    cr_expect_eq(role_of(2), vnet_queue_role(VNET_QUEUE_RX, VNET_QUEUES), "receiveq2");
    cr_expect_eq(pairs_set(2), VIRTIO_NET_OK);
    cr_expect_eq(rig.dev.net.pairs, 2);
    cr_assert(bring_up(false, true));
    cr_expect_eq(vnet_ctrl_queue(&rig.dev.net), 2);
    cr_expect_eq(pairs_set(2), VIRTIO_NET_ERR);
    cr_assert(bring_up(true, true));
    cr_expect_eq(vnet_ctrl_queue(&rig.dev.net), 8);
    cr_expect_eq(role_of(2), vnet_queue_role(VNET_QUEUE_RX, VNET_QUEUES));
    cr_expect_eq(pairs_set(4), VIRTIO_NET_OK);
    cr_expect_eq(rig.dev.tp.error, VS_REASON_NONE);
    rig_down();
}

/* VIRTIO_NET_F_RSS without MQ also makes N = max_virtqueue_pairs (docs/rss.md). */
Test(mq, ctrl_queue_at_2n_with_rss_without_mq)
{
    rig_up_rss(4, true);
    vs_features f = driver_features(false, true);
    vs_feature_set(&f, VIRTIO_NET_F_RSS_BIT);
    cr_assert(bring_up_with(&f));
    cr_expect_eq(vnet_ctrl_queue(&rig.dev.net), 8);
    cr_expect_eq(role_of(8), ctrl_role_());
    cr_expect_eq(pairs_set(2), VIRTIO_NET_ERR, "answered on queue 8 (MQ not negotiated)");
    cr_expect_eq(violations(VS_RULE_CTRL_MQ_NOT_NEGOTIATED), 1);
    cr_expect_eq(rig.dev.tp.error, VS_REASON_NONE);
    rig_down();
}

/* One pair: the control queue is 2 whatever is negotiated. */
Test(mq, ctrl_queue_one_pair_is_2)
{
    rig_up(1);
    cr_assert(bring_up(false, true));
    cr_expect_eq(vnet_ctrl_queue(&rig.dev.net), VNET_QUEUE_CTRL);
    cr_expect_eq(role_of(VNET_QUEUE_CTRL), ctrl_role_());
    rig_down();
}

/* ---- pt_run_idle (model/pci_transport.h): the untimed front ends' loop over every
 * live queue of several pairs, through the queues' roles ---- */

static uint64_t run_used[VNET_QUEUES_MAX];

static const struct vs_guest_ops *ops_of(void *ctx, uint16_t q)
{
    (void)q;
    return ctx;
}

static enum pt_step run_idle_with(const struct vs_guest_ops *ops, uint32_t rounds_max,
                                  uint32_t steps_max, struct pt_idle *run)
{
    memset(run, 0, sizeof *run);
    memset(run_used, 0, sizeof run_used);
    run->queue_ops = ops_of;
    run->ctx = (void *)(uintptr_t)ops;
    run->rounds_max = rounds_max;
    run->steps_max = steps_max;
    run->buffers = run_used;
    return pt_run_idle(&rig.dev.tp, run);
}

static enum pt_step run_idle(struct pt_idle *run)
{
    return run_idle_with(&rig.ops, 1000, 1000, run);
}

/* The flags of queue q's device event suppression structure (packed rings, "Driver and
 * Device Event Suppression"): RING_EVENT_FLAGS_ENABLE when the device asked the driver
 * for notifications. */
static uint16_t device_event_flags(uint16_t q)
{
    return fake_guest_get16(&rig.g, vdev_rig_device_area(&rig, q) +
                                        offsetof(struct pvirtq_event_suppress, flags));
}

/* Every pair: a VQ_PAIRS_SET command and a frame on each of four transmit queues, one
 * receive buffer on each receive queue. Round 1 sends transmitq1's frame (the only pair
 * in use, "Automatic receive steering in multiqueue mode"), receives it on receiveq1 in
 * the same round (transmit queues come first) and runs the command; round 2 sends the
 * other pairs' frames and receives each on its own pair; round 3 finds nothing. */
Test(mq, run_idle_serves_every_pair)
{
    rig_up(4);
    cr_assert(bring_up(true, true));
    uint8_t set[4] = {VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET};
    vs_put_le16(set + 2, 4);
    const uint64_t ack = post_ctrl(set, sizeof set);
    for (uint16_t k = 0; k < 4; k++) {
        post_rx((uint16_t)(2u * k));
        post_tx_fill((uint16_t)(2u * k + 1u), (uint8_t)(0x10u + k));
    }
    struct pt_idle run;
    cr_expect_eq(run_idle(&run), PT_STEP_DONE);
    cr_expect_eq(*fake_guest_ptr(&rig.g, ack, 1), VIRTIO_NET_OK);
    cr_expect_eq(rig.dev.net.pairs, 4);
    for (uint16_t k = 0; k < 4; k++) {
        cr_expect_eq(run_used[2u * k + 1u], 1, "transmitq%u", k + 1u);
        cr_expect_eq(run_used[2u * k], 1, "receiveq%u", k + 1u);
        cr_expect_eq(rx_frame((uint16_t)(2u * k))[0], 0x10u + k, "receiveq%u has its pair's frame",
                     k + 1u);
    }
    cr_expect_eq(run_used[8], 1, "the control command");
    cr_expect_eq(run.done, 9);
    cr_expect_eq(run.rounds, 3);
    cr_expect_not(run.spent);
    /* The transmit queues and the control queue stopped on an empty ring, waiting for
     * the driver: armed. The receive queues stopped with no frame to receive, waiting
     * for the device's other side: not armed. */
    for (uint16_t q = 0; q < 9; q++)
        cr_expect_eq(device_event_flags(q) & 3u,
                     q % 2u || q == 8 ? RING_EVENT_FLAGS_ENABLE : RING_EVENT_FLAGS_DISABLE,
                     "queue %u", q);

    cr_expect_eq(run_idle(&run), PT_STEP_IDLE, "nothing left");
    cr_expect_eq(run.rounds, 1);
    cr_expect_eq(run.done, 0);
    cr_expect_eq(rig.dev.tp.error, VS_REASON_NONE);
    rig_down();
}

/* Receive buffers and no frame wait for the device's other side: one round, nothing
 * moved, the receive queues not armed (the driver need not notify them), the loop over.
 * A frame without a receive buffer is the other way round: the receive queue waits for
 * the driver and is armed. */
Test(mq, run_idle_receive_buffers_without_frames_end_the_loop)
{
    rig_up(2);
    cr_assert(bring_up(true, true));
    cr_expect_eq(pairs_set(2), VIRTIO_NET_OK);
    for (unsigned i = 0; i < 4; i++) {
        post_rx(0);
        post_rx(2);
    }
    struct pt_idle run;
    cr_expect_eq(run_idle(&run), PT_STEP_IDLE);
    cr_expect_eq(run.rounds, 1);
    cr_expect_eq(run.done, 0);
    cr_expect_not(run.spent);
    cr_expect_eq(device_event_flags(0) & 3u, RING_EVENT_FLAGS_DISABLE, "receiveq1 waits for a frame");
    cr_expect_eq(device_event_flags(2) & 3u, RING_EVENT_FLAGS_DISABLE, "receiveq2 waits for a frame");
    cr_expect_eq(device_event_flags(1) & 3u, RING_EVENT_FLAGS_ENABLE, "transmitq1 waits for the driver");
    cr_expect_eq(rig.dev.net.stats.rx_frames, 0);
    rig_down();

    rig_up(1);
    cr_assert(bring_up(false, true));
    post_tx(1);
    cr_expect_eq(run_idle(&run), PT_STEP_DONE);
    cr_expect_eq(run.rounds, 2);
    cr_expect_eq(run_used[1], 1);
    cr_expect_eq(run_used[0], 0);
    cr_expect_eq(vnet_fifo_frames(&rig.dev.net), 1, "the frame waits for a buffer");
    cr_expect_eq(device_event_flags(0) & 3u, RING_EVENT_FLAGS_ENABLE, "receiveq1 waits for the driver");
    rig_down();
}

/* Buffers on the transmit queue of a pair not in use: re-checked once, left armed, no
 * progress ("The device MUST NOT queue packets on receive queues greater than
 * virtqueue_pairs"; its transmit queue is not used either). */
Test(mq, run_idle_queue_of_pair_not_in_use_is_no_progress)
{
    rig_up(2);
    cr_assert(bring_up(true, true));
    post_tx(3);
    struct pt_idle run;
    cr_expect_eq(run_idle(&run), PT_STEP_IDLE);
    cr_expect_eq(run.rounds, 1);
    cr_expect_eq(run_used[3], 0);
    cr_expect_eq(device_event_flags(3) & 3u, RING_EVENT_FLAGS_ENABLE);
    cr_expect_eq(rig.dev.net.stats.tx_frames, 0);
    rig_down();
}

/* A hostile ring: transmitq2's descriptor has length 0 ("Element Address and Length";
 * the model's policy: an empty element is a driver error). transmitq1 goes first and
 * sends; transmitq2 puts the device in NEEDS_RESET with the reason named and the queue;
 * the loop stops there, so neither transmitq3 nor any receive queue is visited; a later
 * call does nothing. */
Test(mq, run_idle_hostile_ring_stops_in_needs_reset)
{
    rig_up(3);
    cr_assert(bring_up(true, true));
    cr_expect_eq(pairs_set(3), VIRTIO_NET_OK);
    post_tx(1);
    post(3, buffers(3) + 0x10000u, 0, 0);
    post_tx(5);
    post_rx(0);
    struct pt_idle run;
    cr_expect_eq(run_idle(&run), PT_STEP_FAILED);
    cr_expect_eq(rig.dev.tp.error, VS_REASON_DESC_ZERO_LENGTH);
    cr_expect_eq(rig.dev.tp.error_queue, 3);
    cr_expect(rig.dev.tp.vpci.status & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
    cr_expect_eq(run.rounds, 1);
    cr_expect_eq(run_used[1], 1, "transmitq1 went first");
    cr_expect_eq(run_used[5], 0, "transmitq3 not visited");
    cr_expect_eq(run_used[0], 0, "receiveq1 not visited");
    cr_expect_eq(rig.dev.net.stats.tx_frames, 1);

    cr_expect_eq(run_idle(&run), PT_STEP_FAILED);
    cr_expect_eq(run.rounds, 0);
    cr_expect_eq(run.done, 0);
    rig_down();
}

/* A driver that keeps its transmit queue full (it makes a buffer available each time
 * the device writes a used one, as a guest on another CPU would) cannot hold the loop:
 * it stops after rounds_max rounds of steps_max buffers and says work may be left. */
static struct {
    struct vs_guest_ops inner;
    uint16_t q;
    uint64_t reposted;
} refill;

static enum vs_dma_status refill_read(void *ctx, uint64_t addr, void *dst, uint32_t len,
                                      enum vs_dma_kind kind)
{
    (void)ctx;
    return refill.inner.read(refill.inner.ctx, addr, dst, len, kind);
}

static enum vs_dma_status refill_write(void *ctx, uint64_t addr, const void *src, uint32_t len,
                                       enum vs_dma_kind kind)
{
    (void)ctx;
    const enum vs_dma_status s = refill.inner.write(refill.inner.ctx, addr, src, len, kind);
    if (s == VS_DMA_OK && kind == VS_DMA_USED_WRITE &&
        addr >= vdev_rig_desc(&rig, refill.q) && addr < vdev_rig_driver_area(&rig, refill.q)) {
        post_tx(refill.q);
        refill.reposted++;
    }
    return s;
}

Test(mq, run_idle_bound_holds_against_a_driver_that_keeps_up)
{
    struct vdev_params p = vdev_rig_default_params();
    p.queue_pairs = 1;
    p.backend = VDEV_BACKEND_SINK;
    rig_up_params(&p);
    cr_assert(bring_up(false, true));
    for (unsigned i = 0; i < 4; i++)
        post_tx(1);
    memset(&refill, 0, sizeof refill);
    refill.inner = rig.ops;
    refill.q = 1;
    const struct vs_guest_ops ops = {refill_read, refill_write, NULL};
    struct pt_idle run;
    cr_expect_eq(run_idle_with(&ops, 3, 5, &run), PT_STEP_DONE);
    cr_expect(run.spent, "stopped by the bound");
    cr_expect_eq(run.rounds, 3);
    cr_expect_eq(run.done, 15, "3 rounds of 5 buffers");
    cr_expect_eq(run_used[1], 15);
    cr_expect_eq(refill.reposted, 15);
    cr_expect_eq(rig.dev.net.stats.tx_frames, 15);
    /* The bound is the caller's: the next call goes on from there. */
    cr_expect_eq(run_idle_with(&ops, 1, 7, &run), PT_STEP_DONE);
    cr_expect_eq(run.done, 7);
    cr_expect(run.spent);
    cr_expect_eq(rig.dev.tp.error, VS_REASON_NONE);
    rig_down();
}
