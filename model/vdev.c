/* vdev.c -- the virtio-net PCI function: BAR layout, access routing, DMA gate,
 * the net personality's queue processing, and the NEEDS_RESET path. */
#include "vdev.h"

#include <assert.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* ---- BAR layout: the one table ----
 * BAR0 (64-bit memory): the virtio structures, each page-aligned so a driver can map
 * them separately. BAR2 (64-bit memory): the MSI-X table and PBA. */
#define VDEV_VIRTIO_BAR     0
#define VDEV_MSIX_BAR       2
#define VDEV_COMMON_OFFSET  0x0000u
#define VDEV_ISR_OFFSET     0x1000u
#define VDEV_DEVICE_OFFSET  0x2000u
#define VDEV_NOTIFY_OFFSET  0x3000u
#define VDEV_MSIX_TABLE_OFFSET 0x0000u
#define VDEV_MSIX_PBA_OFFSET   0x0800u
#define VDEV_MSIX_BAR_SIZE     0x1000u

#define VIRTIO_NET_OK  0u
#define VIRTIO_NET_ERR 1u

static uint64_t pow2_at_least(uint64_t v)
{
    uint64_t p = 1;
    while (p < v)
        p <<= 1;
    return p;
}

const char *vdev_check_params(const struct vdev_params *p)
{
    if (p->queue_size_max == 0 || p->queue_size_max > PVIRTQ_SIZE_MAX)
        return "queue_size_max must be 1..32768";
    if (p->notify_off_multiplier != 0 &&
        ((p->notify_off_multiplier & (p->notify_off_multiplier - 1)) != 0 ||
         p->notify_off_multiplier % 4 != 0))
        return "notify_off_multiplier must be 0 or a power of two that is a multiple of 4";
    if (p->notify_off_multiplier > 4096)
        return "notify_off_multiplier must be at most 4096";
    if (p->max_frame_bytes < 14 || p->max_frame_bytes > 65535)
        return "max_frame_bytes must be 14..65535";
    if (p->rx_fifo_frames == 0 || p->rx_fifo_frames > 65536)
        return "rx_fifo_frames must be 1..65536";
    if (p->used_batch_max == 0)
        return "used_batch_max must be at least 1";
    if (p->queue_engines > VDEV_ENGINES_MAX)
        return "queue_engines must be 1..32";
    if (p->fetch_batch > VQ_FETCH_BATCH_MAX)
        return "fetch_batch must be 1..64";
    if (p->fetch_source > VQ_FETCH_READ_AHEAD)
        return "fetch_source must be one, hint or read_ahead";
    if (p->revision_id == 0)
        return "revision_id must be at least 1 (modern virtio devices)";
    return NULL;
}

/* ---- Features offered ("Reserved Feature Bits", "Network Device / Feature bits") ---- */
static vs_features offered_features(const struct vdev_params *p)
{
    static const unsigned bits[] = {
        VIRTIO_F_VERSION_1_BIT,      VIRTIO_F_RING_PACKED_BIT,  VIRTIO_F_IN_ORDER_BIT,
        VIRTIO_F_ORDER_PLATFORM_BIT, VIRTIO_F_ACCESS_PLATFORM_BIT,
        VIRTIO_F_NOTIFICATION_DATA_BIT, VIRTIO_F_EVENT_IDX_BIT, VIRTIO_F_INDIRECT_DESC_BIT,
        VIRTIO_F_RING_RESET_BIT,     VIRTIO_NET_F_MAC_BIT,      VIRTIO_NET_F_CTRL_VQ_BIT,
        VIRTIO_NET_F_STATUS_BIT,
    };
    vs_features f;
    memset(&f, 0, sizeof f);
    for (size_t i = 0; i < sizeof bits / sizeof bits[0]; i++)
        vs_feature_set(&f, bits[i]);
    for (unsigned w = 0; w < VS_FEATURE_WORDS; w++)
        f.w[w] &= ~p->withdraw.w[w];
    return f;
}

/* Device-specific feature dependencies checked at FEATURES_OK ("Network Device /
 * Feature bits / Feature bit requirements"): of the features this device offers, none
 * depends on another (CTRL_VQ's dependants are not offered), so every subset of the
 * offer is acceptable. Kept as the place where such rules go. */
static bool net_validate_features(void *ctx, const vs_features *drv)
{
    (void)ctx;
    (void)drv;
    return true;
}

/* ---- Capability list ---- */
static uint8_t add_virtio_cap(struct pci_cfg *c, uint8_t cfg_type, const struct vdev_region *r)
{
    struct virtio_pci_cap cap;
    memset(&cap, 0, sizeof cap);
    cap.cap_vndr = PCI_CAP_ID_VNDR;
    cap.cap_len = sizeof cap;
    cap.cfg_type = cfg_type;
    cap.bar = r->bar;
    cap.offset = r->offset;
    cap.length = r->length;
    return pci_cfg_add_cap(c, &cap, sizeof cap, NULL);
}

