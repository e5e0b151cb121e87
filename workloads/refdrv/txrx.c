#include "refdrv_int.h"

/* ---- traffic ---- */

/* Post one empty receive buffer on rx: one device-writable descriptor. */
bool rd_post_rx(struct refdrv *d, struct drv_queue *rx)
{
    uint16_t id;
    struct drv_seg seg;

    if (!rx->ops->can_add(rx->ring, 1, &id))
        return false;
    seg.addr = rd_dev_addr(d, rx->buf_gpa + (uint64_t)id * rx->slot_bytes);
    seg.len = d->rx_buf_bytes;
    seg.device_writable = true;
    rd_inject(d, INJ_RX_SEG, rx, &seg);
    if (rx->ops->add(rx->ring, &seg, 1, NULL) != DRV_OK)
        return false;
    d->h->cpu_work(d->h->ctx, VS_HOST_WORK_RX_REFILL, 1);
    return true;
}

static uint32_t tx_slots_per_frame(const struct refdrv *d)
{
    return d->tx_layout == REFDRV_TX_CHAIN ? 2u : 1u;
}

/* Length of the next frame to post, by driver.frame_size_mix. */
static uint32_t next_frame_len(struct refdrv *d)
{
    switch (d->p->frame_size_mix) {
    case REFDRV_SIZES_RANDOM:
        return d->frame_len[traffic_rng_below(&d->size_rng, d->frame_kinds)];
    case REFDRV_SIZES_IMIX:
        return traffic_imix_len(d->tx_posted);
    default:
        return d->frame_len[d->tx_posted % d->frame_kinds];
    }
}

/* The pair the next frame leaves on: with flows, flow f on transmitq (f mod pairs) + 1,
 * so a flow keeps to one queue (and comes back in order on one queue once the device
 * steers by flow); without, frame k on transmitq (k mod pairs) + 1, round robin. */
static uint16_t next_tx_pair(const struct refdrv *d)
{
    if (d->pairs <= 1u)
        return 0;
    if (d->p->flows_count != 0)
        return (uint16_t)((d->tx_posted % d->p->flows_count) % d->pairs);
    return (uint16_t)(d->tx_posted % d->pairs);
}

static struct drv_queue *tx_queue_of(struct refdrv *d, uint16_t pair)
{
    return &d->q[2u * pair + TX_QUEUE];
}

/* Build and post the next frame on pair's transmit queue: virtio_net_hdr (all zero:
 * no offloads, "The driver MUST set num_buffers to zero") followed by the test frame. */
static bool post_tx_on(struct refdrv *d, uint16_t pair)
{
    struct drv_queue *tx = tx_queue_of(d, pair);
    uint16_t id;
    uint32_t len;
    uint64_t addr; /* the slot's address for the device */
    uint8_t *slot;
    struct drv_seg segs[2];
    enum drv_status st;

    if (!tx->ops->can_add(tx->ring, tx_slots_per_frame(d), &id))
        return false;
    len = next_frame_len(d);
    addr = rd_dev_addr(d, tx->buf_gpa + (uint64_t)id * tx->slot_bytes);
    slot = tx->buf + (size_t)id * tx->slot_bytes;
    memset(slot, 0, NET_HDR_BYTES);
    if (d->p->flows_count != 0) {
        struct traffic_flow flow;
        traffic_flow_of((uint32_t)(d->tx_posted % d->p->flows_count), &flow);
        traffic_build_flow(slot + NET_HDR_BYTES, len, d->mac, d->p->seed, d->tx_posted,
                           now_ps(d), &flow);
    } else {
        traffic_build(slot + NET_HDR_BYTES, len, d->mac, d->p->seed, d->tx_posted, now_ps(d));
    }

    switch (d->tx_layout) {
    case REFDRV_TX_CHAIN:
        segs[0] = (struct drv_seg){ addr, NET_HDR_BYTES, false };
        segs[1] = (struct drv_seg){ addr + NET_HDR_BYTES, len, false };
        rd_inject(d, INJ_TX_SEG, tx, &segs[0]);
        st = tx->ops->add(tx->ring, segs, 2, NULL);
        break;
    case REFDRV_TX_INDIRECT:
        segs[0] = (struct drv_seg){ addr, NET_HDR_BYTES, false };
        segs[1] = (struct drv_seg){ addr + NET_HDR_BYTES, len, false };
        rd_inject(d, INJ_TX_SEG, tx, &segs[0]);
        st = tx->ops->add_indirect(tx->ring, tx->table + (size_t)id * INDIRECT_ENTRIES * DESC_BYTES,
                                   rd_dev_addr(d, tx->table_gpa
                                                     + (uint64_t)id * INDIRECT_ENTRIES * DESC_BYTES),
                                   segs, 2, NULL);
        break;
    default:
        segs[0] = (struct drv_seg){ addr, NET_HDR_BYTES + len, false };
        rd_inject(d, INJ_TX_SEG, tx, &segs[0]);
        st = tx->ops->add(tx->ring, segs, 1, NULL);
        break;
    }
    if (st != DRV_OK)
        return false;
    rd_inject(d, INJ_TX_ADDED, tx, &segs[0]);
    d->tx_len[pair][id] = len;
    d->tx_posted_pair[pair]++;
    tx->posted = true;
    d->tx_posted++;
    traffic_arrival_advance(&d->arrival);
    d->h->cpu_work(d->h->ctx, VS_HOST_WORK_TX_PACKET, 1);
    return true;
}

