/* test_tx_not_in_use.c -- the driver-conformance rule TX_QUEUE_NOT_IN_USE, against
 * "Device Types / Network Device / Device Operation / Control Virtqueue / Automatic
 * receive steering in multiqueue mode", driver normative:
 *   "The driver MUST queue packets only on any transmitq1 before the
 *    VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET command."
 *   "The driver MUST NOT queue packets on transmit queues greater than virtqueue_pairs
 *    once it has placed the VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET command in the available
 *    ring."
 * The device reports buffers it can prove were queued past that point, when the driver
 * notifies the queue, and never a driver that follows the rules: buffers queued before
 * the reducing command (consumed or left waiting), buffers queued after a VQ_PAIRS_SET
 * that allows them but that the device has not processed yet. Each case runs over both
 * ring formats, with and without VIRTIO_F_NOTIFICATION_DATA (which spares the read of
 * the transmit ring), on rings of 4 entries so that positions wrap; the split ring's
 * 16-bit index wraps too. The buffers wait either way ("the device tolerates it").
 */
#include <criterion/criterion.h>
#include <string.h>

#include "common/vdev_rig.h"

#define GUEST_BASE 0x100000ull
#define PAIRS      4u
#define RING       4u
#define HDR        ((uint32_t)sizeof(struct virtio_net_hdr))

static struct vdev_rig rig;
static bool packed, notif_data;

/* The driver's side of each queue: packed, the next slot and its wrap counter; split,
 * the available index (descriptor slot = index mod size, chains two slots apart). */
static struct {
    uint16_t pos;
    bool wrap;
    uint16_t idx;
} side[VNET_QUEUES_MAX];

static uint64_t buffers(void)
{
    return GUEST_BASE + (uint64_t)vnet_queues(PAIRS) * VDEV_RIG_QUEUE_WINDOW;
}

static uint16_t ctrl_q(void)
{
    return vnet_ctrl_queue(&rig.dev.net);
}

static uint16_t txq(uint16_t pair) /* transmitq(pair), 1-based */
{
    return (uint16_t)(2u * (pair - 1u) + 1u);
}

static uint64_t violations(void)
{
    return rig.dev.tp.vpci.conf.per_rule[VS_RULE_TX_QUEUE_NOT_IN_USE];
}

/* 4 pairs, every queue enabled (RING entries), sink backend (transmit never waits);
 * with rss, VIRTIO_NET_F_RSS offered and negotiated too. */
static void up_with(bool pk, bool nd, bool rss)
{
    packed = pk;
    notif_data = nd;
    struct vdev_params p = vdev_rig_default_params();
    p.queue_pairs = PAIRS;
    p.backend = VDEV_BACKEND_SINK;
    p.rss = rss;
    cr_assert(vdev_rig_init(&rig, &p, GUEST_BASE,
                            (uint64_t)vnet_queues(PAIRS) * VDEV_RIG_QUEUE_WINDOW + 0x100000u));
    memset(side, 0, sizeof side);
    for (unsigned q = 0; q < VNET_QUEUES_MAX; q++)
        side[q].wrap = true;
    vs_features f;
    memset(&f, 0, sizeof f);
    vs_feature_set(&f, VIRTIO_F_VERSION_1_BIT);
    vs_feature_set(&f, VIRTIO_NET_F_MAC_BIT);
    vs_feature_set(&f, VIRTIO_NET_F_CTRL_VQ_BIT);
    vs_feature_set(&f, VIRTIO_NET_F_MQ_BIT);
    if (pk)
        vs_feature_set(&f, VIRTIO_F_RING_PACKED_BIT);
    if (nd)
        vs_feature_set(&f, VIRTIO_F_NOTIFICATION_DATA_BIT);
    if (rss)
        vs_feature_set(&f, VIRTIO_NET_F_RSS_BIT);
    cr_assert(vdev_rig_bring_up(&rig, &f, vnet_queues(PAIRS), RING));
    cr_assert_eq(rig.dev.net.pairs, 1);
}

static void up(bool pk, bool nd)
{
    up_with(pk, nd, false);
}

static void down(void)
{
    cr_expect_eq(rig.dev.tp.error, VS_REASON_NONE, "never a reset: %s",
                 vs_reason_name(rig.dev.tp.error));
    vdev_rig_fini(&rig);
}

/* Make one buffer of n elements available on q (the last `writable` of them
 * device-writable), published at once. */
