/* virtio_pci.c -- the virtio-over-PCI register file ("Virtio Over PCI Bus").
 *
 * The common configuration structure is one table indexed by byte offset: an entry
 * exists only at the first byte of a field (and of each 32-bit half of a 64-bit
 * field), so an access is valid exactly when its offset hits an entry whose size
 * equals the access size ("PCI Device Layout": 8-bit fields by 8-bit accesses,
 * 16-bit by aligned 16-bit, 32- and 64-bit fields by aligned 32-bit). Anything else
 * reads 0 and writes nothing; it is counted, never trusted.
 *
 * Decisions the spec leaves to the device, in one place:
 * - device_status keeps the device's view: bits the driver set stay set until a
 *   reset (the driver MUST NOT clear them); DEVICE_NEEDS_RESET is the device's and
 *   only a reset clears it; bits a driver may not set here (SUSPEND, never offered;
 *   reserved 0x20; NEEDS_RESET) are dropped.
 * - driver_feature mirrors what the driver wrote (the device "MAY present invalid
 *   bits"); the subset check happens when FEATURES_OK is set.
 * - Notifications are decoded from the address when notify_off_multiplier != 0
 *   (a doorbell per queue); the value's queue field is only cross-checked.
 * - queue_reset completes within the write, so it never reads 1.
 * - config_generation survives a device reset: it versions the device-specific
 *   configuration, which a reset of this register file does not change.
 */
#include "virtio_pci.h"

#include <stddef.h>
#include <string.h>

/* Status bits the driver may set on this device ("Device Status Field"). SUSPEND
 * needs VIRTIO_F_SUSPEND, which this device never offers. */
#define VPCI_STATUS_DRIVER_BITS                                                   \
    (VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_DRIVER_OK | \
     VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_FAILED)

/* "MSI-X Vector Configuration": valid table entries are 0 to 0x7FF. */
#define VPCI_MSIX_ENTRIES_MAX 0x800u

static struct vpci_event event_of(enum vpci_event_kind kind, uint16_t queue)
{
    struct vpci_event e;
    memset(&e, 0, sizeof e);
    e.kind = kind;
    e.queue = queue;
    return e;
}

static struct vpci_event no_event(void)
{
    return event_of(VPCI_EV_NONE, 0);
}

/* The register reset values of queue idx ("Common configuration structure layout":
 * queue_size reads the maximum on reset, queue_enable 0; "MSI-X Vector
 * Configuration": all events unmapped upon reset). */
static void queue_set_defaults(struct vpci *v, uint16_t idx)
{
    struct vpci_queue *q = &v->q[idx];
    memset(q, 0, sizeof *q);
    q->size = v->p.queue_size_max;
    q->msix_vector = VIRTIO_MSI_NO_VECTOR;
    q->notify_off = idx;
}

void vpci_init(struct vpci *v, const struct vpci_params *p)
{
    memset(v, 0, sizeof *v);
    v->p = *p;
    vs_conf_init(&v->conf);
    if (v->p.num_queues > VPCI_QUEUES_MAX)
        v->p.num_queues = VPCI_QUEUES_MAX;
    vpci_reset(v);
}

void vpci_reset(struct vpci *v)
{
    /* Kept across a device reset: the fixed params, the run's counters and
     * conformance record, and the generation of the device-specific configuration. */
    struct vpci_params p = v->p;
    struct vpci_stats stats = v->stats;
    struct vs_conformance conf = v->conf;
    uint8_t generation = v->config_generation;

    memset(v, 0, sizeof *v);
    v->p = p;
    v->stats = stats;
    v->conf = conf;
    v->config_generation = generation;

    v->config_msix_vector = VIRTIO_MSI_NO_VECTOR;
    for (uint16_t i = 0; i < v->p.num_queues; i++)
        queue_set_defaults(v, i);
}

bool vpci_negotiated(const struct vpci *v, unsigned bit)
{
    return (v->status & VIRTIO_STATUS_FEATURES_OK) && vs_feature_has(&v->driver_features, bit);
}