/* The next frame, on its pair's transmit queue. */
static bool post_tx(struct refdrv *d)
{
    return post_tx_on(d, next_tx_pair(d));
}

/* driver.inject_violation TX_QUEUE_NOT_IN_USE: before VQ_PAIRS_SET, the first frame goes
 * out on the last pair's transmit queue, with its notification ("The driver MUST queue
 * packets only on any transmitq1 before the VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET command").
 * The driver then waits up to TX_EARLY_WAIT_NS for it to complete, taking interrupts as
 * ctrl_command does; it does not (the device leaves a pair not in use alone), and the
 * frame leaves once VQ_PAIRS_SET puts the pair in use. False if it could not be posted. */
bool rd_tx_before_pairs(struct refdrv *d)
{
    const uint16_t pair = (uint16_t)(d->pairs - 1u);
    struct drv_queue *tx = tx_queue_of(d, pair);
    const uint64_t start = now_ps(d);

    on_pair(d, pair);
    if (!post_tx_on(d, pair))
        return false;
    tx->posted = false;
    rd_kick(d, tx);
    on_pair(d, -1);
    while (elapsed_ps(now_ps(d), start) < (uint64_t)TX_EARLY_WAIT_NS * PS_PER_NS) {
        const int v = d->h->wait_interrupt(d->h->ctx, CTRL_POLL_NS);
        if (v >= 0) {
            d->st->interrupts++;
            if (rd_interrupt_is_config(d, v) && rd_check_status(d) != REFDRV_OK)
                break;
        }
    }
    return true;
}

static uint64_t tx_due_ps(const struct refdrv *d)
{
    double due = traffic_arrival_due(&d->arrival);

    if (due <= 0.0)
        return 0;
    return due >= 18446744073709549568.0 ? UINT64_MAX : (uint64_t)due;
}

/* Closed loop: each frame is a request whose response is the frame coming back on RX;
 * at most closed_loop_requests are outstanding, and the next leaves when one returns. */
static bool closed_window_full(const struct refdrv *d)
{
    return d->p->arrival == TRAFFIC_ARRIVAL_CLOSED &&
           d->tx_posted - d->st->rx_frames >= (d->p->closed_loop_requests ? d->p->closed_loop_requests : 1u);
}

/* Post the frames that are due, up to a burst, then publish + notify once per transmit
 * queue that got frames. A frame whose queue is full waits, and the frames after it too
 * (frames leave in sequence order). */
static uint32_t tx_send(struct refdrv *d)
{
    uint32_t n = 0;

    while (d->tx_posted < d->p->frames_count && n < TX_BURST_MAX && !closed_window_full(d)) {
        uint64_t due;
        on_pair(d, next_tx_pair(d)); /* the frame's pair's CPU builds and posts it */
        due = tx_due_ps(d);
        if (due != 0 && now_ps(d) < due)
            break;
        if (!post_tx(d))
            break;
        n++;
    }
    if (n == 0)
        return 0;
    for (uint16_t k = 0; k < d->pairs; k++) {
        struct drv_queue *tx = tx_queue_of(d, k);
        if (tx->posted) {
            tx->posted = false;
            on_pair(d, k);
            rd_kick(d, tx);
        }
    }
    return n;
}

