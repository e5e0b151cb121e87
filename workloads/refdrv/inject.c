#include "refdrv_int.h"

/* ---- fault injection (driver.inject_violation) ---- */

/* The lowest feature bit set in `in` and clear in `out`, or -1. */
static int first_feature(const vs_features *in, const vs_features *out)
{
    for (uint32_t b = 0; b < 32u * VS_FEATURE_WORDS; b++)
        if (vs_feature_has(in, b) && !vs_feature_has(out, b))
            return (int)b;
    return -1;
}

/* Break the rule driver.inject_violation names, once, when `at` is its point (q: the
 * queue of a queue, notify or segment point; seg: the element of an INJ_RX_SEG /
 * INJ_TX_SEG point, altered in place, or the one INJ_TX_ADDED has just added). Each mistake is the kind a real driver makes, and the driver otherwise goes
 * on as usual (a register-file violation is ignored by the device; a ring one ends in
 * DEVICE_NEEDS_RESET, which the driver reports as device_error). Returns true when it
 * acted (INJ_RESET: the reset was done, without its read-back). */
bool rd_inject(struct refdrv *d, enum inj_point at, struct drv_queue *q, struct drv_seg *seg)
{
    const bool width4 = d->f_notif_data;
    vs_features not_offered;
    uint32_t v;
    int bit;

    if (d->injected)
        return false;
    switch (d->p->inject) {
    case REFDRV_INJECT_NONE:
        return false;
    case REFDRV_INJECT_RESET_NOT_AWAITED: /* reset, then go on without reading back 0 */
        if (at != INJ_RESET)
            return false;
        common_wr(d, VIRTIO_PCI_COMMON_STATUS, 1, 0);
        d->status = 0;
        d->status_written = true;
        break;
    case REFDRV_INJECT_INIT_ORDER: /* DRIVER before ACKNOWLEDGE */
        if (at != INJ_INIT_START)
            return false;
        rd_status_set(d, VIRTIO_STATUS_DRIVER);
        break;
    case REFDRV_INJECT_INIT_AFTER_FAILED: /* FAILED, then ACKNOWLEDGE with no reset between */
        if (at != INJ_INIT_START)
            return false;
        rd_status_set(d, VIRTIO_STATUS_FAILED);
        rd_status_set(d, VIRTIO_STATUS_ACKNOWLEDGE);
        (void)rd_device_reset(d); /* and then the proper way */
        break;
    case REFDRV_INJECT_STATUS_BIT_CLEARED: /* a status write that drops ACKNOWLEDGE */
        if (at != INJ_INIT_DRIVER)
            return false;
        common_wr(d, VIRTIO_PCI_COMMON_STATUS, 1, d->status & ~VIRTIO_STATUS_ACKNOWLEDGE);
        break;
    case REFDRV_INJECT_STATUS_RESERVED_BIT: /* the driver sets DEVICE_NEEDS_RESET itself */
        if (at != INJ_INIT_DRIVER)
            return false;
        common_wr(d, VIRTIO_PCI_COMMON_STATUS, 1, d->status | VIRTIO_STATUS_DEVICE_NEEDS_RESET);
        break;
    case REFDRV_INJECT_FEATURE_NOT_OFFERED: /* accept the lowest bit not offered */
        if (at != INJ_FEATURES)
            return false;
        for (uint32_t w = 0; w < VS_FEATURE_WORDS; w++)
            not_offered.w[w] = ~d->offered.w[w];
        bit = first_feature(&not_offered, &d->accepted);
        if (bit < 0)
            return false;
        vs_feature_set(&d->accepted, (unsigned)bit);
        break;
    case REFDRV_INJECT_FEATURE_VERSION_1_DECLINED:
        if (at != INJ_FEATURES)
            return false;
        vs_feature_clear(&d->accepted, VIRTIO_F_VERSION_1_BIT);
        break;
    case REFDRV_INJECT_FEATURE_DEPENDENCY: /* NOTF_COAL without the CTRL_VQ it needs */
        if (at != INJ_FEATURES)
            return false;
        vs_feature_set(&d->accepted, VIRTIO_NET_F_NOTF_COAL_BIT);
        vs_feature_clear(&d->accepted, VIRTIO_NET_F_CTRL_VQ_BIT);
        break;
    case REFDRV_INJECT_FEATURE_AFTER_FEATURES_OK: /* accept one more offered bit, too late */
        if (at != INJ_FEATURES_OK)
            return false;
        bit = first_feature(&d->offered, &d->accepted);
        if (bit < 0)
            return false;
        common_wr(d, VIRTIO_PCI_COMMON_GFSELECT, 4, (uint32_t)bit / 32u);
        common_wr(d, VIRTIO_PCI_COMMON_GF, 4, d->accepted.w[bit / 32] | 1u << (bit % 32));
        break;
    case REFDRV_INJECT_READ_ONLY_FIELD_WRITTEN: /* write num_queues back */
        if (at != INJ_DEVICE_SETUP)
            return false;
        common_wr(d, VIRTIO_PCI_COMMON_NUMQ, 2, common_rd(d, VIRTIO_PCI_COMMON_NUMQ, 2));
        break;
    case REFDRV_INJECT_QUEUE_SIZE_ZERO: /* 0, then the real size (packed rings) */
    case REFDRV_INJECT_QUEUE_SIZE_NOT_POWER_OF_2: /* size | 3, then the real size (split) */
        if (at != INJ_QUEUE_CONFIGURED)
            return false;
        common_wr(d, VIRTIO_PCI_COMMON_Q_SIZE, 2,
                  d->p->inject == REFDRV_INJECT_QUEUE_SIZE_ZERO ? 0u : q->size | 3u);
        common_wr(d, VIRTIO_PCI_COMMON_Q_SIZE, 2, q->size);
        break;
    case REFDRV_INJECT_QUEUE_ENABLE_ZERO: /* "disable" the queue before enabling it */
        if (at != INJ_QUEUE_CONFIGURED)
            return false;
        common_wr(d, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 0);
        break;
    case REFDRV_INJECT_QUEUE_RESET_NOT_NEGOTIATED: /* this driver never accepts RING_RESET */
        if (at != INJ_QUEUE_CONFIGURED)
            return false;
        common_wr(d, VIRTIO_PCI_COMMON_Q_RESET, 2, 1);
        break;
    case REFDRV_INJECT_RING_MISALIGNED: /* descriptor area 8 bytes off its alignment */
        if (at != INJ_QUEUE_CONFIGURED)
            return false;
        v = common_rd(d, VIRTIO_PCI_COMMON_Q_DESCLO, 4);
        common_wr(d, VIRTIO_PCI_COMMON_Q_DESCLO, 4, v + DESC_BYTES / 2u);
        break;
    case REFDRV_INJECT_QUEUE_CONFIG_AFTER_ENABLE: /* rewrite queue_desc (low half) */
        if (at != INJ_QUEUE_ENABLED)
            return false;
        v = common_rd(d, VIRTIO_PCI_COMMON_Q_DESCLO, 4);
        common_wr(d, VIRTIO_PCI_COMMON_Q_DESCLO, 4, v);
        break;
    case REFDRV_INJECT_NOTIFY_BEFORE_DRIVER_OK: /* rd_kick the filled receive queue too early */
        if (at != INJ_BEFORE_DRIVER_OK)
            return false;
        d->injected = true;
        rd_notify_queue(d, q);
        break;
    case REFDRV_INJECT_NOTIFY_WIDTH: /* the other width, before the right notification */
        if (at != INJ_NOTIFY)
            return false;
        mmio_wr(d, q->notify_addr, width4 ? 2 : 4, q->index);
        break;
    case REFDRV_INJECT_NOTIFY_WRONG_QUEUE: /* the other data queue's index in the value */
        if (at != INJ_NOTIFY)
            return false;
        v = q->index == RX_QUEUE ? TX_QUEUE : RX_QUEUE;
        mmio_wr(d, q->notify_addr, width4 ? 4 : 2,
                width4 ? q->ops->notify_data(q->ring, (uint16_t)v) : v);
        break;
    case REFDRV_INJECT_NOTIFY_QUEUE_NOT_ENABLED: { /* the control queue it never set up */
        uint64_t rel;
        if (at != INJ_AFTER_DRIVER_OK || d->f_ctrl_vq)
            return false;
        common_wr(d, VIRTIO_PCI_COMMON_Q_SELECT, 2, CTRL_QUEUE);
        if (common_rd(d, VIRTIO_PCI_COMMON_Q_SIZE, 2) == 0)
            return false;
        rel = (uint64_t)common_rd(d, VIRTIO_PCI_COMMON_Q_NOFF, 2) * d->notify_off_multiplier;
        if (rel > d->notify.length || (width4 ? 4u : 2u) > d->notify.length - rel)
            return false;
        mmio_wr(d, d->notify.addr + rel, width4 ? 4 : 2, CTRL_QUEUE);
        break;
    }
    case REFDRV_INJECT_CTRL_COAL_NOT_NEGOTIATED: /* decline VQ_NOTF_COAL, then VQ_SET anyway */
        if (at == INJ_FEATURES) {
            vs_feature_clear(&d->accepted, VIRTIO_NET_F_VQ_NOTF_COAL_BIT);
            return false;
        }
        if (at != INJ_AFTER_DRIVER_OK || !d->f_ctrl_vq)
            return false;
        (void)rd_coal_vq_set(d, RX_QUEUE, &d->p->coal_rx);
        break;
    case REFDRV_INJECT_CTRL_COAL_VQ_INDEX: /* VQ_SET naming the control queue */
        if (at != INJ_AFTER_DRIVER_OK || !d->f_vq_notf_coal)
            return false;
        (void)rd_coal_vq_set(d, d->cq->index, &d->p->coal_rx);
        break;
    case REFDRV_INJECT_CTRL_MQ_PAIRS: /* VQ_PAIRS_SET above max_virtqueue_pairs, then the right one */
        if (at != INJ_MQ_PAIRS)
            return false;
        d->injected = true;
        rd_mq_pairs_wrong(d, (uint32_t)d->max_pairs + 1u);
        break;
    case REFDRV_INJECT_CTRL_MQ_PAIRS_NOT_ENABLED: /* one pair more than set up, then the right count */
        if (at != INJ_MQ_PAIRS || d->pairs >= d->max_pairs)
            return false;
        d->injected = true;
        rd_mq_pairs_wrong(d, (uint32_t)d->pairs + 1u);
        break;
    case REFDRV_INJECT_TX_QUEUE_NOT_IN_USE: /* the first frame on transmitqP before VQ_PAIRS_SET(P) */
        if (at != INJ_MQ_PAIRS || d->pairs < 2u)
            return false;
        d->injected = true;
        if (!rd_tx_before_pairs(d))
            d->injected = false;
        return d->injected;
    case REFDRV_INJECT_TX_HAS_WRITABLE: /* RING_RULE TX_HAS_WRITABLE */
        if (at != INJ_TX_SEG)
            return false;
        seg->device_writable = true;
        break;
    case REFDRV_INJECT_DESC_ZERO_LENGTH: { /* RING_RULE DESC_ZERO_LENGTH, on TX */
        /* The ring modules refuse a zero length, so the driver "forgets" the length in
         * the descriptor it just wrote: the one holding the element's address (same
         * layout of addr and len in both formats; the ring, not an indirect table). */
        uint8_t *desc = NULL;
        if (at != INJ_TX_ADDED)
            return false;
        for (uint32_t i = 0; i < q->size && desc == NULL; i++)
            if (vs_le64(q->desc_area + (size_t)i * DESC_BYTES) == seg->addr)
                desc = q->desc_area + (size_t)i * DESC_BYTES;
        if (desc == NULL)
            return false;
        vs_put_le32(desc + offsetof(struct pvirtq_desc, len), 0);
        break;
    }
    case REFDRV_INJECT_TX_FRAME_TOO_SHORT: /* RING_RULE TX_FRAME_TOO_SHORT (one_desc layout) */
        if (at != INJ_TX_SEG)
            return false;
        seg->len = NET_HDR_BYTES - 1u;
        break;
    case REFDRV_INJECT_RX_HAS_READABLE: /* RING_RULE RX_HAS_READABLE */
        if (at != INJ_RX_SEG)
            return false;
        seg->device_writable = false;
        break;
    case REFDRV_INJECT_RX_BUFFER_TOO_SMALL: /* RING_RULE RX_BUFFER_TOO_SMALL */
        if (at != INJ_RX_SEG)
            return false;
        seg->len = NET_HDR_BYTES - 1u;
        break;
    case REFDRV_INJECT_MSIX_RESERVED_BITS: /* RING_RULE MSIX_RESERVED_BITS: bit 1 of vector control */
        if (at != INJ_MSIX || d->msix_nvec == 0)
            return false;
        mmio_wr(d, d->msix_table + MSIX_ENTRY_CTRL, 4, 2u);
        break;
    case REFDRV_INJECT_COUNT:
        return false;
    }
    d->injected = true;
    return true;
}