void vpci_set_needs_reset(struct vpci *v)
{
    v->status |= VIRTIO_STATUS_DEVICE_NEEDS_RESET;
}

void vpci_config_changed(struct vpci *v)
{
    v->config_generation++;
}

uint8_t vpci_isr_read(struct vpci *v)
{
    /* "ISR status capability": the device MUST reset ISR status to 0 on driver read. */
    uint8_t isr = v->isr;
    v->isr = 0;
    v->stats.isr_reads++;
    return isr;
}

void vpci_isr_set(struct vpci *v, uint8_t mask)
{
    v->isr |= mask;
}

/* ------------------------------------------------------------------------------
 * Helpers for the register handlers
 * ------------------------------------------------------------------------------ */

/* The queue queue_select names, or NULL: "0 means the queue is unavailable". */
static struct vpci_queue *selected_queue(struct vpci *v)
{
    return v->queue_select < v->p.num_queues ? &v->q[v->queue_select] : NULL;
}

/* A per-queue field may be changed: the queue exists and is not enabled ("The
 * driver MUST configure the other virtqueue fields before enabling the virtqueue"). */
static struct vpci_queue *configurable_queue(struct vpci *v)
{
    struct vpci_queue *q = selected_queue(v);
    if (!q || q->enable) {
        v->stats.queue_writes_ignored++;
        if (q)
            vs_conf_report(&v->conf, VS_RULE_QUEUE_CONFIG_AFTER_ENABLE, v->queue_select, 1, 0);
        return NULL;
    }
    return q;
}

/* "MSI-X Vector Configuration": a mapping the device cannot satisfy reads back
 * NO_VECTOR ("Devices MUST report mapping failures by returning the NO_VECTOR value");
 * NO_VECTOR itself unmaps. Without an MSI-X capability no mapping can be satisfied. */
static uint16_t accept_msix_vector(struct vpci *v, uint32_t value)
{
    uint32_t limit = VPCI_MSIX_ENTRIES_MAX;
    if (v->p.no_msix)
        limit = 0;
    else if (v->p.msix_vectors && v->p.msix_vectors < limit)
        limit = v->p.msix_vectors;
    if (value == VIRTIO_MSI_NO_VECTOR || value < limit)
        return (uint16_t)value;
    v->stats.msix_vectors_refused++;
    return VIRTIO_MSI_NO_VECTOR;
}

static uint32_t half64_read(uint64_t field, bool high)
{
    return high ? (uint32_t)(field >> 32) : (uint32_t)field;
}

static void half64_write(uint64_t *field, bool high, uint32_t value)
{
    if (high)
        *field = (*field & 0xffffffffull) | ((uint64_t)value << 32);
    else
        *field = (*field & ~0xffffffffull) | value;
}

/* "Feature Bits": the device MUST fail to set FEATURES_OK unless it accepts the
 * driver's subset. Accepted: only offered bits, VERSION_1 among them (this device
 * has no legacy interface), and the device-specific dependencies hold. */
static bool features_acceptable(struct vpci *v)
{
    for (unsigned w = 0; w < VS_FEATURE_WORDS; w++) {
        uint32_t extra = v->driver_features.w[w] & ~v->p.device_features.w[w];
        if (extra) {
            /* seen: the first bit not offered */
            unsigned bit = 32u * w;
            while (!(extra & 1u)) {
                extra >>= 1;
                bit++;
            }
            vs_conf_report(&v->conf, VS_RULE_FEATURE_NOT_OFFERED, 0xffff, bit, 0);
            return false;
        }
    }
    if (!vs_feature_has(&v->driver_features, VIRTIO_F_VERSION_1_BIT)) {
        vs_conf_report(&v->conf, VS_RULE_FEATURE_VERSION_1_DECLINED, 0xffff, 0,
                       VIRTIO_F_VERSION_1_BIT);
        return false;
    }
    if (v->p.validate_features && !v->p.validate_features(v->p.validate_ctx, &v->driver_features)) {
        vs_conf_report(&v->conf, VS_RULE_FEATURE_DEPENDENCY, 0xffff,
                       ((uint64_t)v->driver_features.w[1] << 32) | v->driver_features.w[0], 0);
        return false;
    }
    return true;
}