/* Reclaim transmitted buffers of every pair. Returns how many, or -1 when a queue broke. */
static int64_t tx_reap(struct refdrv *d)
{
    int64_t n = 0;

    for (uint16_t k = 0; k < d->pairs; k++) {
        struct drv_queue *tx = tx_queue_of(d, k);
        struct drv_used u;
        enum drv_status st;

        on_pair(d, k);
        while ((st = tx->ops->get_used(tx->ring, &u)) == DRV_OK) {
            d->st->tx_frames++;
            d->st->tx_frames_pair[k]++;
            d->st->tx_bytes += d->tx_len[k][u.id];
            d->tx_reaped++;
            d->h->cpu_work(d->h->ctx, VS_HOST_WORK_TX_REAP, 1);
            n++;
        }
        if (st == DRV_BROKEN)
            return -1;
    }
    return n;
}

/* Loopback with several pairs: frames come back over any receive queue in any order, so
 * instead of "in order" the driver checks "sent, and not seen before", over a window of
 * RX_SEEN_BITS sequence numbers from the oldest frame not yet back. True if seq is new
 * (and now recorded). */
static bool rx_seq_new(struct refdrv *d, uint64_t seq)
{
    uint64_t bit;

    if (seq >= d->tx_posted || seq < d->rx_next_seq || seq - d->rx_next_seq >= RX_SEEN_BITS)
        return false;
    bit = seq % RX_SEEN_BITS;
    if (d->rx_seen[bit / 64u] & (1ull << (bit % 64u)))
        return false;
    d->rx_seen[bit / 64u] |= 1ull << (bit % 64u);
    for (;;) { /* move the window past the frames back */
        bit = d->rx_next_seq % RX_SEEN_BITS;
        if (!(d->rx_seen[bit / 64u] & (1ull << (bit % 64u))))
            break;
        d->rx_seen[bit / 64u] &= ~(1ull << (bit % 64u));
        d->rx_next_seq++;
    }
    return true;
}

/* Check one received frame of flen bytes at frame (after the virtio-net header; exact:
 * its length is known, not only bounded) and count it for pair k. */
static void rx_frame_done(struct refdrv *d, uint16_t k, const uint8_t *frame, uint32_t flen,
                          bool exact, bool ok)
{
    struct traffic_info info = {0};
    bool good = false;

    if (ok) {
        good = traffic_check(frame, flen, exact, d->mac, d->p->seed, &info) == TRAFFIC_GOOD;
        if (good)
            flen = info.len;
    }
    if (!ok)
        flen = 0;
    /* Loopback keeps order on one pair: a sequence number never sent, or one at or below
     * what was already received (duplicate, reordering), is a bad frame. Several pairs:
     * never sent, or seen already. */
    if (good && d->pairs > 1u)
        good = rx_seq_new(d, info.seq);
    else if (good && (info.seq >= d->tx_posted || info.seq < d->rx_next_seq))
        good = false;

    d->st->rx_frames++;
    d->st->rx_frames_pair[k]++;
    d->st->rx_bytes += flen;
    if (!good) {
        d->st->rx_bad_payload++;
    } else {
        uint64_t now = now_ps(d);
        if (d->pairs <= 1u)
            d->rx_next_seq = info.seq + 1u;
        d->st->rx_flow_frames += info.is_flow != 0;
        if (d->p->expect_loopback && d->st->latency != NULL)
            hist_record(d->st->latency, now >= info.tx_time_ps ? now - info.tx_time_ps : 0);
    }
    d->h->cpu_work(d->h->ctx, VS_HOST_WORK_RX_PACKET, 1);
}

/* Check one received buffer of pair k: header, then the frame against what the sender
 * wrote. Without VIRTIO_NET_F_MRG_RXBUF "the device MUST set num_buffers to 1". With it,
 * a frame of num_buffers > 1 buffers is copied together in the pair's reassembly area
 * (rd_mrg_setup): the first buffer holds the header and the frame's start, each next
 * used buffer of the queue the frame's next bytes ("Processing of Incoming Packets"). */