static void post_chain(uint16_t q, const uint64_t *addr, const uint32_t *len, unsigned n,
                       unsigned writable)
{
    const uint64_t desc = vdev_rig_desc(&rig, q);
    if (packed) {
        const uint16_t id = side[q].pos;
        uint16_t head_flags = 0;
        uint64_t head_at = 0;
        for (unsigned i = 0; i < n; i++) {
            const uint64_t at = desc + 16u * side[q].pos;
            uint16_t flags = (uint16_t)((i + 1u < n ? VIRTQ_DESC_F_NEXT_MASK : 0u) |
                                        (i + writable >= n ? VIRTQ_DESC_F_WRITE_MASK : 0u));
            flags |= side[q].wrap ? VIRTQ_DESC_F_AVAIL_MASK : VIRTQ_DESC_F_USED_MASK;
            fake_guest_put64(&rig.g, at, addr[i]);
            fake_guest_put32(&rig.g, at + 8, len[i]);
            fake_guest_put16(&rig.g, at + PVIRTQ_DESC_OFF_ID, id);
            if (i == 0) { /* the head's flags last ("Driver and Device Ring Wrap Counters") */
                head_flags = flags;
                head_at = at;
            } else {
                fake_guest_put16(&rig.g, at + PVIRTQ_DESC_OFF_FLAGS, flags);
            }
            if (++side[q].pos == RING) {
                side[q].pos = 0;
                side[q].wrap = !side[q].wrap;
            }
        }
        fake_guest_put16(&rig.g, head_at + PVIRTQ_DESC_OFF_FLAGS, head_flags);
        return;
    }
    const uint16_t head = (uint16_t)((side[q].idx * n) % RING);
    for (unsigned i = 0; i < n; i++) {
        const uint64_t at = desc + 16u * ((head + i) % RING);
        fake_guest_put64(&rig.g, at, addr[i]);
        fake_guest_put32(&rig.g, at + 8, len[i]);
        fake_guest_put16(&rig.g, at + 12,
                         (uint16_t)((i + 1u < n ? VIRTQ_DESC_F_NEXT_MASK : 0u) |
                                    (i + writable >= n ? VIRTQ_DESC_F_WRITE_MASK : 0u)));
        fake_guest_put16(&rig.g, at + 14, (uint16_t)((head + i + 1u) % RING));
    }
    const uint64_t avail = vdev_rig_driver_area(&rig, q);
    fake_guest_put16(&rig.g, avail + SVIRTQ_AVAIL_OFF_RING + 2u * (side[q].idx % RING), head);
    side[q].idx++;
    fake_guest_put16(&rig.g, avail + SVIRTQ_AVAIL_OFF_IDX, side[q].idx);
}

/* One 60-byte frame after a zeroed header on transmit queue q. */
static void post_tx(uint16_t q)
{
    const uint64_t buf = buffers() + 0x100u * q;
    memset(fake_guest_ptr(&rig.g, buf, HDR + 60u), 0x5a, HDR + 60u);
    memset(fake_guest_ptr(&rig.g, buf, HDR), 0, HDR);
    const uint64_t addr[1] = {buf};
    const uint32_t len[1] = {HDR + 60u};
    post_chain(q, addr, len, 1, 0);
}

/* "Driver Notifications": the queue's index, and with NOTIFICATION_DATA where the
 * driver's next buffer goes (split: its avail idx; packed: slot and wrap counter). */
static void notify(uint16_t q)
{
    uint16_t k;
    const uint64_t at = pt_rig_notify_addr(&rig.dev.tp, q);
    if (!notif_data) {
        pt_mmio_write(&rig.dev.tp, at, 2, q, &k);
        return;
    }
    const uint32_t off = packed ? side[q].pos : side[q].idx & VIRTIO_NOTIFY_DATA_OFF_MASK;
    const bool wrap = packed ? side[q].wrap : (side[q].idx >> 15) & 1u;
    pt_mmio_write(&rig.dev.tp, at, 4,
                  q | off << VIRTIO_NOTIFY_DATA_OFF_SHIFT | (uint32_t)wrap << VIRTIO_NOTIFY_DATA_WRAP_BIT,
                  &k);
}

static enum pt_step step(uint16_t q)
{
    struct pt_work w = {0};
    return pt_step_one(&rig.dev.tp, q, &rig.ops, &w);
}

/* Place a control command of len bytes (class, command, data; at most 0xf0) on the
 * control queue, without stepping it; returns the ack's address. */
