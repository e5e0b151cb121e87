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
 *  - "Device Reset" (one pair again).
 */
#include <criterion/criterion.h>
#include <stddef.h>
#include <string.h>

#include "common/vdev_rig.h"

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

static void rig_up(uint16_t pairs)
{
    struct vdev_params p = vdev_rig_default_params();
    p.queue_pairs = pairs;
    cr_assert(vdev_rig_init(&rig, &p, GUEST_BASE,
                            (uint64_t)vnet_queues(pairs) * VDEV_RIG_QUEUE_WINDOW + 0x100000u));
    pt_rig_map_bars(&rig.dev.tp);
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
 * control queue only with CTRL_VQ; rings cleared). */
static bool bring_up_with(const vs_features *f)
{
    const uint16_t nq = rig.dev.net.num_queues;
    memset(fake_guest_ptr(&rig.g, GUEST_BASE, nq * VDEV_RIG_QUEUE_WINDOW), 0,
           nq * VDEV_RIG_QUEUE_WINDOW);
    for (unsigned q = 0; q < nq; q++) {
        side[q].pos = 0;
        side[q].wrap = true;
    }
    const bool ctrl_vq = vs_feature_has(f, VIRTIO_NET_F_CTRL_VQ_BIT);
    return vdev_rig_bring_up(&rig, f, ctrl_vq ? nq : nq - 1u, RING_SIZE);
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

/* One control command (rlen readable bytes, then one writable ack byte). Returns the
 * ack, or 0xfe when the control step did not complete. */
static uint8_t ctrl(const uint8_t *in, uint32_t rlen)
{
    const uint16_t cq = vnet_ctrl_queue(&rig.dev.net);
    const uint64_t rbuf = buffers(rig.dev.net.pairs_max) + 0x100u * (commands++ % 16u);
    const uint64_t ack = rbuf + 0x80;
    memcpy(fake_guest_ptr(&rig.g, rbuf, rlen), in, rlen);
    *fake_guest_ptr(&rig.g, ack, 1) = 0xff;
    post(cq, rbuf, rlen, VIRTQ_DESC_F_NEXT_MASK);
    post(cq, ack, 1, VIRTQ_DESC_F_WRITE_MASK);
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
    /* RSS_CONFIG and HASH_CONFIG: not offered. */
    const uint8_t rss[4] = {VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_RSS_CONFIG, 0, 0};
    cr_expect_eq(ctrl(rss, sizeof rss), VIRTIO_NET_ERR);
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

/* A 60-byte frame on transmit queue q (loopback), a receive buffer on receive queue q. */
static void post_tx(uint16_t q)
{
    const uint64_t buf = buffers(rig.dev.net.pairs_max) + 0x10000u + 0x100u * q;
    memset(fake_guest_ptr(&rig.g, buf, HDR + 60u), 0x5a, HDR + 60u);
    memset(fake_guest_ptr(&rig.g, buf, HDR), 0, HDR);
    post(q, buf, HDR + 60u, 0);
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
 * leaves the FIFO's frame; both go once VQ_PAIRS_SET enables pair 2. */
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
    cr_expect_eq(step(2), PT_STEP_DONE, "receiveq2 in use");
    cr_expect_eq(rig.dev.net.stats.rx_frames, 1);
    cr_expect_eq(step(3), PT_STEP_DONE, "transmitq2 in use");
    cr_expect_eq(rig.dev.net.stats.tx_frames, 2);
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