static void rx_consume(struct refdrv *d, uint16_t k, const struct drv_used *u)
{
    struct drv_queue *rx = &d->q[2u * k + RX_QUEUE];
    struct rx_frame *f = &d->rx_frame[k];
    const uint8_t *slot = rx->buf + (size_t)u->id * rx->slot_bytes;
    const bool fits = u->written && u->len <= d->rx_buf_bytes;
    uint16_t nbufs;

    d->st->rx_buffers++;
    if (f->left > 0) { /* the next buffer of a merged frame */
        if (!fits || u->len > f->room - f->len) {
            f->bad = true;
        } else {
            memcpy(f->data + f->len, slot, u->len);
            f->len += u->len;
        }
        if (--f->left == 0)
            rx_frame_done(d, k, f->data + NET_HDR_BYTES, f->len - NET_HDR_BYTES,
                          !u->skipped, !f->bad);
        return;
    }
    if (!fits || u->len < NET_HDR_BYTES) {
        rx_frame_done(d, k, NULL, 0, false, false);
        return;
    }
    nbufs = vs_le16(slot + NET_HDR_NUM_BUFFERS);
    if (nbufs == 1u) {
        /* A skipped IN_ORDER buffer counts as completely written: the frame's own length
         * field says where it ends. */
        rx_frame_done(d, k, slot + NET_HDR_BYTES, u->len - NET_HDR_BYTES, !u->skipped, true);
        return;
    }
    if (!d->f_mrg_rxbuf || nbufs == 0) {
        rx_frame_done(d, k, NULL, 0, false, false);
        return;
    }
    /* The first of nbufs buffers: the rest follow on this queue. */
    d->st->rx_merged_frames++;
    f->left = (uint16_t)(nbufs - 1u);
    f->bad = u->len > f->room;
    f->len = f->bad ? 0 : u->len;
    if (!f->bad)
        memcpy(f->data, slot, u->len);
}

/* Take received frames from every pair. Each queue's buffers go back in batches, once
 * half the ring (at most RX_REFILL_BATCH_MAX) is free, so one publish + notification
 * covers many buffers; the device is never left without buffers, since at least half the
 * ring stays posted. Returns how many buffers, or -1 when a queue broke. */
static int64_t rx_reap(struct refdrv *d)
{
    int64_t n = 0;

    for (uint16_t k = 0; k < d->pairs; k++) {
        struct drv_queue *rx = &d->q[2u * k + RX_QUEUE];
        uint32_t batch = rx->size / 2u;
        struct drv_used u;
        enum drv_status st;

        on_pair(d, k);
        while ((st = rx->ops->get_used(rx->ring, &u)) == DRV_OK) {
            rx_consume(d, k, &u);
            n++;
        }
        if (batch > RX_REFILL_BATCH_MAX)
            batch = RX_REFILL_BATCH_MAX;
        if (batch == 0)
            batch = 1;
        if ((uint32_t)(rx->size - rx->ops->descs_in_flight(rx->ring)) >= batch) {
            while (rd_post_rx(d, rx))
                ;
            rd_kick(d, rx);
        }
        if (st == DRV_BROKEN)
            return -1;
    }
    return n;
}

/* Is anything the device still has to finish outstanding? If not, an idle driver is
 * only waiting for the next frame's departure time, which is not a stall. */
static bool waiting_on_device(const struct refdrv *d)
{
    return d->tx_reaped < d->tx_posted ||
           (d->p->expect_loopback && d->st->rx_frames < d->tx_posted);
}

static bool traffic_done(const struct refdrv *d)
{
    return d->tx_reaped >= d->p->frames_count &&
           (!d->p->expect_loopback || d->st->rx_frames >= d->p->frames_count);
}

/* Ask for an interrupt once the device has used `ahead` more units (drv_ring_ops.event_span)
 * beyond the next one (EVENT_IDX; otherwise at the next), or stop asking. */
static void arm(struct drv_queue *q, uint16_t ahead)
{
    q->ops->enable_driver_events_after(q->ring, ahead);
    q->armed = true;
}

static void disarm(struct drv_queue *q)
{
    if (!q->armed)
        return;
    q->ops->set_driver_events(q->ring, DRV_EVENTS_DISABLE);
    q->armed = false;
}

/* Interrupt mode, nothing to do now: ask for the interrupts worth waking up for, re-check
 * the rings (a buffer used before the request took effect raises no interrupt: "beware
 * the problem of missing notifications"), then sleep until an interrupt, the next frame
 * due, or the idle deadline. Returns the vector, -1 on timeout, -2 when the re-check
 * found work.
 * RX asks to hear about the next frame (latency). TX, waiting for ring space or for the
 * last completions, asks to hear only when about 3/4 of what is in flight is done
 * (with EVENT_IDX): one interrupt then frees a batch of slots instead of one. */