static uint64_t place_cmd(const uint8_t *in, uint32_t len)
{
    static unsigned n;
    const uint64_t cmd = buffers() + 0x8000u + 0x100u * (n++ % 64u);
    memcpy(fake_guest_ptr(&rig.g, cmd, len), in, len);
    *fake_guest_ptr(&rig.g, cmd + 0xf0, 1) = 0xff;
    const uint64_t addr[2] = {cmd, cmd + 0xf0};
    const uint32_t lens[2] = {len, 1};
    post_chain(ctrl_q(), addr, lens, 2, 1);
    return cmd + 0xf0;
}

static uint64_t place_pairs_set(uint16_t pairs)
{
    uint8_t b[4] = {VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET};
    vs_put_le16(b + 2, pairs);
    return place_cmd(b, sizeof b);
}

/* A control command placed and processed: the ack. */
static uint8_t run_cmd(uint64_t ack)
{
    cr_assert_eq(step(ctrl_q()), PT_STEP_DONE);
    return *fake_guest_ptr(&rig.g, ack, 1);
}

static uint8_t pairs_set(uint16_t pairs)
{
    return run_cmd(place_pairs_set(pairs));
}

/* VIRTIO_NET_CTRL_MQ_RSS_CONFIG ("Setting RSS parameters"): no hash types, a one-entry
 * table naming receiveq1 (unclassified_queue too), max_tx_vq, a 40-byte key. */
static uint8_t rss_config(uint16_t max_tx_vq)
{
    uint8_t b[2 + 4 + 2 + 2 + 2 + 2 + 1 + 40] = {VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_RSS_CONFIG};
    vs_put_le16(b + 12, max_tx_vq); /* after hash_types, the mask (0), unclassified (0), the entry (0) */
    b[14] = 40;
    memset(b + 15, 0x6d, 40);
    return run_cmd(place_cmd(b, sizeof b));
}

/* Queue and consume n frames on transmit queue q (its pair in use). */
static void pass_frames(uint16_t q, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        post_tx(q);
        notify(q);
        cr_assert_eq(step(q), PT_STEP_DONE);
        cr_assert_eq(step(q), PT_STEP_IDLE);
    }
}

static void expect_record(uint16_t q, uint64_t seen, uint64_t expected)
{
    const struct vs_conformance *c = &rig.dev.tp.vpci.conf;
    cr_assert_gt(c->logged, 0);
    const struct vs_violation *v = &c->log[c->logged - 1u];
    cr_expect_eq(v->rule, VS_RULE_TX_QUEUE_NOT_IN_USE);
    cr_expect_eq(v->queue, q);
    cr_expect_eq(v->seen, seen, "buffers past the allowed end: %llu", (unsigned long long)v->seen);
    cr_expect_eq(v->expected, expected, "pairs in use: %llu", (unsigned long long)v->expected);
}

/* "MUST queue packets only on any transmitq1 before the VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET
 * command": a frame on transmitq2 after DRIVER_OK, notified, is reported once; the
 * frame waits, and leaves when VQ_PAIRS_SET puts pair 2 in use. transmitq1 is never
 * reported. */
static void before_any_pairs_set(bool pk, bool nd)
{
    up(pk, nd);
    pass_frames(txq(1), 2);
    post_tx(txq(2));
    notify(txq(2));
    cr_expect_eq(step(txq(2)), PT_STEP_IDLE, "a pair not in use takes nothing");
    cr_expect_eq(violations(), 1);
    expect_record(txq(2), 1, 1);
    /* Looked at once per notification: more steps, or a notification with nothing new,
     * add nothing. */
    cr_expect_eq(step(txq(2)), PT_STEP_IDLE);
    notify(txq(2));
    cr_expect_eq(step(txq(2)), PT_STEP_IDLE);
    cr_expect_eq(violations(), 1, "each buffer counts once");
    post_tx(txq(2));
    post_tx(txq(2));
    notify(txq(2));
    cr_expect_eq(step(txq(2)), PT_STEP_IDLE);
    cr_expect_eq(violations(), 2);
    expect_record(txq(2), 2, 1);
    /* The device tolerates it: the frames leave once the pair is in use. */
    cr_expect_eq(pairs_set(2), VIRTIO_NET_OK);
    const uint64_t before = rig.dev.net.stats.tx_frames;
    while (step(txq(2)) == PT_STEP_DONE)
        ;
    cr_expect_eq(rig.dev.net.stats.tx_frames - before, 3);
    cr_expect_eq(rig.dev.tp.vpci.conf.total, 2, "nothing else");
    down();
}