/* ------------------------------------------------------------------------------
 * Common configuration registers, one handler per field
 * ("Common configuration structure layout")
 * ------------------------------------------------------------------------------ */

static uint32_t read_device_feature_select(struct vpci *v, uint32_t off)
{
    (void)off;
    return v->device_feature_select;
}

static struct vpci_event write_device_feature_select(struct vpci *v, uint32_t off, uint32_t value)
{
    (void)off;
    v->device_feature_select = value;
    return no_event();
}

/* The device MUST present the offered bits starting at bit select*32: 0 beyond
 * the 128 bits this model holds. */
static uint32_t read_device_feature(struct vpci *v, uint32_t off)
{
    (void)off;
    uint32_t sel = v->device_feature_select;
    return sel < VS_FEATURE_WORDS ? v->p.device_features.w[sel] : 0;
}

static uint32_t read_driver_feature_select(struct vpci *v, uint32_t off)
{
    (void)off;
    return v->driver_feature_select;
}

static struct vpci_event write_driver_feature_select(struct vpci *v, uint32_t off, uint32_t value)
{
    (void)off;
    v->driver_feature_select = value;
    return no_event();
}

static uint32_t read_driver_feature(struct vpci *v, uint32_t off)
{
    (void)off;
    uint32_t sel = v->driver_feature_select;
    return sel < VS_FEATURE_WORDS ? v->driver_features.w[sel] : 0;
}

/* "Device Initialization": the driver MUST NOT accept new feature bits after
 * FEATURES_OK; the accepted set stays what the device checked. */
static struct vpci_event write_driver_feature(struct vpci *v, uint32_t off, uint32_t value)
{
    (void)off;
    uint32_t sel = v->driver_feature_select;
    if (sel < VS_FEATURE_WORDS && (v->status & VIRTIO_STATUS_FEATURES_OK) &&
        (value & ~v->driver_features.w[sel]))
        vs_conf_report(&v->conf, VS_RULE_FEATURE_AFTER_FEATURES_OK, 0xffff, value,
                       v->driver_features.w[sel]);
    if (sel >= VS_FEATURE_WORDS || (v->status & VIRTIO_STATUS_FEATURES_OK)) {
        v->stats.feature_writes_ignored++;
        return no_event();
    }
    v->driver_features.w[sel] = value;
    return no_event();
}

static uint32_t read_config_msix_vector(struct vpci *v, uint32_t off)
{
    (void)off;
    return v->config_msix_vector;
}

static struct vpci_event write_config_msix_vector(struct vpci *v, uint32_t off, uint32_t value)
{
    (void)off;
    v->config_msix_vector = accept_msix_vector(v, value);
    return no_event();
}

static uint32_t read_num_queues(struct vpci *v, uint32_t off)
{
    (void)off;
    return v->p.num_queues;
}

static uint32_t read_device_status(struct vpci *v, uint32_t off)
{
    (void)off;
    if (v->status == 0)
        v->reset_unconfirmed = false;
    return v->status;
}

/* "Device Initialization": each bit of the sequence needs the one before it. */
static uint8_t status_prerequisite(uint8_t bit)
{
    switch (bit) {
    case VIRTIO_STATUS_DRIVER:
        return VIRTIO_STATUS_ACKNOWLEDGE;
    case VIRTIO_STATUS_FEATURES_OK:
        return VIRTIO_STATUS_DRIVER;
    case VIRTIO_STATUS_DRIVER_OK:
        return VIRTIO_STATUS_FEATURES_OK;
    default:
        return 0;
    }
}