static int sleep_until_work(struct refdrv *d, uint64_t now)
{
    struct drv_queue *next_tx = tx_queue_of(d, next_tx_pair(d));
    bool tx_blocked = d->tx_posted < d->p->frames_count &&
                      !next_tx->ops->can_add(next_tx->ring, tx_slots_per_frame(d), NULL);
    bool want_rx = d->p->expect_loopback && d->st->rx_frames < d->p->frames_count;
    bool tx_waiting = tx_blocked || d->tx_posted >= d->p->frames_count;
    struct drv_queue *flush_q = NULL;
    bool found = false;
    uint64_t deadline = d->last_progress_ps + d->idle_timeout_ps;
    uint64_t timeout_ns;
    int v;

    if (deadline < d->last_progress_ps)
        deadline = UINT64_MAX; /* overflow: no deadline */
    if (d->tx_posted < d->p->frames_count && !tx_blocked && !closed_window_full(d)) {
        uint64_t due = tx_due_ps(d);
        if (due < deadline)
            deadline = due;
    }
    if (want_rx)
        for (uint16_t k = 0; k < d->pairs; k++)
            arm(&d->q[2u * k + RX_QUEUE], 0);
    for (uint16_t k = 0; k < d->pairs; k++) {
        struct drv_queue *tx = tx_queue_of(d, k);
        if (tx_waiting && d->tx_posted_pair[k] > d->st->tx_frames_pair[k]) {
            arm(tx, (uint16_t)(tx->ops->event_span(tx->ring) * 3u / 4u));
            if (flush_q == NULL)
                flush_q = tx;
        }
    }
    if (flush_q == NULL && want_rx)
        flush_q = &d->q[RX_QUEUE];
    if (flush_q != NULL)
        devmem_event_flush(d, flush_q); /* one read flushes every queue's writes */
    for (uint16_t i = 0; i < 2u * d->pairs && !found; i++)
        found = d->q[i].armed && d->q[i].ops->has_used(d->q[i].ring);
    if (found) {
        for (uint16_t i = 0; i < 2u * d->pairs; i++)
            disarm(&d->q[i]);
        return -2;
    }

    timeout_ns = deadline > now ? (deadline - now + PS_PER_NS - 1u) / PS_PER_NS : 1u;
    if (timeout_ns == 0)
        timeout_ns = 1;
    v = d->h->wait_interrupt(d->h->ctx, timeout_ns);
    for (uint16_t i = 0; i < 2u * d->pairs; i++)
        disarm(&d->q[i]);
    return v;
}

/* How often a stalled driver reads the device status (a few times per idle timeout). */
static uint64_t status_interval_ps(const struct refdrv *d)
{
    uint64_t interval = d->idle_timeout_ps / STATUS_CHECKS_PER_IDLE;
    return interval != 0 ? interval : 1;
}

/* A polling driver that found nothing: the earliest time at which a poll could find
 * something to do without the device writing guest memory meanwhile (the next frame due,
 * a status check, the idle timeout, an adaptive coalescing interval); UINT64_MAX if
 * none. Everything else the loop looks at changes only with the rings or with what the
 * loop itself does. Each is a "now >= deadline" test of rd_run_traffic or what it calls. */
static uint64_t next_poll_deadline(const struct refdrv *d)
{
    const struct drv_queue *tx = &d->q[2u * next_tx_pair(d) + TX_QUEUE];
    uint64_t deadline = UINT64_MAX;
    uint64_t at;

    if (d->tx_posted < d->p->frames_count && !closed_window_full(d) &&
        tx->ops->can_add(tx->ring, tx_slots_per_frame(d), NULL)) {
        at = tx_due_ps(d);
        if (at != 0 && at < deadline)
            deadline = at;
    }
    if (waiting_on_device(d)) {
        /* Otherwise the loop moves last_progress_ps along with the clock. */
        uint64_t interval = status_interval_ps(d);
        at = d->last_progress_ps + d->idle_timeout_ps;
        if (at >= d->last_progress_ps && at < deadline)
            deadline = at;
        at = (d->last_status_check_ps > d->last_progress_ps ? d->last_status_check_ps
                                                             : d->last_progress_ps) + interval;
        if (at < deadline)
            deadline = at;
    }
    if (d->p->coal_policy == REFDRV_COAL_ADAPTIVE && d->f_vq_notf_coal) {
        at = d->coal_mark_ps + d->coal_interval_ps;
        if (at < deadline)
            deadline = at;
    }
    return deadline;
}