Test(tx_not_in_use, before_any_pairs_set_packed) { before_any_pairs_set(true, false); }
Test(tx_not_in_use, before_any_pairs_set_split) { before_any_pairs_set(false, false); }
Test(tx_not_in_use, before_any_pairs_set_packed_notification_data) { before_any_pairs_set(true, true); }
Test(tx_not_in_use, before_any_pairs_set_split_notification_data) { before_any_pairs_set(false, true); }

/* "MUST NOT queue packets on transmit queues greater than virtqueue_pairs once it has
 * placed the VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET command in the available ring": 4 pairs in
 * use, transmitq3 carries frames, VQ_PAIRS_SET(2); a frame queued on transmitq3 after
 * it is reported; one on transmitq4 too. */
static void after_reducing(bool pk, bool nd)
{
    up(pk, nd);
    cr_expect_eq(pairs_set(4), VIRTIO_NET_OK);
    pass_frames(txq(3), 3);
    cr_expect_eq(pairs_set(2), VIRTIO_NET_OK);
    cr_expect_eq(violations(), 0);
    post_tx(txq(3));
    notify(txq(3));
    cr_expect_eq(step(txq(3)), PT_STEP_IDLE);
    cr_expect_eq(violations(), 1);
    expect_record(txq(3), 1, 2);
    post_tx(txq(4));
    notify(txq(4));
    cr_expect_eq(step(txq(4)), PT_STEP_IDLE);
    cr_expect_eq(violations(), 2);
    expect_record(txq(4), 1, 2);
    down();
}

Test(tx_not_in_use, after_reducing_packed) { after_reducing(true, false); }
Test(tx_not_in_use, after_reducing_split) { after_reducing(false, false); }
Test(tx_not_in_use, after_reducing_packed_notification_data) { after_reducing(true, true); }
Test(tx_not_in_use, after_reducing_split_notification_data) { after_reducing(false, true); }

/* No false positive: buffers the driver queued on transmitq3 while pair 3 was in use
 * (one consumed, two the device had not reached) are not reported when VQ_PAIRS_SET(2)
 * takes the pair out of use, nor when the driver notifies them again afterwards; they
 * wait, and leave when VQ_PAIRS_SET(4) brings the pair back. */
static void queued_before_reducing(bool pk, bool nd)
{
    up(pk, nd);
    cr_expect_eq(pairs_set(4), VIRTIO_NET_OK);
    post_tx(txq(3));
    notify(txq(3));
    cr_expect_eq(step(txq(3)), PT_STEP_DONE);
    post_tx(txq(3));
    post_tx(txq(3));
    notify(txq(3)); /* not yet processed when the command comes */
    cr_expect_eq(pairs_set(2), VIRTIO_NET_OK);
    cr_expect_eq(step(txq(3)), PT_STEP_IDLE, "left waiting");
    notify(txq(3)); /* a late notification of the same buffers */
    cr_expect_eq(step(txq(3)), PT_STEP_IDLE);
    cr_expect_eq(violations(), 0);
    cr_expect_eq(pairs_set(4), VIRTIO_NET_OK);
    cr_expect_eq(step(txq(3)), PT_STEP_DONE);
    cr_expect_eq(step(txq(3)), PT_STEP_DONE);
    cr_expect_eq(step(txq(3)), PT_STEP_IDLE);
    cr_expect_eq(rig.dev.net.stats.tx_frames, 3);
    cr_expect_eq(rig.dev.tp.vpci.conf.total, 0);
    down();
}

Test(tx_not_in_use, queued_before_reducing_packed) { queued_before_reducing(true, false); }
Test(tx_not_in_use, queued_before_reducing_split) { queued_before_reducing(false, false); }
Test(tx_not_in_use, queued_before_reducing_notification_data) { queued_before_reducing(true, true); }

/* No false positive: the driver placed VQ_PAIRS_SET(4) and then queued on transmitq3
 * (allowed once the command is placed) before the device processed the command. The
 * device cannot tell yet, so it says nothing; the command then puts the pair in use. */
static void queued_after_placing_an_increase(bool pk)
{
    up(pk, false);
    cr_expect_eq(pairs_set(2), VIRTIO_NET_OK);
    const uint64_t ack = place_pairs_set(4);
    post_tx(txq(3));
    notify(txq(3));
    cr_expect_eq(step(txq(3)), PT_STEP_IDLE);
    cr_expect_eq(violations(), 0, "a command placed before it is not processed yet");
    cr_expect_eq(step(ctrl_q()), PT_STEP_DONE);
    cr_expect_eq(*fake_guest_ptr(&rig.g, ack, 1), VIRTIO_NET_OK);
    cr_expect_eq(step(txq(3)), PT_STEP_DONE);
    cr_expect_eq(rig.dev.tp.vpci.conf.total, 0);
    down();
}

