#include "refdrv_int.h"

/* ---- queues ---- */

void rd_notify_queue(struct refdrv *d, struct drv_queue *q)
{
    rd_inject(d, INJ_NOTIFY, q, NULL);
    /* "If VIRTIO_F_NOTIFICATION_DATA is negotiated, the driver notification MUST be a
     * 32-bit notification", otherwise 16-bit with the queue index. */
    if (d->f_notif_data)
        mmio_wr(d, q->notify_addr, 4, q->ops->notify_data(q->ring, q->index));
    else
        mmio_wr(d, q->notify_addr, 2, q->index);
    d->st->notifications++;
}

/* Publish what was written and notify unless the device said it does not want to hear
 * ("Sending Available Buffer Notifications"). */
void rd_kick(struct refdrv *d, struct drv_queue *q)
{
    /* The publishing store needs a write barrier before it: "If VIRTIO_F_ORDER_PLATFORM
     * has been negotiated, a driver MUST use the barriers suitable for hardware
     * devices" ("Reserved Feature Bits"); otherwise CPU-to-CPU barriers suffice. */
    d->h->cpu_work(d->h->ctx, d->f_order_platform ? VS_HOST_WORK_BARRIER_DEVICE : VS_HOST_WORK_BARRIER_SMP, 1);
    q->ops->publish(q->ring);
    if (q->ops->unnotified(q->ring) == 0)
        return;
    if (q->ops->needs_notify(q->ring))
        rd_notify_queue(d, q);
    else
        d->st->notifications_suppressed++;
}

/* Select queue index, size it, give it memory, map its vector, enable it
 * ("Virtqueue Configuration"), in the driver's slot `slot`. */
enum refdrv_result rd_queue_setup(struct refdrv *d, uint16_t slot, uint16_t index, uint16_t vector)
{
    /* The descriptor area first, 4 KiB aligned; the driver and device areas on cache
     * lines of their own. Both exceed each format's minimum (packed: 16 and 4; split:
     * 16, 2 and 4). */
    static const uint64_t area_align[DRV_RING_AREAS] = { RING_ALIGN_BYTES, AREA_ALIGN_BYTES,
                                                     AREA_ALIGN_BYTES };
    static const uint32_t area_reg[DRV_RING_AREAS] = { VIRTIO_PCI_COMMON_Q_DESCLO,
                                                   VIRTIO_PCI_COMMON_Q_AVAILLO,
                                                   VIRTIO_PCI_COMMON_Q_USEDLO };
    struct drv_queue *q = &d->q[slot];
    const struct drv_ring_ops *ops = d->ring_ops;
    uint32_t max, want, size, noff, width;
    uint64_t bytes[DRV_RING_AREAS], gpa[DRV_RING_AREAS], notify_rel;
    uint8_t *area[DRV_RING_AREAS];

    common_wr(d, VIRTIO_PCI_COMMON_Q_SELECT, 2, index);
    max = common_rd(d, VIRTIO_PCI_COMMON_Q_SIZE, 2);
    if (max == 0) /* "If this field is 0, the virtqueue does not exist." */
        return rd_give_up(d, REFDRV_DEVICE_ERROR);
    want = d->p->queue_size_entries != 0 ? d->p->queue_size_entries : max;
    if (q == d->cq)
        want = CTRL_QUEUE_ENTRIES;
    /* Packed: up to the maximum; split: also a power of two ("Queue Size value is always
     * a power of 2"), so a request (or a device maximum) that is not one rounds down. */
    size = ops->fit_size(want, max);
    if (size == 0)
        return rd_give_up(d, REFDRV_DEVICE_ERROR);
    common_wr(d, VIRTIO_PCI_COMMON_Q_SIZE, 2, size);

