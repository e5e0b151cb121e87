/* virtio_net.c -- the virtio-net personality: queue roles, the RX FIFOs (one per pair),
 * receive steering (automatic or RSS) and the backend, the control queue, coalescing
 * parameters, the device configuration. */
#include "virtio_net.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* The transport's decision causes are coalesce.h's decisions (0: hold). */
_Static_assert(COAL_NOTHING == PT_DECIDE_HOLD, "hold is coal's nothing");
_Static_assert(COAL_NOTIFY_EVERY == PT_DECIDE_EVERY, "every is coal's every");

/* ---- Features ("Network Device / Feature bits") ---- */
vs_features vnet_features(const struct vnet_params *p)
{
    static const unsigned bits[] = {
        VIRTIO_NET_F_MAC_BIT,       VIRTIO_NET_F_CTRL_VQ_BIT,      VIRTIO_NET_F_STATUS_BIT,
        VIRTIO_NET_F_NOTF_COAL_BIT, VIRTIO_NET_F_VQ_NOTF_COAL_BIT,
    };
    vs_features f;
    memset(&f, 0, sizeof f);
    for (size_t i = 0; i < sizeof bits / sizeof bits[0]; i++)
        vs_feature_set(&f, bits[i]);
    if (p->queue_pairs > 1)
        vs_feature_set(&f, VIRTIO_NET_F_MQ_BIT);
    if (p->mrg_rxbuf)
        vs_feature_set(&f, VIRTIO_NET_F_MRG_RXBUF_BIT);
    if (p->rss)
        vs_feature_set(&f, VIRTIO_NET_F_RSS_BIT);
    return f;
}

/* Device-specific feature dependencies checked at FEATURES_OK ("Network Device /
 * Feature bits / Feature bit requirements"): of the features this device offers,
 * VIRTIO_NET_F_NOTF_COAL, VIRTIO_NET_F_VQ_NOTF_COAL, VIRTIO_NET_F_MQ and
 * VIRTIO_NET_F_RSS require VIRTIO_NET_F_CTRL_VQ (their commands travel on the control
 * queue); a driver that accepts one without it does not get FEATURES_OK. */
static bool net_features_ok(void *ctx, const vs_features *drv)
{
    (void)ctx;
    const bool ctrl_vq = vs_feature_has(drv, VIRTIO_NET_F_CTRL_VQ_BIT);
    return ctrl_vq || (!vs_feature_has(drv, VIRTIO_NET_F_NOTF_COAL_BIT) &&
                       !vs_feature_has(drv, VIRTIO_NET_F_VQ_NOTF_COAL_BIT) &&
                       !vs_feature_has(drv, VIRTIO_NET_F_MQ_BIT) &&
                       !vs_feature_has(drv, VIRTIO_NET_F_RSS_BIT));
}

/* ---- Device configuration ("Device configuration layout"): read-only ---- */
static uint64_t net_config_read(void *ctx, uint32_t off, unsigned size)
{
    const struct vnet *n = ctx;
    uint64_t v = 0;
    if (size <= 8 && off + size <= sizeof n->netcfg)
        memcpy(&v, (const uint8_t *)&n->netcfg + off, size);
    return v;
}

/* Is qi a data queue: receiveqN at 2(N-1), transmitqN at 2(N-1)+1, below
 * 2 * max_virtqueue_pairs and not the control queue ("Virtqueues")? */
static bool is_data_queue(const struct vnet *n, uint16_t qi)
{
    return qi < 2u * n->pairs_max && qi != vnet_ctrl_queue(n);
}

/* The control queue exists only with VIRTIO_NET_F_CTRL_VQ ("Virtqueues"); the queue at
 * 2 * max_virtqueue_pairs is no data queue, so it exists only as the control queue. */
static bool net_queue_exists(void *ctx, uint16_t q)
{
    const struct vnet *n = ctx;
    if (q == vnet_ctrl_queue(n))
        return pt_negotiated(n->tp, VIRTIO_NET_F_CTRL_VQ_BIT);
    return is_data_queue(n, q);
}

static bool is_tx_queue(const struct vnet *n, uint16_t qi)
{
    return is_data_queue(n, qi) && qi % 2u == 1u;
}

static bool is_rx_queue(const struct vnet *n, uint16_t qi)
{
    return is_data_queue(n, qi) && qi % 2u == 0u;
}

/* "Virtqueues": N = max_virtqueue_pairs if VIRTIO_NET_F_MQ or VIRTIO_NET_F_RSS is
 * negotiated, else 1; the control queue is 2N. Fixed when the driver sets FEATURES_OK
 * (pt_device.queue_role, before the driver sets up its queues), and kept through a reset
 * until the next FEATURES_OK (the numbering only matters with features negotiated; the
 * statistics of a run name the queues the driver used). Before the first: the offered
 * numbering, N = max_virtqueue_pairs. */
static void net_number_queues(struct vnet *n)
{
    if (!(n->tp->vpci.status & VIRTIO_STATUS_FEATURES_OK))
        return;
    const bool all_pairs = pt_negotiated(n->tp, VIRTIO_NET_F_MQ_BIT) ||
                           pt_negotiated(n->tp, VIRTIO_NET_F_RSS_BIT);
    n->ctrl_q = (uint16_t)(2u * (all_pairs ? n->pairs_max : 1u));
}

/* A frame being spread over buffers of qi loses them with the queue: it stays at the
 * head of the FIFO and starts again in the next buffers. */
static void rx_merge_clear(struct vnet *n, uint16_t qi)
{
    memset(&n->rx_merge[qi], 0, sizeof n->rx_merge[qi]);
    n->rx_group_open[qi] = false;
}

static void tx_watch_start(struct vnet *n, uint16_t qi);
static void tx_watch_stop(struct vnet *n, uint16_t qi);

static void net_queue_enabled(void *ctx, uint16_t qi)
{
    struct vnet *n = ctx;
    n->fifo_reserved[qi] = 0;
    rx_merge_clear(n, qi);
    tx_watch_start(n, qi);
    /* "Upon disabling and re-enabling a transmit [receive] virtqueue, the device MUST set
     * the coalescing parameters of the virtqueue to those configured through the
     * VIRTIO_NET_CTRL_NOTF_COAL_TX_SET [RX_SET] command, or ... to 0": the class values
     * are zero until a TX_SET / RX_SET and after a reset. */
    static const struct virtio_net_ctrl_coal none;
    coal_enable(&n->coal[qi], is_tx_queue(n, qi)   ? &n->coal_tx_set
                              : is_rx_queue(n, qi) ? &n->coal_rx_set
                                                   : &none);
}

static void net_queue_reset(void *ctx, uint16_t qi)
{
    struct vnet *n = ctx;
    n->fifo_reserved[qi] = 0;
    rx_merge_clear(n, qi);
    tx_watch_stop(n, qi);
}

static void net_reset(void *ctx)
{
    struct vnet *n = ctx;
    for (uint16_t i = 0; i < n->pairs_max; i++)
        net_fifo_clear(&n->fifo[i]);
    for (uint16_t i = 0; i < n->num_queues; i++)
        rx_merge_clear(n, i);
    /* "Upon reset, a device MUST initialize all coalescing parameters to 0." Window
     * numbers keep counting, so a platform timer from before the reset stays stale. */
    for (uint16_t i = 0; i < n->num_queues; i++)
        coal_reset(&n->coal[i]);
    memset(&n->coal_tx_set, 0, sizeof n->coal_tx_set);
    memset(&n->coal_rx_set, 0, sizeof n->coal_rx_set);
    memset(&n->netcfg, 0, sizeof n->netcfg);
    memcpy(n->netcfg.mac, n->p.mac, sizeof n->netcfg.mac);
    n->netcfg.status = VIRTIO_NET_S_LINK_UP_MASK;
    n->netcfg.max_virtqueue_pairs = n->pairs_max;
    /* rss_max_key_size, rss_max_indirection_table_length and supported_hash_types exist
     * with VIRTIO_NET_F_RSS offered ("Device configuration layout"); "Initially the
     * device has all hash types disabled" and no configuration in force. */
    if (n->rss != NULL) {
        n->netcfg.rss_max_key_size = n->rss_lim.max_key_bytes;
        n->netcfg.rss_max_indirection_table_length = n->rss_lim.max_table_len;
        n->netcfg.supported_hash_types = n->rss_lim.supported_hash_types;
        rss_reset(n->rss);
    }
    /* "Device Initialization": only receiveq1 and transmitq1 are used until the driver
     * sends VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET. */
    n->pairs = 1;
    memset(n->tx_watch, 0, sizeof n->tx_watch);
    n->watch_epoch++;
}