static void check_status_write(struct vpci *v, uint8_t old, uint8_t req)
{
    if (v->reset_unconfirmed) {
        vs_conf_report(&v->conf, VS_RULE_RESET_NOT_AWAITED, 0xffff, req, 0);
        v->reset_unconfirmed = false;
    }
    if (req & ~VPCI_STATUS_DRIVER_BITS)
        vs_conf_report(&v->conf, VS_RULE_STATUS_RESERVED_BIT, 0xffff, req, VPCI_STATUS_DRIVER_BITS);
    req &= VPCI_STATUS_DRIVER_BITS;
    if (old & VPCI_STATUS_DRIVER_BITS & ~req)
        vs_conf_report(&v->conf, VS_RULE_STATUS_BIT_CLEARED, 0xffff, req, old);
    const uint8_t added = req & (uint8_t)~old;
    if ((old & VIRTIO_STATUS_FAILED) && (added & ~VIRTIO_STATUS_FAILED))
        vs_conf_report(&v->conf, VS_RULE_INIT_AFTER_FAILED, 0xffff, req, old);
    const uint8_t after = old | req;
    for (uint8_t bit = 1; bit; bit = (uint8_t)(bit << 1)) {
        const uint8_t need = status_prerequisite(bit);
        if ((added & bit) && need && !(after & need)) {
            vs_conf_report(&v->conf, VS_RULE_INIT_ORDER, 0xffff, req, old);
            break;
        }
    }
}

/* "Device Status Field" and "Device Initialization".
 * 0 resets the device ("The device MUST reset when 0 is written to device_status").
 * Otherwise the write can only add driver bits: clearing one is a driver violation
 * (the driver MUST NOT clear a bit) and the device keeps its view. FEATURES_OK is
 * checked when newly set and reads back clear if refused; DRIVER_OK newly set makes
 * the device live. One write setting both gives VPCI_EV_DRIVER_OK with
 * features_ok telling that negotiation completed in the same write. */
static struct vpci_event write_device_status(struct vpci *v, uint32_t off, uint32_t value)
{
    (void)off;
    uint8_t old = v->status;
    uint8_t req = (uint8_t)value;

    v->stats.status_writes++;
    if (req == 0) {
        vpci_reset(v);
        v->reset_unconfirmed = true;
        return event_of(VPCI_EV_RESET, 0);
    }
    check_status_write(v, old, req);
    if (req & ~VPCI_STATUS_DRIVER_BITS)
        v->stats.status_bits_ignored++;
    req &= VPCI_STATUS_DRIVER_BITS;
    if (old & VPCI_STATUS_DRIVER_BITS & ~req)
        v->stats.status_clears_ignored++;

    uint8_t added = req & (uint8_t)~old;
    uint8_t next = old | added;
    bool features_ok = false;
    if (added & VIRTIO_STATUS_FEATURES_OK) {
        if (features_acceptable(v)) {
            features_ok = true;
        } else {
            next &= (uint8_t)~VIRTIO_STATUS_FEATURES_OK;
            v->stats.features_rejected++;
        }
    }
    v->status = next;

    struct vpci_event e = no_event();
    if (added & VIRTIO_STATUS_DRIVER_OK) {
        if (!(next & VIRTIO_STATUS_FEATURES_OK))
            v->stats.driver_ok_without_features++;
        e = event_of(VPCI_EV_DRIVER_OK, 0);
    } else if (features_ok) {
        e = event_of(VPCI_EV_FEATURES_OK, 0);
    }
    e.features_ok = features_ok;
    return e;
}

static uint32_t read_config_generation(struct vpci *v, uint32_t off)
{
    (void)off;
    return v->config_generation;
}

static uint32_t read_queue_select(struct vpci *v, uint32_t off)
{
    (void)off;
    return v->queue_select;
}

static struct vpci_event write_queue_select(struct vpci *v, uint32_t off, uint32_t value)
{
    (void)off;
    v->queue_select = (uint16_t)value;
    return no_event();
}