Test(tx_not_in_use, queued_after_placing_an_increase_packed) { queued_after_placing_an_increase(true); }
Test(tx_not_in_use, queued_after_placing_an_increase_split) { queued_after_placing_an_increase(false); }

/* Positions that wrap: packed, the reducing command comes with the device at slot 3 of
 * 4 and the two late frames take slots 3 and 0 (the wrap counter flips between them);
 * split, the available index runs past 65535 between the allowed end and the late
 * frames. */
Test(tx_not_in_use, wrap_packed)
{
    up(true, false);
    cr_expect_eq(pairs_set(4), VIRTIO_NET_OK);
    pass_frames(txq(3), 7); /* slot 3 of the second lap */
    cr_expect_eq(pairs_set(2), VIRTIO_NET_OK);
    post_tx(txq(3));
    post_tx(txq(3));
    cr_expect_eq(side[txq(3)].pos, 1);
    notify(txq(3));
    cr_expect_eq(step(txq(3)), PT_STEP_IDLE);
    cr_expect_eq(violations(), 1);
    expect_record(txq(3), 2, 2);
    down();
}

Test(tx_not_in_use, wrap_split)
{
    up(false, false);
    cr_expect_eq(pairs_set(4), VIRTIO_NET_OK);
    pass_frames(txq(3), 65535); /* avail idx 65535 */
    cr_expect_eq(pairs_set(2), VIRTIO_NET_OK);
    post_tx(txq(3));
    post_tx(txq(3));
    cr_expect_eq(side[txq(3)].idx, 1, "idx wrapped");
    notify(txq(3));
    cr_expect_eq(step(txq(3)), PT_STEP_IDLE);
    cr_expect_eq(violations(), 1);
    expect_record(txq(3), 2, 2);
    cr_expect_eq(pairs_set(4), VIRTIO_NET_OK);
    cr_expect_eq(step(txq(3)), PT_STEP_DONE);
    cr_expect_eq(step(txq(3)), PT_STEP_DONE);
    down();
}

/* What the look costs. A parked queue stepped without a notification reads nothing; a
 * notification costs a read of the control ring and, without NOTIFICATION_DATA, one of
 * the transmit ring (split: avail->idx; packed: the descriptors past the allowed end). */
static uint64_t look_reads(bool pk, bool nd)
{
    up(pk, nd);
    post_tx(txq(2));
    fake_guest_reset_counters(&rig.g);
    cr_expect_eq(step(txq(2)), PT_STEP_IDLE);
    uint64_t reads = 0;
    for (int k = 0; k < VS_DMA_KIND_COUNT; k++)
        reads += rig.g.reads[k] + rig.g.writes[k];
    cr_expect_eq(reads, 0, "no notification, no look");
    notify(txq(2));
    cr_expect_eq(step(txq(2)), PT_STEP_IDLE);
    cr_expect_eq(violations(), 1);
    for (int k = 0; k < VS_DMA_KIND_COUNT; k++)
        reads += rig.g.reads[k];
    down();
    return reads;
}

Test(tx_not_in_use, look_costs)
{
    cr_expect_eq(look_reads(false, false), 2);
    cr_expect_eq(look_reads(true, false), 2);
    cr_expect_eq(look_reads(false, true), 1, "the hint spares the transmit ring's read");
    cr_expect_eq(look_reads(true, true), 1, "the hint spares the transmit ring's read");
}

/* "Device Initialization" after a reset: one pair in use again ("MUST queue packets only
 * on any transmitq1 before the VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET command"), every watch
 * restarted from the new rings' start, whatever the old ones held. */