static const struct pt_role *net_queue_role(void *ctx, uint16_t q);

const struct pt_device vnet_device = {
    .features_ok = net_features_ok,
    .config_read = net_config_read,
    .config_write = NULL, /* virtio-net's configuration is read-only for the driver */
    .queue_exists = net_queue_exists,
    .queue_enabled = net_queue_enabled,
    .queue_reset = net_queue_reset,
    .reset = net_reset,
    .queue_role = net_queue_role,
};

bool vnet_init(struct vnet *n, const struct vnet_params *p, struct pt *tp, uint32_t engines)
{
    memset(n, 0, sizeof *n);
    n->p = *p;
    n->tp = tp;
    n->pairs_max = p->queue_pairs == 0 ? 1u : p->queue_pairs;
    n->num_queues = vnet_queues(n->pairs_max);
    n->ctrl_q = (uint16_t)(n->num_queues - 1u);
    n->pairs = 1;
    n->rss_lim = rss_limits_default();
    /* The longest command the device can accept: COAL_VQ_SET's, or RSS_CONFIG's with
     * the longest table and key it offers (a longer one breaks a limit, which
     * rss_config_check finds before it needs the bytes past these). */
    n->ctrl_cap = VIRTIO_NET_CTRL_HDR_BYTES + (uint32_t)sizeof(struct virtio_net_ctrl_coal_vq);
    if (p->rss) {
        const uint32_t rss_cap = VIRTIO_NET_CTRL_HDR_BYTES +
                                 (uint32_t)sizeof(struct virtio_net_rss_config_head) +
                                 2u * n->rss_lim.max_table_len + VIRTIO_NET_RSS_CONFIG_TAIL_BYTES +
                                 n->rss_lim.max_key_bytes;
        if (rss_cap > n->ctrl_cap)
            n->ctrl_cap = rss_cap;
    }
    const uint32_t rx_frame_bytes = p->max_frame_bytes > NET_ANSWER_MIN_FRAME ? p->max_frame_bytes
                                                                            : NET_ANSWER_MIN_FRAME;
    n->fifo = calloc(n->pairs_max, sizeof *n->fifo);
    n->rx_frame = malloc(rx_frame_bytes);
    n->ctrl_buf = malloc(n->ctrl_cap);
    n->rss = p->rss ? malloc(sizeof *n->rss) : NULL;
    bool ok = n->fifo && n->rx_frame && n->ctrl_buf && (!p->rss || n->rss);
    for (uint16_t i = 0; ok && i < n->pairs_max; i++)
        ok = net_fifo_init(&n->fifo[i], p->rx_fifo_frames, p->max_frame_bytes);
    if (n->rss)
        rss_reset(n->rss);
    n->slot = calloc(n->num_queues, sizeof *n->slot);
    ok = ok && n->slot;
    for (unsigned q = 0; ok && q < n->num_queues; q++) {
        for (unsigned k = 0; k < engines && k < PT_ENGINES_MAX; k++) {
            n->slot[q][k].frame_buf = malloc(sizeof(struct virtio_net_hdr) + p->max_frame_bytes);
            ok = ok && n->slot[q][k].frame_buf;
        }
    }
    if (!ok)
        vnet_fini(n);
    return ok;
}

void vnet_fini(struct vnet *n)
{
    for (uint16_t i = 0; n->fifo && i < n->pairs_max; i++)
        net_fifo_fini(&n->fifo[i]);
    free(n->fifo);
    n->fifo = NULL;
    for (unsigned q = 0; n->slot && q < n->num_queues; q++)
        for (unsigned k = 0; k < PT_ENGINES_MAX; k++)
            free(n->slot[q][k].frame_buf);
    free(n->slot);
    n->slot = NULL;
    free(n->rx_frame);
    free(n->ctrl_buf);
    free(n->rss);
    n->rx_frame = n->ctrl_buf = NULL;
    n->rss = NULL;
}

uint32_t vnet_fifo_frames(const struct vnet *n)
{
    uint32_t frames = 0;
    for (uint16_t i = 0; i < n->pairs_max; i++)
        frames += n->fifo[i].count;
    return frames;
}

uint32_t vnet_pair_fifo_frames(const struct vnet *n, uint16_t pair)
{
    return pair < n->pairs_max ? n->fifo[pair].count : 0;
}

bool vnet_pair_fifo_full(const struct vnet *n, uint16_t pair)
{
    return pair < n->pairs_max && net_fifo_full(&n->fifo[pair]);
}

/* Queue pair K (0-based) is receiveq(K+1) at virtqueue 2K and transmitq(K+1) at 2K+1. */
static uint16_t pair_of(uint16_t qi) { return (uint16_t)(qi / 2u); }
static uint16_t rx_queue_of(uint16_t pair) { return (uint16_t)(2u * pair); }
static uint16_t tx_queue_of(uint16_t pair) { return (uint16_t)(2u * pair + 1u); }

/* Is qi's queue pair among those the driver enabled ("Automatic receive steering in
 * multiqueue mode": "The device MUST NOT queue packets on receive queues greater than
 * virtqueue_pairs"; the transmit queues of those pairs are not used either)? A queue
 * of a pair not in use takes no buffer: IDLE, as if its ring were empty. */
static bool pair_in_use(const struct vnet *n, uint16_t qi)
{
    return pair_of(qi) < n->pairs;
}

/* ---- Transmit queues of pairs not in use (TX_QUEUE_NOT_IN_USE) ----
 * "Automatic receive steering in multiqueue mode", driver normative: "The driver MUST
 * queue packets only on any transmitq1 before the VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET
 * command" and "MUST NOT queue packets on transmit queues greater than virtqueue_pairs
 * once it has placed the VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET command in the available
 * ring". The device tolerates the bug (such buffers wait, as every buffer of a pair
 * not in use does, until a VQ_PAIRS_SET puts the pair in use) and reports it, only when
 * it can prove it:
 *  - what it watches: with VIRTIO_NET_F_MQ negotiated, the registers' front end (not a
 *    register-less one: it sets the pairs itself, vnet_fe_set_pairs) and automatic
 *    steering in force (under RSS, max_tx_vq only informs: no MUST), every enabled
 *    transmit queue of a pair not in use;
 *  - the allowed end: where the driver's available buffers ended when the device saw
 *    the pair leave use. After reset, or when the queue is enabled while its pair is not
 *    in use, that is the device's own position (the ring starts empty). When an
 *    accepted VQ_PAIRS_SET takes the pair out of use, the device reads the ring then
 *    (vq.h driver_end: split one 2-byte read, packed a scan of the descriptors), on
 *    this path only: a buffer made available before that read may have been queued
 *    before the command was placed, which is allowed, so it never counts;
 *  - when it looks: when the driver notifies the queue (the role's take, or the
 *    platform's look_parked for a queue whose engines sleep), not otherwise: a driver
 *    that queues there without notifying goes unseen. The look takes the end from the
 *    notification's NOTIFICATION_DATA when the ring keeps one (no DMA), else reads it;
 *  - what proves it: buffers past the allowed end, and no control command the driver
 *    placed before them still to be processed (the control queue's ring read after the
 *    end, nothing taken and unfinished): a VQ_PAIRS_SET the driver placed but the device
 *    has not processed yet may allow them. A command, reset or queue change while the
 *    look waits for its DMA makes the answer stale (watch_epoch, generations): nothing
 *    is reported. The allowed end then moves to what was seen, so each buffer counts
 *    once. The record: the transmit queue, the buffers past the end (seen) and the
 *    pairs in use (expected). */