static uint32_t read_queue_size(struct vpci *v, uint32_t off)
{
    (void)off;
    const struct vpci_queue *q = selected_queue(v);
    return q ? q->size : 0;
}

/* Stored as written: 0, above the maximum or not a power of two (split rings) are
 * refused by the caller when the queue is enabled. */
static struct vpci_event write_queue_size(struct vpci *v, uint32_t off, uint32_t value)
{
    (void)off;
    struct vpci_queue *q = configurable_queue(v);
    if (!q)
        return no_event();
    q->size = (uint16_t)value;
    /* The ring format is known once FEATURES_OK is accepted; queues are set up after
     * it ("Device Initialization"). */
    if (v->status & VIRTIO_STATUS_FEATURES_OK) {
        if (vpci_negotiated(v, VIRTIO_F_RING_PACKED_BIT)) {
            if (value == 0)
                vs_conf_report(&v->conf, VS_RULE_QUEUE_SIZE_ZERO, v->queue_select, value, 1);
        } else if (value == 0 || (value & (value - 1u)) != 0) {
            vs_conf_report(&v->conf, VS_RULE_QUEUE_SIZE_NOT_POWER_OF_2, v->queue_select, value, 0);
        }
    }
    return no_event();
}

static uint32_t read_queue_msix_vector(struct vpci *v, uint32_t off)
{
    (void)off;
    const struct vpci_queue *q = selected_queue(v);
    return q ? q->msix_vector : VIRTIO_MSI_NO_VECTOR;
}

/* Remapping a live queue's vector is allowed (no rule forbids it). */
static struct vpci_event write_queue_msix_vector(struct vpci *v, uint32_t off, uint32_t value)
{
    (void)off;
    struct vpci_queue *q = selected_queue(v);
    if (!q) {
        v->stats.queue_writes_ignored++;
        return no_event();
    }
    q->msix_vector = accept_msix_vector(v, value);
    return no_event();
}

static uint32_t read_queue_enable(struct vpci *v, uint32_t off)
{
    (void)off;
    const struct vpci_queue *q = selected_queue(v);
    return q ? q->enable : 0;
}

/* 1 enables (the caller validates the configuration and may answer with
 * DEVICE_NEEDS_RESET); "The driver MUST NOT write a 0 to queue_enable"; enabling an
 * enabled queue changes nothing. */
static struct vpci_event write_queue_enable(struct vpci *v, uint32_t off, uint32_t value)
{
    (void)off;
    struct vpci_queue *q = selected_queue(v);
    if (!q) {
        v->stats.queue_writes_ignored++;
        return no_event();
    }
    if (value == 0) {
        v->stats.queue_disables_ignored++;
        vs_conf_report(&v->conf, VS_RULE_QUEUE_ENABLE_ZERO, v->queue_select, 0, 1);
        return no_event();
    }
    if (value != 1 || q->enable) {
        v->stats.queue_writes_ignored++;
        return no_event();
    }
    q->enable = 1;
    return event_of(VPCI_EV_QUEUE_ENABLE, v->queue_select);
}

static uint32_t read_queue_notify_off(struct vpci *v, uint32_t off)
{
    (void)off;
    const struct vpci_queue *q = selected_queue(v);
    return q ? q->notify_off : 0;
}

static uint32_t read_queue_desc(struct vpci *v, uint32_t off)
{
    const struct vpci_queue *q = selected_queue(v);
    return q ? half64_read(q->desc, off == VIRTIO_PCI_COMMON_Q_DESCHI) : 0;
}

static struct vpci_event write_queue_desc(struct vpci *v, uint32_t off, uint32_t value)
{
    struct vpci_queue *q = configurable_queue(v);
    if (q)
        half64_write(&q->desc, off == VIRTIO_PCI_COMMON_Q_DESCHI, value);
    return no_event();
}