static void build_caps(struct vdev *d)
{
    struct pci_cfg *c = &d->pci;
    const struct vdev_region *r = d->region;

    /* MSI-X capability (PCI Local Bus 3.0 §6.8.2): message control, table and PBA
     * offset/BIR. Writable: function mask and enable only. */
    uint8_t msix_cap[12] = {PCI_CAP_ID_MSIX, 0};
    vs_put_le16(&msix_cap[2], (uint16_t)(d->msix.nvec - 1));
    vs_put_le32(&msix_cap[4], r[VDEV_REGION_MSIX_TABLE].offset | r[VDEV_REGION_MSIX_TABLE].bar);
    vs_put_le32(&msix_cap[8], r[VDEV_REGION_MSIX_PBA].offset | r[VDEV_REGION_MSIX_PBA].bar);
    uint8_t msix_wmask[12] = {0};
    vs_put_le16(&msix_wmask[2], MSIX_MSGCTL_FMASK_MASK | MSIX_MSGCTL_ENABLE_MASK);
    d->cap_msix = pci_cfg_add_cap(c, msix_cap, sizeof msix_cap, msix_wmask);

    /* Virtio structures, in order of preference ("Virtio Structure PCI Capabilities"). */
    add_virtio_cap(c, VIRTIO_PCI_CAP_COMMON_CFG, &r[VDEV_REGION_COMMON]);
    struct virtio_pci_notify_cap ncap;
    memset(&ncap, 0, sizeof ncap);
    ncap.cap.cap_vndr = PCI_CAP_ID_VNDR;
    ncap.cap.cap_len = sizeof ncap;
    ncap.cap.cfg_type = VIRTIO_PCI_CAP_NOTIFY_CFG;
    ncap.cap.bar = r[VDEV_REGION_NOTIFY].bar;
    ncap.cap.offset = r[VDEV_REGION_NOTIFY].offset;
    ncap.cap.length = r[VDEV_REGION_NOTIFY].length;
    ncap.notify_off_multiplier = d->p.notify_off_multiplier;
    pci_cfg_add_cap(c, &ncap, sizeof ncap, NULL);
    add_virtio_cap(c, VIRTIO_PCI_CAP_ISR_CFG, &r[VDEV_REGION_ISR]);
    add_virtio_cap(c, VIRTIO_PCI_CAP_DEVICE_CFG, &r[VDEV_REGION_DEVICE]);

    /* PCI configuration access capability: bar, offset, length and the data window
     * are read-write for the driver ("PCI configuration access capability"). */
    struct virtio_pci_cfg_cap pcap;
    memset(&pcap, 0, sizeof pcap);
    pcap.cap.cap_vndr = PCI_CAP_ID_VNDR;
    pcap.cap.cap_len = sizeof pcap;
    pcap.cap.cfg_type = VIRTIO_PCI_CAP_PCI_CFG;
    struct virtio_pci_cfg_cap pmask;
    memset(&pmask, 0, sizeof pmask);
    pmask.cap.bar = 0xff;
    pmask.cap.offset = 0xffffffffu;
    pmask.cap.length = 0xffffffffu;
    memset(pmask.pci_cfg_data, 0xff, sizeof pmask.pci_cfg_data);
    d->cap_pci_cfg = pci_cfg_add_cap(c, &pcap, sizeof pcap, &pmask);
}

static void vq_stats_add(struct vq_stats *to, const struct vq_stats *s)
{
    to->buffers_popped += s->buffers_popped;
    to->descs_read += s->descs_read;
    to->indirect_tables += s->indirect_tables;
    to->used_pushed += s->used_pushed;
    to->flushes += s->flushes;
    to->event_reads += s->event_reads;
    to->event_writes += s->event_writes;
    to->interrupts_suppressed += s->interrupts_suppressed;
    to->fetch_reads += s->fetch_reads;
    to->fetch_entries += s->fetch_entries;
    to->fetch_wasted += s->fetch_wasted;
    to->fetch_wasted_bytes += s->fetch_wasted_bytes;
    to->fetch_hint_reads += s->fetch_hint_reads;
}

/* The queue's ring state is about to be cleared: keep its statistics. */
static void ring_stats_retire(struct vdev *d, uint16_t qi)
{
    if (d->q[qi].ops)
        vq_stats_add(&d->stats.ring_retired[qi], d->q[qi].ops->stats(&d->q[qi].ring));
}

struct vq_stats vdev_ring_stats(const struct vdev *d, uint16_t qi)
{
    struct vq_stats s;
    memset(&s, 0, sizeof s);
    if (qi >= VDEV_QUEUES)
        return s;
    s = d->stats.ring_retired[qi];
    if (d->q[qi].ops)
        vq_stats_add(&s, d->q[qi].ops->stats(&d->q[qi].ring));
    return s;
}

static void queue_clear(struct vdev *d, uint16_t qi)
{
    ring_stats_retire(d, qi);
    memset(&d->q[qi], 0, sizeof d->q[qi]);
    d->generation[qi]++;
}

static void vdev_reset(struct vdev *d)
{
    for (uint16_t i = 0; i < VDEV_QUEUES; i++)
        queue_clear(d, i);
    d->error = VS_REASON_NONE;
    d->error_queue = 0xffff;
    d->fifo_head = d->fifo_count = 0;
    d->outbox_head = d->outbox_count = 0;
    memset(&d->netcfg, 0, sizeof d->netcfg);
    memcpy(d->netcfg.mac, d->p.mac, sizeof d->netcfg.mac);
    d->netcfg.status = VIRTIO_NET_S_LINK_UP_MASK;
    d->netcfg.max_virtqueue_pairs = 1;
}

bool vdev_init(struct vdev *d, const struct vdev_params *p)
{
    memset(d, 0, sizeof *d);
    d->p = *p;
    d->num_queues = VDEV_QUEUES;

    d->fifo_data = calloc(p->rx_fifo_frames, p->max_frame_bytes);
    d->fifo = calloc(p->rx_fifo_frames, sizeof *d->fifo);
    bool ok = d->fifo_data && d->fifo;
    d->engines = p->queue_engines == 0 ? 1u : p->queue_engines;
    if (d->engines > VDEV_ENGINES_MAX)
        d->engines = VDEV_ENGINES_MAX;
    for (unsigned q = 0; q < VDEV_QUEUES; q++) {
        for (unsigned k = 0; k < d->engines; k++) {
            struct vdev_slot *sl = &d->slot[q][k];
            sl->frame_buf = malloc(sizeof(struct virtio_net_hdr) + p->max_frame_bytes);
            sl->segs = calloc(p->queue_size_max, sizeof *sl->segs);
            ok = ok && sl->frame_buf && sl->segs;
        }
    }
    if (!ok) {
        vdev_fini(d);
        return false;
    }

    /* One MSI-X vector for configuration changes plus one per queue. */
    msix_init(&d->msix, (uint16_t)(1 + VDEV_QUEUES));

    struct vpci_params vp;
    memset(&vp, 0, sizeof vp);
    vp.device_features = offered_features(p);
    vp.num_queues = VDEV_QUEUES;
    vp.queue_size_max = p->queue_size_max;
    vp.notify_off_multiplier = p->notify_off_multiplier;
    vp.validate_features = net_validate_features;
    vp.validate_ctx = d;
    vp.msix_vectors = d->msix.nvec;
    vpci_init(&d->vpci, &vp);

    struct vdev_region *r = d->region;
    r[VDEV_REGION_COMMON] = (struct vdev_region){VDEV_VIRTIO_BAR, VDEV_COMMON_OFFSET,
                                                 VIRTIO_PCI_COMMON_CFG_LEN};
    r[VDEV_REGION_ISR] = (struct vdev_region){VDEV_VIRTIO_BAR, VDEV_ISR_OFFSET, 4};
    r[VDEV_REGION_DEVICE] = (struct vdev_region){VDEV_VIRTIO_BAR, VDEV_DEVICE_OFFSET,
                                                 sizeof(struct virtio_net_config)};
    r[VDEV_REGION_NOTIFY] = (struct vdev_region){VDEV_VIRTIO_BAR, VDEV_NOTIFY_OFFSET,
                                                 vpci_notify_length(&vp)};
    r[VDEV_REGION_MSIX_TABLE] = (struct vdev_region){VDEV_MSIX_BAR, VDEV_MSIX_TABLE_OFFSET,
                                                     msix_table_bytes(&d->msix)};
    r[VDEV_REGION_MSIX_PBA] = (struct vdev_region){VDEV_MSIX_BAR, VDEV_MSIX_PBA_OFFSET,
                                                   msix_pba_bytes(&d->msix)};

    struct pci_cfg_params pp;
    memset(&pp, 0, sizeof pp);
    pp.vendor_id = VIRTIO_PCI_VENDOR_ID;
    pp.device_id = (uint16_t)(VIRTIO_PCI_DEVICE_ID_BASE + VIRTIO_ID_NET);
    pp.revision_id = p->revision_id;
    pp.class_code = PCI_CLASS_NETWORK_ETHERNET;
    pp.subsystem_vendor_id = p->subsystem_vendor_id;
    pp.subsystem_id = p->subsystem_id;
    uint64_t bar0 = (uint64_t)r[VDEV_REGION_NOTIFY].offset + r[VDEV_REGION_NOTIFY].length;
    pp.bars[VDEV_VIRTIO_BAR] = (struct pci_bar_params){pow2_at_least(bar0 < 0x4000 ? 0x4000 : bar0),
                                                       true, false};
    pp.bars[VDEV_MSIX_BAR] = (struct pci_bar_params){VDEV_MSIX_BAR_SIZE, true, false};
    pci_cfg_init(&d->pci, &pp);
    build_caps(d);

    vdev_reset(d);
    return true;
}