static bool tx_watch_applies(const struct vnet *n)
{
    return pt_negotiated(n->tp, VIRTIO_NET_F_MQ_BIT) && !n->tp->fe_attached &&
           !(n->rss != NULL && n->rss->configured);
}

/* Queue qi was enabled: a transmit queue of a pair not in use is watched from its
 * ring's start. */
static void tx_watch_start(struct vnet *n, uint16_t qi)
{
    struct vnet_tx_watch *w = &n->tx_watch[qi];
    const struct pt_queue *q = &n->tp->q[qi];
    w->armed = is_tx_queue(n, qi) && !pair_in_use(n, qi) && tx_watch_applies(n);
    w->end = (uint16_t)q->ops->position(&q->ring);
    w->kicks = q->kicks;
    n->watch_epoch++;
}

static void tx_watch_stop(struct vnet *n, uint16_t qi)
{
    n->tx_watch[qi].armed = false;
    n->watch_epoch++;
}

/* Transmit queue qi's pair just left use (or the watch restarts under automatic
 * steering): the allowed end is where the driver's buffers end now, read through g
 * (the control command's DMA path). A queue not live is watched from its enable. */
static void tx_watch_capture(struct vnet *n, uint16_t qi, const struct vs_guest_ops *g)
{
    struct pt *tp = n->tp;
    const struct pt_queue *q = &tp->q[qi];
    n->tx_watch[qi].armed = false;
    if (!pt_queue_live(tp, qi))
        return;
    const uint32_t gen = tp->generation[qi];
    uint16_t end = 0;
    const enum vs_dma_status s = q->ops->driver_end(&q->ring, g, (uint16_t)q->ops->position(&q->ring), &end);
    if (tp->generation[qi] != gen) /* reset or enabled meanwhile: that set the watch */
        return;
    if (s == VS_DMA_OK && q->ops->avail_ahead(&q->ring, end) <= q->cfg.size) {
        n->tx_watch[qi].armed = true;
        n->tx_watch[qi].end = end;
    }
    n->watch_epoch++;
}

/* The pairs in use changed from `before` (RSS steering in force before: was_rss).
 * Transmit queues of pairs now in use are not watched; those of pairs out of use are,
 * from now (a pair that just left use, every pair after RSS steering, a watch that
 * failed) or from their earlier end (a pair that stays out of use). g NULL: a front
 * end set the pairs (no watch). */
static void tx_watch_pairs_changed(struct vnet *n, uint16_t before, bool was_rss,
                                   const struct vs_guest_ops *g)
{
    n->watch_epoch++;
    for (uint16_t k = 0; k < n->pairs_max; k++) {
        const uint16_t qi = (uint16_t)(2u * k + 1u);
        if (k < n->pairs || g == NULL || !tx_watch_applies(n))
            n->tx_watch[qi].armed = false;
        else if (k < before || was_rss || !n->tx_watch[qi].armed)
            tx_watch_capture(n, qi, g);
    }
}

/* Has the device processed every control command the driver placed so far? Nothing
 * taken and unfinished, and the ring read through g shows nothing past the device's
 * position. False when it cannot tell (the control queue not live, a failed read, the
 * queue changed meanwhile). */
static bool ctrl_settled(struct vnet *n, const struct vs_guest_ops *g)
{
    struct pt *tp = n->tp;
    const uint16_t cq = vnet_ctrl_queue(n);
    if (cq >= tp->num_queues || !pt_queue_live(tp, cq))
        return false;
    const uint32_t gen = tp->generation[cq];
    const struct pt_queue *q = &tp->q[cq];
    uint16_t end = 0;
    if (q->ops->driver_end(&q->ring, g, (uint16_t)q->ops->position(&q->ring), &end) != VS_DMA_OK ||
        tp->generation[cq] != gen || q->ops->avail_ahead(&q->ring, end) != 0)
        return false;
    for (uint32_t k = 0; k < tp->engines; k++)
        if (tp->slot[cq][k].busy && tp->slot[cq][k].generation == gen)
            return false;
    return true;
}

/* The driver notified transmit queue qi while its pair is not in use: look, through g
 * (qi's DMA path), whether it queued buffers past the allowed end. Only once per
 * notification count, so repeated takes of a parked queue read nothing. */
static void tx_watch_look(struct vnet *n, uint16_t qi, const struct vs_guest_ops *g)
{
    struct pt *tp = n->tp;
    struct vnet_tx_watch *w = &n->tx_watch[qi];
    const struct pt_queue *q = &tp->q[qi];
    if (w->kicks == q->kicks)
        return;
    w->kicks = q->kicks;
    if (!w->armed || pair_in_use(n, qi) || !tx_watch_applies(n) || !pt_queue_live(tp, qi))
        return;
    const uint32_t epoch = n->watch_epoch, gen = tp->generation[qi];
    uint16_t end = 0;
    if (!q->ops->hinted_end(&q->ring, &end) &&
        q->ops->driver_end(&q->ring, g, w->end, &end) != VS_DMA_OK)
        return;
    if (n->watch_epoch != epoch || tp->generation[qi] != gen)
        return;
    const uint32_t ahead = q->ops->avail_ahead(&q->ring, end);
    const uint32_t allowed = q->ops->avail_ahead(&q->ring, w->end);
    if (ahead > q->cfg.size || allowed > q->cfg.size || ahead <= allowed)
        return;
    if (!ctrl_settled(n, g) || n->watch_epoch != epoch || tp->generation[qi] != gen)
        return;
    vs_conf_report(&tp->vpci.conf, VS_RULE_TX_QUEUE_NOT_IN_USE, qi, ahead - allowed, n->pairs);
    w->end = end;
}

/* pt_role.look_parked of the transmit queues. */
static void tx_look_parked(void *ctx, uint16_t qi, const struct vs_guest_ops *ops)
{
    struct vnet *n = ctx;
    if (!pair_in_use(n, qi))
        tx_watch_look(n, qi, ops);
}

/* "No pair": vnet_steer drops the frame. */
#define VNET_NO_PAIR 0xffffu

/* Which pair's FIFO a frame the device receives goes to: the one steering decision for
 * every frame (loopback's, the responder's answers). tx_qi is the transmit queue the
 * frame (or the request it answers) came from.
 *  - RSS configured ("RSS processing"): the receive queue rss_steer names, by the
 *    Toeplitz hash over the enabled hash types (indirection_table[hash & mask]) or
 *    unclassified_queue; "If the destination receive queue is being reset", here not
 *    enabled, "the device MUST drop the packet".
 *  - Otherwise ("Automatic receive steering in multiqueue mode"): "when a packet is
 *    transmitted on transmitqX, the device [queues] the reply on receiveqX", and
 *    nothing on the queues of pairs not in use ("The device MUST NOT queue packets on
 *    receive queues greater than virtqueue_pairs"): a transmit buffer taken before
 *    VQ_PAIRS_SET took its pair out of use is dropped.
 * Returns the pair (0-based) or VNET_NO_PAIR. */
