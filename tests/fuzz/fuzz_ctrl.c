/* fuzz_ctrl.c -- control virtqueue commands ("Network Device / Device Operation / Control
 * Virtqueue"), with the notification-coalescing state they drive.
 *
 * The harness negotiates CTRL_VQ with or without NOTF_COAL / VQ_NOTF_COAL (input bits),
 * on a function with one queue pair or, with input bit 3, MQ_PAIRS pairs and
 * VIRTIO_NET_F_MQ ("Automatic receive steering in multiqueue mode"), with input bit 4
 * VIRTIO_NET_F_RSS offered and negotiated, with bit 5 offered only ("Receive-side
 * scaling (RSS)": RSS_CONFIG up to 765 bytes over three descriptors), brings up every
 * queue (packed ring), then plays the input as commands:
 * each one a chain whose device-readable part holds the input's class, command and data
 * (split over one to three descriptors) and whose device-writable part has the input's
 * sizes (possibly none). Between commands it moves frames through TX and RX, publishes,
 * and drives the coalescing timers the platform would (expiry of the current or a stale
 * window, re-checks after parameter changes).
 *
 * Checked beyond fuzz_common.h: a command the device completes is answered with
 * VIRTIO_NET_OK or VIRTIO_NET_ERR in its last writable byte, and its used length covers
 * that byte; a command with no writable byte ends in NEEDS_RESET (CTRL_NO_ACK_BYTE); the
 * pairs in use stay within 1 .. max_virtqueue_pairs; an RSS configuration in force names
 * only queues of pairs in use; no pair's FIFO holds more than its places.
 *
 * Input: features byte, then commands {nread (1..3), nwrite (0..3), read lengths (u8
 * each), write lengths (u8 each), read bytes...} and an action byte after each, until the
 * input ends or 64 commands.
 */
#include "fuzz_common.h"

#define GUEST_BASE   0x100000ull
#define BUFFER_BYTES 0x10000u
#define MQ_PAIRS     4u
#define GUEST_BYTES  ((2u * MQ_PAIRS + 1u) * VDEV_RIG_QUEUE_WINDOW + BUFFER_BYTES)
#define RING_SIZE    16u
#define COMMANDS_MAX 64u
#define FRAME_BYTES  (12u + 60u)

struct ring_side {
    uint16_t pos;
    bool wrap;
};

/* Make one descriptor available at the driver's position (packed: AVAIL equal to the wrap
 * counter, USED the opposite); the head's flags are written last by the caller's order. */
static void put_desc(struct vdev_rig *r, unsigned q, struct ring_side *s, uint64_t addr,
                     uint32_t len, uint16_t id, uint16_t flags)
{
    const uint64_t at = vdev_rig_desc(r, q) + 16u * s->pos;
    fake_guest_put64(&r->g, at, addr);
    fake_guest_put32(&r->g, at + 8, len);
    fake_guest_put16(&r->g, at + PVIRTQ_DESC_OFF_ID, id);
    flags |= s->wrap ? VIRTQ_DESC_F_AVAIL_MASK : VIRTQ_DESC_F_USED_MASK;
    fake_guest_put16(&r->g, at + PVIRTQ_DESC_OFF_FLAGS, flags);
    if (++s->pos == RING_SIZE) {
        s->pos = 0;
        s->wrap = !s->wrap;
    }
}

/* Buffers above the queue windows of every queue of the function. */
static uint64_t buffers(const struct vdev_rig *r)
{
    return r->g.base + (uint64_t)r->dev.net.num_queues * VDEV_RIG_QUEUE_WINDOW;
}

/* One frame through TX (and back through RX: one receive buffer per frame). */
static void frame(struct vdev_rig *r, struct ring_side *tx, struct ring_side *rx)
{
    const uint64_t buf = buffers(r);
    put_desc(r, VNET_QUEUE_RX, rx, buf + 0x8000, 1526, rx->pos, VIRTQ_DESC_F_WRITE_MASK);
    put_desc(r, VNET_QUEUE_TX, tx, buf + 0x4000, FRAME_BYTES, tx->pos, 0);
    struct pt_work w;
    memset(&w, 0, sizeof w);
    fuzz_check_step(&r->dev, vnet_tx_step(&r->dev.net, &r->ops, &w));
    memset(&w, 0, sizeof w);
    fuzz_check_step(&r->dev, vnet_rx_step(&r->dev.net, &r->ops, &w));
}