void vdev_fini(struct vdev *d)
{
    free(d->fifo_data);
    free(d->fifo);
    d->fifo_data = NULL;
    d->fifo = NULL;
    for (unsigned q = 0; q < VDEV_QUEUES; q++) {
        for (unsigned k = 0; k < VDEV_ENGINES_MAX; k++) {
            free(d->slot[q][k].frame_buf);
            free(d->slot[q][k].segs);
            d->slot[q][k].frame_buf = NULL;
            d->slot[q][k].segs = NULL;
        }
    }
}

/* ---- Interrupts ---- */
static void outbox_put(struct vdev *d, const struct msix_message *m)
{
    if (d->outbox_count == VDEV_MSI_OUTBOX)
        return; /* cannot happen: at most one message per vector is ever outstanding */
    d->outbox[(d->outbox_head + d->outbox_count) % VDEV_MSI_OUTBOX] = *m;
    d->outbox_count++;
}

static void signal_vector(struct vdev *d, uint16_t vector)
{
    struct msix_message m;
    if (msix_raise(&d->msix, vector, &m))
        outbox_put(d, &m);
}

static void drain_pending_msix(struct vdev *d)
{
    struct msix_message m;
    while (msix_take_pending(&d->msix, &m))
        outbox_put(d, &m);
}

bool vdev_take_msi(struct vdev *d, struct msix_message *msg)
{
    /* An MSI-X message is a memory write: it waits while bus mastering is off. */
    if (d->outbox_count == 0 || !pci_cfg_bus_master(&d->pci))
        return false;
    *msg = d->outbox[d->outbox_head];
    d->outbox_head = (d->outbox_head + 1) % VDEV_MSI_OUTBOX;
    d->outbox_count--;
    return true;
}

/* Enter the error state: DEVICE_NEEDS_RESET plus a configuration change notification
 * ("Device Status Field": the device SHOULD set DEVICE_NEEDS_RESET when it enters an
 * error state that needs a reset; it then MUST send a device configuration change
 * notification if DRIVER_OK is set). Sticky until the driver resets the device. */
static enum vdev_step vdev_fail(struct vdev *d, uint16_t queue, enum vs_reason why)
{
    if (d->error != VS_REASON_NONE)
        return VDEV_STEP_FAILED;
    d->error = why;
    d->error_queue = queue;
    vpci_set_needs_reset(&d->vpci);
    if (d->vpci.status & VIRTIO_STATUS_DRIVER_OK) {
        vpci_isr_set(&d->vpci, VIRTIO_PCI_ISR_CONFIG_MASK);
        d->stats.config_interrupts++;
        signal_vector(d, d->vpci.config_msix_vector);
    }
    return VDEV_STEP_FAILED;
}

/* ---- DMA gate: every device access to guest memory passes here ----
 * Bus-master enable clear means the function must not initiate memory requests
 * (PCI Local Bus 3.0 §6.2.2, Command register bit 2). */
/* After an access: did the driver reset the queue (or the device) meanwhile? */
static enum vs_dma_status gate_check(struct vdev_gate *gt, uint32_t gen, enum vs_dma_status s)
{
    if (gt->dev->generation[gt->queue] != gen) {
        gt->aborted = true;
        return VS_DMA_ABORTED;
    }
    return s;
}

static enum vs_dma_status gated_read(void *ctx, uint64_t addr, void *dst, uint32_t len,
                                     enum vs_dma_kind kind)
{
    struct vdev_gate *gt = ctx;
    struct vdev *d = gt->dev;
    if (!pci_cfg_bus_master(&d->pci)) {
        d->stats.dma_blocked++;
        return VS_DMA_BUS_MASTER_OFF;
    }
    const uint32_t gen = gt->pinned ? gt->gen : d->generation[gt->queue];
    if (d->generation[gt->queue] != gen)
        return gate_check(gt, gen, VS_DMA_ABORTED);
    d->stats.dma_reads[kind]++;
    d->stats.dma_read_bytes += len;
    enum vs_dma_status s = gt->platform->read(gt->platform->ctx, addr, dst, len, kind);
    return gate_check(gt, gen, s);
}

static enum vs_dma_status gated_write(void *ctx, uint64_t addr, const void *src, uint32_t len,
                                      enum vs_dma_kind kind)
{
    struct vdev_gate *gt = ctx;
    struct vdev *d = gt->dev;
    if (!pci_cfg_bus_master(&d->pci)) {
        d->stats.dma_blocked++;
        return VS_DMA_BUS_MASTER_OFF;
    }
    const uint32_t gen = gt->pinned ? gt->gen : d->generation[gt->queue];
    if (d->generation[gt->queue] != gen)
        return gate_check(gt, gen, VS_DMA_ABORTED);
    d->stats.dma_writes[kind]++;
    d->stats.dma_write_bytes += len;
    enum vs_dma_status s = gt->platform->write(gt->platform->ctx, addr, src, len, kind);
    return gate_check(gt, gen, s);
}