static uint16_t vnet_steer(struct vnet *n, uint16_t tx_qi, const uint8_t *frame, uint32_t len)
{
    if (n->rss != NULL && n->rss->configured) {
        struct rss_steering st;
        rss_steer(n->rss, frame, len, &st);
        if (st.report != VIRTIO_NET_HASH_REPORT_NONE)
            n->stats.rx_steered_hash++;
        else
            n->stats.rx_steered_unclassified++;
        /* The configuration named only enabled queues of pairs in use; a queue reset
         * since then is "being reset". */
        if (st.rx_queue >= n->pairs || !n->tp->q[rx_queue_of(st.rx_queue)].enabled)
            return VNET_NO_PAIR;
        return st.rx_queue;
    }
    return pair_in_use(n, tx_qi) ? pair_of(tx_qi) : (uint16_t)VNET_NO_PAIR;
}

/* The backend's frame for one transmitted frame of tx_qi (loopback: the frame itself;
 * responder: its answer), steered to a pair's FIFO; that pair's receive queue is
 * marked for a wake-up. A frame with no pair, or whose FIFO is full (only under RSS:
 * the transmit side reserves places in its own pair's FIFO), is dropped. */
static void vnet_receive(struct vnet *n, uint16_t tx_qi, const uint8_t *frame, uint32_t len)
{
    const uint32_t got = net_backend_receive(n->p.backend, &n->p.responder, frame, len,
                                             n->p.max_frame_bytes, n->rx_frame, &n->stats.backend);
    if (got == 0)
        return;
    const uint16_t pair = vnet_steer(n, tx_qi, n->rx_frame, got);
    if (pair == VNET_NO_PAIR || !net_fifo_push(&n->fifo[pair], n->rx_frame, got)) {
        n->stats.rx_steer_dropped++;
        return;
    }
    pt_wake(n->tp, rx_queue_of(pair));
}

/* Receive queue rx_qi took the frame at the head of its pair's FIFO: the place is free
 * for the pair's transmit queue. */
static void rx_fifo_pop(struct vnet *n, uint16_t rx_qi)
{
    net_fifo_pop(&n->fifo[pair_of(rx_qi)]);
    pt_wake(n->tp, tx_queue_of(pair_of(rx_qi)));
}

/* Transmit ("Network Device / Device Operation / Transmitting Packets"): the buffer is
 * a virtio-net header followed by the frame, all device-readable. */
static enum pt_step tx_take(void *ctx, uint16_t qi, unsigned k, struct pt_slot *sl, struct pt_work *w)
{
    struct vnet *n = ctx;
    struct vnet_slot *ns = &n->slot[qi][k];
    ns->drop = false;
    ns->len = 0;
    if (!pair_in_use(n, qi)) {
        tx_watch_look(n, qi, &sl->gate.ops);
        return PT_STEP_IDLE;
    }
    /* Notifications up to here came while the pair was in use. */
    n->tx_watch[qi].kicks = n->tp->q[qi].kicks;
    /* Loopback applies back-pressure instead of dropping; buffers in flight hold the
     * FIFO places they will fill. */
    if (n->p.backend != VDEV_BACKEND_SINK &&
        n->fifo[pair_of(qi)].count + n->fifo_reserved[qi] >= n->p.rx_fifo_frames)
        return PT_STEP_BLOCKED;
    enum pt_step st = pt_pop(n->tp, qi, sl, w);
    if (st != PT_STEP_DONE)
        return st;
    enum vs_reason bad = net_tx_buffer_check(sl->e.readable_bytes, sl->e.writable_bytes,
                                             n->p.max_frame_bytes);
    if (bad != VS_REASON_NONE)
        return pt_fail(n->tp, qi, bad);
    if (n->p.backend != VDEV_BACKEND_SINK)
        n->fifo_reserved[qi]++;
    return PT_STEP_DONE;
}

static enum pt_step tx_move(void *ctx, uint16_t qi, unsigned k, struct pt_slot *sl, struct pt_work *w)
{
    struct vnet *n = ctx;
    struct vnet_slot *ns = &n->slot[qi][k];
    const uint32_t hdr = sizeof(struct virtio_net_hdr);
    uint32_t copied = 0;
    enum vs_dma_status s = pt_read_segments(&sl->gate.ops, sl->segs, sl->e.nsegs, ns->frame_buf,
                                         hdr + n->p.max_frame_bytes, &copied);
    if (s != VS_DMA_OK)
        return pt_dma_failed(n->tp, qi, sl, s);
    ns->len = copied;
    w->bytes_read += copied;
    w->buffers++;
    w->frames++;
    n->stats.tx_frames++;
    n->stats.tx_bytes += copied - hdr;
    return PT_STEP_DONE;
}

static void tx_finish(void *ctx, uint16_t qi, unsigned k, struct pt_slot *sl)
{
    struct vnet *n = ctx;
    const struct vnet_slot *ns = &n->slot[qi][k];
    const uint32_t hdr = sizeof(struct virtio_net_hdr);
    const uint32_t frame_len = ns->len - hdr;
    /* Loopback and responder hold the FIFO place reserved when the buffer was taken. */
    if (n->p.backend == VDEV_BACKEND_SINK) {
        n->stats.backend.sink_frames++;
    } else {
        n->fifo_reserved[qi]--;
        vnet_receive(n, qi, ns->frame_buf + hdr, frame_len);
    }
    /* Transmit buffers are returned with a used length of 0: the device wrote nothing. */
    sl->written = 0;
}

/* Receive the next frame from the FIFO into the next receive buffer ("Network Device /
 * Device Operation / Receiving Packets"). Without VIRTIO_NET_F_MRG_RXBUF the frame
 * must fit in one buffer and num_buffers is 1 ("Processing of Incoming Packets":
 * "If VIRTIO_NET_F_MRG_RXBUF has not been negotiated, the device MUST set num_buffers
 * to 1"); a larger one is dropped. With it, see rx_take_merged. */
static enum pt_step rx_take_merged(struct vnet *n, uint16_t qi, struct vnet_slot *ns,
                                   struct pt_slot *sl, const uint8_t *payload, uint32_t len);

static enum pt_step rx_take(void *ctx, uint16_t qi, unsigned k, struct pt_slot *sl, struct pt_work *w)
{
    struct vnet *n = ctx;
    struct vnet_slot *ns = &n->slot[qi][k];
    ns->drop = false;
    ns->len = 0;
    ns->merged = false;
    ns->off = 0;
    ns->group_open = false;
    ns->num_buffers = 0;
    if (!pair_in_use(n, qi) || n->fifo[pair_of(qi)].count == 0)
        return PT_STEP_IDLE;
    enum pt_step st = pt_pop(n->tp, qi, sl, w);
    if (st == PT_STEP_IDLE) {
        n->stats.rx_no_buffer++;
        return PT_STEP_BLOCKED;
    }
    if (st != PT_STEP_DONE)
        return st;
    /* With VIRTIO_NET_F_MRG_RXBUF "each buffer MUST be at least size of struct
     * virtio_net_hdr" ("Setting Up Receive Buffers"), and without it a smaller one
     * cannot hold the header either: RX_BUFFER_TOO_SMALL. */
    enum vs_reason bad = net_rx_buffer_check(sl->e.readable_bytes, sl->e.writable_bytes);
    if (bad != VS_REASON_NONE)
        return pt_fail(n->tp, qi, bad);
    const uint32_t hdr = sizeof(struct virtio_net_hdr);

