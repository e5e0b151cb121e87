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
/* viosim extension: the device-memory event suppression window takes the page after
 * the notification region, and is absent unless offered (vdev_params.devmem_event). */
#define VDEV_DEVMEM_EVENT_LENGTH 0x1000u
#define VDEV_MSIX_TABLE_OFFSET 0x0000u
#define VDEV_MSIX_PBA_OFFSET   0x0800u
#define VDEV_MSIX_BAR_SIZE     0x1000u

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
    if (p->backend == VDEV_BACKEND_RESPONDER && p->max_frame_bytes < NET_ANSWER_MIN_FRAME)
        return "the responder backend needs max_frame_bytes of at least 60 (its replies' size)";
    if (p->backend > VDEV_BACKEND_RESPONDER)
        return "backend is not loopback, sink or responder";
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
        VIRTIO_NET_F_STATUS_BIT,     VIRTIO_NET_F_NOTF_COAL_BIT, VIRTIO_NET_F_VQ_NOTF_COAL_BIT,
    };
    vs_features f;
    memset(&f, 0, sizeof f);
    for (size_t i = 0; i < sizeof bits / sizeof bits[0]; i++)
        vs_feature_set(&f, bits[i]);
    if (p->devmem_event)
        vs_feature_set(&f, VIOSIM_NET_F_DEVMEM_EVENT_BIT); /* viosim-specific, non-standard */
    if (p->devmem_event && p->devmem_event_recheck)
        vs_feature_set(&f, VIOSIM_NET_F_DEVMEM_EVENT_RECHECK_BIT);
    for (unsigned w = 0; w < VS_FEATURE_WORDS; w++)
        f.w[w] &= ~p->withdraw.w[w];
    return f;
}

/* Device-specific feature dependencies checked at FEATURES_OK ("Network Device /
 * Feature bits / Feature bit requirements"): of the features this device offers,
 * VIRTIO_NET_F_NOTF_COAL and VIRTIO_NET_F_VQ_NOTF_COAL require VIRTIO_NET_F_CTRL_VQ
 * (their commands travel on the control queue); a driver that accepts either without
 * it does not get FEATURES_OK. */
static bool net_validate_features(void *ctx, const vs_features *drv)
{
    (void)ctx;
    const bool ctrl_vq = vs_feature_has(drv, VIRTIO_NET_F_CTRL_VQ_BIT);
    if (!ctrl_vq && (vs_feature_has(drv, VIRTIO_NET_F_NOTF_COAL_BIT) ||
                     vs_feature_has(drv, VIRTIO_NET_F_VQ_NOTF_COAL_BIT)))
        return false;
    /* viosim extension: the re-check is part of device-memory event suppression. */
    if (vs_feature_has(drv, VIOSIM_NET_F_DEVMEM_EVENT_RECHECK_BIT) &&
        !vs_feature_has(drv, VIOSIM_NET_F_DEVMEM_EVENT_BIT))
        return false;
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

    /* viosim extension: a Vendor data capability naming the device-memory event
     * suppression window ("Vendor data capability": vendor_id not 0x1AF4, size a
     * multiple of 4, reads without side effects). A standard driver ignores it. */
    if (d->p.devmem_event) {
        struct viosim_devmem_event_cap vcap;
        memset(&vcap, 0, sizeof vcap);
        vcap.cap_vndr = PCI_CAP_ID_VNDR;
        vcap.cap_len = sizeof vcap;
        vcap.cfg_type = VIRTIO_PCI_CAP_VENDOR_CFG;
        vcap.vendor_id = VIOSIM_PCI_VNDR_ID;
        vcap.format = VIOSIM_VNDR_FMT_DEVMEM_EVENT;
        vcap.bar = r[VDEV_REGION_DEVMEM_EVENT].bar;
        vcap.offset = r[VDEV_REGION_DEVMEM_EVENT].offset;
        vcap.length = r[VDEV_REGION_DEVMEM_EVENT].length;
        vcap.slot_bytes = VIOSIM_DEVMEM_SLOT_BYTES;
        vcap.num_slots = d->num_queues;
        pci_cfg_add_cap(c, &vcap, sizeof vcap, NULL);
    }

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
    memset(d->devmem_event[qi], 0, sizeof d->devmem_event[qi]);
    d->generation[qi]++;
}