static const struct vs_guest_ops *gate_setup(struct vdev_gate *gt, struct vdev *d, uint16_t q,
                                             const struct vs_guest_ops *ops)
{
    gt->dev = d;
    gt->queue = q;
    gt->aborted = false;
    gt->platform = ops;
    gt->ops.read = gated_read;
    gt->ops.write = gated_write;
    gt->ops.ctx = gt;
    return &gt->ops;
}

/* The ops a queue-level operation on q uses: the caller's, behind the bus-master gate,
 * checked against the queue's generation at each access. */
static const struct vs_guest_ops *gate(struct vdev *d, uint16_t q, const struct vs_guest_ops *ops)
{
    d->gate[q].pinned = false;
    return gate_setup(&d->gate[q], d, q, ops);
}

/* A ring operation or a buffer DMA of queue qi failed. If the driver reset the queue
 * while the step was suspended in a DMA, the step just stops (the queue's state
 * belongs to the new generation now); otherwise the device needs a reset. */
static enum vdev_step ring_failed_at(struct vdev *d, uint16_t qi, const struct vdev_gate *gt)
{
    if (gt->aborted)
        return VDEV_STEP_IDLE;
    return vdev_fail(d, qi, d->q[qi].ops->broken(&d->q[qi].ring));
}

static enum vdev_step ring_failed(struct vdev *d, uint16_t qi)
{
    return ring_failed_at(d, qi, &d->gate[qi]);
}

static enum vdev_step dma_failed_at(struct vdev *d, uint16_t qi, const struct vdev_gate *gt,
                                    enum vs_dma_status s)
{
    if (s == VS_DMA_ABORTED || gt->aborted)
        return VDEV_STEP_IDLE;
    return vdev_fail(d, qi, vs_dma_status_reason(s));
}

static enum vdev_step dma_failed(struct vdev *d, uint16_t qi, enum vs_dma_status s)
{
    return dma_failed_at(d, qi, &d->gate[qi], s);
}

/* ---- Register file side effects ---- */
static void queue_enable(struct vdev *d, uint16_t qi)
{
    const struct vpci_queue *r = &d->vpci.q[qi];
    struct vq_config cfg = {
        .size = r->size,
        .desc_addr = r->desc,
        .driver_addr = r->driver,
        .device_addr = r->device,
        .indirect_desc = vpci_negotiated(&d->vpci, VIRTIO_F_INDIRECT_DESC_BIT),
        .event_idx = vpci_negotiated(&d->vpci, VIRTIO_F_EVENT_IDX_BIT),
        .in_order = vpci_negotiated(&d->vpci, VIRTIO_F_IN_ORDER_BIT),
        .fetch_batch = d->p.fetch_batch,
        .fetch_source = d->p.fetch_source,
    };
    /* The control queue exists only with VIRTIO_NET_F_CTRL_VQ ("Virtqueues"). */
    if (qi == VDEV_QUEUE_CTRL && !vpci_negotiated(&d->vpci, VIRTIO_NET_F_CTRL_VQ_BIT)) {
        vdev_fail(d, qi, VS_REASON_QUEUE_SIZE_INVALID);
        return;
    }
    /* The ring format is decided here, once: RING_PACKED negotiated or not
     * ("Basic Facilities of a Virtio Device / Virtqueues"). */
    struct vdev_queue *q = &d->q[qi];
    ring_stats_retire(d, qi);
    memset(&q->ring, 0, sizeof q->ring);
    q->ops = vpci_negotiated(&d->vpci, VIRTIO_F_RING_PACKED_BIT) ? &packed_vq_ops : &split_vq_ops;
    enum vs_reason why = q->ops->check_config(&cfg, d->p.queue_size_max);
    if (why != VS_REASON_NONE) {
        vdev_fail(d, qi, why);
        return;
    }
    q->cfg = cfg;
    q->ops->init(&q->ring, &cfg);
    q->enabled = true;
    q->take_seq = q->finish_seq = q->fifo_reserved = 0;
    d->generation[qi]++;
}

static void apply_event(struct vdev *d, struct vpci_event ev, uint16_t *kicked)
{
    switch (ev.kind) {
    case VPCI_EV_NONE:
    case VPCI_EV_FEATURES_OK:
    case VPCI_EV_DRIVER_OK:
        break;
    case VPCI_EV_RESET:
        d->stats.resets++;
        vdev_reset(d);
        break;
    case VPCI_EV_QUEUE_ENABLE:
        if (ev.queue < VDEV_QUEUES)
            queue_enable(d, ev.queue);
        break;
    case VPCI_EV_QUEUE_RESET:
        if (ev.queue < VDEV_QUEUES)
            queue_clear(d, ev.queue);
        break;
    case VPCI_EV_NOTIFY:
        if (ev.queue < VDEV_QUEUES) {
            d->q[ev.queue].kicks++;
            if (ev.has_data && d->q[ev.queue].enabled)
                d->q[ev.queue].ops->set_avail_hint(&d->q[ev.queue].ring, ev.next_off, ev.next_wrap);
            if (kicked)
                *kicked = ev.queue;
        }
        break;
    case VPCI_EV_ERROR:
        vdev_fail(d, ev.queue, ev.reason);
        break;
    }
}

/* ---- Configuration space ---- */
static bool in_window(uint32_t off, unsigned size, uint32_t start, uint32_t len)
{
    return off < start + len && off + size > start;
}

static uint64_t bar_read(struct vdev *d, int bar, uint64_t off, unsigned size);
static void bar_write(struct vdev *d, int bar, uint64_t off, unsigned size, uint64_t value,
                      uint16_t *kicked);