    const uint8_t *payload;
    const struct net_frame *f = net_fifo_head(&n->fifo[pair_of(qi)], &payload);
    uint32_t len = f->len;
    if (pt_negotiated(n->tp, VIRTIO_NET_F_MRG_RXBUF_BIT) &&
        (n->rx_merge[qi].active || len > sl->e.writable_bytes - hdr))
        return rx_take_merged(n, qi, ns, sl, payload, len);
    rx_fifo_pop(n, qi);
    ns->drop = len > sl->e.writable_bytes - hdr;
    if (ns->drop) {
        /* Frame does not fit: it is dropped and the buffer returned unused. */
        n->stats.rx_dropped_too_big++;
        ns->len = 0;
        return PT_STEP_DONE;
    }
    struct virtio_net_hdr h;
    memset(&h, 0, sizeof h);
    h.num_buffers = 1;
    memcpy(ns->frame_buf, &h, hdr);
    memcpy(ns->frame_buf + hdr, payload, len);
    ns->len = hdr + len;
    return PT_STEP_DONE;
}

/* VIRTIO_NET_F_MRG_RXBUF, a frame larger than its first buffer ("Processing of
 * Incoming Packets"): it takes as many buffers as it needs, one per take, in ring
 * order; every buffer but the last is filled "completely up to the full length of each
 * buffer", each is its own used element with the bytes written, and the header in the
 * first counts them in num_buffers. The count is known only at the last buffer, so the
 * first buffer's move writes the bytes after the header's place and the last buffer's
 * move writes the header (disjoint bytes: moves may run in any order). "The device
 * MUST use all buffers used by a single receive packet together": the queue holds
 * publication (holds_publication) until the last buffer is pushed. The frame leaves
 * the FIFO at its last buffer; running out of buffers in between, it waits (BLOCKED,
 * as a frame with no buffer at all does). */
static enum pt_step rx_take_merged(struct vnet *n, uint16_t qi, struct vnet_slot *ns,
                                   struct pt_slot *sl, const uint8_t *payload, uint32_t len)
{
    const uint32_t hdr = sizeof(struct virtio_net_hdr);
    struct vnet_rx_merge *m = &n->rx_merge[qi];
    const uint32_t total = hdr + len;
    if (!m->active) {
        memset(m, 0, sizeof *m);
        m->active = true;
        /* The header's place: the first writable bytes of this buffer (it has at
         * least hdr of them). */
        uint32_t covered = 0;
        for (uint32_t i = 0; i < sl->e.nsegs && covered < hdr; i++) {
            if (!sl->segs[i].device_writable || sl->segs[i].len == 0)
                continue;
            m->hdr_segs[m->hdr_nsegs++] = sl->segs[i];
            covered += sl->segs[i].len;
        }
    }
    const uint32_t n_bytes = total - m->done < sl->e.writable_bytes ? total - m->done
                                                                     : sl->e.writable_bytes;
    /* frame_buf holds what goes at offset `off` of the buffer: the first buffer's
     * frame bytes after the header's place, a later buffer's from its start. */
    if (m->done == 0) {
        ns->off = hdr;
        memcpy(ns->frame_buf, payload, n_bytes - hdr);
        ns->len = n_bytes - hdr;
    } else {
        ns->off = 0;
        memcpy(ns->frame_buf, payload + (m->done - hdr), n_bytes);
        ns->len = n_bytes;
    }
    ns->merged = true;
    m->done += n_bytes;
    m->count++;
    if (m->done < total) {
        ns->group_open = true;
        return PT_STEP_DONE;
    }
    /* The last buffer: it carries the count and the header's place. */
    ns->num_buffers = m->count;
    ns->hdr_nsegs = m->hdr_nsegs;
    memcpy(ns->hdr_segs, m->hdr_segs, sizeof ns->hdr_segs);
    n->stats.rx_merged_frames++;
    memset(m, 0, sizeof *m);
    rx_fifo_pop(n, qi);
    return PT_STEP_DONE;
}

static enum pt_step rx_move(void *ctx, uint16_t qi, unsigned k, struct pt_slot *sl, struct pt_work *w)
{
    struct vnet *n = ctx;
    struct vnet_slot *ns = &n->slot[qi][k];
    w->buffers++;
    if (ns->drop)
        return PT_STEP_DONE;
    const uint32_t hdr = sizeof(struct virtio_net_hdr);
    enum vs_dma_status s;
    if (!ns->merged) {
        /* One frame in one buffer (with or without VIRTIO_NET_F_MRG_RXBUF). */
        s = pt_write_segments(&sl->gate.ops, sl->segs, sl->e.nsegs, ns->frame_buf, ns->len);
        if (s != VS_DMA_OK)
            return pt_dma_failed(n->tp, qi, sl, s);
        w->bytes_written += ns->len;
        w->frames++;
        n->stats.rx_frames++;
        n->stats.rx_bytes += ns->len - hdr;
        return PT_STEP_DONE;
    }
    /* A buffer of a frame spread over several (rx_take_merged). */
    s = pt_write_writable_at(&sl->gate.ops, sl->segs, sl->e.nsegs, ns->off, ns->frame_buf,
                             ns->len);
    if (s != VS_DMA_OK)
        return pt_dma_failed(n->tp, qi, sl, s);
    w->bytes_written += ns->len;
    n->stats.rx_bytes += ns->len;
    if (ns->num_buffers == 0)
        return PT_STEP_DONE;
    struct virtio_net_hdr h;
    memset(&h, 0, sizeof h);
    h.num_buffers = ns->num_buffers;
    s = pt_write_segments(&sl->gate.ops, ns->hdr_segs, ns->hdr_nsegs, (const uint8_t *)&h, hdr);
    if (s != VS_DMA_OK)
        return pt_dma_failed(n->tp, qi, sl, s);
    w->bytes_written += hdr;
    w->frames++;
    n->stats.rx_frames++;
    return PT_STEP_DONE;
}

static void rx_finish(void *ctx, uint16_t qi, unsigned k, struct pt_slot *sl)
{
    struct vnet *n = ctx;
    const struct vnet_slot *ns = &n->slot[qi][k];
    /* Used length: the bytes written into this buffer ("each used element's length"). */
    if (ns->drop)
        sl->written = 0;
    else if (!ns->merged)
        sl->written = ns->len;
    else
        sl->written = ns->off + ns->len;
    n->rx_group_open[qi] = ns->group_open;
}

static bool rx_holds_publication(const void *ctx, uint16_t qi)
{
    const struct vnet *n = ctx;
    return n->rx_group_open[qi];
}

/* ---- Control queue ("Network Device / Device Operation / Control Virtqueue") ---- */

/* Is vq an enabled transmit or receive queue ("Notifications Coalescing": vq_index
 * names one)? */
static bool net_data_queue_enabled(const struct vnet *n, uint16_t vq)
{
    return is_data_queue(n, vq) && n->tp->q[vq].enabled;
}

/* The VIRTIO_NET_CTRL_NOTF_COAL class. `data` holds the command-specific data the
 * driver wrote (len bytes; longer data than the command's structure is ignored past
 * it); `writable` is the size of the device-writable part. Returns the ack; a VQ_GET
 * answered OK leaves its structure in *result (*result_len = 8). "The device applies
 * the last coalescing parameters set for a virtqueue, regardless of the command used":
 * TX_SET / RX_SET and VQ_SET all write the queue's parameters in force. */
static uint8_t net_ctrl_notf_coal(struct vnet *n, uint8_t command, const uint8_t *data,
                                  uint32_t len, uint32_t writable,
                                  struct virtio_net_ctrl_coal *result, uint32_t *result_len)
{
    const bool coal = pt_negotiated(n->tp, VIRTIO_NET_F_NOTF_COAL_BIT);
    const bool vq_coal = pt_negotiated(n->tp, VIRTIO_NET_F_VQ_NOTF_COAL_BIT);
    struct virtio_net_ctrl_coal c;
    struct virtio_net_ctrl_coal_vq cv;