    /* The device writes used descriptors (packed: into the descriptor ring; split: the
     * used ring) and its own event suppression; it only reads the driver area, which
     * shares their page(s) and so is mapped writable with them. */
    ops->area_bytes((uint16_t)size, bytes);
    for (uint32_t i = 0; i < DRV_RING_AREAS; i++) {
        area[i] = rd_dev_alloc(d, bytes[i], area_align[i], slot, true, &gpa[i]);
        if (area[i] == NULL)
            return rd_give_up(d, REFDRV_NO_MEMORY);
    }
    for (uint32_t i = 0; i < DRV_RING_AREAS; i++)
        common_wr64(d, area_reg[i], rd_dev_addr(d, gpa[i]));

    /* "After mapping an event to vector, the driver MUST verify success by reading the
     * Vector field value." */
    if (!d->intx) { /* INTx: no MSI-X capability, nothing to map */
        common_wr(d, VIRTIO_PCI_COMMON_Q_MSIX, 2, vector);
        if (common_rd(d, VIRTIO_PCI_COMMON_Q_MSIX, 2) != vector)
            return rd_give_up(d, REFDRV_DEVICE_ERROR);
    }

    /* Queue Notify address: cap.offset + queue_notify_off * notify_off_multiplier, which
     * must leave room for the notification inside the structure. */
    noff = common_rd(d, VIRTIO_PCI_COMMON_Q_NOFF, 2);
    width = d->f_notif_data ? 4u : 2u;
    notify_rel = (uint64_t)noff * d->notify_off_multiplier;
    if (notify_rel > d->notify.length || width > d->notify.length - notify_rel ||
        (d->notify.addr + notify_rel) % width != 0)
        return rd_give_up(d, REFDRV_BAD_CAPS);

    q->ops = ops;
    q->desc_area = area[0];
    q->ring = &d->rings[slot];
    q->index = index;
    q->size = (uint16_t)size;
    q->vector = vector;
    q->notify_addr = d->notify.addr + notify_rel;
    ops->init(q->ring, area, (uint16_t)size, d->f_event_idx, d->f_in_order);
    q->drv = d;
    q->event_slot = 0;
    if (d->f_devmem_event && index < d->devmem_slots) {
        /* viosim extension: the driver's suppression fields go to the queue's slot in
         * device memory from here on, the first write (below) included. */
        q->event_slot = d->devmem_event.addr + (uint64_t)index * d->devmem_slot_bytes;
        const struct drv_event_mmio w = { devmem_event_write, q };
        ops->set_event_mmio(q->ring, &w);
    }
    /* Interrupts are asked for only while the driver sleeps (and never when polling). */
    ops->set_driver_events(q->ring, DRV_EVENTS_DISABLE);
    q->armed = false;

    rd_inject(d, INJ_QUEUE_CONFIGURED, q, NULL);
    /* "The driver MUST configure the other virtqueue fields before enabling the
     * virtqueue with queue_enable." */
    common_wr(d, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
    rd_inject(d, INJ_QUEUE_ENABLED, q, NULL);
    return REFDRV_OK;
}

/* Buffers: one slot per buffer id, so an id names its memory. The device only reads
 * TX indirect tables and TX buffers (read-only mappings with ACCESS_PLATFORM) and
 * writes RX buffers. Pair by pair. */
enum refdrv_result rd_buffers_setup(struct refdrv *d)
{
    for (uint16_t k = 0; k < d->pairs; k++) {
        const uint16_t rs = (uint16_t)(2u * k + RX_QUEUE), ts = (uint16_t)(2u * k + TX_QUEUE);
        struct drv_queue *rx = &d->q[rs];
        struct drv_queue *tx = &d->q[ts];

        if (d->tx_layout == REFDRV_TX_INDIRECT) {
            tx->table = rd_dev_alloc(d, (uint64_t)tx->size * INDIRECT_ENTRIES * DESC_BYTES,
                                     PVIRTQ_DESC_ALIGN, ts, false, &tx->table_gpa);
            if (tx->table == NULL)
                return rd_give_up(d, REFDRV_NO_MEMORY);
        }
        rx->slot_bytes = (uint32_t)align_up(d->rx_buf_bytes, AREA_ALIGN_BYTES);
        rx->buf = rd_dev_alloc(d, (uint64_t)rx->size * rx->slot_bytes, AREA_ALIGN_BYTES,
                               rs, true, &rx->buf_gpa);
        tx->slot_bytes = (uint32_t)align_up(NET_HDR_BYTES + d->max_frame, AREA_ALIGN_BYTES);
        tx->buf = rd_dev_alloc(d, (uint64_t)tx->size * tx->slot_bytes, AREA_ALIGN_BYTES,
                               ts, false, &tx->buf_gpa);
        if (rx->buf == NULL || tx->buf == NULL)
            return rd_give_up(d, REFDRV_NO_MEMORY);
    }
    return REFDRV_OK;
}

/* ---- control queue and notification coalescing ---- */

/* The control queue (CTRL_VQ negotiated: with coalescing or several pairs): a small
 * ring with no MSI-X vector, since the driver polls for each ack, and one command
 * buffer. Queue 2 * max_virtqueue_pairs with MQ, else 2; the slot after the pairs'. */
enum refdrv_result rd_ctrl_setup(struct refdrv *d)
{
    struct drv_queue *cq = d->cq;
    const uint16_t slot = (uint16_t)(2u * d->pairs);
    enum refdrv_result r;