static void vdev_reset(struct vdev *d)
{
    for (uint16_t i = 0; i < VDEV_QUEUES; i++)
        queue_clear(d, i);
    d->error = VS_REASON_NONE;
    d->error_queue = 0xffff;
    net_fifo_clear(&d->fifo);
    d->outbox_head = d->outbox_count = 0;
    /* "Upon reset, a device MUST initialize all coalescing parameters to 0." Window
     * numbers keep counting, so a platform timer from before the reset stays stale. */
    for (uint16_t i = 0; i < VDEV_QUEUES; i++)
        coal_reset(&d->coal[i]);
    memset(&d->coal_tx_set, 0, sizeof d->coal_tx_set);
    memset(&d->coal_rx_set, 0, sizeof d->coal_rx_set);
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

    bool ok = net_fifo_init(&d->fifo, p->rx_fifo_frames, p->max_frame_bytes);
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
    if (p->devmem_event) {
        uint32_t at = (uint32_t)((bar0 + 0xfffu) & ~(uint64_t)0xfffu);
        r[VDEV_REGION_DEVMEM_EVENT] = (struct vdev_region){VDEV_VIRTIO_BAR, at,
                                                           VDEV_DEVMEM_EVENT_LENGTH};
        bar0 = (uint64_t)at + VDEV_DEVMEM_EVENT_LENGTH;
    }
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
    net_fifo_fini(&d->fifo);
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

/* A used buffer notification for queue qi: the ISR bit without MSI-X, the queue's
 * vector otherwise ("Used Buffer Notifications"). */
static void raise_used_interrupt(struct vdev *d, uint16_t qi)
{
    d->stats.interrupts_raised++;
    if (!d->msix.enabled)
        vpci_isr_set(&d->vpci, VIRTIO_PCI_ISR_QUEUE_MASK);
    signal_vector(d, d->vpci.q[qi].msix_vector);
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
    vs_conf_report_reason(&d->vpci.conf, why, queue);
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
    if (kind == VS_DMA_EVENT_READ)
        d->stats.event_reads_link[gt->queue]++;
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
        .driver_event_local = vpci_negotiated(&d->vpci, VIOSIM_NET_F_DEVMEM_EVENT_BIT)
                                  ? d->devmem_event[qi] : NULL,
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
    /* "Upon disabling and re-enabling a transmit [receive] virtqueue, the device MUST set
     * the coalescing parameters of the virtqueue to those configured through the
     * VIRTIO_NET_CTRL_NOTF_COAL_TX_SET [RX_SET] command, or ... to 0": the class values
     * are zero until a TX_SET / RX_SET and after a reset. */
    static const struct virtio_net_ctrl_coal none;
    coal_enable(&d->coal[qi], qi == VDEV_QUEUE_TX   ? &d->coal_tx_set
                              : qi == VDEV_QUEUE_RX ? &d->coal_rx_set
                                                    : &none);
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

/* ---- viosim extension: driver event suppression in device memory ----
 * (VIOSIM_NET_F_DEVMEM_EVENT, docs/event-suppression.md). The window holds one
 * VIOSIM_DEVMEM_SLOT_BYTES slot per queue; the ring kernels read a queue's slot instead
 * of the Driver Area when the feature is negotiated (queue_enable). Rules:
 *  - not negotiated (including before FEATURES_OK): writes are ignored and counted; the
 *    device reads the spec's structures in RAM, so nothing the driver meant is lost;
 *  - an aligned 4-byte write at a slot's start replaces the slot; an aligned 2-byte
 *    write replaces one field; anything else (1 or 8 bytes, misaligned, straddling two
 *    slots) cannot be mapped onto the fields and sets NEEDS_RESET
 *    (DEVMEM_EVENT_ACCESS_INVALID): ignoring it could leave interrupts off for good;
 *  - a slot of a queue that does not exist (at or past num_queues, or the control
 *    queue without VIRTIO_NET_F_CTRL_VQ) sets NEEDS_RESET (DEVMEM_EVENT_QUEUE_INVALID),
 *    as a notification naming such a queue does;
 *  - a slot may be written before its queue is enabled; device and queue resets clear
 *    it (flags 0: notifications enabled, as a zeroed structure in RAM says);
 *  - with VIOSIM_NET_F_DEVMEM_EVENT_RECHECK too, every slot write taken on a live queue
 *    re-decides about the used buffers published since the last notification.
 * Reads of an aligned field or slot return it without side effects; other reads 0. */
static bool devmem_event_access_ok(uint32_t at, unsigned size)
{
    return (size == VIOSIM_DEVMEM_SLOT_BYTES && at == 0) || (size == 2 && at % 2 == 0);
}

static uint64_t devmem_event_read(struct vdev *d, uint32_t roff, unsigned size)
{
    uint32_t qi = roff / VIOSIM_DEVMEM_SLOT_BYTES;
    uint32_t at = roff % VIOSIM_DEVMEM_SLOT_BYTES;
    uint64_t v = 0;
    if (qi < VDEV_QUEUES && devmem_event_access_ok(at, size))
        memcpy(&v, &d->devmem_event[qi][at], size);
    return v;
}

static void devmem_event_write(struct vdev *d, uint32_t roff, unsigned size, uint64_t value)
{
    if (!vpci_negotiated(&d->vpci, VIOSIM_NET_F_DEVMEM_EVENT_BIT)) {
        d->stats.devmem_event_writes_ignored++;
        return;
    }
    uint32_t qi = roff / VIOSIM_DEVMEM_SLOT_BYTES;
    uint32_t at = roff % VIOSIM_DEVMEM_SLOT_BYTES;
    uint16_t named = qi < VDEV_QUEUES ? (uint16_t)qi : 0xffff;
    if (!devmem_event_access_ok(at, size)) {
        vdev_fail(d, named, VS_REASON_DEVMEM_EVENT_ACCESS_INVALID);
        return;
    }
    if (qi >= d->num_queues ||
        (qi == VDEV_QUEUE_CTRL && !vpci_negotiated(&d->vpci, VIRTIO_NET_F_CTRL_VQ_BIT))) {
        vdev_fail(d, 0xffff, VS_REASON_DEVMEM_EVENT_QUEUE_INVALID);
        return;
    }
    memcpy(&d->devmem_event[qi][at], &value, size);
    d->stats.devmem_event_writes++;
    /* VIOSIM_NET_F_DEVMEM_EVENT_RECHECK: a used buffer published while this write was on
     * its way was decided on with the old fields; decide again now. */
    if (vpci_negotiated(&d->vpci, VIOSIM_NET_F_DEVMEM_EVENT_RECHECK_BIT) && vdev_queue_live(d, (uint16_t)qi)) {
        struct vdev_queue *q = &d->q[qi];
        bool interrupt = false;
        if (q->ops->recheck_driver_event(&q->ring, size == VIOSIM_DEVMEM_SLOT_BYTES, &interrupt) != VQ_OK) {
            vdev_fail(d, (uint16_t)qi, q->ops->broken(&q->ring));
            return;
        }
        if (interrupt) {
            d->stats.devmem_event_recheck_interrupts++;
            raise_used_interrupt(d, (uint16_t)qi);
        }
    }
}

bool vdev_is_devmem_event_write(const struct vdev *d, uint64_t addr, unsigned size)
{
    const struct vdev_region *r = &d->region[VDEV_REGION_DEVMEM_EVENT];
    if (r->length == 0)
        return false;
    uint64_t off;
    int bar = pci_cfg_decode(&d->pci, addr, size, &off);
    return bar == r->bar && off >= r->offset && off + size <= (uint64_t)r->offset + r->length;
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
    case VDEV_REGION_DEVMEM_EVENT:
        return devmem_event_read(d, roff, size);
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
    case VDEV_REGION_DEVMEM_EVENT:
        devmem_event_write(d, roff, size, value);
        break;
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

uint32_t vdev_fifo_frames(const struct vdev *d) { return d->fifo.count; }
bool vdev_fifo_full(const struct vdev *d) { return net_fifo_full(&d->fifo); }

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
    if (d->p.backend != VDEV_BACKEND_SINK &&
        d->fifo.count + d->q[qi].fifo_reserved >= d->p.rx_fifo_frames)
        return VDEV_STEP_BLOCKED;
    enum vdev_step st = pop(d, qi, sl, &sl->gate.ops, w);
    if (st != VDEV_STEP_DONE)
        return st;
    enum vs_reason bad = net_tx_buffer_check(sl->e.readable_bytes, sl->e.writable_bytes,
                                             d->p.max_frame_bytes);
    if (bad != VS_REASON_NONE)
        return vdev_fail(d, qi, bad);
    if (d->p.backend != VDEV_BACKEND_SINK)
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
    /* Loopback and responder hold the FIFO place reserved when the buffer was taken. */
    net_backend_transmit(d->p.backend, &d->p.responder, &d->fifo, sl->frame_buf + hdr, frame_len,
                         &d->stats.backend);
    if (d->p.backend != VDEV_BACKEND_SINK)
        d->q[VDEV_QUEUE_TX].fifo_reserved--;
    /* Transmit buffers are returned with a used length of 0: the device wrote nothing. */
    sl->written = 0;
}

/* Receive the next frame from the FIFO into the next receive buffer ("Network Device /
 * Device Operation / Receiving Packets"). Without VIRTIO_NET_F_MRG_RXBUF the frame
 * must fit in one buffer and num_buffers is 1. */
static enum vdev_step rx_take(struct vdev *d, struct vdev_slot *sl, struct vdev_work *w)
{
    const uint16_t qi = VDEV_QUEUE_RX;
    if (d->fifo.count == 0)
        return VDEV_STEP_IDLE;
    enum vdev_step st = pop(d, qi, sl, &sl->gate.ops, w);
    if (st == VDEV_STEP_IDLE) {
        d->stats.rx_no_buffer++;
        return VDEV_STEP_BLOCKED;
    }
    if (st != VDEV_STEP_DONE)
        return st;
    enum vs_reason bad = net_rx_buffer_check(sl->e.readable_bytes, sl->e.writable_bytes);
    if (bad != VS_REASON_NONE)
        return vdev_fail(d, qi, bad);
    const uint32_t hdr = sizeof(struct virtio_net_hdr);

    const uint8_t *payload;
    const struct net_frame *f = net_fifo_head(&d->fifo, &payload);
    uint32_t len = f->len;
    net_fifo_pop(&d->fifo);
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

/* ---- Control queue ("Network Device / Device Operation / Control Virtqueue") ---- */

/* With one queue pair: receiveq1 is 0, transmitq1 is 1 ("Virtqueues"). Is vq an
 * enabled transmit or receive queue ("Notifications Coalescing": vq_index names one)? */
static bool net_data_queue_enabled(const struct vdev *d, uint16_t vq)
{
    return (vq == VDEV_QUEUE_RX || vq == VDEV_QUEUE_TX) && d->q[vq].enabled;
}

/* The VIRTIO_NET_CTRL_NOTF_COAL class. `data` holds the command-specific data the
 * driver wrote (len bytes; longer data than the command's structure is ignored past
 * it); `writable` is the size of the device-writable part. Returns the ack; a VQ_GET
 * answered OK leaves its structure in *result (*result_len = 8). "The device applies
 * the last coalescing parameters set for a virtqueue, regardless of the command used":
 * TX_SET / RX_SET and VQ_SET all write the queue's parameters in force. */
static uint8_t net_ctrl_notf_coal(struct vdev *d, uint8_t command, const uint8_t *data,
                                  uint32_t len, uint32_t writable,
                                  struct virtio_net_ctrl_coal *result, uint32_t *result_len)
{
    const bool coal = vpci_negotiated(&d->vpci, VIRTIO_NET_F_NOTF_COAL_BIT);
    const bool vq_coal = vpci_negotiated(&d->vpci, VIRTIO_NET_F_VQ_NOTF_COAL_BIT);
    struct virtio_net_ctrl_coal c;
    struct virtio_net_ctrl_coal_vq cv;

    switch (command) {
    case VIRTIO_NET_CTRL_NOTF_COAL_TX_SET:
    case VIRTIO_NET_CTRL_NOTF_COAL_RX_SET:
        /* The driver "MUST have negotiated the VIRTIO_NET_F_NOTF_COAL feature when
         * issuing" these; a command the device cannot apply gets VIRTIO_NET_ERR. */
        if (!coal)
            vs_conf_report(&d->vpci.conf, VS_RULE_CTRL_COAL_NOT_NEGOTIATED, VDEV_QUEUE_CTRL,
                           command, VIRTIO_NET_F_NOTF_COAL_BIT);
        if (!coal || len < sizeof c)
            return VIRTIO_NET_ERR;
        memcpy(&c, data, sizeof c);
        if (command == VIRTIO_NET_CTRL_NOTF_COAL_TX_SET) {
            d->coal_tx_set = c;
            coal_set(&d->coal[VDEV_QUEUE_TX], &c);
        } else {
            d->coal_rx_set = c;
            coal_set(&d->coal[VDEV_QUEUE_RX], &c);
        }
        return VIRTIO_NET_OK;
    case VIRTIO_NET_CTRL_NOTF_COAL_VQ_SET:
        /* "The device MUST respond to VIRTIO_NET_CTRL_NOTF_COAL_VQ_SET and
         * VIRTIO_NET_CTRL_NOTF_COAL_VQ_GET commands with VIRTIO_NET_ERR if the
         * designated virtqueue is not an enabled transmit or receive virtqueue";
         * "The device MUST ignore reserved". */
        if (!vq_coal)
            vs_conf_report(&d->vpci.conf, VS_RULE_CTRL_COAL_NOT_NEGOTIATED, VDEV_QUEUE_CTRL,
                           command, VIRTIO_NET_F_VQ_NOTF_COAL_BIT);
        if (!vq_coal || len < sizeof cv)
            return VIRTIO_NET_ERR;
        memcpy(&cv, data, sizeof cv);
        if (!net_data_queue_enabled(d, cv.vq_index)) {
            vs_conf_report(&d->vpci.conf, VS_RULE_CTRL_COAL_VQ_INDEX, VDEV_QUEUE_CTRL,
                           cv.vq_index, 0);
            return VIRTIO_NET_ERR;
        }
        coal_set(&d->coal[cv.vq_index], &cv.coal);
        return VIRTIO_NET_OK;
    case VIRTIO_NET_CTRL_NOTF_COAL_VQ_GET:
        /* vq_index and reserved come from the driver; the device writes the
         * struct virtio_net_ctrl_coal, which needs 8 writable bytes before the ack. */
        if (!vq_coal)
            vs_conf_report(&d->vpci.conf, VS_RULE_CTRL_COAL_NOT_NEGOTIATED, VDEV_QUEUE_CTRL,
                           command, VIRTIO_NET_F_VQ_NOTF_COAL_BIT);
        if (!vq_coal || len < VIRTIO_NET_CTRL_COAL_VQ_IN_BYTES ||
            writable < sizeof *result + 1u)
            return VIRTIO_NET_ERR;
        memcpy(&cv, data, VIRTIO_NET_CTRL_COAL_VQ_IN_BYTES);
        if (!net_data_queue_enabled(d, cv.vq_index)) {
            vs_conf_report(&d->vpci.conf, VS_RULE_CTRL_COAL_VQ_INDEX, VDEV_QUEUE_CTRL,
                           cv.vq_index, 0);
            return VIRTIO_NET_ERR;
        }
        *result = d->coal[cv.vq_index].p;
        *result_len = sizeof *result;
        return VIRTIO_NET_OK;
    default:
        return VIRTIO_NET_ERR;
    }
}

/* Write src at byte `off` of a buffer's device-writable part. */
static enum vs_dma_status write_writable_at(const struct vs_guest_ops *ops,
                                            const struct vq_seg *segs, uint32_t nsegs,
                                            uint32_t off, const void *src, uint32_t len)
{
    const uint8_t *p = src;
    for (uint32_t i = 0; i < nsegs && len > 0; i++) {
        if (!segs[i].device_writable)
            continue;
        if (off >= segs[i].len) {
            off -= segs[i].len;
            continue;
        }
        uint32_t chunk = segs[i].len - off < len ? segs[i].len - off : len;
        enum vs_dma_status s = ops->write(ops->ctx, segs[i].addr + off, p, chunk,
                                          VS_DMA_BUF_WRITE);
        if (s != VS_DMA_OK)
            return s;
        p += chunk;
        len -= chunk;
        off = 0;
    }
    return VS_DMA_OK;
}

/* One command: u8 class, u8 command and the command-specific data in the
 * device-readable part; the ack is the last device-writable byte, and a result
 * (VQ_GET's struct virtio_net_ctrl_coal) fills the bytes just before it. The used
 * length is the bytes written: 1, or 9 with a result.
 * What the device answers:
 *  - class VIRTIO_NET_CTRL_NOTF_COAL with its feature negotiated: per command, see
 *    net_ctrl_notf_coal (OK, or ERR for data shorter than the command's structure, a
 *    designated queue that is not an enabled TX/RX queue, or no room for a result);
 *  - any other class, an unknown command, or fewer than 2 readable bytes (no class and
 *    command to read): VIRTIO_NET_ERR. The device can answer, so it does.
 * Malformed beyond answering: a buffer with no device-writable byte leaves the device
 * no way to say anything, and "There is little the driver can do except issue a
 * diagnostic if ack is not VIRTIO_NET_OK" means a driver never sends one on purpose:
 * the device needs a reset (CTRL_NO_ACK_BYTE). */
static enum vdev_step ctrl_move(struct vdev *d, struct vdev_slot *sl, struct vdev_work *w)
{
    const uint16_t qi = VDEV_QUEUE_CTRL;
    const struct vs_guest_ops *g = &sl->gate.ops;
    sl->written = 0;
    if (sl->e.writable_bytes == 0)
        return vdev_fail(d, qi, VS_REASON_CTRL_NO_ACK_BYTE);

    uint8_t cmd[VIRTIO_NET_CTRL_HDR_BYTES + sizeof(struct virtio_net_ctrl_coal_vq)];
    uint32_t got = 0;
    enum vs_dma_status s = read_segments(g, sl->segs, sl->e.nsegs, cmd, sizeof cmd, &got);
    if (s != VS_DMA_OK)
        return dma_failed_at(d, qi, &sl->gate, s);
    w->bytes_read += got;

    uint8_t ack = VIRTIO_NET_ERR;
    struct virtio_net_ctrl_coal result;
    uint32_t result_len = 0;
    if (got >= VIRTIO_NET_CTRL_HDR_BYTES && cmd[0] == VIRTIO_NET_CTRL_NOTF_COAL)
        ack = net_ctrl_notf_coal(d, cmd[1], cmd + VIRTIO_NET_CTRL_HDR_BYTES,
                                 got - VIRTIO_NET_CTRL_HDR_BYTES, sl->e.writable_bytes, &result,
                                 &result_len);
    if (result_len != 0) {
        s = write_writable_at(g, sl->segs, sl->e.nsegs, sl->e.writable_bytes - 1u - result_len,
                              &result, result_len);
        if (s != VS_DMA_OK)
            return dma_failed_at(d, qi, &sl->gate, s);
    }
    s = write_writable_at(g, sl->segs, sl->e.nsegs, sl->e.writable_bytes - 1u, &ack, 1);
    if (s != VS_DMA_OK)
        return dma_failed_at(d, qi, &sl->gate, s);
    w->bytes_written += 1u + result_len;
    d->stats.ctrl_commands++;
    if (ack == VIRTIO_NET_OK)
        d->stats.ctrl_ok++;
    else
        d->stats.ctrl_err++;
    w->buffers++;
    sl->written = 1u + result_len;
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

/* ---- Used buffer notifications and coalescing ---- */

/* The window and count rules are model/coalesce.c's; the device takes the decisions
 * they call for. Only transmit and receive queues have parameters (the control
 * queue's stay 0: coalescing never in force there). */

/* The notification conditions are met (decision, from model/coalesce.c): read the
 * driver's event suppression for everything published since the last decision and
 * send the queue's message if it wants one ("Used Buffer Notification Suppression";
 * coalescing: "A device SHOULD NOT send used buffer notifications to the driver if the
 * notifications are suppressed, even if the notification conditions are met"). */
static enum vdev_step notify_decision(struct vdev *d, uint16_t qi, const struct vs_guest_ops *g,
                                      enum coal_decision decision)
{
    struct vdev_queue *q = &d->q[qi];
    bool interrupt = false;
    const uint64_t local_before = q->ops->stats(&q->ring)->event_reads_local;
    if (q->ops->should_interrupt(&q->ring, g, &interrupt) != VQ_OK)
        return ring_failed(d, qi);
    /* (Reads across the link are counted in the DMA gate, aborted ones included.) */
    d->stats.event_reads_local[qi] += q->ops->stats(&q->ring)->event_reads_local - local_before;
    if (decision != COAL_NOTIFY_EVERY) {
        const enum vdev_coal_cause cause = decision == COAL_NOTIFY_TIMER    ? VDEV_COAL_BY_TIMER
                                           : decision == COAL_NOTIFY_CHANGE ? VDEV_COAL_BY_CHANGE
                                                                            : VDEV_COAL_BY_PACKETS;
        if (interrupt)
            d->stats.coal_notify[qi][cause]++;
        else
            d->stats.coal_suppressed[qi]++;
    }
    if (interrupt)
        raise_used_interrupt(d, qi);
    return VDEV_STEP_DONE;
}

enum vdev_step vdev_complete(struct vdev *d, uint16_t qi, const struct vs_guest_ops *ops)
{
    if (qi >= VDEV_QUEUES || !d->q[qi].enabled)
        return VDEV_STEP_IDLE;
    if (d->error != VS_REASON_NONE)
        return VDEV_STEP_FAILED;
    const struct vs_guest_ops *g = gate(d, qi, ops);
    struct vdev_queue *q = &d->q[qi];
    const uint32_t published = q->ops->pending(&q->ring);
    if (published == 0)
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
    /* A packet is a used buffer here (no MRG_RXBUF: one frame per buffer). */
    const enum coal_decision decision = coal_published(&d->coal[qi], published);
    if (decision == COAL_NOTHING)
        return VDEV_STEP_DONE;
    return notify_decision(d, qi, g, decision);
}

bool vdev_coal_timer(const struct vdev *d, uint16_t qi, uint32_t *usecs, uint32_t *window)
{
    if (!vdev_queue_live(d, qi) || !coal_window_open(&d->coal[qi]))
        return false;
    *usecs = d->coal[qi].p.max_usecs;
    *window = d->coal[qi].window;
    return true;
}

enum vdev_step vdev_coal_expire(struct vdev *d, uint16_t qi, uint32_t window,
                                const struct vs_guest_ops *ops)
{
    if (!vdev_queue_live(d, qi))
        return d->error != VS_REASON_NONE ? VDEV_STEP_FAILED : VDEV_STEP_IDLE;
    const enum coal_decision decision = coal_expired(&d->coal[qi], window);
    if (decision == COAL_NOTHING)
        return VDEV_STEP_IDLE;
    return notify_decision(d, qi, gate(d, qi, ops), decision);
}

bool vdev_coal_recheck_needed(const struct vdev *d, uint16_t qi)
{
    return qi < VDEV_QUEUES && d->coal[qi].recheck;
}

enum vdev_step vdev_coal_recheck(struct vdev *d, uint16_t qi, const struct vs_guest_ops *ops)
{
    if (!vdev_queue_live(d, qi))
        return d->error != VS_REASON_NONE ? VDEV_STEP_FAILED : VDEV_STEP_IDLE;
    const enum coal_decision decision = coal_changed(&d->coal[qi]);
    if (decision == COAL_NOTHING)
        return VDEV_STEP_IDLE;
    return notify_decision(d, qi, gate(d, qi, ops), decision);
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