static uint32_t read_queue_driver(struct vpci *v, uint32_t off)
{
    const struct vpci_queue *q = selected_queue(v);
    return q ? half64_read(q->driver, off == VIRTIO_PCI_COMMON_Q_AVAILHI) : 0;
}

static struct vpci_event write_queue_driver(struct vpci *v, uint32_t off, uint32_t value)
{
    struct vpci_queue *q = configurable_queue(v);
    if (q)
        half64_write(&q->driver, off == VIRTIO_PCI_COMMON_Q_AVAILHI, value);
    return no_event();
}

static uint32_t read_queue_device(struct vpci *v, uint32_t off)
{
    const struct vpci_queue *q = selected_queue(v);
    return q ? half64_read(q->device, off == VIRTIO_PCI_COMMON_Q_USEDHI) : 0;
}

static struct vpci_event write_queue_device(struct vpci *v, uint32_t off, uint32_t value)
{
    struct vpci_queue *q = configurable_queue(v);
    if (q)
        half64_write(&q->device, off == VIRTIO_PCI_COMMON_Q_USEDHI, value);
    return no_event();
}

/* In the trivial case the spec describes: the virtqueue index. */
static uint32_t read_queue_notif_config_data(struct vpci *v, uint32_t off)
{
    (void)off;
    return selected_queue(v) ? v->queue_select : 0;
}

static uint32_t read_queue_reset(struct vpci *v, uint32_t off)
{
    (void)off;
    const struct vpci_queue *q = selected_queue(v);
    return q ? q->reset : 0;
}

/* "Virtqueue Reset": with RING_RESET negotiated, 1 resets the queue. The register
 * side completes here (enable 0, size maximum, vector unmapped, addresses 0), so
 * queue_reset reads 0 at once: "MUST present 0 in both queue_reset and
 * queue_enable when queue reset has completed". The caller resets the ring state. */
static struct vpci_event write_queue_reset(struct vpci *v, uint32_t off, uint32_t value)
{
    (void)off;
    if (!selected_queue(v)) {
        v->stats.queue_writes_ignored++;
        return no_event();
    }
    if (!vpci_negotiated(v, VIRTIO_F_RING_RESET_BIT) || value != 1) {
        v->stats.queue_resets_ignored++;
        vs_conf_report(&v->conf, VS_RULE_QUEUE_RESET_NOT_NEGOTIATED, v->queue_select, value,
                       vpci_negotiated(v, VIRTIO_F_RING_RESET_BIT));
        return no_event();
    }
    queue_set_defaults(v, v->queue_select);
    v->stats.queue_resets++;
    return event_of(VPCI_EV_QUEUE_RESET, v->queue_select);
}

/* No administration virtqueues: VIRTIO_F_ADMIN_VQ is never offered. */
static uint32_t read_admin_queue_index(struct vpci *v, uint32_t off)
{
    (void)v;
    (void)off;
    return 0;
}

static uint32_t read_admin_queue_num(struct vpci *v, uint32_t off)
{
    (void)v;
    (void)off;
    return 0;
}

/* ------------------------------------------------------------------------------
 * The layout: one entry at the first byte of each field (or 32-bit half)
 * ------------------------------------------------------------------------------ */

struct common_reg {
    uint8_t size; /* 0: no field starts here */
    uint32_t (*read)(struct vpci *v, uint32_t off);
    struct vpci_event (*write)(struct vpci *v, uint32_t off, uint32_t value); /* NULL: read-only */
};