    switch (command) {
    case VIRTIO_NET_CTRL_NOTF_COAL_TX_SET:
    case VIRTIO_NET_CTRL_NOTF_COAL_RX_SET:
        /* The driver "MUST have negotiated the VIRTIO_NET_F_NOTF_COAL feature when
         * issuing" these; a command the device cannot apply gets VIRTIO_NET_ERR. */
        if (!coal)
            vs_conf_report(&n->tp->vpci.conf, VS_RULE_CTRL_COAL_NOT_NEGOTIATED, vnet_ctrl_queue(n),
                           command, VIRTIO_NET_F_NOTF_COAL_BIT);
        if (!coal || len < sizeof c)
            return VIRTIO_NET_ERR;
        memcpy(&c, data, sizeof c);
        /* TX_SET applies to every transmit queue, RX_SET to every receive queue. */
        if (command == VIRTIO_NET_CTRL_NOTF_COAL_TX_SET)
            n->coal_tx_set = c;
        else
            n->coal_rx_set = c;
        for (uint16_t q = command == VIRTIO_NET_CTRL_NOTF_COAL_TX_SET ? 1u : 0u;
             q < 2u * n->pairs_max; q += 2u)
            if (is_data_queue(n, q))
                coal_set(&n->coal[q], &c);
        return VIRTIO_NET_OK;
    case VIRTIO_NET_CTRL_NOTF_COAL_VQ_SET:
        /* "The device MUST respond to VIRTIO_NET_CTRL_NOTF_COAL_VQ_SET and
         * VIRTIO_NET_CTRL_NOTF_COAL_VQ_GET commands with VIRTIO_NET_ERR if the
         * designated virtqueue is not an enabled transmit or receive virtqueue";
         * "The device MUST ignore reserved". */
        if (!vq_coal)
            vs_conf_report(&n->tp->vpci.conf, VS_RULE_CTRL_COAL_NOT_NEGOTIATED, vnet_ctrl_queue(n),
                           command, VIRTIO_NET_F_VQ_NOTF_COAL_BIT);
        if (!vq_coal || len < sizeof cv)
            return VIRTIO_NET_ERR;
        memcpy(&cv, data, sizeof cv);
        if (!net_data_queue_enabled(n, cv.vq_index)) {
            vs_conf_report(&n->tp->vpci.conf, VS_RULE_CTRL_COAL_VQ_INDEX, vnet_ctrl_queue(n),
                           cv.vq_index, 0);
            return VIRTIO_NET_ERR;
        }
        coal_set(&n->coal[cv.vq_index], &cv.coal);
        return VIRTIO_NET_OK;
    case VIRTIO_NET_CTRL_NOTF_COAL_VQ_GET:
        /* vq_index and reserved come from the driver; the device writes the
         * struct virtio_net_ctrl_coal, which needs 8 writable bytes before the ack. */
        if (!vq_coal)
            vs_conf_report(&n->tp->vpci.conf, VS_RULE_CTRL_COAL_NOT_NEGOTIATED, vnet_ctrl_queue(n),
                           command, VIRTIO_NET_F_VQ_NOTF_COAL_BIT);
        if (!vq_coal || len < VIRTIO_NET_CTRL_COAL_VQ_IN_BYTES ||
            writable < sizeof *result + 1u)
            return VIRTIO_NET_ERR;
        memcpy(&cv, data, VIRTIO_NET_CTRL_COAL_VQ_IN_BYTES);
        if (!net_data_queue_enabled(n, cv.vq_index)) {
            vs_conf_report(&n->tp->vpci.conf, VS_RULE_CTRL_COAL_VQ_INDEX, vnet_ctrl_queue(n),
                           cv.vq_index, 0);
            return VIRTIO_NET_ERR;
        }
        *result = n->coal[cv.vq_index].p;
        *result_len = sizeof *result;
        return VIRTIO_NET_OK;
    default:
        return VIRTIO_NET_ERR;
    }
}

/* The conformance rule an RSS_CONFIG / HASH_CONFIG refusal breaks (rss.h names the
 * exact error; the record carries its values). */
static enum vs_rule rss_rule(enum rss_error e)
{
    switch (e) {
    case RSS_ERR_NOT_NEGOTIATED:
    case RSS_ERR_HASH_REPORT_NOT_NEGOTIATED:
        return VS_RULE_CTRL_RSS_NOT_NEGOTIATED;
    case RSS_ERR_TRUNCATED:
        return VS_RULE_CTRL_RSS_TRUNCATED;
    case RSS_ERR_HASH_TYPE_UNSUPPORTED:
        return VS_RULE_CTRL_RSS_HASH_TYPES;
    case RSS_ERR_TABLE_NOT_POWER_OF_2:
    case RSS_ERR_TABLE_TOO_LONG:
        return VS_RULE_CTRL_RSS_TABLE_LENGTH;
    case RSS_ERR_RQ_ID_RESERVED_BIT:
    case RSS_ERR_RESERVED_NOT_ZERO:
        return VS_RULE_CTRL_RSS_RESERVED;
    case RSS_ERR_UNCLASSIFIED_QUEUE_INVALID:
    case RSS_ERR_TABLE_QUEUE_INVALID:
    case RSS_ERR_MAX_TX_VQ_INVALID:
        return VS_RULE_CTRL_RSS_QUEUE;
    case RSS_ERR_KEY_TOO_LONG:
    case RSS_ERR_KEY_EMPTY:
    case RSS_ERR_OK:
    case RSS_ERR_COUNT:
        break;
    }
    return VS_RULE_CTRL_RSS_KEY_LENGTH;
}

/* The queue pairs the driver has enabled, for RSS_CONFIG ("A driver MUST fill the
 * indirection_table array only with enabled receive virtqueues ids"; max_tx_vq): the
 * leading pairs whose receive and transmit queues are both enabled. */
static uint16_t enabled_pairs(const struct vnet *n)
{
    uint16_t k = 0;
    while (k < n->pairs_max && n->tp->q[rx_queue_of(k)].enabled && n->tp->q[tx_queue_of(k)].enabled)
        k++;
    return k;
}

/* The pairs an RSS configuration uses: its receive queues (table entries,
 * unclassified_queue) and its transmit queues (max_tx_vq). */
static uint16_t rss_pairs_used(const struct rss_state *r)
{
    uint16_t pairs = r->max_tx_vq;
    if (r->unclassified_queue >= pairs)
        pairs = (uint16_t)(r->unclassified_queue + 1u);
    for (uint32_t i = 0; i < r->table_len; i++)
        if (r->table[i] >= pairs)
            pairs = (uint16_t)(r->table[i] + 1u);
    return pairs;
}

/* VIRTIO_NET_CTRL_MQ_RSS_CONFIG ("Receive-side scaling (RSS) / Setting RSS
 * parameters") and VIRTIO_NET_CTRL_MQ_HASH_CONFIG. RSS_CONFIG is checked and applied by
 * rss_config_set against the pairs enabled; an accepted one puts RSS steering in force
 * and makes its queues the pairs in use ("the resulting device configuration is defined
 * by the last command sent by the driver"). HASH_CONFIG configures the hash reported
 * with VIRTIO_NET_F_HASH_REPORT, which this device does not offer: always refused
 * (rss_hash_config_check's HASH_REPORT_NOT_NEGOTIATED). A refusal is VIRTIO_NET_ERR, a
 * conformance record naming the rule (rss_rule) with the values rss.h gives, and
 * nothing changed. */
static uint8_t net_ctrl_rss(struct vnet *n, uint8_t command, const uint8_t *data, uint32_t len)
{
    struct rss_fault f;
    enum rss_error e;
    if (command == VIRTIO_NET_CTRL_MQ_HASH_CONFIG)
        e = rss_hash_config_check(&n->rss_lim, false, data, len, &f);
    else if (n->rss == NULL)
        e = rss_config_check(&n->rss_lim, false, enabled_pairs(n), data, len, &f);
    else
        e = rss_config_set(n->rss, &n->rss_lim, pt_negotiated(n->tp, VIRTIO_NET_F_RSS_BIT),
                           enabled_pairs(n), data, len, &f);
    if (e != RSS_ERR_OK) {
        vs_conf_report(&n->tp->vpci.conf, rss_rule(e), vnet_ctrl_queue(n), f.seen, f.expected);
        return VIRTIO_NET_ERR;
    }
    n->pairs = rss_pairs_used(n->rss);
    n->watch_epoch++; /* no transmit queue is watched under RSS steering */
    n->stats.rss_config_set++;
    return VIRTIO_NET_OK;
}