/* The platform's side of coalescing: publish, then end the window or re-check. */
static void timers(struct vdev_rig *r, uint8_t action)
{
    for (uint16_t q = VNET_QUEUE_RX; q <= VNET_QUEUE_TX; q++) {
        fuzz_check_step(&r->dev, pt_complete(&r->dev.tp, q, &r->ops));
        uint32_t usecs, window;
        if ((action & 1u) && vnet_coal_timer(&r->dev.net, q, &usecs, &window))
            fuzz_check_step(&r->dev, vnet_coal_expire(&r->dev.net, q, window - (action >> 7), &r->ops));
        if ((action & 2u) && vnet_coal_recheck_needed(&r->dev.net, q))
            fuzz_check_step(&r->dev, vnet_coal_recheck(&r->dev.net, q, &r->ops));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    static struct vdev_rig r;
    static uint8_t guest[GUEST_BYTES];
    memset(guest, 0, sizeof guest);
    struct vdev_params p = vdev_rig_default_params();
    p.backend = VDEV_BACKEND_LOOPBACK;
    const uint8_t fb = fuzz_u8(&in);
    if (fb & 8u)
        p.queue_pairs = MQ_PAIRS;
    p.rss = (fb & 0x30u) != 0;
    if (!vdev_rig_init_with(&r, &p, guest, GUEST_BASE, GUEST_BYTES))
        return 0;

    vs_features f;
    memset(&f, 0, sizeof f);
    vs_feature_set(&f, VIRTIO_F_VERSION_1_BIT);
    vs_feature_set(&f, VIRTIO_F_RING_PACKED_BIT);
    vs_feature_set(&f, VIRTIO_NET_F_CTRL_VQ_BIT);
    if (fb & 1u)
        vs_feature_set(&f, VIRTIO_NET_F_NOTF_COAL_BIT);
    if (fb & 2u)
        vs_feature_set(&f, VIRTIO_NET_F_VQ_NOTF_COAL_BIT);
    if (fb & 4u)
        vs_feature_set(&f, VIRTIO_F_EVENT_IDX_BIT);
    if (fb & 8u)
        vs_feature_set(&f, VIRTIO_NET_F_MQ_BIT);
    if (fb & 0x10u)
        vs_feature_set(&f, VIRTIO_NET_F_RSS_BIT);
    const uint16_t cq = vnet_ctrl_queue(&r.dev.net);
    if (!vdev_rig_bring_up(&r, &f, r.dev.net.num_queues, RING_SIZE)) {
        fuzz_check_error_state(&r.dev);
        vdev_rig_fini(&r);
        return 0;
    }

    struct ring_side ctrl = {0, true}, tx = {0, true}, rx = {0, true};
    const uint64_t cmd_area = buffers(&r);
    for (unsigned c = 0; c < COMMANDS_MAX && in.left > 0 && r.dev.tp.error == VS_REASON_NONE; c++) {
        const unsigned nread = 1u + fuzz_u8(&in) % 3u, nwrite = fuzz_u8(&in) % 4u;
        uint8_t rlen[3], wlen[3];
        for (unsigned i = 0; i < nread; i++)
            rlen[i] = fuzz_u8(&in);
        for (unsigned i = 0; i < nwrite; i++)
            wlen[i] = (uint8_t)(1u + fuzz_u8(&in) % 16u);
        /* The readable bytes: the input's, one segment after another in the command area. */
        uint64_t at = cmd_area;
        const uint16_t id = ctrl.pos;
        struct ring_side start = ctrl;
        uint64_t first_addr = 0;
        uint32_t first_len = 0;
        bool first = true;
        uint64_t last_w_addr = 0;
        uint32_t last_w_len = 0, wtotal = 0;
        for (unsigned i = 0; i < nread + nwrite; i++) {
            const bool writable = i >= nread;
            const uint32_t len = writable ? wlen[i - nread] : (rlen[i] ? rlen[i] : 1u);
            if (!writable)
                for (uint32_t b = 0; b < len; b++)
                    fake_guest_ptr(&r.g, at + b, 1)[0] = fuzz_u8(&in);
            else
                memset(fake_guest_ptr(&r.g, at, len), 0xEE, len); /* not an ack value */
            const bool more = i + 1 < nread + nwrite;
            const uint16_t flags = (uint16_t)((more ? VIRTQ_DESC_F_NEXT_MASK : 0) |
                                              (writable ? VIRTQ_DESC_F_WRITE_MASK : 0));
            if (first) {
                /* The head goes last ("the driver MUST make the head available last"):
                 * remember it and write it after the rest of the chain. */
                first_addr = at;
                first_len = len;
                ctrl.pos = (uint16_t)((ctrl.pos + 1u) % RING_SIZE);
                if (ctrl.pos == 0)
                    ctrl.wrap = !ctrl.wrap;
                first = false;
                (void)flags;
            } else {
                put_desc(&r, cq, &ctrl, at, len, id, flags);
            }
            if (writable) {
                last_w_addr = at;
                last_w_len = len;
                wtotal += len;
            }
            at += (len + 15u) & ~15u;
        }
        const uint16_t head_flags = (uint16_t)((nread + nwrite > 1 ? VIRTQ_DESC_F_NEXT_MASK : 0));
        put_desc(&r, cq, &start, first_addr, first_len, id, head_flags);

        struct pt_work w;
        memset(&w, 0, sizeof w);
        const uint64_t done_before = r.dev.net.stats.ctrl_commands;
        const enum pt_step st = vnet_ctrl_step(&r.dev.net, &r.ops, &w);
        fuzz_check_step(&r.dev, st);
        if (nwrite == 0)
            FUZZ_CHECK(st == PT_STEP_FAILED && r.dev.tp.error == VS_REASON_CTRL_NO_ACK_BYTE,
                       "a command without an ack byte did not end in CTRL_NO_ACK_BYTE");
        if (st == PT_STEP_DONE && r.dev.net.stats.ctrl_commands != done_before) {
            const uint8_t ack = fake_guest_ptr(&r.g, last_w_addr + last_w_len - 1u, 1)[0];
            FUZZ_CHECK(ack == 0 || ack == 1, "ack byte %u is neither OK nor ERR", ack);
            FUZZ_CHECK(w.bytes_written >= 1 && w.bytes_written <= wtotal,
                       "used length %u outside the writable part (%u)", w.bytes_written, wtotal);
        }
        FUZZ_CHECK(r.dev.net.pairs >= 1 && r.dev.net.pairs <= r.dev.net.pairs_max,
                   "%u pairs in use of %u", r.dev.net.pairs, r.dev.net.pairs_max);
        const struct rss_state *rs = r.dev.net.rss;
        if (rs != NULL && rs->configured) {
            FUZZ_CHECK(rs->unclassified_queue < r.dev.net.pairs, "unclassified_queue %u of %u pairs",
                       rs->unclassified_queue, r.dev.net.pairs);
            for (uint32_t i = 0; i < rs->table_len; i++)
                FUZZ_CHECK(rs->table[i] < r.dev.net.pairs, "table entry %u names queue %u of %u pairs",
                           i, rs->table[i], r.dev.net.pairs);
        }
        for (uint16_t k = 0; k < r.dev.net.pairs_max; k++)
            FUZZ_CHECK(vnet_pair_fifo_frames(&r.dev.net, k) <= p.rx_fifo_frames,
                       "pair %u's FIFO holds %u frames", k, vnet_pair_fifo_frames(&r.dev.net, k));
        const uint8_t action = fuzz_u8(&in);
        for (unsigned n = 0; n < (action >> 2) % 4u && r.dev.tp.error == VS_REASON_NONE; n++)
            frame(&r, &tx, &rx);
        if (r.dev.tp.error == VS_REASON_NONE)
            timers(&r, action);
        struct msix_message m;
        while (pt_take_msi(&r.dev.tp, &m))
            ;
    }
    fuzz_check_error_state(&r.dev);
    if (getenv("VIOSIM_FUZZ_VERBOSE"))
        fprintf(stderr, "ctrl: %llu ok, %llu err; coalescing rx %u/%u tx %u/%u; error %s\n",
                (unsigned long long)r.dev.net.stats.ctrl_ok, (unsigned long long)r.dev.net.stats.ctrl_err,
                r.dev.net.coal[VNET_QUEUE_RX].p.max_packets, r.dev.net.coal[VNET_QUEUE_RX].p.max_usecs,
                r.dev.net.coal[VNET_QUEUE_TX].p.max_packets, r.dev.net.coal[VNET_QUEUE_TX].p.max_usecs,
                vs_reason_name(r.dev.tp.error));
    vdev_rig_fini(&r);
    return 0;
}