uint32_t vdev_cfg_read(struct vdev *d, uint32_t off, unsigned size)
{
    d->stats.cfg_reads++;
    /* PCI-cfg access capability: a read of pci_cfg_data performs the BAR read the
     * driver set up in cap.bar/offset/length ("PCI configuration access capability"). */
    uint32_t data = d->cap_pci_cfg + (uint32_t)offsetof(struct virtio_pci_cfg_cap, pci_cfg_data);
    if (d->cap_pci_cfg && in_window(off, size, data, 4)) {
        uint8_t bar = (uint8_t)pci_cfg_read(&d->pci, d->cap_pci_cfg + 4, 1);
        uint32_t boff = pci_cfg_read(&d->pci, d->cap_pci_cfg + 8, 4);
        uint32_t blen = pci_cfg_read(&d->pci, d->cap_pci_cfg + 12, 4);
        if (bar < PCI_NUM_BARS && (blen == 1 || blen == 2 || blen == 4) && boff % blen == 0) {
            uint32_t v = (uint32_t)bar_read(d, bar, boff, blen);
            pci_cfg_poke(&d->pci, data, 4, v);
        }
    }
    return pci_cfg_read(&d->pci, off, size);
}

void vdev_cfg_write(struct vdev *d, uint32_t off, unsigned size, uint32_t value)
{
    d->stats.cfg_writes++;
    pci_cfg_write(&d->pci, off, size, value);

    if (d->cap_msix && in_window(off, size, d->cap_msix + 2u, 2)) {
        uint16_t ctl = (uint16_t)pci_cfg_read(&d->pci, d->cap_msix + 2u, 2);
        msix_set_control(&d->msix, ctl & MSIX_MSGCTL_ENABLE_MASK, ctl & MSIX_MSGCTL_FMASK_MASK);
        drain_pending_msix(d);
    }
    uint32_t data = d->cap_pci_cfg + (uint32_t)offsetof(struct virtio_pci_cfg_cap, pci_cfg_data);
    if (d->cap_pci_cfg && in_window(off, size, data, 4)) {
        uint8_t bar = (uint8_t)pci_cfg_read(&d->pci, d->cap_pci_cfg + 4, 1);
        uint32_t boff = pci_cfg_read(&d->pci, d->cap_pci_cfg + 8, 4);
        uint32_t blen = pci_cfg_read(&d->pci, d->cap_pci_cfg + 12, 4);
        if (bar < PCI_NUM_BARS && (blen == 1 || blen == 2 || blen == 4) && boff % blen == 0) {
            uint32_t v = pci_cfg_read(&d->pci, data, 4);
            if (blen < 4)
                v &= (1u << (8 * blen)) - 1;
            bar_write(d, bar, boff, blen, v, NULL);
        }
    }
}

/* ---- Memory space ---- */
static const struct vdev_region *find_region(const struct vdev *d, int bar, uint64_t off,
                                             unsigned size, enum vdev_region_kind *kind)
{
    for (int k = 0; k < VDEV_REGION_COUNT; k++) {
        const struct vdev_region *r = &d->region[k];
        if (r->bar == bar && off >= r->offset && off + size <= (uint64_t)r->offset + r->length) {
            *kind = (enum vdev_region_kind)k;
            return r;
        }
    }
    return NULL;
}

static uint64_t common_read(struct vdev *d, uint32_t off, unsigned size)
{
    if (size == 8) /* 64-bit fields may be read as one access or two halves */
        return vpci_common_read(&d->vpci, off, 4) |
               ((uint64_t)vpci_common_read(&d->vpci, off + 4, 4) << 32);
    return vpci_common_read(&d->vpci, off, size);
}

static uint64_t bar_read(struct vdev *d, int bar, uint64_t off, unsigned size)
{
    enum vdev_region_kind kind;
    const struct vdev_region *r = find_region(d, bar, off, size, &kind);
    if (!r)
        return 0;
    uint32_t roff = (uint32_t)(off - r->offset);
    switch (kind) {
    case VDEV_REGION_COMMON:
        return common_read(d, roff, size);
    case VDEV_REGION_ISR:
        return roff == 0 ? vpci_isr_read(&d->vpci) : 0;
    case VDEV_REGION_DEVICE: {
        uint64_t v = 0;
        if (size <= 8)
            memcpy(&v, (const uint8_t *)&d->netcfg + roff, size);
        return v;
    }
    case VDEV_REGION_NOTIFY:
        return 0;
    case VDEV_REGION_MSIX_TABLE:
        return msix_table_read(&d->msix, roff, size);
    case VDEV_REGION_MSIX_PBA:
        return msix_pba_read(&d->msix, roff, size);
    case VDEV_REGION_COUNT:
        break;
    }
    return 0;
}

static void bar_write(struct vdev *d, int bar, uint64_t off, unsigned size, uint64_t value,
                      uint16_t *kicked)
{
    enum vdev_region_kind kind;
    const struct vdev_region *r = find_region(d, bar, off, size, &kind);
    if (!r)
        return;
    uint32_t roff = (uint32_t)(off - r->offset);
    switch (kind) {
    case VDEV_REGION_COMMON:
        if (size == 8) {
            apply_event(d, vpci_common_write(&d->vpci, roff, 4, (uint32_t)value), kicked);
            apply_event(d, vpci_common_write(&d->vpci, roff + 4, 4, (uint32_t)(value >> 32)),
                        kicked);
        } else {
            apply_event(d, vpci_common_write(&d->vpci, roff, size, (uint32_t)value), kicked);
        }
        break;
    case VDEV_REGION_NOTIFY:
        apply_event(d, vpci_notify_write(&d->vpci, roff, size, (uint32_t)value), kicked);
        break;
    case VDEV_REGION_MSIX_TABLE: {
        enum vs_reason why = msix_table_write(&d->msix, roff, size, value);
        if (why != VS_REASON_NONE)
            vdev_fail(d, 0xffff, why);
        drain_pending_msix(d);
        break;
    }
    case VDEV_REGION_ISR:    /* read-only */
    case VDEV_REGION_DEVICE: /* virtio-net config is read-only for the driver */
    case VDEV_REGION_MSIX_PBA:
    case VDEV_REGION_COUNT:
        break;
    }
}

bool vdev_mmio_read(struct vdev *d, uint64_t addr, unsigned size, uint64_t *value)
{
    uint64_t off;
    int bar = pci_cfg_decode(&d->pci, addr, size, &off);
    if (bar < 0 || (size != 1 && size != 2 && size != 4 && size != 8)) {
        d->stats.mmio_unclaimed++;
        *value = size >= 8 ? ~0ull : (1ull << (8 * size)) - 1;
        return false;
    }
    d->stats.mmio_reads++;
    *value = bar_read(d, bar, off, size);
    return true;
}