static const struct common_reg common_regs[VIRTIO_PCI_COMMON_CFG_LEN] = {
    [VIRTIO_PCI_COMMON_DFSELECT]      = {4, read_device_feature_select, write_device_feature_select},
    [VIRTIO_PCI_COMMON_DF]            = {4, read_device_feature, NULL},
    [VIRTIO_PCI_COMMON_GFSELECT]      = {4, read_driver_feature_select, write_driver_feature_select},
    [VIRTIO_PCI_COMMON_GF]            = {4, read_driver_feature, write_driver_feature},
    [VIRTIO_PCI_COMMON_MSIX]          = {2, read_config_msix_vector, write_config_msix_vector},
    [VIRTIO_PCI_COMMON_NUMQ]          = {2, read_num_queues, NULL},
    [VIRTIO_PCI_COMMON_STATUS]        = {1, read_device_status, write_device_status},
    [VIRTIO_PCI_COMMON_CFGGENERATION] = {1, read_config_generation, NULL},
    [VIRTIO_PCI_COMMON_Q_SELECT]      = {2, read_queue_select, write_queue_select},
    [VIRTIO_PCI_COMMON_Q_SIZE]        = {2, read_queue_size, write_queue_size},
    [VIRTIO_PCI_COMMON_Q_MSIX]        = {2, read_queue_msix_vector, write_queue_msix_vector},
    [VIRTIO_PCI_COMMON_Q_ENABLE]      = {2, read_queue_enable, write_queue_enable},
    [VIRTIO_PCI_COMMON_Q_NOFF]        = {2, read_queue_notify_off, NULL},
    [VIRTIO_PCI_COMMON_Q_DESCLO]      = {4, read_queue_desc, write_queue_desc},
    [VIRTIO_PCI_COMMON_Q_DESCHI]      = {4, read_queue_desc, write_queue_desc},
    [VIRTIO_PCI_COMMON_Q_AVAILLO]     = {4, read_queue_driver, write_queue_driver},
    [VIRTIO_PCI_COMMON_Q_AVAILHI]     = {4, read_queue_driver, write_queue_driver},
    [VIRTIO_PCI_COMMON_Q_USEDLO]      = {4, read_queue_device, write_queue_device},
    [VIRTIO_PCI_COMMON_Q_USEDHI]      = {4, read_queue_device, write_queue_device},
    [VIRTIO_PCI_COMMON_Q_NDATA]       = {2, read_queue_notif_config_data, NULL},
    [VIRTIO_PCI_COMMON_Q_RESET]       = {2, read_queue_reset, write_queue_reset},
    [VIRTIO_PCI_COMMON_ADM_Q_IDX]     = {2, read_admin_queue_index, NULL},
    [VIRTIO_PCI_COMMON_ADM_Q_NUM]     = {2, read_admin_queue_num, NULL},
};

/* The field an access of size bytes at off hits exactly, or NULL. */
static const struct common_reg *common_reg_at(uint32_t off, unsigned size)
{
    if (off >= VIRTIO_PCI_COMMON_CFG_LEN || common_regs[off].size == 0 ||
        common_regs[off].size != size)
        return NULL;
    return &common_regs[off];
}

uint32_t vpci_common_read(struct vpci *v, uint32_t off, unsigned size)
{
    v->stats.common_reads++;
    const struct common_reg *r = common_reg_at(off, size);
    if (!r) {
        v->stats.bad_accesses++;
        return 0;
    }
    return r->read(v, off);
}

struct vpci_event vpci_common_write(struct vpci *v, uint32_t off, unsigned size, uint32_t value)
{
    v->stats.common_writes++;
    const struct common_reg *r = common_reg_at(off, size);
    if (!r) {
        v->stats.bad_accesses++;
        return no_event();
    }
    if (!r->write) {
        /* "The driver MUST NOT write to device_feature, num_queues,
         * config_generation, queue_notify_off or queue_notif_config_data." */
        v->stats.ro_writes_ignored++;
        vs_conf_report(&v->conf, VS_RULE_READ_ONLY_FIELD_WRITTEN, 0xffff, off, value);
        return no_event();
    }
    if (size < 4)
        value &= (1u << (8 * size)) - 1u;
    return r->write(v, off, value);
}

/* ------------------------------------------------------------------------------
 * Notification region ("Notification capability", "Available Buffer Notifications")
 * ------------------------------------------------------------------------------ */

