/* pci_transport.c -- the virtio PCI transport: BAR layout, access routing, DMA gate,
 * buffer order, publication and notification, and the NEEDS_RESET path. The device
 * type comes in through struct pt_device and the queues' struct pt_role. */
#include "pci_transport.h"

#include <assert.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* ---- BAR layout: the one table ----
 * BAR0 (64-bit memory, slots 0-1): the virtio structures, each page-aligned so a driver
 * can map them separately. BAR2 (64-bit memory, slots 2-3): the MSI-X table and PBA.
 * With pt_params.bars_32bit both are 32-bit memory BARs (type 00b, PCI Local Bus 3.0
 * §6.2.5.1) in consecutive slots, BAR0 and BAR1, with the same offsets and sizes
 * (for a host such as QEMU's proxy that assigns only 32-bit BARs). Without MSI-X
 * (pt_params.no_msix) the MSI-X BAR is absent. */
#define PT_VIRTIO_BAR     0
#define PT_MSIX_BAR_64    2
#define PT_MSIX_BAR_32    1
#define PT_COMMON_OFFSET  0x0000u
#define PT_ISR_OFFSET     0x1000u
#define PT_DEVICE_OFFSET  0x2000u
#define PT_NOTIFY_OFFSET  0x3000u
/* viosim extension: the device-memory event suppression window takes the page after
 * the notification region, and is absent unless offered (pt_params.devmem_event). */
#define PT_DEVMEM_EVENT_LENGTH 0x1000u
#define PT_MSIX_TABLE_OFFSET 0x0000u
#define PT_MSIX_PBA_OFFSET   0x0800u  /* after a table of up to 128 vectors; else after the table */
#define PT_MSIX_BAR_SIZE     0x1000u  /* at least */

static uint64_t pow2_at_least(uint64_t v)
{
    uint64_t p = 1;
    while (p < v)
        p <<= 1;
    return p;
}

/* ---- Features offered ("Reserved Feature Bits") ----
 * The transport's own bits (ring formats and their options, platform ordering and
 * access, notification data, queue reset), the viosim window's when offered, then the
 * device type's; the quirk's withdrawn bits last. */
static vs_features offered_features(const struct pt_params *p)
{
    static const unsigned bits[] = {
        VIRTIO_F_VERSION_1_BIT,      VIRTIO_F_RING_PACKED_BIT,  VIRTIO_F_IN_ORDER_BIT,
        VIRTIO_F_ORDER_PLATFORM_BIT, VIRTIO_F_ACCESS_PLATFORM_BIT,
        VIRTIO_F_NOTIFICATION_DATA_BIT, VIRTIO_F_EVENT_IDX_BIT, VIRTIO_F_INDIRECT_DESC_BIT,
        VIRTIO_F_RING_RESET_BIT,
    };
    vs_features f = p->device_features;
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

/* Feature dependencies checked at FEATURES_OK: the transport's own (viosim extension:
 * the re-check is part of device-memory event suppression), then the device type's. */
static bool validate_features(void *ctx, const vs_features *drv)
{
    struct pt *tp = ctx;
    if (vs_feature_has(drv, VIOSIM_NET_F_DEVMEM_EVENT_RECHECK_BIT) &&
        !vs_feature_has(drv, VIOSIM_NET_F_DEVMEM_EVENT_BIT))
        return false;
    return !tp->dev->features_ok || tp->dev->features_ok(tp->dev_ctx, drv);
}

/* ---- Capability list ---- */
static uint8_t add_virtio_cap(struct pci_cfg *c, uint8_t cfg_type, const struct pt_region *r)
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

static void build_caps(struct pt *tp)
{
    struct pci_cfg *c = &tp->pci;
    const struct pt_region *r = tp->region;

    /* MSI-X capability (PCI Local Bus 3.0 §6.8.2): message control, table and PBA
     * offset/BIR. Writable: function mask and enable only. Left out of the list
     * altogether without MSI-X: the function then interrupts by INTx only. */
    if (!tp->p.no_msix) {
        uint8_t msix_cap[12] = {PCI_CAP_ID_MSIX, 0};
        vs_put_le16(&msix_cap[2], (uint16_t)(tp->msix.nvec - 1));
        vs_put_le32(&msix_cap[4], r[PT_REGION_MSIX_TABLE].offset | r[PT_REGION_MSIX_TABLE].bar);
        vs_put_le32(&msix_cap[8], r[PT_REGION_MSIX_PBA].offset | r[PT_REGION_MSIX_PBA].bar);
        uint8_t msix_wmask[12] = {0};
        vs_put_le16(&msix_wmask[2], MSIX_MSGCTL_FMASK_MASK | MSIX_MSGCTL_ENABLE_MASK);
        tp->cap_msix = pci_cfg_add_cap(c, msix_cap, sizeof msix_cap, msix_wmask);
    }

    /* Virtio structures, in order of preference ("Virtio Structure PCI Capabilities"). */
    add_virtio_cap(c, VIRTIO_PCI_CAP_COMMON_CFG, &r[PT_REGION_COMMON]);
    struct virtio_pci_notify_cap ncap;
    memset(&ncap, 0, sizeof ncap);
    ncap.cap.cap_vndr = PCI_CAP_ID_VNDR;
    ncap.cap.cap_len = sizeof ncap;
    ncap.cap.cfg_type = VIRTIO_PCI_CAP_NOTIFY_CFG;
    ncap.cap.bar = r[PT_REGION_NOTIFY].bar;
    ncap.cap.offset = r[PT_REGION_NOTIFY].offset;
    ncap.cap.length = r[PT_REGION_NOTIFY].length;
    ncap.notify_off_multiplier = tp->p.notify_off_multiplier;
    pci_cfg_add_cap(c, &ncap, sizeof ncap, NULL);
    add_virtio_cap(c, VIRTIO_PCI_CAP_ISR_CFG, &r[PT_REGION_ISR]);
    add_virtio_cap(c, VIRTIO_PCI_CAP_DEVICE_CFG, &r[PT_REGION_DEVICE]);

    /* viosim extension: a Vendor data capability naming the device-memory event
     * suppression window ("Vendor data capability": vendor_id not 0x1AF4, size a
     * multiple of 4, reads without side effects). A standard driver ignores it. */
    if (tp->p.devmem_event) {
        struct viosim_devmem_event_cap vcap;
        memset(&vcap, 0, sizeof vcap);
        vcap.cap_vndr = PCI_CAP_ID_VNDR;
        vcap.cap_len = sizeof vcap;
        vcap.cfg_type = VIRTIO_PCI_CAP_VENDOR_CFG;
        vcap.vendor_id = VIOSIM_PCI_VNDR_ID;
        vcap.format = VIOSIM_VNDR_FMT_DEVMEM_EVENT;
        vcap.bar = r[PT_REGION_DEVMEM_EVENT].bar;
        vcap.offset = r[PT_REGION_DEVMEM_EVENT].offset;
        vcap.length = r[PT_REGION_DEVMEM_EVENT].length;
        vcap.slot_bytes = VIOSIM_DEVMEM_SLOT_BYTES;
        vcap.num_slots = tp->num_queues;
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
    tp->cap_pci_cfg = pci_cfg_add_cap(c, &pcap, sizeof pcap, &pmask);
}

/* The queue's ring state is about to be cleared: keep its statistics. */
static void ring_stats_retire(struct pt *tp, uint16_t qi)
{
    if (tp->q[qi].ops)
        vq_stats_add(&tp->stats.ring_retired[qi], tp->q[qi].ops->stats(&tp->q[qi].ring));
}

struct vq_stats pt_ring_stats(const struct pt *tp, uint16_t qi)
{
    struct vq_stats s;
    memset(&s, 0, sizeof s);
    if (qi >= tp->num_queues)
        return s;
    s = tp->stats.ring_retired[qi];
    if (tp->q[qi].ops)
        vq_stats_add(&s, tp->q[qi].ops->stats(&tp->q[qi].ring));
    return s;
}

static void queue_clear(struct pt *tp, uint16_t qi)
{
    ring_stats_retire(tp, qi);
    memset(&tp->q[qi], 0, sizeof tp->q[qi]);
    memset(tp->devmem_event[qi], 0, sizeof tp->devmem_event[qi]);
    tp->generation[qi]++;
    if (tp->dev->queue_reset)
        tp->dev->queue_reset(tp->dev_ctx, qi);
}

static void intx_update(struct pt *tp);

/* The device type's roles for the features negotiated (pt_device.queue_role). */
static void roles_refresh(struct pt *tp)
{
    for (uint16_t q = 0; tp->dev->queue_role && q < tp->num_queues; q++) {
        const struct pt_role *r = tp->dev->queue_role(tp->dev_ctx, q);
        if (r)
            tp->role[q] = r;
    }
}

static void device_reset(struct pt *tp)
{
    for (uint16_t i = 0; i < tp->num_queues; i++)
        queue_clear(tp, i);
    tp->error = VS_REASON_NONE;
    tp->error_queue = PT_NO_QUEUE;
    tp->fe_attached = false;
    tp->outbox_head = tp->outbox_count = 0;
    intx_update(tp); /* the reset cleared ISR status: the pin falls */
    memset(tp->wake, 0, sizeof tp->wake);
    if (tp->dev->reset)
        tp->dev->reset(tp->dev_ctx);
    roles_refresh(tp);
}

/* The configuration space as at power-on: where each region sits in the BARs, the
 * type-0 header with the BARs sized and unassigned, and the capability list (pt_init,
 * pt_function_reset). The MSI-X table (msix_init) and vpci come first. */
static void config_space_init(struct pt *tp)
{
    struct pt_region *r = tp->region;
    r[PT_REGION_COMMON] = (struct pt_region){PT_VIRTIO_BAR, PT_COMMON_OFFSET,
                                             VIRTIO_PCI_COMMON_CFG_LEN};
    r[PT_REGION_ISR] = (struct pt_region){PT_VIRTIO_BAR, PT_ISR_OFFSET, 4};
    r[PT_REGION_DEVICE] = (struct pt_region){PT_VIRTIO_BAR, PT_DEVICE_OFFSET, tp->p.device_cfg_bytes};
    r[PT_REGION_NOTIFY] = (struct pt_region){PT_VIRTIO_BAR, PT_NOTIFY_OFFSET,
                                             vpci_notify_length(&tp->vpci.p)};
    const uint8_t msix_bar = tp->p.bars_32bit ? PT_MSIX_BAR_32 : PT_MSIX_BAR_64;
    r[PT_REGION_MSIX_TABLE] = (struct pt_region){msix_bar, PT_MSIX_TABLE_OFFSET,
                                                 msix_table_bytes(&tp->msix)};
    const uint32_t table_end = PT_MSIX_TABLE_OFFSET + msix_table_bytes(&tp->msix);
    const uint32_t pba = table_end <= PT_MSIX_PBA_OFFSET ? PT_MSIX_PBA_OFFSET
                                                         : (table_end + 0x7ffu) & ~0x7ffu;
    r[PT_REGION_MSIX_PBA] = (struct pt_region){msix_bar, pba, msix_pba_bytes(&tp->msix)};

    struct pci_cfg_params pp;
    memset(&pp, 0, sizeof pp);
    pp.vendor_id = VIRTIO_PCI_VENDOR_ID;
    pp.device_id = tp->p.device_id;
    pp.revision_id = tp->p.revision_id;
    pp.class_code = tp->p.class_code;
    pp.subsystem_vendor_id = tp->p.subsystem_vendor_id;
    pp.subsystem_id = tp->p.subsystem_id;
    uint64_t bar0 = (uint64_t)r[PT_REGION_NOTIFY].offset + r[PT_REGION_NOTIFY].length;
    if (tp->p.devmem_event) {
        uint32_t at = (uint32_t)((bar0 + 0xfffu) & ~(uint64_t)0xfffu);
        r[PT_REGION_DEVMEM_EVENT] = (struct pt_region){PT_VIRTIO_BAR, at, PT_DEVMEM_EVENT_LENGTH};
        bar0 = (uint64_t)at + PT_DEVMEM_EVENT_LENGTH;
    }
    const bool is64 = !tp->p.bars_32bit;
    pp.bars[PT_VIRTIO_BAR] = (struct pci_bar_params){pow2_at_least(bar0 < 0x4000 ? 0x4000 : bar0),
                                                     is64, false};
    const uint64_t msix_end = (uint64_t)pba + r[PT_REGION_MSIX_PBA].length;
    if (tp->p.no_msix) {
        /* No table, no PBA: their regions decode nothing (length 0). */
        r[PT_REGION_MSIX_TABLE].length = 0;
        r[PT_REGION_MSIX_PBA].length = 0;
    } else {
        pp.bars[msix_bar] = (struct pci_bar_params){
            pow2_at_least(msix_end < PT_MSIX_BAR_SIZE ? PT_MSIX_BAR_SIZE : msix_end), is64, false};
    }
    pci_cfg_init(&tp->pci, &pp);
    build_caps(tp);
}

bool pt_init(struct pt *tp, const struct pt_params *p, const struct pt_device *dev, void *ctx,
             const struct pt_role *const *roles)
{
    memset(tp, 0, sizeof *tp);
    tp->p = *p;
    tp->dev = dev;
    tp->dev_ctx = ctx;
    tp->num_queues = p->num_queues;
    assert(tp->num_queues >= 1 && tp->num_queues <= PT_QUEUES_MAX);
    for (uint16_t q = 0; q < tp->num_queues; q++)
        tp->role[q] = roles[q];

    tp->q = calloc(tp->num_queues, sizeof *tp->q);
    tp->slot = calloc(tp->num_queues, sizeof *tp->slot);
    tp->held = calloc(tp->num_queues, sizeof *tp->held);
    bool ok = tp->q && tp->slot && tp->held;
    for (unsigned q = 0; ok && q < tp->num_queues; q++) {
        if (tp->role[q] && tp->role[q]->holds_publication) {
            tp->held[q] = calloc(p->queue_size_max, sizeof **tp->held);
            ok = tp->held[q] != NULL;
        }
    }
    tp->engines = p->engines == 0 ? 1u : p->engines;
    if (tp->engines > PT_ENGINES_MAX)
        tp->engines = PT_ENGINES_MAX;
    for (unsigned q = 0; ok && q < tp->num_queues; q++) {
        for (unsigned k = 0; k < tp->engines; k++) {
            struct pt_slot *sl = &tp->slot[q][k];
            sl->segs = calloc(p->queue_size_max, sizeof *sl->segs);
            ok = ok && sl->segs;
        }
    }
    if (!ok) {
        pt_fini(tp);
        return false;
    }

    /* One MSI-X vector for configuration changes plus one per queue. */
    msix_init(&tp->msix, (uint16_t)(1 + tp->num_queues));

    struct vpci_params vp;
    memset(&vp, 0, sizeof vp);
    vp.device_features = offered_features(p);
    vp.num_queues = tp->num_queues;
    vp.queue_size_max = p->queue_size_max;
    vp.notify_off_multiplier = p->notify_off_multiplier;
    vp.validate_features = validate_features;
    vp.validate_ctx = tp;
    vp.msix_vectors = tp->msix.nvec;
    vp.no_msix = p->no_msix;
    vpci_init(&tp->vpci, &vp);

    config_space_init(tp);

    device_reset(tp);
    return true;
}

/* Function Level Reset (PCI Express Base 4.0 §6.6.2), and what a conventional reset
 * does to the function: the configuration space returns to its power-on state (Command
 * 0, so memory decoding and bus mastering off; BARs unassigned; Interrupt Line 0; MSI-X
 * disabled with every vector masked, §6.8.2.9) and the virtio device is reset as if the
 * driver had written 0 to device_status ("Device Reset"): queues disabled, features and
 * status cleared, ISR cleared so INTA# deasserts. Kept: what pt_init built from its
 * parameters, the run's counters and the conformance record. */
void pt_function_reset(struct pt *tp)
{
    tp->stats.function_resets++;
    msix_init(&tp->msix, tp->msix.nvec);
    config_space_init(tp);
    vpci_reset(&tp->vpci);
    device_reset(tp);
}

void pt_fini(struct pt *tp)
{
    for (unsigned q = 0; tp->slot && q < tp->num_queues; q++)
        for (unsigned k = 0; k < PT_ENGINES_MAX; k++)
            free(tp->slot[q][k].segs);
    free(tp->slot);
    tp->slot = NULL;
    for (unsigned q = 0; tp->held && q < tp->num_queues; q++)
        free(tp->held[q]);
    free(tp->held);
    tp->held = NULL;
    free(tp->q);
    tp->q = NULL;
}

/* ---- Interrupts ---- */

/* Legacy INTx. "If MSI-X capability is disabled, the device MUST set the Interrupt
 * Status bit in the PCI Status register ... to the logical OR of all bits in ISR
 * status ... The device then asserts/deasserts INT#x interrupts unless masked according
 * to standard PCI rules" ("ISR status capability"). Absent counts as disabled. While
 * MSI-X is enabled the function must not use INTx (PCI Local Bus 3.0 §6.8.2, MSI-X
 * Enable), so the status bit reads 0 and the pin stays deasserted; an ISR bit left set
 * (the configuration bit is set whatever the mode) shows again if MSI-X is disabled.
 * Called after everything that can change ISR status, the MSI-X enable bit or the
 * Command register. */
static void intx_update(struct pt *tp)
{
    const bool pending = !tp->msix.enabled && tp->vpci.isr != 0;
    pci_cfg_set_intx_pending(&tp->pci, pending);
    const bool line = pci_cfg_intx_asserted(&tp->pci);
    if (line == tp->intx_line)
        return;
    tp->intx_line = line;
    if (line)
        tp->stats.intx_asserts++;
    else
        tp->stats.intx_deasserts++;
}

/* Set ISR bits; the INTx pin follows. */
static void isr_raise(struct pt *tp, uint8_t mask)
{
    vpci_isr_set(&tp->vpci, mask);
    intx_update(tp);
}

static void outbox_put(struct pt *tp, const struct msix_message *m)
{
    if (tp->outbox_count == PT_MSI_OUTBOX)
        return; /* cannot happen: at most one message per vector is ever outstanding */
    tp->outbox[(tp->outbox_head + tp->outbox_count) % PT_MSI_OUTBOX] = *m;
    tp->outbox_count++;
}

static void signal_vector(struct pt *tp, uint16_t vector)
{
    struct msix_message m;
    if (msix_raise(&tp->msix, vector, &m))
        outbox_put(tp, &m);
}

/* A used buffer notification for queue qi: the ISR bit without MSI-X, the queue's
 * vector otherwise ("Used Buffer Notifications"). */
static void raise_used_interrupt(struct pt *tp, uint16_t qi)
{
    tp->stats.interrupts_raised++;
    if (!tp->msix.enabled)
        isr_raise(tp, VIRTIO_PCI_ISR_QUEUE_MASK);
    signal_vector(tp, tp->vpci.q[qi].msix_vector);
}

static void drain_pending_msix(struct pt *tp)
{
    struct msix_message m;
    while (msix_take_pending(&tp->msix, &m))
        outbox_put(tp, &m);
}

bool pt_take_msi(struct pt *tp, struct msix_message *msg)
{
    /* An MSI-X message is a memory write: it waits while bus mastering is off. */
    if (tp->outbox_count == 0 || !pci_cfg_bus_master(&tp->pci))
        return false;
    *msg = tp->outbox[tp->outbox_head];
    tp->outbox_head = (tp->outbox_head + 1) % PT_MSI_OUTBOX;
    tp->outbox_count--;
    return true;
}

void pt_wake(struct pt *tp, uint16_t q)
{
    if (q < tp->num_queues)
        tp->wake[q / 64u] |= 1ull << (q % 64u);
}

bool pt_take_wake(struct pt *tp, uint16_t *q)
{
    for (uint32_t i = 0; i < sizeof tp->wake / sizeof tp->wake[0]; i++) {
        if (tp->wake[i] == 0)
            continue;
        const unsigned b = (unsigned)__builtin_ctzll(tp->wake[i]);
        tp->wake[i] &= tp->wake[i] - 1u;
        *q = (uint16_t)(i * 64u + b);
        return true;
    }
    return false;
}

/* Enter the error state: DEVICE_NEEDS_RESET plus a configuration change notification
 * ("Device Status Field": the device SHOULD set DEVICE_NEEDS_RESET when it enters an
 * error state that needs a reset; it then MUST send a device configuration change
 * notification if DRIVER_OK is set). Sticky until the driver resets the device. */
enum pt_step pt_fail(struct pt *tp, uint16_t queue, enum vs_reason why)
{
    if (tp->error != VS_REASON_NONE)
        return PT_STEP_FAILED;
    tp->error = why;
    tp->error_queue = queue;
    vs_conf_report_reason(&tp->vpci.conf, why, queue);
    vpci_set_needs_reset(&tp->vpci);
    if (tp->vpci.status & VIRTIO_STATUS_DRIVER_OK) {
        isr_raise(tp, VIRTIO_PCI_ISR_CONFIG_MASK);
        tp->stats.config_interrupts++;
        signal_vector(tp, tp->vpci.config_msix_vector);
    }
    return PT_STEP_FAILED;
}

/* ---- DMA gate: every device access to guest memory passes here ----
 * Bus-master enable clear means the function must not initiate memory requests
 * (PCI Local Bus 3.0 §6.2.2, Command register bit 2). */
/* After an access: did the driver reset the queue (or the device) meanwhile? */
static enum vs_dma_status gate_check(struct pt_gate *gt, uint32_t gen, enum vs_dma_status s)
{
    if (gt->tp->generation[gt->queue] != gen) {
        gt->aborted = true;
        return VS_DMA_ABORTED;
    }
    return s;
}

/* Before an access: bus mastering must be on and the queue's generation the one the
 * gate checks against (*gen). VS_DMA_OK to go on. */
static enum vs_dma_status gate_enter(struct pt_gate *gt, uint32_t *gen)
{
    struct pt *tp = gt->tp;
    if (!pci_cfg_bus_master(&tp->pci)) {
        tp->stats.dma_blocked++;
        return VS_DMA_BUS_MASTER_OFF;
    }
    *gen = gt->pinned ? gt->gen : tp->generation[gt->queue];
    if (tp->generation[gt->queue] != *gen)
        return gate_check(gt, *gen, VS_DMA_ABORTED);
    return VS_DMA_OK;
}

static enum vs_dma_status gated_read(void *ctx, uint64_t addr, void *dst, uint32_t len,
                                     enum vs_dma_kind kind)
{
    struct pt_gate *gt = ctx;
    struct pt *tp = gt->tp;
    uint32_t gen = 0;
    enum vs_dma_status s = gate_enter(gt, &gen);
    if (s != VS_DMA_OK)
        return s;
    tp->stats.dma_reads[kind]++;
    tp->stats.dma_read_bytes += len;
    if (kind == VS_DMA_EVENT_READ)
        tp->stats.event_reads_link[gt->queue]++;
    s = gt->platform->read(gt->platform->ctx, addr, dst, len, kind);
    return gate_check(gt, gen, s);
}

static enum vs_dma_status gated_write(void *ctx, uint64_t addr, const void *src, uint32_t len,
                                      enum vs_dma_kind kind)
{
    struct pt_gate *gt = ctx;
    struct pt *tp = gt->tp;
    uint32_t gen = 0;
    enum vs_dma_status s = gate_enter(gt, &gen);
    if (s != VS_DMA_OK)
        return s;
    tp->stats.dma_writes[kind]++;
    tp->stats.dma_write_bytes += len;
    s = gt->platform->write(gt->platform->ctx, addr, src, len, kind);
    return gate_check(gt, gen, s);
}

static const struct vs_guest_ops *gate_setup(struct pt_gate *gt, struct pt *tp, uint16_t q,
                                             const struct vs_guest_ops *ops)
{
    gt->tp = tp;
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
static const struct vs_guest_ops *gate(struct pt *tp, uint16_t q, const struct vs_guest_ops *ops)
{
    tp->gate[q].pinned = false;
    return gate_setup(&tp->gate[q], tp, q, ops);
}

/* A ring operation or a buffer DMA of queue qi failed. If the driver reset the queue
 * while the step was suspended in a DMA, the step just stops (the queue's state
 * belongs to the new generation now); otherwise the device needs a reset. */
static enum pt_step ring_failed_at(struct pt *tp, uint16_t qi, const struct pt_gate *gt)
{
    if (gt->aborted)
        return PT_STEP_IDLE;
    return pt_fail(tp, qi, tp->q[qi].ops->broken(&tp->q[qi].ring));
}

static enum pt_step ring_failed(struct pt *tp, uint16_t qi)
{
    return ring_failed_at(tp, qi, &tp->gate[qi]);
}

static enum pt_step dma_failed_at(struct pt *tp, uint16_t qi, const struct pt_gate *gt,
                                    enum vs_dma_status s)
{
    if (s == VS_DMA_ABORTED || gt->aborted)
        return PT_STEP_IDLE;
    return pt_fail(tp, qi, vs_dma_status_reason(s));
}

static enum pt_step dma_failed(struct pt *tp, uint16_t qi, enum vs_dma_status s)
{
    return dma_failed_at(tp, qi, &tp->gate[qi], s);
}

enum pt_step pt_dma_failed(struct pt *tp, uint16_t qi, const struct pt_slot *sl,
                           enum vs_dma_status s)
{
    return dma_failed_at(tp, qi, &sl->gate, s);
}

/* ---- Register file side effects ---- */
static void queue_enable(struct pt *tp, uint16_t qi)
{
    const struct vpci_queue *r = &tp->vpci.q[qi];
    struct vq_config cfg = {
        .size = r->size,
        .desc_addr = r->desc,
        .driver_addr = r->driver,
        .device_addr = r->device,
        .indirect_desc = vpci_negotiated(&tp->vpci, VIRTIO_F_INDIRECT_DESC_BIT),
        .event_idx = vpci_negotiated(&tp->vpci, VIRTIO_F_EVENT_IDX_BIT),
        .in_order = vpci_negotiated(&tp->vpci, VIRTIO_F_IN_ORDER_BIT),
        .driver_event_local = vpci_negotiated(&tp->vpci, VIOSIM_NET_F_DEVMEM_EVENT_BIT)
                                  ? tp->devmem_event[qi] : NULL,
        .fetch_batch = tp->p.fetch_batch,
        .fetch_source = tp->p.fetch_source,
    };
    /* A queue the device type does not have with these features (virtio-net: the
     * control queue without VIRTIO_NET_F_CTRL_VQ, "Virtqueues"). */
    if (tp->dev->queue_exists && !tp->dev->queue_exists(tp->dev_ctx, qi)) {
        pt_fail(tp, qi, VS_REASON_QUEUE_SIZE_INVALID);
        return;
    }
    /* The ring format is decided here, once: RING_PACKED negotiated or not
     * ("Basic Facilities of a Virtio Device / Virtqueues"). */
    struct pt_queue *q = &tp->q[qi];
    ring_stats_retire(tp, qi);
    memset(&q->ring, 0, sizeof q->ring);
    q->ops = vpci_negotiated(&tp->vpci, VIRTIO_F_RING_PACKED_BIT) ? &packed_vq_ops : &split_vq_ops;
    enum vs_reason why = q->ops->check_config(&cfg, tp->p.queue_size_max);
    if (why != VS_REASON_NONE) {
        pt_fail(tp, qi, why);
        return;
    }
    q->cfg = cfg;
    q->ops->init(&q->ring, &cfg);
    q->enabled = true;
    q->take_seq = q->finish_seq = 0;
    tp->generation[qi]++;
    if (tp->dev->queue_enabled)
        tp->dev->queue_enabled(tp->dev_ctx, qi);
}

static void apply_event(struct pt *tp, struct vpci_event ev, uint16_t *kicked)
{
    /* Negotiation completed (possibly in the same write as DRIVER_OK). */
    if (ev.features_ok)
        roles_refresh(tp);
    switch (ev.kind) {
    case VPCI_EV_NONE:
    case VPCI_EV_FEATURES_OK:
    case VPCI_EV_DRIVER_OK:
        break;
    case VPCI_EV_RESET:
        tp->stats.resets++;
        device_reset(tp);
        break;
    case VPCI_EV_QUEUE_ENABLE:
        if (ev.queue < tp->num_queues)
            queue_enable(tp, ev.queue);
        break;
    case VPCI_EV_QUEUE_RESET:
        if (ev.queue < tp->num_queues)
            queue_clear(tp, ev.queue);
        break;
    case VPCI_EV_NOTIFY:
        if (ev.queue < tp->num_queues) {
            tp->q[ev.queue].kicks++;
            if (ev.has_data && tp->q[ev.queue].enabled)
                tp->q[ev.queue].ops->set_avail_hint(&tp->q[ev.queue].ring, ev.next_off, ev.next_wrap);
            if (kicked)
                *kicked = ev.queue;
        }
        break;
    case VPCI_EV_ERROR:
        pt_fail(tp, ev.queue, ev.reason);
        break;
    }
}

/* ---- Configuration space ---- */
static bool in_window(uint32_t off, unsigned size, uint32_t start, uint32_t len)
{
    return off < start + len && off + size > start;
}

static uint64_t bar_read(struct pt *tp, int bar, uint64_t off, unsigned size);
static void bar_write(struct pt *tp, int bar, uint64_t off, unsigned size, uint64_t value,
                      uint16_t *kicked);

/* PCI configuration access capability ("PCI configuration access capability"): does
 * [off, off + size) touch pci_cfg_data, and is the BAR access the driver set up in
 * cap.bar/offset/length one the device performs (a BAR, 1, 2 or 4 bytes, aligned)?
 * Then *data is pci_cfg_data's offset and *bar, *boff, *blen the access. */
static bool cfg_window_access(struct pt *tp, uint32_t off, unsigned size, uint32_t *data,
                              uint8_t *bar, uint32_t *boff, uint32_t *blen)
{
    *data = tp->cap_pci_cfg + (uint32_t)offsetof(struct virtio_pci_cfg_cap, pci_cfg_data);
    if (!tp->cap_pci_cfg || !in_window(off, size, *data, 4))
        return false;
    *bar = (uint8_t)pci_cfg_read(&tp->pci, tp->cap_pci_cfg + 4, 1);
    *boff = pci_cfg_read(&tp->pci, tp->cap_pci_cfg + 8, 4);
    *blen = pci_cfg_read(&tp->pci, tp->cap_pci_cfg + 12, 4);
    return *bar < PCI_NUM_BARS && (*blen == 1 || *blen == 2 || *blen == 4) && *boff % *blen == 0;
}

uint32_t pt_cfg_read(struct pt *tp, uint32_t off, unsigned size)
{
    tp->stats.cfg_reads++;
    /* A read of pci_cfg_data performs the BAR read first. */
    uint32_t data, boff, blen;
    uint8_t bar;
    if (cfg_window_access(tp, off, size, &data, &bar, &boff, &blen))
        pci_cfg_poke(&tp->pci, data, 4, (uint32_t)bar_read(tp, bar, boff, blen));
    return pci_cfg_read(&tp->pci, off, size);
}

void pt_cfg_write(struct pt *tp, uint32_t off, unsigned size, uint32_t value)
{
    tp->stats.cfg_writes++;
    pci_cfg_write(&tp->pci, off, size, value);

    if (tp->cap_msix && in_window(off, size, tp->cap_msix + 2u, 2)) {
        uint16_t ctl = (uint16_t)pci_cfg_read(&tp->pci, tp->cap_msix + 2u, 2);
        msix_set_control(&tp->msix, ctl & MSIX_MSGCTL_ENABLE_MASK, ctl & MSIX_MSGCTL_FMASK_MASK);
        drain_pending_msix(tp);
    }
    /* Interrupt Disable (Command bit 10) or MSI-X Enable may have changed. */
    intx_update(tp);
    /* A write of pci_cfg_data performs the BAR write with the bytes written. */
    uint32_t data, boff, blen;
    uint8_t bar;
    if (cfg_window_access(tp, off, size, &data, &bar, &boff, &blen)) {
        uint32_t v = pci_cfg_read(&tp->pci, data, 4);
        if (blen < 4)
            v &= (1u << (8 * blen)) - 1;
        bar_write(tp, bar, boff, blen, v, NULL);
    }
}

/* ---- Memory space ---- */
static const struct pt_region *find_region(const struct pt *tp, int bar, uint64_t off,
                                             unsigned size, enum pt_region_kind *kind)
{
    for (int k = 0; k < PT_REGION_COUNT; k++) {
        const struct pt_region *r = &tp->region[k];
        if (r->bar == bar && off >= r->offset && off + size <= (uint64_t)r->offset + r->length) {
            *kind = (enum pt_region_kind)k;
            return r;
        }
    }
    return NULL;
}

static uint64_t common_read(struct pt *tp, uint32_t off, unsigned size)
{
    if (size == 8) /* 64-bit fields may be read as one access or two halves */
        return vpci_common_read(&tp->vpci, off, 4) |
               ((uint64_t)vpci_common_read(&tp->vpci, off + 4, 4) << 32);
    return vpci_common_read(&tp->vpci, off, size);
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

static uint64_t devmem_event_read(struct pt *tp, uint32_t roff, unsigned size)
{
    uint32_t qi = roff / VIOSIM_DEVMEM_SLOT_BYTES;
    uint32_t at = roff % VIOSIM_DEVMEM_SLOT_BYTES;
    uint64_t v = 0;
    if (qi < tp->num_queues && devmem_event_access_ok(at, size))
        memcpy(&v, &tp->devmem_event[qi][at], size);
    return v;
}

static void devmem_event_write(struct pt *tp, uint32_t roff, unsigned size, uint64_t value)
{
    if (!vpci_negotiated(&tp->vpci, VIOSIM_NET_F_DEVMEM_EVENT_BIT)) {
        tp->stats.devmem_event_writes_ignored++;
        return;
    }
    uint32_t qi = roff / VIOSIM_DEVMEM_SLOT_BYTES;
    uint32_t at = roff % VIOSIM_DEVMEM_SLOT_BYTES;
    uint16_t named = qi < tp->num_queues ? (uint16_t)qi : PT_NO_QUEUE;
    if (!devmem_event_access_ok(at, size)) {
        pt_fail(tp, named, VS_REASON_DEVMEM_EVENT_ACCESS_INVALID);
        return;
    }
    if (qi >= tp->num_queues ||
        (tp->dev->queue_exists && !tp->dev->queue_exists(tp->dev_ctx, (uint16_t)qi))) {
        pt_fail(tp, PT_NO_QUEUE, VS_REASON_DEVMEM_EVENT_QUEUE_INVALID);
        return;
    }
    memcpy(&tp->devmem_event[qi][at], &value, size);
    tp->stats.devmem_event_writes++;
    /* VIOSIM_NET_F_DEVMEM_EVENT_RECHECK: a used buffer published while this write was on
     * its way was decided on with the old fields; decide again now. */
    if (vpci_negotiated(&tp->vpci, VIOSIM_NET_F_DEVMEM_EVENT_RECHECK_BIT) && pt_queue_live(tp, (uint16_t)qi)) {
        struct pt_queue *q = &tp->q[qi];
        bool interrupt = false;
        if (q->ops->recheck_driver_event(&q->ring, size == VIOSIM_DEVMEM_SLOT_BYTES, &interrupt) != VQ_OK) {
            pt_fail(tp, (uint16_t)qi, q->ops->broken(&q->ring));
            return;
        }
        if (interrupt) {
            tp->stats.devmem_event_recheck_interrupts++;
            raise_used_interrupt(tp, (uint16_t)qi);
        }
    }
}

bool pt_is_devmem_event_write(const struct pt *tp, uint64_t addr, unsigned size)
{
    const struct pt_region *r = &tp->region[PT_REGION_DEVMEM_EVENT];
    if (r->length == 0)
        return false;
    uint64_t off;
    int bar = pci_cfg_decode(&tp->pci, addr, size, &off);
    return bar == r->bar && off >= r->offset && off + size <= (uint64_t)r->offset + r->length;
}

static uint64_t bar_read(struct pt *tp, int bar, uint64_t off, unsigned size)
{
    enum pt_region_kind kind;
    const struct pt_region *r = find_region(tp, bar, off, size, &kind);
    if (!r)
        return 0;
    uint32_t roff = (uint32_t)(off - r->offset);
    switch (kind) {
    case PT_REGION_COMMON:
        return common_read(tp, roff, size);
    case PT_REGION_ISR: {
        /* "Simply reading this register resets it to 0 and causes the device to
         * de-assert the interrupt" ("ISR status capability"). */
        if (roff != 0)
            return 0;
        const uint8_t isr = vpci_isr_read(&tp->vpci);
        intx_update(tp);
        return isr;
    }
    case PT_REGION_DEVICE: /* the device type's configuration ("Device Configuration Space") */
        return tp->dev->config_read ? tp->dev->config_read(tp->dev_ctx, roff, size) : 0;
    case PT_REGION_NOTIFY:
        return 0;
    case PT_REGION_MSIX_TABLE:
        return msix_table_read(&tp->msix, roff, size);
    case PT_REGION_MSIX_PBA:
        return msix_pba_read(&tp->msix, roff, size);
    case PT_REGION_DEVMEM_EVENT:
        return devmem_event_read(tp, roff, size);
    case PT_REGION_COUNT:
        break;
    }
    return 0;
}

static void bar_write(struct pt *tp, int bar, uint64_t off, unsigned size, uint64_t value,
                      uint16_t *kicked)
{
    enum pt_region_kind kind;
    const struct pt_region *r = find_region(tp, bar, off, size, &kind);
    if (!r)
        return;
    uint32_t roff = (uint32_t)(off - r->offset);
    switch (kind) {
    case PT_REGION_COMMON:
        if (size == 8) {
            apply_event(tp, vpci_common_write(&tp->vpci, roff, 4, (uint32_t)value), kicked);
            apply_event(tp, vpci_common_write(&tp->vpci, roff + 4, 4, (uint32_t)(value >> 32)),
                        kicked);
        } else {
            apply_event(tp, vpci_common_write(&tp->vpci, roff, size, (uint32_t)value), kicked);
        }
        break;
    case PT_REGION_NOTIFY:
        apply_event(tp, vpci_notify_write(&tp->vpci, roff, size, (uint32_t)value), kicked);
        break;
    case PT_REGION_MSIX_TABLE: {
        enum vs_reason why = msix_table_write(&tp->msix, roff, size, value);
        if (why != VS_REASON_NONE)
            pt_fail(tp, PT_NO_QUEUE, why);
        drain_pending_msix(tp);
        break;
    }
    case PT_REGION_DEVMEM_EVENT:
        devmem_event_write(tp, roff, size, value);
        break;
    case PT_REGION_DEVICE: /* writable fields, if any, are the device type's */
        if (tp->dev->config_write)
            tp->dev->config_write(tp->dev_ctx, roff, size, value);
        break;
    case PT_REGION_ISR:    /* read-only */
    case PT_REGION_MSIX_PBA:
    case PT_REGION_COUNT:
        break;
    }
}

bool pt_mmio_read(struct pt *tp, uint64_t addr, unsigned size, uint64_t *value)
{
    uint64_t off;
    int bar = pci_cfg_decode(&tp->pci, addr, size, &off);
    if (bar < 0 || (size != 1 && size != 2 && size != 4 && size != 8)) {
        tp->stats.mmio_unclaimed++;
        *value = size >= 8 ? ~0ull : (1ull << (8 * size)) - 1;
        return false;
    }
    tp->stats.mmio_reads++;
    *value = bar_read(tp, bar, off, size);
    return true;
}

bool pt_mmio_write(struct pt *tp, uint64_t addr, unsigned size, uint64_t value,
                     uint16_t *kicked_queue)
{
    *kicked_queue = PT_NO_QUEUE;
    uint64_t off;
    int bar = pci_cfg_decode(&tp->pci, addr, size, &off);
    if (bar < 0 || (size != 1 && size != 2 && size != 4 && size != 8)) {
        tp->stats.mmio_unclaimed++;
        return false;
    }
    tp->stats.mmio_writes++;
    bar_write(tp, bar, off, size, value, kicked_queue);
    return true;
}

/* ---- Queue processing ---- */
bool pt_queue_live(const struct pt *tp, uint16_t q)
{
    return q < tp->num_queues && tp->q[q].enabled && tp->error == VS_REASON_NONE &&
           (tp->vpci.status & VIRTIO_STATUS_DRIVER_OK);
}

/* ---- Buffer data: the segments of a popped chain ---- */
enum vs_dma_status pt_read_segments(const struct vs_guest_ops *ops, const struct vq_seg *segs,
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

enum vs_dma_status pt_write_segments(const struct vs_guest_ops *ops, const struct vq_seg *segs,
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

/* Write src at byte `off` of a buffer's device-writable part. */
enum vs_dma_status pt_write_writable_at(const struct vs_guest_ops *ops,
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

/* ---- Queue processing ---- */
enum pt_step pt_pop(struct pt *tp, uint16_t qi, struct pt_slot *sl, struct pt_work *w)
{
    struct pt_queue *q = &tp->q[qi];
    const uint64_t before = q->ops->stats(&q->ring)->descs_read;
    enum vq_status s = q->ops->pop(&q->ring, &sl->gate.ops, &sl->e, sl->segs, tp->p.queue_size_max);
    if (sl->gate.aborted)
        return PT_STEP_IDLE; /* the queue was reset meanwhile: q belongs to it now */
    w->descs += (uint32_t)(q->ops->stats(&q->ring)->descs_read - before);
    if (s == VQ_EMPTY)
        return PT_STEP_IDLE;
    if (s == VQ_BROKEN)
        return ring_failed_at(tp, qi, &sl->gate);
    return PT_STEP_DONE;
}

static bool held(const struct pt *tp, uint16_t qi)
{
    return tp->role[qi]->holds_publication && tp->role[qi]->holds_publication(tp->dev_ctx, qi);
}

/* Push the held buffers of qi, each with used length `len` (their own if ~0u). */
static bool push_held(struct pt *tp, uint16_t qi, const struct vs_guest_ops *g, uint32_t len)
{
    struct pt_queue *q = &tp->q[qi];
    for (uint32_t i = 0; i < q->held_count; i++) {
        const struct pt_held *h = &tp->held[qi][i];
        if (q->ops->push(&q->ring, g, &h->e, len == ~0u ? h->written : len) != VQ_OK)
            return false;
    }
    q->held_count = 0;
    return true;
}

/* A finished buffer: held back while the role holds (so a group cut short can still go
 * back unused, pt_fe_queue_stop), else pushed after any held before it, and published
 * when the batch is full. */
static enum pt_step push(struct pt *tp, uint16_t qi, struct pt_slot *sl)
{
    struct pt_queue *q = &tp->q[qi];
    if (held(tp, qi) && tp->held[qi] && q->held_count < tp->p.queue_size_max) {
        tp->held[qi][q->held_count++] = (struct pt_held){sl->e, sl->written};
        return PT_STEP_DONE;
    }
    if (!push_held(tp, qi, &sl->gate.ops, ~0u) ||
        q->ops->push(&q->ring, &sl->gate.ops, &sl->e, sl->written) != VQ_OK)
        return ring_failed_at(tp, qi, &sl->gate);
    if (q->ops->pending(&q->ring) >= tp->p.used_batch_max && !held(tp, qi))
        return pt_complete(tp, qi, sl->gate.platform);
    return PT_STEP_DONE;
}

/* A slot of queue qi, or NULL when qi or k is out of range. */
static struct pt_slot *slot_of(struct pt *tp, uint16_t qi, unsigned k)
{
    return qi < tp->num_queues && k < tp->engines ? &tp->slot[qi][k] : NULL;
}

void pt_look_parked(struct pt *tp, uint16_t qi, unsigned k, const struct vs_guest_ops *ops)
{
    struct pt_slot *sl = slot_of(tp, qi, k);
    if (!sl || !pt_queue_live(tp, qi) || !tp->role[qi]->look_parked ||
        (sl->busy && sl->generation == tp->generation[qi]))
        return;
    sl->gate.pinned = true;
    sl->gate.gen = tp->generation[qi];
    tp->role[qi]->look_parked(tp->dev_ctx, qi, gate_setup(&sl->gate, tp, qi, ops));
}

enum pt_step pt_take(struct pt *tp, uint16_t qi, unsigned k, const struct vs_guest_ops *ops,
                         struct pt_work *w)
{
    struct pt_slot *sl = slot_of(tp, qi, k);
    if (!sl || !pt_queue_live(tp, qi))
        return tp->error != VS_REASON_NONE ? PT_STEP_FAILED : PT_STEP_IDLE;
    assert(!sl->busy || sl->generation != tp->generation[qi]);
    sl->busy = false;
    sl->generation = tp->generation[qi];
    sl->gate.pinned = true;
    sl->gate.gen = sl->generation;
    gate_setup(&sl->gate, tp, qi, ops);
    sl->written = 0;
    enum pt_step st = tp->role[qi]->take(tp->dev_ctx, qi, k, sl, w);
    if (st != PT_STEP_DONE)
        return st;
    sl->busy = true;
    sl->seq = tp->q[qi].take_seq++;
    return PT_STEP_DONE;
}

/* Has the slot's queue been reset (or re-enabled) since the slot's take? */
static bool slot_stale(const struct pt *tp, uint16_t qi, const struct pt_slot *sl)
{
    return !sl->busy || sl->generation != tp->generation[qi];
}

enum pt_step pt_move(struct pt *tp, uint16_t qi, unsigned k, struct pt_work *w)
{
    struct pt_slot *sl = slot_of(tp, qi, k);
    if (!sl)
        return PT_STEP_IDLE;
    if (tp->error != VS_REASON_NONE)
        return PT_STEP_FAILED;
    if (slot_stale(tp, qi, sl))
        return PT_STEP_IDLE;
    sl->gate.aborted = false;
    return tp->role[qi]->move(tp->dev_ctx, qi, k, sl, w);
}

enum pt_step pt_finish(struct pt *tp, uint16_t qi, unsigned k, struct pt_work *w)
{
    (void)w;
    struct pt_slot *sl = slot_of(tp, qi, k);
    if (!sl)
        return PT_STEP_IDLE;
    if (tp->error != VS_REASON_NONE)
        return PT_STEP_FAILED;
    if (slot_stale(tp, qi, sl)) {
        sl->busy = false;
        return PT_STEP_IDLE;
    }
    /* Buffers complete in the order they were taken: valid with and without IN_ORDER
     * ("In-order use of descriptors" requires it only with the feature). */
    if (sl->seq != tp->q[qi].finish_seq)
        return PT_STEP_WAIT;
    sl->gate.aborted = false;
    if (tp->role[qi]->finish)
        tp->role[qi]->finish(tp->dev_ctx, qi, k, sl);
    sl->busy = false;
    /* The turn passes only once the push (and any publication) is done: a push may
     * be suspended in its DMA, and the next buffer's push must not start meanwhile. A
     * queue reset during it started a new numbering, which is left alone. */
    enum pt_step st = push(tp, qi, sl);
    if (tp->generation[qi] == sl->generation)
        tp->q[qi].finish_seq++;
    return st;
}

enum pt_step pt_step_one(struct pt *tp, uint16_t qi, const struct vs_guest_ops *ops,
                         struct pt_work *w)
{
    enum pt_step st = pt_take(tp, qi, 0, ops, w);
    if (st != PT_STEP_DONE)
        return st;
    st = pt_move(tp, qi, 0, w);
    if (st != PT_STEP_DONE)
        return st;
    return pt_finish(tp, qi, 0, w);
}

/* ---- Used buffer notifications ----
 * When to decide is the role's (its published hook: virtio-net counts buffers under
 * coalescing, model/coalesce.c); the decision itself is the transport's. */

/* The notification conditions are met: read the driver's event suppression for
 * everything published since the last decision and send the queue's message if it
 * wants one ("Used Buffer Notification Suppression"; coalescing: "A device SHOULD NOT
 * send used buffer notifications to the driver if the notifications are suppressed,
 * even if the notification conditions are met"). */
static enum pt_step notify_decision(struct pt *tp, uint16_t qi, const struct vs_guest_ops *g,
                                    unsigned cause)
{
    struct pt_queue *q = &tp->q[qi];
    bool interrupt = false;
    const uint64_t local_before = q->ops->stats(&q->ring)->event_reads_local;
    if (q->ops->should_interrupt(&q->ring, g, &interrupt) != VQ_OK)
        return ring_failed(tp, qi);
    /* (Reads across the link are counted in the DMA gate, aborted ones included.) */
    tp->stats.event_reads_local[qi] += q->ops->stats(&q->ring)->event_reads_local - local_before;
    if (tp->role[qi]->decided)
        tp->role[qi]->decided(tp->dev_ctx, qi, cause, interrupt);
    if (interrupt)
        raise_used_interrupt(tp, qi);
    return PT_STEP_DONE;
}

enum pt_step pt_decide(struct pt *tp, uint16_t qi, const struct vs_guest_ops *ops, unsigned cause)
{
    return notify_decision(tp, qi, gate(tp, qi, ops), cause);
}

/* pt_complete; or, for a stop (stopping), publication only: whatever the role holds,
 * and no notification decision (the front end reads the ring itself). */
static enum pt_step complete(struct pt *tp, uint16_t qi, const struct vs_guest_ops *ops,
                             bool stopping)
{
    if (qi >= tp->num_queues || !tp->q[qi].enabled)
        return PT_STEP_IDLE;
    if (tp->error != VS_REASON_NONE)
        return PT_STEP_FAILED;
    const struct vs_guest_ops *g = gate(tp, qi, ops);
    struct pt_queue *q = &tp->q[qi];
    const uint32_t published = q->ops->pending(&q->ring);
    if (published == 0 || (held(tp, qi) && !stopping))
        return PT_STEP_IDLE;
    /* Without VIRTIO_F_ORDER_PLATFORM the driver only promises CPU-to-CPU ordering, and
     * a device "MAY operate in a slower emulation mode" ("Reserved Feature Bits"): this
     * one reads back before publishing, so its buffer writes are visible to the driver
     * before the used entries that point at them whatever the platform reorders. */
    if (!vpci_negotiated(&tp->vpci, VIRTIO_F_ORDER_PLATFORM_BIT)) {
        uint32_t scratch;
        enum vs_dma_status s = g->read(g->ctx, q->cfg.device_addr, &scratch, sizeof scratch,
                                       VS_DMA_FLUSH_READ);
        if (s != VS_DMA_OK)
            return dma_failed(tp, qi, s);
    }
    if (q->ops->flush(&q->ring, g) != VQ_OK)
        return ring_failed(tp, qi);
    if (stopping)
        return PT_STEP_DONE;
    const unsigned cause = tp->role[qi]->published
                               ? tp->role[qi]->published(tp->dev_ctx, qi, published)
                               : PT_DECIDE_EVERY;
    if (cause == PT_DECIDE_HOLD)
        return PT_STEP_DONE;
    return notify_decision(tp, qi, g, cause);
}

enum pt_step pt_complete(struct pt *tp, uint16_t qi, const struct vs_guest_ops *ops)
{
    return complete(tp, qi, ops, false);
}

enum pt_step pt_arm_notifications(struct pt *tp, uint16_t qi, const struct vs_guest_ops *ops)
{
    if (!pt_queue_live(tp, qi))
        return tp->error != VS_REASON_NONE ? PT_STEP_FAILED : PT_STEP_IDLE;
    const struct vs_guest_ops *g = gate(tp, qi, ops);
    struct pt_queue *q = &tp->q[qi];
    if (q->ops->set_notifications(&q->ring, g, true) != VQ_OK)
        return ring_failed(tp, qi);
    /* Re-check after enabling: the driver may have made buffers available before it
     * could see our request ("Driver and Device Event Suppression"). */
    bool avail = false;
    if (q->ops->peek(&q->ring, g, &avail) != VQ_OK)
        return ring_failed(tp, qi);
    return avail ? PT_STEP_DONE : PT_STEP_IDLE;
}

enum pt_step pt_quiet_notifications(struct pt *tp, uint16_t qi, const struct vs_guest_ops *ops)
{
    if (!pt_queue_live(tp, qi))
        return tp->error != VS_REASON_NONE ? PT_STEP_FAILED : PT_STEP_IDLE;
    struct pt_queue *q = &tp->q[qi];
    /* With EVENT_IDX the armed event index already stops notifications until the
     * driver passes it; only the flag-based scheme needs an explicit disable. */
    if (q->cfg.event_idx)
        return PT_STEP_DONE;
    const struct vs_guest_ops *g = gate(tp, qi, ops);
    if (q->ops->set_notifications(&q->ring, g, false) != VQ_OK)
        return ring_failed(tp, qi);
    return PT_STEP_DONE;
}

/* ---- Running the device until idle (pci_transport.h) ---- */

/* The pass of a round that visits a queue of this role: 0 the queues that feed others
 * and wait for the driver, 1 those that wait for the device's other side, 2 the rest. */
static unsigned idle_pass(const struct pt_role *role)
{
    if (!role->idle_waits_for_driver)
        return 1;
    return role->signals ? 0 : 2;
}
#define IDLE_PASSES 3u

/* One visit of live queue qi: DONE if it completed buffers, IDLE if not, FAILED. */
static enum pt_step idle_visit(struct pt *tp, uint16_t qi, struct pt_idle *run)
{
    const struct vs_guest_ops *ops = run->queue_ops(run->ctx, qi);
    const struct pt_role *role = tp->role[qi];
    if (pt_quiet_notifications(tp, qi, ops) == PT_STEP_FAILED)
        return PT_STEP_FAILED;
    uint32_t n = 0;
    for (bool rechecked = false;; rechecked = true) {
        const uint32_t before = n;
        enum pt_step stop = PT_STEP_DONE; /* DONE: steps_max reached before the queue stopped */
        while (n < run->steps_max) {
            struct pt_work w;
            memset(&w, 0, sizeof w);
            stop = pt_step_one(tp, qi, ops, &w);
            if (stop != PT_STEP_DONE)
                break;
            n++;
        }
        run->done += n - before;
        if (run->buffers)
            run->buffers[qi] += n - before;
        if (stop == PT_STEP_FAILED || pt_complete(tp, qi, ops) == PT_STEP_FAILED)
            return PT_STEP_FAILED;
        if (stop == PT_STEP_DONE)
            break;
        /* The queue stopped. Waiting for the device's other side (no frame for a
         * receive queue's buffers): the queue that gives it work runs in this loop, and
         * re-checking its ring would only find the same buffers again. Waiting for the
         * driver: ask for notifications, then re-check, since buffers made available
         * before the driver could see the request are work now; but buffers the re-check
         * found that the queue then did not take (a transmit queue of a pair not in use)
         * wait for the driver like an empty ring, and are no progress. */
        const bool waits_for_driver = stop == PT_STEP_IDLE ? role->idle_waits_for_driver
                                                           : !role->idle_waits_for_driver;
        if (!waits_for_driver || (rechecked && n == before))
            break;
        const enum pt_step armed = pt_arm_notifications(tp, qi, ops);
        if (armed == PT_STEP_FAILED)
            return PT_STEP_FAILED;
        if (armed != PT_STEP_DONE)
            break;
    }
    return n > 0 ? PT_STEP_DONE : PT_STEP_IDLE;
}

enum pt_step pt_run_idle(struct pt *tp, struct pt_idle *run)
{
    run->rounds = 0;
    run->done = 0;
    run->spent = false;
    bool moved = true, any = false;
    while (moved && tp->error == VS_REASON_NONE) {
        if (run->rounds == run->rounds_max) {
            run->spent = true;
            break;
        }
        run->rounds++;
        moved = false;
        for (unsigned pass = 0; pass < IDLE_PASSES; pass++) {
            for (uint16_t qi = 0; qi < tp->num_queues; qi++) {
                if (!pt_queue_live(tp, qi) || idle_pass(tp->role[qi]) != pass)
                    continue;
                const enum pt_step st = idle_visit(tp, qi, run);
                if (st == PT_STEP_FAILED)
                    return PT_STEP_FAILED;
                moved |= st == PT_STEP_DONE;
            }
        }
        any |= moved;
    }
    if (tp->error != VS_REASON_NONE)
        return PT_STEP_FAILED;
    return any ? PT_STEP_DONE : PT_STEP_IDLE;
}

/* ---- A front end without registers (pci_transport.h) ---- */
void pt_fe_attach(struct pt *tp, const vs_features *features)
{
    tp->stats.resets++;
    vpci_reset(&tp->vpci);
    device_reset(tp);
    /* What a driver's configuration writes would have done: memory decoding and bus
     * mastering (the DMA gate and the outbox check the latter), MSI-X on. */
    pci_cfg_write(&tp->pci, PCI_COMMAND, 2, PCI_COMMAND_MEMORY_MASK | PCI_COMMAND_MASTER_MASK);
    for (uint16_t v = 0; v < tp->msix.nvec; v++) {
        const uint32_t e = (uint32_t)v * MSIX_ENTRY_SIZE;
        msix_table_write(&tp->msix, e + MSIX_ENTRY_ADDR_LO, 4, (uint32_t)PT_FE_MSI_ADDRESS);
        msix_table_write(&tp->msix, e + MSIX_ENTRY_ADDR_HI, 4, (uint32_t)(PT_FE_MSI_ADDRESS >> 32));
        msix_table_write(&tp->msix, e + MSIX_ENTRY_DATA, 4, v);
        msix_table_write(&tp->msix, e + MSIX_ENTRY_CTRL, 4, 0); /* unmasked */
    }
    if (tp->cap_msix) {
        const uint16_t ctl = (uint16_t)pci_cfg_read(&tp->pci, tp->cap_msix + 2u, 2);
        pci_cfg_write(&tp->pci, tp->cap_msix + 2u, 2, ctl | MSIX_MSGCTL_ENABLE_MASK);
    }
    msix_set_control(&tp->msix, true, false);
    /* Only what the function offers: a front end cannot negotiate more. */
    const vs_features offered = offered_features(&tp->p);
    for (unsigned w = 0; w < sizeof features->w / sizeof features->w[0]; w++)
        tp->vpci.driver_features.w[w] = features->w[w] & offered.w[w];
    tp->vpci.status = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
                      VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK;
    tp->vpci.config_msix_vector = 0;
    for (uint16_t q = 0; q < tp->num_queues; q++)
        tp->vpci.q[q].msix_vector = (uint16_t)(1u + q);
    tp->fe_attached = true;
}

enum pt_fe_start pt_fe_queue_start(struct pt *tp, uint16_t qi, const struct pt_fe_ring *r,
                                   enum vs_reason *why)
{
    *why = VS_REASON_NONE;
    if (!tp->fe_attached)
        return PT_FE_NOT_ATTACHED;
    if (qi >= tp->num_queues || (tp->dev->queue_exists && !tp->dev->queue_exists(tp->dev_ctx, qi)))
        return PT_FE_NO_QUEUE;
    if (tp->q[qi].enabled)
        queue_clear(tp, qi);
    /* Refuse what queue_enable would break the device for, before it runs: here the
     * request is the front end's, not a driver's violation. */
    const struct vq_ops *fmt = vpci_negotiated(&tp->vpci, VIRTIO_F_RING_PACKED_BIT)
                                   ? &packed_vq_ops : &split_vq_ops;
    const struct vq_config probe = {.size = r->size, .desc_addr = r->desc,
                                    .driver_addr = r->driver, .device_addr = r->device};
    *why = fmt->check_config(&probe, tp->p.queue_size_max);
    if (*why != VS_REASON_NONE)
        return PT_FE_CONFIG_REFUSED;
    struct vpci_queue *vq = &tp->vpci.q[qi];
    vq->size = r->size;
    vq->desc = r->desc;
    vq->driver = r->driver;
    vq->device = r->device;
    vq->enable = 1;
    queue_enable(tp, qi);
    /* Right after init the ring may continue from the front end's position (vhost-user
     * SET_VRING_BASE: both sides of the ring resume there, nothing in flight). */
    struct pt_queue *q = &tp->q[qi];
    if (!q->enabled || !q->ops->resume_at(&q->ring, r->position)) {
        queue_clear(tp, qi);
        vq->enable = 0;
        return PT_FE_POSITION_REFUSED;
    }
    return PT_FE_STARTED;
}

uint32_t pt_fe_queue_stop(struct pt *tp, uint16_t qi, const struct vs_guest_ops *ops,
                          uint32_t fallback, uint32_t *held_out)
{
    *held_out = 0;
    if (qi >= tp->num_queues || !tp->q[qi].enabled)
        return fallback;
    struct pt_queue *q = &tp->q[qi];
    if (tp->error == VS_REASON_NONE) {
        /* A group cut short goes back unused: "used length 0" tells the driver nothing
         * was written, and the group's frame is the personality's to start over. A
         * failure here is the device's sticky error. */
        *held_out = q->held_count;
        if (push_held(tp, qi, gate(tp, qi, ops), 0))
            complete(tp, qi, ops, true);
        else
            ring_failed(tp, qi);
    }
    const uint32_t position = q->ops->position(&q->ring);
    queue_clear(tp, qi);
    tp->vpci.q[qi].enable = 0;
    return position;
}

uint16_t pt_fe_msi_queue(const struct pt *tp, const struct msix_message *m)
{
    if (m->addr != PT_FE_MSI_ADDRESS || m->data == 0 || m->data > tp->num_queues)
        return PT_NO_QUEUE;
    return (uint16_t)(m->data - 1u);
}