bool vdev_mmio_write(struct vdev *d, uint64_t addr, unsigned size, uint64_t value,
                     uint16_t *kicked_queue)
{
    *kicked_queue = 0xffff;
    uint64_t off;
    int bar = pci_cfg_decode(&d->pci, addr, size, &off);
    if (bar < 0 || (size != 1 && size != 2 && size != 4 && size != 8)) {
        d->stats.mmio_unclaimed++;
        return false;
    }
    d->stats.mmio_writes++;
    bar_write(d, bar, off, size, value, kicked_queue);
    return true;
}

/* ---- Queue processing ---- */
bool vdev_queue_live(const struct vdev *d, uint16_t q)
{
    return q < VDEV_QUEUES && d->q[q].enabled && d->error == VS_REASON_NONE &&
           (d->vpci.status & VIRTIO_STATUS_DRIVER_OK);
}

uint32_t vdev_fifo_frames(const struct vdev *d) { return d->fifo_count; }
bool vdev_fifo_full(const struct vdev *d) { return d->fifo_count == d->p.rx_fifo_frames; }

/* Copy a buffer's device-readable segments into dst (at most cap bytes). */
static enum vs_dma_status read_segments(const struct vs_guest_ops *ops, const struct vq_seg *segs,
                                        uint32_t nsegs, uint8_t *dst, uint32_t cap,
                                        uint32_t *copied)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < nsegs && !segs[i].device_writable; i++) {
        uint32_t len = segs[i].len;
        if (len > cap - n)
            len = cap - n;
        if (len == 0)
            break;
        enum vs_dma_status s = ops->read(ops->ctx, segs[i].addr, dst + n, len, VS_DMA_BUF_READ);
        if (s != VS_DMA_OK)
            return s;
        n += len;
    }
    *copied = n;
    return VS_DMA_OK;
}

/* Write src across a buffer's device-writable segments. */
static enum vs_dma_status write_segments(const struct vs_guest_ops *ops, const struct vq_seg *segs,
                                         uint32_t nsegs, const uint8_t *src, uint32_t len)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < nsegs && n < len; i++) {
        if (!segs[i].device_writable)
            continue;
        uint32_t chunk = segs[i].len < len - n ? segs[i].len : len - n;
        enum vs_dma_status s = ops->write(ops->ctx, segs[i].addr, src + n, chunk, VS_DMA_BUF_WRITE);
        if (s != VS_DMA_OK)
            return s;
        n += chunk;
    }
    return VS_DMA_OK;
}

static enum vdev_step pop(struct vdev *d, uint16_t qi, struct vdev_slot *sl,
                          const struct vs_guest_ops *g, struct vdev_work *w)
{
    struct vdev_queue *q = &d->q[qi];
    const uint64_t before = q->ops->stats(&q->ring)->descs_read;
    enum vq_status s = q->ops->pop(&q->ring, g, &sl->e, sl->segs, d->p.queue_size_max);
    if (sl->gate.aborted)
        return VDEV_STEP_IDLE; /* the queue was reset meanwhile: q belongs to it now */
    w->descs += (uint32_t)(q->ops->stats(&q->ring)->descs_read - before);
    if (s == VQ_EMPTY)
        return VDEV_STEP_IDLE;
    if (s == VQ_BROKEN)
        return ring_failed_at(d, qi, &sl->gate);
    return VDEV_STEP_DONE;
}

static enum vdev_step push(struct vdev *d, uint16_t qi, struct vdev_slot *sl)
{
    struct vdev_queue *q = &d->q[qi];
    if (q->ops->push(&q->ring, &sl->gate.ops, &sl->e, sl->written) != VQ_OK)
        return ring_failed_at(d, qi, &sl->gate);
    if (q->ops->pending(&q->ring) >= d->p.used_batch_max)
        return vdev_complete(d, qi, sl->gate.platform);
    return VDEV_STEP_DONE;
}

/* A slot of queue qi, or NULL when qi or k is out of range. */
static struct vdev_slot *slot_of(struct vdev *d, uint16_t qi, unsigned k)
{
    return qi < VDEV_QUEUES && k < d->engines ? &d->slot[qi][k] : NULL;
}

/* Transmit ("Network Device / Device Operation / Transmitting Packets"): the buffer is
 * a virtio-net header followed by the frame, all device-readable. */
static enum vdev_step tx_take(struct vdev *d, struct vdev_slot *sl, struct vdev_work *w)
{
    const uint16_t qi = VDEV_QUEUE_TX;
    /* Loopback applies back-pressure instead of dropping; buffers in flight hold the
     * FIFO places they will fill. */
    if (d->p.backend == VDEV_BACKEND_LOOPBACK &&
        d->fifo_count + d->q[qi].fifo_reserved >= d->p.rx_fifo_frames)
        return VDEV_STEP_BLOCKED;
    enum vdev_step st = pop(d, qi, sl, &sl->gate.ops, w);
    if (st != VDEV_STEP_DONE)
        return st;
    if (sl->e.writable_bytes != 0)
        return vdev_fail(d, qi, VS_REASON_TX_HAS_WRITABLE);
    const uint32_t hdr = sizeof(struct virtio_net_hdr);
    if (sl->e.readable_bytes < hdr)
        return vdev_fail(d, qi, VS_REASON_TX_FRAME_TOO_SHORT);
    if (sl->e.readable_bytes - hdr > d->p.max_frame_bytes)
        return vdev_fail(d, qi, VS_REASON_TX_FRAME_TOO_LONG);
    if (d->p.backend == VDEV_BACKEND_LOOPBACK)
        d->q[qi].fifo_reserved++;
    return VDEV_STEP_DONE;
}

static enum vdev_step tx_move(struct vdev *d, struct vdev_slot *sl, struct vdev_work *w)
{
    const uint16_t qi = VDEV_QUEUE_TX;
    const uint32_t hdr = sizeof(struct virtio_net_hdr);
    uint32_t copied = 0;
    enum vs_dma_status s = read_segments(&sl->gate.ops, sl->segs, sl->e.nsegs, sl->frame_buf,
                                         hdr + d->p.max_frame_bytes, &copied);
    if (s != VS_DMA_OK)
        return dma_failed_at(d, qi, &sl->gate, s);
    sl->len = copied;
    w->bytes_read += copied;
    w->buffers++;
    w->frames++;
    d->stats.tx_frames++;
    d->stats.tx_bytes += copied - hdr;
    return VDEV_STEP_DONE;
}