enum refdrv_result rd_run_traffic(struct refdrv *d)
{
    const uint64_t status_interval = status_interval_ps(d);
    uint32_t frozen_polls = 0;

    d->tx_start_ps = now_ps(d);
    traffic_arrival_init(&d->arrival, d->p->arrival, d->tx_interval_ps, d->p->onoff_periods,
                         d->p->onoff_on_us * PS_PER_US, d->p->onoff_off_us * PS_PER_US,
                         d->p->seed, (double)d->tx_start_ps);
    d->napi_left = 0;
    d->last_progress_ps = d->tx_start_ps;
    d->last_status_check_ps = d->tx_start_ps;

    for (;;) {
        int64_t got_tx, got_rx;
        uint32_t sent;
        uint64_t now;
        int v;

        /* One pass: each pair's completions, receptions and departures, on the pair's
         * CPU (on_pair); the rest once they are all done. */
        got_tx = tx_reap(d);
        got_rx = rx_reap(d);
        if (got_tx < 0 || got_rx < 0) {
            on_pair(d, -1);
            return REFDRV_DEVICE_ERROR; /* the device returned an impossible buffer id */
        }
        sent = tx_send(d);
        on_pair(d, -1);
        if (traffic_done(d))
            return REFDRV_OK;
        if (d->p->coal_policy == REFDRV_COAL_ADAPTIVE && !rd_coal_adapt(d, now_ps(d)))
            return REFDRV_DEVICE_ERROR;
        if (d->napi_left > 0) {
            /* NAPI's budget counts received frames (completions without loopback). */
            uint64_t done = (uint64_t)(d->p->expect_loopback ? got_rx : got_tx);
            d->napi_left = done >= d->napi_left ? 0 : d->napi_left - (uint32_t)done;
        }

        now = now_ps(d);
        if (got_tx > 0 || got_rx > 0 || sent > 0) {
            d->last_progress_ps = now;
            continue;
        }
        if (!waiting_on_device(d))
            d->last_progress_ps = now; /* only waiting for the next departure time */

        /* Stalled: has the device given up? Checked a few times per idle timeout. */
        if (elapsed_ps(now, d->last_progress_ps) >= d->idle_timeout_ps) {
            enum refdrv_result r = rd_check_status(d);
            return r != REFDRV_OK ? r : REFDRV_TIMEOUT;
        }
        if (elapsed_ps(now, d->last_status_check_ps) >= status_interval &&
            elapsed_ps(now, d->last_progress_ps) >= status_interval) {
            if (rd_check_status(d) != REFDRV_OK)
                return REFDRV_DEVICE_ERROR;
        }

        /* NAPI: after an interrupt, keep polling (interrupts still off) through idle gaps
         * while the device has work outstanding, until the budget is spent; with nothing
         * outstanding the poll phase completes at once ("napi_complete") and the driver
         * sleeps with interrupts asked for. */
        if (d->napi_left > 0 && !waiting_on_device(d))
            d->napi_left = 0;
        if (d->p->mode == REFDRV_MODE_POLL || d->napi_left > 0) {
            uint64_t polls = d->h->poll_idle != NULL ? d->h->poll_idle(d->h->ctx, next_poll_deadline(d))
                                                      : 0;
            if (polls > 0) {
                /* Slept through polls that could only find the rings as they are. */
                d->st->polls_empty += polls;
                frozen_polls = 0;
                continue;
            }
            d->st->polls_empty++;
            d->h->cpu_work(d->h->ctx, VS_HOST_WORK_POLL, 1);
            /* Liveness guard for a cost model that charges nothing for a poll: simulated
             * time must move or the device never runs. Not an interrupt wait in spirit:
             * queue interrupts stay suppressed. */
            if (now_ps(d) == now) {
                if (++frozen_polls >= FROZEN_POLLS_MAX) {
                    frozen_polls = 0;
                    v = d->h->wait_interrupt(d->h->ctx, 1);
                    if (v >= 0)
                        d->st->interrupts++;
                    if (rd_interrupt_is_config(d, v) && rd_check_status(d) != REFDRV_OK)
                        return REFDRV_DEVICE_ERROR;
                }
            } else {
                frozen_polls = 0;
            }
            continue;
        }

        v = sleep_until_work(d, now);
        if (v >= 0) {
            d->st->interrupts++;
            if (d->p->mode == REFDRV_MODE_NAPI)
                d->napi_left = d->napi_budget;
            /* A configuration change (rd_interrupt_is_config): the device sets
             * NEEDS_RESET and then "MUST send a device configuration change
             * notification". */
            if (rd_interrupt_is_config(d, v) && rd_check_status(d) != REFDRV_OK)
                return REFDRV_DEVICE_ERROR;
        }
    }
}