/* Put pairs 1..pairs in use, as an accepted VQ_PAIRS_SET does: "The driver MUST NOT
 * request a virtqueue_pairs of 0 or greater than max_virtqueue_pairs", so any other
 * value is refused (false, nothing changed). Setting the pairs turns RSS steering off
 * (the last command decides the mode). */
static bool use_pairs(struct vnet *n, uint16_t pairs, const struct vs_guest_ops *g)
{
    if (pairs < VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MIN || pairs > n->pairs_max)
        return false;
    const uint16_t before = n->pairs;
    const bool was_rss = n->rss != NULL && n->rss->configured;
    n->pairs = pairs;
    if (n->rss != NULL)
        rss_reset(n->rss);
    tx_watch_pairs_changed(n, before, was_rss, g);
    return true;
}

/* The VIRTIO_NET_CTRL_MQ class ("Automatic receive steering in multiqueue mode").
 * VQ_PAIRS_SET's le16 virtqueue_pairs sets the pairs in use: "The driver MUST NOT
 * request a virtqueue_pairs of 0 or greater than max_virtqueue_pairs", so any other
 * value is refused with VIRTIO_NET_ERR (CTRL_MQ_PAIRS), the pairs in use unchanged; so
 * is the class without VIRTIO_NET_F_MQ negotiated (CTRL_MQ_NOT_NEGOTIATED), and data
 * shorter than the 2-byte structure. One naming a pair whose queues the driver has not
 * enabled is taken but reported (CTRL_MQ_PAIRS_NOT_ENABLED). An accepted one turns RSS steering off (the last
 * command decides the mode) and, for each transmit queue it takes out of use, reads
 * where the driver's buffers end through g (TX_QUEUE_NOT_IN_USE's allowed end).
 * RSS_CONFIG and HASH_CONFIG: net_ctrl_rss. Frames already waiting in the FIFO of a
 * pair taken out of use stay there until it is in use again; so do the buffers waiting
 * on its transmit queue. */
static uint8_t net_ctrl_mq(struct vnet *n, uint8_t command, const uint8_t *data, uint32_t len,
                           const struct vs_guest_ops *g)
{
    if (command == VIRTIO_NET_CTRL_MQ_RSS_CONFIG || command == VIRTIO_NET_CTRL_MQ_HASH_CONFIG)
        return net_ctrl_rss(n, command, data, len);
    if (command != VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET)
        return VIRTIO_NET_ERR;
    if (!pt_negotiated(n->tp, VIRTIO_NET_F_MQ_BIT)) {
        vs_conf_report(&n->tp->vpci.conf, VS_RULE_CTRL_MQ_NOT_NEGOTIATED, vnet_ctrl_queue(n),
                       command, VIRTIO_NET_F_MQ_BIT);
        return VIRTIO_NET_ERR;
    }
    if (len < sizeof(struct virtio_net_ctrl_mq_pairs_set))
        return VIRTIO_NET_ERR;
    const uint16_t pairs = vs_le16(data); /* virtqueue_pairs */
    if (!use_pairs(n, pairs, g)) {
        vs_conf_report(&n->tp->vpci.conf, VS_RULE_CTRL_MQ_PAIRS, vnet_ctrl_queue(n), pairs,
                       n->pairs_max);
        return VIRTIO_NET_ERR;
    }
    /* "The driver MUST configure the virtqueues before enabling them with the
     * VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET command." The command is well formed, so the device
     * takes it (frames for a pair whose receive queue is not enabled wait in its FIFO, as
     * for any receive queue without buffers) and reports it. */
    const uint16_t enabled = enabled_pairs(n);
    if (pairs > enabled)
        vs_conf_report(&n->tp->vpci.conf, VS_RULE_CTRL_MQ_PAIRS_NOT_ENABLED, vnet_ctrl_queue(n),
                       pairs, enabled);
    n->stats.mq_pairs_set++;
    return VIRTIO_NET_OK;
}

bool vnet_fe_set_pairs(struct vnet *n, uint16_t pairs)
{
    /* Without VIRTIO_NET_F_MQ only receiveq1 and transmitq1 exist for the driver
     * ("Virtqueues": N = 1), so only one pair can be in use. */
    if (pairs > 1u && !pt_negotiated(n->tp, VIRTIO_NET_F_MQ_BIT))
        return false;
    return use_pairs(n, pairs, NULL);
}

/* One command: u8 class, u8 command and the command-specific data in the
 * device-readable part; the ack is the last device-writable byte, and a result
 * (VQ_GET's struct virtio_net_ctrl_coal) fills the bytes just before it. The used
 * length is the bytes written: 1, or 9 with a result.
 * What the device answers:
 *  - class VIRTIO_NET_CTRL_NOTF_COAL with its feature negotiated: per command, see
 *    net_ctrl_notf_coal (OK, or ERR for data shorter than the command's structure, a
 *    designated queue that is not an enabled TX/RX queue, or no room for a result);
 *  - class VIRTIO_NET_CTRL_MQ: see net_ctrl_mq;
 *  - any other class, an unknown command, or fewer than 2 readable bytes (no class and
 *    command to read): VIRTIO_NET_ERR. The device can answer, so it does.
 * Malformed beyond answering: a buffer with no device-writable byte leaves the device
 * no way to say anything, and "There is little the driver can do except issue a
 * diagnostic if ack is not VIRTIO_NET_OK" means a driver never sends one on purpose:
 * the device needs a reset (CTRL_NO_ACK_BYTE). */
static enum pt_step ctrl_take(void *ctx, uint16_t qi, unsigned k, struct pt_slot *sl,
                              struct pt_work *w)
{
    (void)k;
    const struct vnet *n = ctx;
    return pt_pop(n->tp, qi, sl, w);
}

static enum pt_step ctrl_move(void *ctx, uint16_t qi, unsigned k, struct pt_slot *sl,
                              struct pt_work *w)
{
    (void)k;
    struct vnet *n = ctx;
    const struct vs_guest_ops *g = &sl->gate.ops;
    sl->written = 0;
    if (sl->e.writable_bytes == 0)
        return pt_fail(n->tp, qi, VS_REASON_CTRL_NO_ACK_BYTE);

    /* The command as far as the device can use it: at most ctrl_cap bytes, however many
     * descriptors carry them (a longer one is read no further). */
    uint8_t *cmd = n->ctrl_buf;
    uint32_t got = 0;
    enum vs_dma_status s = pt_read_segments(g, sl->segs, sl->e.nsegs, cmd, n->ctrl_cap, &got);
    if (s != VS_DMA_OK)
        return pt_dma_failed(n->tp, qi, sl, s);
    w->bytes_read += got;