    if (!d->f_ctrl_vq)
        return REFDRV_OK;
    r = rd_queue_setup(d, slot, (uint16_t)(d->f_mq ? 2u * d->max_pairs : CTRL_QUEUE),
                       VIRTIO_MSI_NO_VECTOR);
    if (r != REFDRV_OK)
        return r;
    if (cq->size < 2u) /* a command is a chain of two */
        return rd_give_up(d, REFDRV_DEVICE_ERROR);
    cq->slot_bytes = CTRL_BUF_BYTES;
    cq->buf = rd_dev_alloc(d, CTRL_BUF_BYTES, AREA_ALIGN_BYTES, slot, true, &cq->buf_gpa);
    if (cq->buf == NULL)
        return rd_give_up(d, REFDRV_NO_MEMORY);
    return REFDRV_OK;
}

/* Send one command and wait for the device to use it ("Control Virtqueue"): class,
 * command and `len` bytes of data device-readable; `result_len` bytes of result and the
 * ack device-writable, in that order. Like Linux, the driver busy-waits: a poll every
 * CTRL_POLL_NS, an interrupt meanwhile is taken and counted. Returns the ack
 * (VIRTIO_NET_OK, VIRTIO_NET_ERR; 0xff if the device wrote none), or -1 when the queue
 * broke, the device needs a reset, or nothing came back within the idle timeout. */
static int ctrl_command(struct refdrv *d, uint8_t cls, uint8_t cmd, const void *data,
                        uint32_t len, void *result, uint32_t result_len)
{
    struct drv_queue *cq = d->cq;
    struct drv_seg segs[2];
    struct drv_used u;
    enum drv_status st;
    uint64_t start = now_ps(d);
    int v;

    assert(VIRTIO_NET_CTRL_HDR_BYTES + len <= CTRL_REPLY_OFF &&
           CTRL_REPLY_OFF + result_len + 1u <= CTRL_BUF_BYTES);
    cq->buf[0] = cls;
    cq->buf[1] = cmd;
    memcpy(cq->buf + VIRTIO_NET_CTRL_HDR_BYTES, data, len);
    memset(cq->buf + CTRL_REPLY_OFF, 0xff, result_len + 1u);
    segs[0] = (struct drv_seg){ rd_dev_addr(d, cq->buf_gpa), VIRTIO_NET_CTRL_HDR_BYTES + len,
                                 false };
    segs[1] = (struct drv_seg){ rd_dev_addr(d, cq->buf_gpa + CTRL_REPLY_OFF), result_len + 1u,
                                 true };
    if (!cq->ops->can_add(cq->ring, 2, NULL) || cq->ops->add(cq->ring, segs, 2, NULL) != DRV_OK)
        return -1;
    d->h->cpu_work(d->h->ctx, VS_HOST_WORK_CTRL_COMMAND, 1);
    d->st->ctrl_commands++;
    rd_kick(d, cq);
    for (;;) {
        st = cq->ops->get_used(cq->ring, &u);
        if (st == DRV_OK)
            break;
        if (st == DRV_BROKEN || elapsed_ps(now_ps(d), start) >= d->idle_timeout_ps)
            return -1;
        d->h->cpu_work(d->h->ctx, VS_HOST_WORK_POLL, 1);
        v = d->h->wait_interrupt(d->h->ctx, CTRL_POLL_NS);
        if (v >= 0) {
            d->st->interrupts++;
            if (rd_interrupt_is_config(d, v) && rd_check_status(d) != REFDRV_OK)
                return -1;
        }
    }
    if (result_len != 0)
        memcpy(result, cq->buf + CTRL_REPLY_OFF, result_len);
    return cq->buf[CTRL_REPLY_OFF + result_len];
}

/* One coalescing command whose ack is checked: anything but VIRTIO_NET_OK is counted
 * in ctrl_errors ("There is little the driver can do except issue a diagnostic").
 * Returns false only when the device broke (ctrl_command's -1). */
static bool coal_command(struct refdrv *d, uint8_t cmd, const void *data, uint32_t len,
                         void *result, uint32_t result_len, bool *ok)
{
    int ack = ctrl_command(d, VIRTIO_NET_CTRL_NOTF_COAL, cmd, data, len, result, result_len);

    if (ack < 0)
        return false;
    *ok = ack == (int)VIRTIO_NET_OK;
    if (!*ok)
        d->st->ctrl_errors++;
    return true;
}

bool rd_coal_vq_set(struct refdrv *d, uint16_t vq, const struct refdrv_coal *c)
{
    uint8_t data[sizeof(struct virtio_net_ctrl_coal_vq)];
    bool ok;

    vs_put_le16(data + offsetof(struct virtio_net_ctrl_coal_vq, vq_index), vq);
    vs_put_le16(data + offsetof(struct virtio_net_ctrl_coal_vq, reserved), 0);
    vs_put_le32(data + offsetof(struct virtio_net_ctrl_coal_vq, coal.max_packets), c->max_packets);
    vs_put_le32(data + offsetof(struct virtio_net_ctrl_coal_vq, coal.max_usecs), c->max_usecs);
    return coal_command(d, VIRTIO_NET_CTRL_NOTF_COAL_VQ_SET, data, sizeof data, NULL, 0, &ok);
}

/* ---- multiqueue ---- */

/* VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET(pairs), its ack checked ("Automatic receive steering
 * in multiqueue mode"). Returns the ack as ctrl_command does. */
static int mq_pairs_set(struct refdrv *d, uint32_t pairs)
{
    uint8_t data[sizeof(struct virtio_net_ctrl_mq_pairs_set)];

    vs_put_le16(data + offsetof(struct virtio_net_ctrl_mq_pairs_set, virtqueue_pairs),
                (uint16_t)pairs);
    return ctrl_command(d, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, data,
                        sizeof data, NULL, 0);
}

/* After DRIVER_OK, with VIRTIO_NET_F_MQ and more than one pair: enable the pairs. Every
 * queue is configured and every receive queue filled already ("The driver MUST configure
 * the virtqueues before enabling them"), and nothing was transmitted yet, on any queue
 * ("MUST queue packets only on any transmitq1 before the VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET
 * command"). The driver waits for the device to use the command: anything but
 * VIRTIO_NET_OK leaves one pair in use, and the run ends (REFDRV_MQ_REFUSED) rather than
 * send on queues the device does not serve. With one pair nothing is sent: one pair is
 * what the device uses after initialisation. */
enum refdrv_result rd_mq_start(struct refdrv *d)
{
    int ack;