/* A notification is 4 bytes wide when NOTIFICATION_DATA is offered, 2 otherwise;
 * queue q's address is q * multiplier (queue_notify_off = q). The length is the
 * spec's minimum: "cap.length >= queue_notify_off * notify_off_multiplier + 4"
 * (+ 2 without NOTIFICATION_DATA) for the last queue. Saturates at 4 GiB - 1. */
uint32_t vpci_notify_length(const struct vpci_params *p)
{
    uint64_t width = vs_feature_has(&p->device_features, VIRTIO_F_NOTIFICATION_DATA_BIT) ? 4 : 2;
    uint64_t queues = p->num_queues > VPCI_QUEUES_MAX ? VPCI_QUEUES_MAX : p->num_queues;
    uint64_t last = queues ? queues - 1 : 0;
    uint64_t len = last * p->notify_off_multiplier + width;
    return len > UINT32_MAX ? UINT32_MAX : (uint32_t)len;
}

/* Without NOTIFICATION_DATA the driver writes 16 bits holding the queue index (or
 * queue_notif_config_data, which is the index here). With it, 32 bits: vq index in
 * 0..15, next_off in 16..30, next_wrap in 31 -- the same layout for both ring
 * formats ("Driver Notifications": for split rings next_off is the 15 low bits of
 * the available index and next_wrap its bit 15).
 * The queue comes from the address when the multiplier is not 0; with a shared
 * address (multiplier 0) from the value. A write that is not exactly at a queue's
 * notify address with the negotiated width reaches no queue and is ignored. */
struct vpci_event vpci_notify_write(struct vpci *v, uint32_t off, unsigned size, uint32_t value)
{
    bool data = vpci_negotiated(v, VIRTIO_F_NOTIFICATION_DATA_BIT);
    unsigned width = data ? 4u : 2u;
    uint32_t mult = v->p.notify_off_multiplier;

    if (size != width || (mult == 0 ? off != 0 : off % mult != 0)) {
        v->stats.notify_bad_access++;
        if (size != width && (mult == 0 ? off == 0 : off % mult == 0))
            vs_conf_report(&v->conf, VS_RULE_NOTIFY_WIDTH, mult ? (uint16_t)(off / mult) : 0xffff,
                           size, width);
        return no_event();
    }

    uint32_t value_queue = value & VIRTIO_NOTIFY_DATA_VQN_MASK;
    uint32_t queue = mult ? off / mult : value_queue;
    if (queue >= v->p.num_queues) {
        v->stats.notify_invalid_queue++;
        struct vpci_event e = event_of(VPCI_EV_ERROR, queue > 0xffffu ? 0xffffu : (uint16_t)queue);
        e.reason = VS_REASON_NOTIFY_QUEUE_INVALID;
        return e;
    }
    if (value_queue != queue) {
        v->stats.notify_value_mismatch++;
        vs_conf_report(&v->conf, VS_RULE_NOTIFY_WRONG_QUEUE, (uint16_t)queue, value_queue, queue);
    }
    if (!(v->status & VIRTIO_STATUS_DRIVER_OK))
        vs_conf_report(&v->conf, VS_RULE_NOTIFY_BEFORE_DRIVER_OK, (uint16_t)queue, v->status,
                       VIRTIO_STATUS_DRIVER_OK);
    else if (!v->q[queue].enable)
        vs_conf_report(&v->conf, VS_RULE_NOTIFY_QUEUE_NOT_ENABLED, (uint16_t)queue, 0, 1);

    v->stats.notifications++;
    struct vpci_event e = event_of(VPCI_EV_NOTIFY, (uint16_t)queue);
    if (data) {
        e.has_data = true;
        e.next_off = (uint16_t)((value >> VIRTIO_NOTIFY_DATA_OFF_SHIFT) & VIRTIO_NOTIFY_DATA_OFF_MASK);
        e.next_wrap = (value >> VIRTIO_NOTIFY_DATA_WRAP_BIT) & 1u;
    }
    return e;
}