Test(tx_not_in_use, reset_restarts_the_watch)
{
    up(true, false);
    cr_expect_eq(pairs_set(4), VIRTIO_NET_OK);
    pass_frames(txq(3), 2);
    vs_features f;
    memset(&f, 0, sizeof f);
    vs_feature_set(&f, VIRTIO_F_VERSION_1_BIT);
    vs_feature_set(&f, VIRTIO_F_RING_PACKED_BIT);
    vs_feature_set(&f, VIRTIO_NET_F_CTRL_VQ_BIT);
    vs_feature_set(&f, VIRTIO_NET_F_MQ_BIT);
    memset(fake_guest_ptr(&rig.g, GUEST_BASE, vnet_queues(PAIRS) * VDEV_RIG_QUEUE_WINDOW), 0,
           vnet_queues(PAIRS) * VDEV_RIG_QUEUE_WINDOW);
    memset(side, 0, sizeof side);
    for (unsigned q = 0; q < VNET_QUEUES_MAX; q++)
        side[q].wrap = true;
    cr_assert(vdev_rig_bring_up(&rig, &f, vnet_queues(PAIRS), RING));
    cr_expect_eq(rig.dev.net.pairs, 1);
    post_tx(txq(3));
    notify(txq(3));
    cr_expect_eq(step(txq(3)), PT_STEP_IDLE);
    cr_expect_eq(violations(), 1, "pair 3 is out of use again after the reset");
    expect_record(txq(3), 1, 1);
    down();
}

/* Under RSS steering ("Receive-side scaling (RSS)") the spec only says max_tx_vq informs
 * the device which transmit queues the driver may use: no MUST, so nothing is watched.
 * A VQ_PAIRS_SET afterwards starts the watch from that command on: buffers queued under
 * RSS are not counted, later ones are. */
Test(tx_not_in_use, not_watched_under_rss)
{
    up_with(true, false, true);
    cr_expect_eq(rss_config(1), VIRTIO_NET_OK);
    cr_expect_eq(rig.dev.net.pairs, 1);
    post_tx(txq(3));
    notify(txq(3));
    cr_expect_eq(step(txq(3)), PT_STEP_IDLE);
    cr_expect_eq(violations(), 0, "max_tx_vq only informs");
    cr_expect_eq(pairs_set(2), VIRTIO_NET_OK);
    notify(txq(3));
    cr_expect_eq(step(txq(3)), PT_STEP_IDLE);
    cr_expect_eq(violations(), 0, "queued under RSS: before the command");
    post_tx(txq(3));
    notify(txq(3));
    cr_expect_eq(step(txq(3)), PT_STEP_IDLE);
    cr_expect_eq(violations(), 1);
    expect_record(txq(3), 1, 2);
    cr_expect_eq(rig.dev.tp.vpci.conf.total, 1);
    down();
}

/* Hostile guest memory under the look. The look is the conformance checker's, not a
 * fetch: a read of it that fails (the driver's rings no longer backed) records nothing
 * and breaks nothing -- no violation, no DEVICE_NEEDS_RESET -- and the same look with
 * memory back reports the buffer. */
static void look_read_fails(bool pk)
{
    up(pk, false);
    post_tx(txq(2));
    rig.g.fail_kinds = 1u << VS_DMA_DESC_READ | 1u << VS_DMA_EVENT_READ | 1u << VS_DMA_FLUSH_READ;
    notify(txq(2));
    cr_expect_eq(step(txq(2)), PT_STEP_IDLE);
    cr_expect_gt(rig.g.faults, 0, "the look tried to read");
    cr_expect_eq(violations(), 0, "a failed look proves nothing");
    rig.g.fail_kinds = 0;
    notify(txq(2));
    cr_expect_eq(step(txq(2)), PT_STEP_IDLE);
    cr_expect_eq(violations(), 1);
    expect_record(txq(2), 1, 1);
    down(); /* never a reset */
}

Test(tx_not_in_use, look_read_fails_packed) { look_read_fails(true); }
Test(tx_not_in_use, look_read_fails_split) { look_read_fails(false); }

/* A packed ring the driver filled with garbage that is all available (every slot's flags
 * say "available in this lap", "Driver and Device Ring Wrap Counters"; no ids, lengths or
 * addresses that mean anything): the look reads flags only, counts the whole ring once and
 * stops at the lap's end. */
Test(tx_not_in_use, packed_look_of_a_garbage_ring_counts_one_lap)
{
    up(true, false);
    const uint64_t desc = vdev_rig_desc(&rig, txq(2));
    memset(fake_guest_ptr(&rig.g, desc, 16u * RING), 0xa5, 16u * RING);
    for (unsigned s = 0; s < RING; s++)
        fake_guest_put16(&rig.g, desc + 16u * s + PVIRTQ_DESC_OFF_FLAGS, VIRTQ_DESC_F_AVAIL_MASK);
    notify(txq(2));
    cr_expect_eq(step(txq(2)), PT_STEP_IDLE);
    cr_expect_eq(violations(), 1);
    expect_record(txq(2), RING, 1);
    down();
}