/* MRG_RXBUF negotiated: a reassembly area per pair for the largest frame this driver
 * sends (it only expects its own frames back) and its header, in the driver's own
 * memory after everything the device reaches. A merged frame longer than that is bad. */
enum refdrv_result rd_mrg_setup(struct refdrv *d)
{
    const uint32_t room = NET_HDR_BYTES + d->max_frame;

    if (!d->f_mrg_rxbuf)
        return REFDRV_OK;
    for (uint16_t k = 0; k < d->pairs; k++) {
        struct rx_frame *f = &d->rx_frame[k];
        f->data = rd_host_alloc(d, room, AREA_ALIGN_BYTES);
        if (f->data == NULL)
            return rd_give_up(d, REFDRV_NO_MEMORY);
        f->room = room;
    }
    return REFDRV_OK;
}

/* ---- parameters ---- */

/* The length sent for a requested frame size: plain or flow frame limits. */
static uint32_t frame_len_of(const struct refdrv_params *p, uint32_t requested)
{
    return p->flows_count != 0 ? traffic_flow_frame_len(requested) : traffic_frame_len(requested);
}

void rd_traffic_setup(struct refdrv *d)
{
    const struct refdrv_params *p = d->p;
    uint32_t kinds = p->frame_sizes_count;

    if (kinds > REFDRV_FRAME_SIZES_MAX)
        kinds = REFDRV_FRAME_SIZES_MAX;
    d->frame_kinds = 0;
    d->max_frame = 0;
    for (uint32_t i = 0; i < kinds; i++) {
        uint32_t len = frame_len_of(p, p->frame_sizes_bytes[i]);
        d->frame_len[d->frame_kinds++] = len;
        if (len > d->max_frame)
            d->max_frame = len;
    }
    if (d->frame_kinds == 0) {
        d->frame_len[0] = frame_len_of(p, DEFAULT_FRAME_BYTES);
        d->frame_kinds = 1;
        d->max_frame = d->frame_len[0];
    }
    d->rx_buf_bytes = p->rx_buffer_bytes != 0 ? p->rx_buffer_bytes
                      : p->mrg_rxbuf          ? DEFAULT_MRG_RX_BUFFER_BYTES
                                              : DEFAULT_RX_BUFFER_BYTES;
    if (d->rx_buf_bytes < NET_HDR_BYTES)
        d->rx_buf_bytes = NET_HDR_BYTES; /* the device always writes the header */
    /* rate in frames per microsecond: one frame every 1e6 / rate picoseconds. */
    d->tx_interval_ps = p->tx_rate_mpps > 0.0 ? 1e6 / p->tx_rate_mpps : 0.0;
    traffic_rng_seed(&d->size_rng, p->seed, 0x73697a65ull /* "size" */);
    if (p->frame_size_mix == REFDRV_SIZES_IMIX) {
        d->frame_len[0] = TRAFFIC_IMIX_SMALL_BYTES;
        d->frame_len[1] = TRAFFIC_IMIX_MEDIUM_BYTES;
        d->frame_len[2] = TRAFFIC_IMIX_LARGE_BYTES;
        d->frame_kinds = 3;
        d->max_frame = TRAFFIC_IMIX_LARGE_BYTES;
    }
    d->napi_budget = p->napi_budget_frames != 0 ? p->napi_budget_frames : DEFAULT_NAPI_BUDGET_FRAMES;
    d->idle_timeout_ps = (p->idle_timeout_ns != 0 ? p->idle_timeout_ns : DEFAULT_IDLE_TIMEOUT_NS);
    d->idle_timeout_ps = d->idle_timeout_ps > UINT64_MAX / PS_PER_NS ? UINT64_MAX
                                                                     : d->idle_timeout_ps * PS_PER_NS;
}