    if (!d->f_mq || d->pairs <= 1u)
        return REFDRV_OK;
    rd_inject(d, INJ_MQ_PAIRS, NULL, NULL);
    ack = mq_pairs_set(d, d->pairs);
    if (ack < 0)
        return rd_give_up(d, REFDRV_DEVICE_ERROR);
    if (ack != (int)VIRTIO_NET_OK) {
        d->st->ctrl_errors++;
        d->st->mq_pairs = 1;
        return rd_give_up(d, REFDRV_MQ_REFUSED);
    }
    return REFDRV_OK;
}

/* driver.inject_violation CTRL_MQ_PAIRS: ask for one pair more than max_virtqueue_pairs
 * ("The driver MUST NOT request a virtqueue_pairs of 0 or greater than
 * max_virtqueue_pairs"), the device answers VIRTIO_NET_ERR, counted in ctrl_errors.
 * CTRL_MQ_PAIRS_NOT_ENABLED: ask for one pair more than the driver set up ("The driver
 * MUST configure the virtqueues before enabling them"), which the device takes. */
void rd_mq_pairs_wrong(struct refdrv *d, uint32_t pairs)
{
    int ack = mq_pairs_set(d, pairs);

    if (ack >= 0 && ack != (int)VIRTIO_NET_OK)
        d->st->ctrl_errors++;
}

/* Static policy: RX_SET and TX_SET once after DRIVER_OK, then (with VQ_NOTF_COAL) a
 * VQ_GET of each queue to check the device applied them; a read-back that differs
 * counts as an error ("The driver MUST ignore the values ... if the device responds
 * with VIRTIO_NET_ERR"). */
static bool coal_static(struct refdrv *d)
{
    static const uint16_t queues[DATA_QUEUES] = { RX_QUEUE, TX_QUEUE };
    const struct refdrv_coal *want[DATA_QUEUES] = { &d->p->coal_rx, &d->p->coal_tx };
    uint8_t data[sizeof(struct virtio_net_ctrl_coal)];
    bool ok;

    if (!d->f_notf_coal)
        return true;
    for (uint32_t i = 0; i < DATA_QUEUES; i++) {
        vs_put_le32(data + offsetof(struct virtio_net_ctrl_coal, max_packets), want[i]->max_packets);
        vs_put_le32(data + offsetof(struct virtio_net_ctrl_coal, max_usecs), want[i]->max_usecs);
        if (!coal_command(d, queues[i] == RX_QUEUE ? VIRTIO_NET_CTRL_NOTF_COAL_RX_SET
                                                   : VIRTIO_NET_CTRL_NOTF_COAL_TX_SET,
                          data, sizeof data, NULL, 0, &ok))
            return false;
    }
    if (!d->f_vq_notf_coal)
        return true;
    for (uint32_t i = 0; i < DATA_QUEUES; i++) {
        uint8_t in[VIRTIO_NET_CTRL_COAL_VQ_IN_BYTES] = { 0 };
        uint8_t out[sizeof(struct virtio_net_ctrl_coal)];
        vs_put_le16(in, queues[i]);
        if (!coal_command(d, VIRTIO_NET_CTRL_NOTF_COAL_VQ_GET, in, sizeof in, out, sizeof out, &ok))
            return false;
        if (ok && (vs_le32(out + offsetof(struct virtio_net_ctrl_coal, max_packets)) != want[i]->max_packets ||
                   vs_le32(out + offsetof(struct virtio_net_ctrl_coal, max_usecs)) != want[i]->max_usecs))
            d->st->ctrl_errors++;
    }
    return true;
}

/* Adaptive policy, in the spirit of Linux's net_dim (the rule is this driver's own):
 * profiles from low latency to heavy coalescing, {max_packets, max_usecs}. Every
 * coal_interval_ps the driver measures each queue's completed packets per microsecond
 * (Mpps) over the interval; the target profile is the number of thresholds in
 * coal_rate_mpps the rate reaches, with a band of +-COAL_HYSTERESIS around each threshold
 * the rate must cross to leave the current profile. The queue moves ONE profile towards its target when
 * two intervals in a row point the same way (so a burst or a lull is followed
 * gradually, and completions reaped in bursts do not make it flap), with one VQ_SET per
 * change. Every queue starts at profile 0 (the reset values). */
static const struct refdrv_coal coal_profiles[] = {
    { 0, 0 }, { 4, 8 }, { 8, 16 }, { 16, 32 }, { 32, 64 },
};
#define COAL_PROFILES (sizeof(coal_profiles) / sizeof(coal_profiles[0]))
static const double coal_rate_mpps[COAL_PROFILES - 1u] = { 0.05, 0.15, 0.4, 1.0 };
#define COAL_HYSTERESIS 0.25

/* With several pairs the rule runs per role (receive, transmit) on the mean rate of
 * the role's queues, and a profile change is one VQ_SET to each of them. */
bool rd_coal_adapt(struct refdrv *d, uint64_t now)
{
    static const uint16_t roles[DATA_QUEUES] = { RX_QUEUE, TX_QUEUE };
    uint64_t elapsed = elapsed_ps(now, d->coal_mark_ps);

    if (d->p->coal_policy != REFDRV_COAL_ADAPTIVE || !d->f_vq_notf_coal ||
        elapsed < d->coal_interval_ps)
        return true;
    for (uint32_t i = 0; i < DATA_QUEUES; i++) {
        uint64_t frames = roles[i] == RX_QUEUE ? d->st->rx_frames : d->tx_reaped;
        double mpps = (double)(frames - d->coal_mark_frames[i]) * PS_PER_US_INT / (double)elapsed;
        uint32_t target = 0, level = d->coal_level[i];
        int trend;

        if (d->pairs > 1u)
            mpps /= d->pairs;
        /* Hysteresis: leave the current profile only for a rate clearly past a threshold
         * (COAL_HYSTERESIS beyond it either way), so a load that sits on a threshold, or
         * an interval that holds two or three frames at a low rate, does not flap. */
        target = level;
        while (target < COAL_PROFILES - 1u && mpps >= coal_rate_mpps[target] * (1.0 + COAL_HYSTERESIS))
            target++;
        while (target > 0 && mpps < coal_rate_mpps[target - 1u] * (1.0 - COAL_HYSTERESIS))
            target--;
        trend = target > level ? 1 : target < level ? -1 : 0;
        if (trend != 0 && trend == d->coal_trend[i])
            level = trend > 0 ? level + 1u : level - 1u;
        d->coal_trend[i] = level == d->coal_level[i] ? trend : 0;
        d->coal_mark_frames[i] = frames;
        if (level == d->coal_level[i])
            continue;
        d->coal_level[i] = level;
        d->st->coal_retunes++;
        for (uint16_t k = 0; k < d->pairs; k++)
            if (!rd_coal_vq_set(d, (uint16_t)(2u * k + roles[i]), &coal_profiles[level]))
                return false;
    }
    d->coal_mark_ps = now_ps(d); /* after the commands: their time is not measured */
    return true;
}

/* After DRIVER_OK: the static parameters, or the adaptive policy's first interval. */
enum refdrv_result rd_coal_start(struct refdrv *d)
{
    if (d->p->coal_policy == REFDRV_COAL_OFF || !d->f_ctrl_vq)
        return REFDRV_OK;
    d->coal_interval_ps = (uint64_t)(d->p->coal_adaptive_interval_us != 0
                                         ? d->p->coal_adaptive_interval_us
                                         : DEFAULT_COAL_INTERVAL_US) * PS_PER_US_INT;
    if (d->p->coal_policy == REFDRV_COAL_STATIC && !coal_static(d))
        return rd_give_up(d, REFDRV_DEVICE_ERROR);
    d->coal_mark_ps = now_ps(d);
    return REFDRV_OK;
}