static void tx_finish(struct vdev *d, struct vdev_slot *sl)
{
    const uint32_t hdr = sizeof(struct virtio_net_hdr);
    const uint32_t frame_len = sl->len - hdr;
    if (d->p.backend == VDEV_BACKEND_LOOPBACK) {
        uint32_t at = (d->fifo_head + d->fifo_count) % d->p.rx_fifo_frames;
        memcpy(d->fifo_data + (size_t)at * d->p.max_frame_bytes, sl->frame_buf + hdr, frame_len);
        d->fifo[at] = (struct vdev_frame){frame_len, d->tx_seq++};
        d->fifo_count++;
        d->q[VDEV_QUEUE_TX].fifo_reserved--;
    } else {
        d->stats.sink_frames++;
    }
    /* Transmit buffers are returned with a used length of 0: the device wrote nothing. */
    sl->written = 0;
}

/* Receive the next frame from the FIFO into the next receive buffer ("Network Device /
 * Device Operation / Receiving Packets"). Without VIRTIO_NET_F_MRG_RXBUF the frame
 * must fit in one buffer and num_buffers is 1. */
static enum vdev_step rx_take(struct vdev *d, struct vdev_slot *sl, struct vdev_work *w)
{
    const uint16_t qi = VDEV_QUEUE_RX;
    if (d->fifo_count == 0)
        return VDEV_STEP_IDLE;
    enum vdev_step st = pop(d, qi, sl, &sl->gate.ops, w);
    if (st == VDEV_STEP_IDLE) {
        d->stats.rx_no_buffer++;
        return VDEV_STEP_BLOCKED;
    }
    if (st != VDEV_STEP_DONE)
        return st;
    if (sl->e.readable_bytes != 0)
        return vdev_fail(d, qi, VS_REASON_RX_HAS_READABLE);
    const uint32_t hdr = sizeof(struct virtio_net_hdr);
    if (sl->e.writable_bytes < hdr)
        return vdev_fail(d, qi, VS_REASON_RX_BUFFER_TOO_SMALL);

    const struct vdev_frame *f = &d->fifo[d->fifo_head];
    const uint8_t *payload = d->fifo_data + (size_t)d->fifo_head * d->p.max_frame_bytes;
    uint32_t len = f->len;
    d->fifo_head = (d->fifo_head + 1) % d->p.rx_fifo_frames;
    d->fifo_count--;
    sl->drop = len > sl->e.writable_bytes - hdr;
    if (sl->drop) {
        /* Frame does not fit: it is dropped and the buffer returned unused. */
        d->stats.rx_dropped_too_big++;
        sl->len = 0;
        return VDEV_STEP_DONE;
    }
    struct virtio_net_hdr h;
    memset(&h, 0, sizeof h);
    h.num_buffers = 1;
    memcpy(sl->frame_buf, &h, hdr);
    memcpy(sl->frame_buf + hdr, payload, len);
    sl->len = hdr + len;
    return VDEV_STEP_DONE;
}

static enum vdev_step rx_move(struct vdev *d, struct vdev_slot *sl, struct vdev_work *w)
{
    const uint16_t qi = VDEV_QUEUE_RX;
    w->buffers++;
    if (sl->drop)
        return VDEV_STEP_DONE;
    enum vs_dma_status s = write_segments(&sl->gate.ops, sl->segs, sl->e.nsegs, sl->frame_buf,
                                          sl->len);
    if (s != VS_DMA_OK)
        return dma_failed_at(d, qi, &sl->gate, s);
    const uint32_t hdr = sizeof(struct virtio_net_hdr);
    w->bytes_written += sl->len;
    w->frames++;
    d->stats.rx_frames++;
    d->stats.rx_bytes += sl->len - hdr;
    return VDEV_STEP_DONE;
}

/* Control queue ("Network Device / Device Operation / Control Virtqueue"): class and
 * command in the readable part, the ack byte is the last writable byte. This device
 * offers none of the command classes' features, so every command gets
 * VIRTIO_NET_ERR. */
static enum vdev_step ctrl_move(struct vdev *d, struct vdev_slot *sl, struct vdev_work *w)
{
    const uint16_t qi = VDEV_QUEUE_CTRL;
    sl->written = 0;
    if (sl->e.readable_bytes >= 2 && sl->e.writable_bytes >= 1) {
        const struct vq_seg *last = &sl->segs[sl->e.nsegs - 1];
        uint8_t ack = VIRTIO_NET_ERR;
        enum vs_dma_status s = sl->gate.ops.write(sl->gate.ops.ctx, last->addr + last->len - 1,
                                                  &ack, 1, VS_DMA_BUF_WRITE);
        if (s != VS_DMA_OK)
            return dma_failed_at(d, qi, &sl->gate, s);
        sl->written = 1;
        w->bytes_written += 1;
    }
    d->stats.ctrl_commands++;
    w->buffers++;
    return VDEV_STEP_DONE;
}

enum vdev_step vdev_take(struct vdev *d, uint16_t qi, unsigned k, const struct vs_guest_ops *ops,
                         struct vdev_work *w)
{
    struct vdev_slot *sl = slot_of(d, qi, k);
    if (!sl || !vdev_queue_live(d, qi))
        return d->error != VS_REASON_NONE ? VDEV_STEP_FAILED : VDEV_STEP_IDLE;
    assert(!sl->busy || sl->generation != d->generation[qi]);
    sl->busy = false;
    sl->generation = d->generation[qi];
    sl->gate.pinned = true;
    sl->gate.gen = sl->generation;
    gate_setup(&sl->gate, d, qi, ops);
    sl->drop = false;
    sl->len = sl->written = 0;
    enum vdev_step st;
    switch (qi) {
    case VDEV_QUEUE_TX:
        st = tx_take(d, sl, w);
        break;
    case VDEV_QUEUE_RX:
        st = rx_take(d, sl, w);
        break;
    default:
        st = pop(d, qi, sl, &sl->gate.ops, w);
        break;
    }
    if (st != VDEV_STEP_DONE)
        return st;
    sl->busy = true;
    sl->seq = d->q[qi].take_seq++;
    return VDEV_STEP_DONE;
}

/* Has the slot's queue been reset (or re-enabled) since the slot's take? */
static bool slot_stale(const struct vdev *d, uint16_t qi, const struct vdev_slot *sl)
{
    return !sl->busy || sl->generation != d->generation[qi];
}