    uint8_t ack = VIRTIO_NET_ERR;
    struct virtio_net_ctrl_coal result;
    uint32_t result_len = 0;
    if (got >= VIRTIO_NET_CTRL_HDR_BYTES && cmd[0] == VIRTIO_NET_CTRL_NOTF_COAL)
        ack = net_ctrl_notf_coal(n, cmd[1], cmd + VIRTIO_NET_CTRL_HDR_BYTES,
                                 got - VIRTIO_NET_CTRL_HDR_BYTES, sl->e.writable_bytes, &result,
                                 &result_len);
    else if (got >= VIRTIO_NET_CTRL_HDR_BYTES && cmd[0] == VIRTIO_NET_CTRL_MQ)
        ack = net_ctrl_mq(n, cmd[1], cmd + VIRTIO_NET_CTRL_HDR_BYTES,
                          got - VIRTIO_NET_CTRL_HDR_BYTES, g);
    if (result_len != 0) {
        s = pt_write_writable_at(g, sl->segs, sl->e.nsegs, sl->e.writable_bytes - 1u - result_len,
                              &result, result_len);
        if (s != VS_DMA_OK)
            return pt_dma_failed(n->tp, qi, sl, s);
    }
    s = pt_write_writable_at(g, sl->segs, sl->e.nsegs, sl->e.writable_bytes - 1u, &ack, 1);
    if (s != VS_DMA_OK)
        return pt_dma_failed(n->tp, qi, sl, s);
    w->bytes_written += 1u + result_len;
    n->stats.ctrl_commands++;
    if (ack == VIRTIO_NET_OK)
        n->stats.ctrl_ok++;
    else
        n->stats.ctrl_err++;
    w->buffers++;
    sl->written = 1u + result_len;
    return PT_STEP_DONE;
}

/* ---- Used buffer notifications under coalescing ----
 * The window and count rules are model/coalesce.c's; the transport takes the decisions
 * they call for. Only transmit and receive queues have parameters (the control
 * queue's stay 0: coalescing never in force there, every publication decided). */

/* The transport published n used buffers of qi: a packet is a used buffer here (one
 * frame per buffer; with VIRTIO_NET_F_MRG_RXBUF a frame spread over k buffers counts
 * k, not the spec's one packet). Returns the coal_decision (0: hold). */
static unsigned net_published(void *ctx, uint16_t qi, uint32_t published)
{
    struct vnet *n = ctx;
    return coal_published(&n->coal[qi], published);
}

static void net_decided(void *ctx, uint16_t qi, unsigned decision, bool interrupt)
{
    struct vnet *n = ctx;
    if (decision == COAL_NOTIFY_EVERY)
        return;
    const enum vnet_coal_cause cause = decision == COAL_NOTIFY_TIMER    ? VNET_COAL_BY_TIMER
                                       : decision == COAL_NOTIFY_CHANGE ? VNET_COAL_BY_CHANGE
                                                                        : VNET_COAL_BY_PACKETS;
    if (interrupt)
        n->stats.coal_notify[qi][cause]++;
    else
        n->stats.coal_suppressed[qi]++;
}

bool vnet_coal_timer(const struct vnet *n, uint16_t qi, uint32_t *usecs, uint32_t *window)
{
    if (!pt_queue_live(n->tp, qi) || !coal_window_open(&n->coal[qi]))
        return false;
    *usecs = n->coal[qi].p.max_usecs;
    *window = n->coal[qi].window;
    return true;
}

enum pt_step vnet_coal_expire(struct vnet *n, uint16_t qi, uint32_t window,
                                const struct vs_guest_ops *ops)
{
    if (!pt_queue_live(n->tp, qi))
        return n->tp->error != VS_REASON_NONE ? PT_STEP_FAILED : PT_STEP_IDLE;
    const enum coal_decision decision = coal_expired(&n->coal[qi], window);
    if (decision == COAL_NOTHING)
        return PT_STEP_IDLE;
    return pt_decide(n->tp, qi, ops, decision);
}

bool vnet_coal_recheck_needed(const struct vnet *n, uint16_t qi)
{
    return qi < n->num_queues && n->coal[qi].recheck;
}

enum pt_step vnet_coal_recheck(struct vnet *n, uint16_t qi, const struct vs_guest_ops *ops)
{
    if (!pt_queue_live(n->tp, qi))
        return n->tp->error != VS_REASON_NONE ? PT_STEP_FAILED : PT_STEP_IDLE;
    const enum coal_decision decision = coal_changed(&n->coal[qi]);
    if (decision == COAL_NOTHING)
        return PT_STEP_IDLE;
    return pt_decide(n->tp, qi, ops, decision);
}


/* ---- Queue roles ---- */
/* Receive queue q waits while its pair's FIFO is empty; transmit queue q while its
 * pair's FIFO is full. */
static bool rx_still_blocked(const void *ctx, uint16_t q)
{
    return vnet_pair_fifo_frames(ctx, pair_of(q)) == 0;
}

static bool tx_still_blocked(const void *ctx, uint16_t q)
{
    return vnet_pair_fifo_full(ctx, pair_of(q));
}

/* Receive: IDLE is "no frame in the FIFO" (the device's side, woken by TX frames);
 * BLOCKED is "a frame but no receive buffer" (the driver's side). */
static const struct pt_role rx_role = {
    .take = rx_take, .move = rx_move, .finish = rx_finish,
    .holds_publication = rx_holds_publication,
    .published = net_published, .decided = net_decided,
    .idle_waits_for_driver = false,
    .waits_on = VNET_SIGNAL_FRAMES, .signals = VNET_SIGNAL_SPACE, .signals_on_frames = false,
    .woken_by_mark = true,
    .still_blocked = rx_still_blocked,
    .coalesces = true,
};

/* Transmit: IDLE is "no buffer" (the driver's side); BLOCKED is "no FIFO space"
 * (loopback back-pressure, woken when RX takes frames). A queue of a pair not in use
 * is parked: its take answers IDLE, and a notification makes the device look for
 * TX_QUEUE_NOT_IN_USE. */
static const struct pt_role tx_role = {
    .take = tx_take, .move = tx_move, .finish = tx_finish,
    .look_parked = tx_look_parked,
    .published = net_published, .decided = net_decided,
    .idle_waits_for_driver = true,
    .waits_on = VNET_SIGNAL_SPACE, .signals = VNET_SIGNAL_FRAMES, .signals_on_frames = true,
    .woken_by_mark = true,
    .still_blocked = tx_still_blocked,
    .coalesces = true,
};

/* Control: one command at a time; its commands may change the data queues'
 * coalescing parameters. */
static const struct pt_role ctrl_role = {
    .take = ctrl_take, .move = ctrl_move, .finish = NULL,
    .published = net_published, .decided = net_decided,
    .idle_waits_for_driver = true,
    .wakes_on_kick_only = true,
    .single_engine = true,
    .changes_coalescing = true,
};

const struct pt_role *vnet_queue_role(uint16_t q, uint16_t n)
{
    if (q >= n)
        return NULL;
    if (n % 2 == 1 && q == n - 1)
        return &ctrl_role;
    return q % 2 == 0 ? &rx_role : &tx_role;
}

const struct pt_role *vnet_role(const struct vnet *n, uint16_t q)
{
    if (q >= n->num_queues)
        return NULL;
    if (q == vnet_ctrl_queue(n))
        return &ctrl_role;
    return q % 2 == 0 ? &rx_role : &tx_role;
}

/* pt_device.queue_role, asked for every queue at FEATURES_OK and after a reset: number
 * the queues for the features negotiated (idempotent), then q's role. */
static const struct pt_role *net_queue_role(void *ctx, uint16_t q)
{
    struct vnet *n = ctx;
    net_number_queues(n);
    return vnet_role(n, q);
}

/* ---- One buffer per call ---- */
enum pt_step vnet_tx_step(struct vnet *n, const struct vs_guest_ops *ops, struct pt_work *w)
{
    return pt_step_one(n->tp, VNET_QUEUE_TX, ops, w);
}

enum pt_step vnet_rx_step(struct vnet *n, const struct vs_guest_ops *ops, struct pt_work *w)
{
    return pt_step_one(n->tp, VNET_QUEUE_RX, ops, w);
}

enum pt_step vnet_ctrl_step(struct vnet *n, const struct vs_guest_ops *ops, struct pt_work *w)
{
    return pt_step_one(n->tp, vnet_ctrl_queue(n), ops, w);
}