enum vdev_step vdev_move(struct vdev *d, uint16_t qi, unsigned k, struct vdev_work *w)
{
    struct vdev_slot *sl = slot_of(d, qi, k);
    if (!sl)
        return VDEV_STEP_IDLE;
    if (d->error != VS_REASON_NONE)
        return VDEV_STEP_FAILED;
    if (slot_stale(d, qi, sl))
        return VDEV_STEP_IDLE;
    sl->gate.aborted = false;
    switch (qi) {
    case VDEV_QUEUE_TX:
        return tx_move(d, sl, w);
    case VDEV_QUEUE_RX:
        return rx_move(d, sl, w);
    default:
        return ctrl_move(d, sl, w);
    }
}

enum vdev_step vdev_finish(struct vdev *d, uint16_t qi, unsigned k, struct vdev_work *w)
{
    (void)w;
    struct vdev_slot *sl = slot_of(d, qi, k);
    if (!sl)
        return VDEV_STEP_IDLE;
    if (d->error != VS_REASON_NONE)
        return VDEV_STEP_FAILED;
    if (slot_stale(d, qi, sl)) {
        sl->busy = false;
        return VDEV_STEP_IDLE;
    }
    /* Buffers complete in the order they were taken: valid with and without IN_ORDER
     * ("In-order use of descriptors" requires it only with the feature). */
    if (sl->seq != d->q[qi].finish_seq)
        return VDEV_STEP_WAIT;
    sl->gate.aborted = false;
    if (qi == VDEV_QUEUE_TX)
        tx_finish(d, sl);
    else if (qi == VDEV_QUEUE_RX)
        sl->written = sl->drop ? 0 : sl->len;
    sl->busy = false;
    /* The turn passes only once the push (and any publication) is done: a push may
     * be suspended in its DMA, and the next buffer's push must not start meanwhile. A
     * queue reset during it started a new numbering, which is left alone. */
    enum vdev_step st = push(d, qi, sl);
    if (d->generation[qi] == sl->generation)
        d->q[qi].finish_seq++;
    return st;
}

/* One buffer start to end on slot 0. */
static enum vdev_step one_step(struct vdev *d, uint16_t qi, const struct vs_guest_ops *ops,
                               struct vdev_work *w)
{
    enum vdev_step st = vdev_take(d, qi, 0, ops, w);
    if (st != VDEV_STEP_DONE)
        return st;
    st = vdev_move(d, qi, 0, w);
    if (st != VDEV_STEP_DONE)
        return st;
    return vdev_finish(d, qi, 0, w);
}

enum vdev_step vdev_tx_step(struct vdev *d, const struct vs_guest_ops *ops, struct vdev_work *w)
{
    return one_step(d, VDEV_QUEUE_TX, ops, w);
}

enum vdev_step vdev_rx_step(struct vdev *d, const struct vs_guest_ops *ops, struct vdev_work *w)
{
    return one_step(d, VDEV_QUEUE_RX, ops, w);
}

enum vdev_step vdev_ctrl_step(struct vdev *d, const struct vs_guest_ops *ops, struct vdev_work *w)
{
    return one_step(d, VDEV_QUEUE_CTRL, ops, w);
}

enum vdev_step vdev_complete(struct vdev *d, uint16_t qi, const struct vs_guest_ops *ops)
{
    if (qi >= VDEV_QUEUES || !d->q[qi].enabled)
        return VDEV_STEP_IDLE;
    if (d->error != VS_REASON_NONE)
        return VDEV_STEP_FAILED;
    const struct vs_guest_ops *g = gate(d, qi, ops);
    struct vdev_queue *q = &d->q[qi];
    if (q->ops->pending(&q->ring) == 0)
        return VDEV_STEP_IDLE;
    /* Without VIRTIO_F_ORDER_PLATFORM the driver only promises CPU-to-CPU ordering, and
     * a device "MAY operate in a slower emulation mode" ("Reserved Feature Bits"): this
     * one reads back before publishing, so its buffer writes are visible to the driver
     * before the used entries that point at them whatever the platform reorders. */
    if (!vpci_negotiated(&d->vpci, VIRTIO_F_ORDER_PLATFORM_BIT)) {
        uint32_t scratch;
        enum vs_dma_status s = g->read(g->ctx, q->cfg.device_addr, &scratch, sizeof scratch,
                                       VS_DMA_FLUSH_READ);
        if (s != VS_DMA_OK)
            return dma_failed(d, qi, s);
    }
    if (q->ops->flush(&q->ring, g) != VQ_OK)
        return ring_failed(d, qi);
    bool interrupt = false;
    if (q->ops->should_interrupt(&q->ring, g, &interrupt) != VQ_OK)
        return ring_failed(d, qi);
    if (interrupt) {
        d->stats.interrupts_raised++;
        if (!d->msix.enabled)
            vpci_isr_set(&d->vpci, VIRTIO_PCI_ISR_QUEUE_MASK);
        signal_vector(d, d->vpci.q[qi].msix_vector);
    }
    return VDEV_STEP_DONE;
}

enum vdev_step vdev_arm_notifications(struct vdev *d, uint16_t qi, const struct vs_guest_ops *ops)
{
    if (!vdev_queue_live(d, qi))
        return d->error != VS_REASON_NONE ? VDEV_STEP_FAILED : VDEV_STEP_IDLE;
    const struct vs_guest_ops *g = gate(d, qi, ops);
    struct vdev_queue *q = &d->q[qi];
    if (q->ops->set_notifications(&q->ring, g, true) != VQ_OK)
        return ring_failed(d, qi);
    /* Re-check after enabling: the driver may have made buffers available before it
     * could see our request ("Driver and Device Event Suppression"). */
    bool avail = false;
    if (q->ops->peek(&q->ring, g, &avail) != VQ_OK)
        return ring_failed(d, qi);
    return avail ? VDEV_STEP_DONE : VDEV_STEP_IDLE;
}

enum vdev_step vdev_quiet_notifications(struct vdev *d, uint16_t qi, const struct vs_guest_ops *ops)
{
    if (!vdev_queue_live(d, qi))
        return d->error != VS_REASON_NONE ? VDEV_STEP_FAILED : VDEV_STEP_IDLE;
    struct vdev_queue *q = &d->q[qi];
    /* With EVENT_IDX the armed event index already stops notifications until the
     * driver passes it; only the flag-based scheme needs an explicit disable. */
    if (q->cfg.event_idx)
        return VDEV_STEP_DONE;
    const struct vs_guest_ops *g = gate(d, qi, ops);
    if (q->ops->set_notifications(&q->ring, g, false) != VQ_OK)
        return ring_failed(d, qi);
    return VDEV_STEP_DONE;
}
