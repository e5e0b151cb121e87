/* refdrv.c -- the reference virtio-net driver (packed or split rings, MSI-X).
 *
 * Straight-line firmware: every step below is one function, in the order the spec's
 * driver requirements give them ("Device Initialization", "Virtio Over PCI Bus").
 * The device is not trusted: every value read from configuration space or a BAR is
 * range-checked before it is used as a size, an offset or an index, and every used
 * buffer goes through the ring module's checks (drv_packed or drv_split).
 *
 * Ring format: packed when VIRTIO_F_RING_PACKED is negotiated, split otherwise (the
 * device did not offer it, or the parameters decline it). The choice is made once,
 * after FEATURES_OK, as a table of functions (struct ring_ops) every queue uses; the
 * traffic code never asks which format it drives. Split queues have a power-of-two
 * size ("Queue Size value is always a power of 2"): the requested size is rounded down.
 *
 * MSI-X vectors: 0 = configuration changes, 1 = receiveq1 (queue 0), 2 = transmitq1
 * (queue 1). A table with fewer entries shares: with 2 entries both queues use 1,
 * with 1 entry everything uses 0. Every entry sends address host->msi_base, data =
 * its entry number.
 *
 * Guest memory, allocated upwards from host->mem_base:
 *   RX descriptor area (4 KiB aligned), RX driver area, RX device area (64 B aligned
 *   each: packed, the two 4-byte event suppression structures, a cache line apiece;
 *   split, the available ring and the used ring), then the same for TX; TX indirect
 *   tables (32 B per buffer id, only with REFDRV_TX_INDIRECT); RX buffers (one per id,
 *   rx_buffer_bytes rounded up to 64 B); TX buffers (one per id: 12-byte virtio_net_hdr
 *   + largest frame, rounded up to 64 B). Buffer id i always uses slot i (a split
 *   ring's id is its head descriptor's index, below the queue size too).
 *
 * With VIRTIO_F_ACCESS_PLATFORM ("Reserved Feature Bits") the device's accesses go
 * through the platform IOMMU, and this driver programs it: it builds one I/O page table
 * (workloads/iopt.h) per distinct PASID of the RX and TX queues, maps every byte the
 * device may touch at IOVA = physical address + iova_offset, and gives the device only
 * IOVAs (queue address registers, descriptors, indirect tables); the CPU keeps using
 * physical addresses. Same order as above, but each region is tagged with its queue's
 * PASID and the device's access (rings and RX buffers: read/write; TX indirect tables
 * and TX buffers: read-only, the device never writes them), and a region whose
 * (PASID, access) differs from the previous region's starts on a fresh IOMMU page
 * (iommu_page_bytes, 4 KiB or 2 MiB). So no IOMMU page ever has to be mapped twice with
 * different rights in one address space, and with different PASIDs a queue's address
 * space reaches nothing of the other queue. The page-table pool comes last, on a fresh
 * IOMMU page too, so no page mapped for the device covers a page table. With 2 MiB pages
 * that is up to six 2 MiB-aligned stretches: RX ring | TX ring | TX tables | RX buffers |
 * TX buffers | tables (consecutive stretches with equal PASID and access merge).
 *
 * Notification coalescing (driver.coal_policy static or adaptive; docs/coalescing.md):
 * the driver also accepts VIRTIO_NET_F_CTRL_VQ, VIRTIO_NET_F_NOTF_COAL and
 * VIRTIO_NET_F_VQ_NOTF_COAL, and sets up the control queue (queue 2, no MSI-X vector:
 * it polls for the ack) after the TX buffers: its three ring areas and one 64-byte
 * command buffer (class, command and data at 0, the device-writable result and ack at
 * CTRL_REPLY_OFF), with the control queue's PASID. Without coalescing none of this
 * exists and the layout above is unchanged.
 */
#include "refdrv.h"

#include <assert.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "drv_packed.h"
#include "drv_split.h"
#include "iopt.h"
#include "msix.h"
#include "pci_cfg.h"
#include "traffic.h"

/* virtio-net queue numbering ("Virtqueues"): receiveq1 = 0, transmitq1 = 1. */
#define RX_QUEUE 0u
#define TX_QUEUE 1u
#define CTRL_QUEUE 2u
#define DATA_QUEUES 2u /* receiveq1 and transmitq1: what the driver always needs */
#define DRV_QUEUES 3u

#define VEC_CONFIG 0u

#define VIRTIO_NET_MODERN_DEVICE_ID (VIRTIO_PCI_DEVICE_ID_BASE + VIRTIO_ID_NET)
#define PCI_HEADER_TYPE_LAYOUT_MASK 0x7fu
#define PCI_BAR_IO_SPACE_MASK       0x1u
#define PCI_BAR_MEM_TYPE_SHIFT      1
#define PCI_BAR_MEM_TYPE_FIELD      0x3u
#define PCI_BAR_MEM_TYPE_32         0x0u
#define PCI_BAR_MEM_TYPE_64         0x2u
#define PCI_BAR_ADDR_LOW_MASK       0xfffffff0u
#define PCI_CAP_AREA_START          0x40u
#define PCI_CAP_AREA_END            0x100u
#define PCI_CAP_PTR_MASK            0xfcu
#define PCI_CAP_WALK_MAX            ((PCI_CAP_AREA_END - PCI_CAP_AREA_START) / 4u)
#define MSIX_CAP_MSGCTL             2u
#define MSIX_CAP_TABLE              4u
#define MSIX_CAP_LEN                12u
#define MSIX_BIR_MASK               0x7u
#define VIRTIO_PCI_CAP_MIN_LEN      16u
#define VIRTIO_PCI_NOTIFY_CAP_LEN   20u
#define VIRTIO_PCI_CAP_MULT_OFF     16u
#define VIRTIO_PCI_CAP_TYPE_MAX     VIRTIO_PCI_CAP_PCI_CFG

/* The part of the common configuration structure this driver uses. */
#define COMMON_CFG_USED_LEN   (VIRTIO_PCI_COMMON_Q_USEDHI + 4u)

#define NET_HDR_BYTES         ((uint32_t)sizeof(struct virtio_net_hdr))
#define NET_HDR_NUM_BUFFERS   10u
#define DEFAULT_RX_BUFFER_BYTES 1526u /* 1514-byte frame + header ("Setting Up Receive Buffers") */
#define DEFAULT_FRAME_BYTES   64u
#define DEFAULT_IDLE_TIMEOUT_NS 1000000u
#define DEFAULT_NAPI_BUDGET_FRAMES 64u /* Linux's NAPI_POLL_WEIGHT */
#define TX_BURST_MAX          32u     /* frames written before one publish + notify decision */
#define RX_REFILL_BATCH_MAX   32u     /* free receive buffers that trigger a refill */
#define RING_ALIGN_BYTES      4096u
#define AREA_ALIGN_BYTES      64u
#define INDIRECT_ENTRIES      2u
#define DESC_BYTES            16u     /* a descriptor, in either format's tables */
#define RING_AREAS            3u      /* descriptor, driver and device areas */
#define RESET_READS_MAX       100000u
#define MAC_READ_TRIES        8u
#define STATUS_CHECKS_PER_IDLE 16u
#define PS_PER_NS             1000u
#define PS_PER_US             1e6
#define FROZEN_POLLS_MAX      4096u
#define IOMMU_PAGE_DEFAULT_BYTES IOMMU_PAGE_SIZE_4K /* iommu_page_bytes 0 */
#define IOVA_LIMIT            (1ull << IOMMU_IOVA_BITS)
#define CTRL_QUEUE_ENTRIES    8u      /* one command at a time needs 2 */
#define CTRL_BUF_BYTES        64u
#define CTRL_REPLY_OFF        32u     /* device-writable: result, then the ack byte */
#define CTRL_POLL_NS          500u    /* simulated time between polls for the ack */
#define DEFAULT_COAL_INTERVAL_US 50u
#define PS_PER_US_INT         1000000u
/* Device-reached regions: per queue the three ring areas (packed: descriptor ring and
 * two event areas; split: descriptor table, available and used rings) and buffers;
 * TX also indirect tables. */
#define DEV_REGIONS_MAX       (DRV_QUEUES * 5u)

/* One virtio structure located through a vendor capability. */
struct region {
    bool found;
    uint64_t addr;   /* BAR base + cap.offset */
    uint64_t length; /* cap.length, clipped to the BAR */
};

/* ---- ring formats: the driver side of packed and split queues behind one table ---- */

/* A buffer element, a used buffer and a status, in terms both formats share. */
struct ring_seg {
    uint64_t addr;
    uint32_t len;
    bool device_writable;
};

struct ring_used {
    uint16_t id;
    uint32_t len;       /* bytes the device wrote (0 when the buffer has none to write) */
    bool written;
    bool skipped;       /* IN_ORDER batch member without a used entry of its own */
};

enum ring_status { RING_OK, RING_FULL, RING_EMPTY, RING_INVALID, RING_BROKEN };

/* One format's functions, on its state (the void *). Sizes are that format's rules. */
struct ring_ops {
    const char *name;
    /* The queue size to use when the driver wants `want` entries and the device allows
     * `max` (0: unusable). */
    uint16_t (*fit_size)(uint32_t want, uint32_t max);
    /* Bytes of the descriptor, driver and device areas for a queue of `size`. */
    void (*area_bytes)(uint16_t size, uint64_t bytes[RING_AREAS]);
    void (*init)(void *ring, uint8_t *area[RING_AREAS], uint16_t size, bool event_idx,
                 bool in_order);
    bool (*can_add)(const void *ring, uint32_t descs, uint16_t *id);
    enum ring_status (*add)(void *ring, const struct ring_seg *segs, uint16_t nsegs);
    enum ring_status (*add_indirect)(void *ring, uint8_t *table, uint64_t table_addr,
                                     const struct ring_seg *segs, uint16_t nsegs);
    void (*publish)(void *ring);
    /* Published since the last needs_notify decision. */
    uint32_t (*unnotified)(const void *ring);
    bool (*needs_notify)(void *ring);
    uint32_t (*notify_data)(const void *ring, uint16_t vq_index);
    bool (*has_used)(const void *ring);
    enum ring_status (*get_used)(void *ring, struct ring_used *u);
    void (*events_off)(void *ring);
    /* Ask for a used buffer notification `ahead` units past the next one; the unit is
     * what event_span counts (packed: ring slots; split: used entries, one per buffer). */
    void (*events_after)(void *ring, uint16_t ahead);
    /* viosim extension: write the suppression fields by MMIO through write(ctx, ...). */
    void (*set_event_mmio)(void *ring, void (*write)(void *ctx, uint32_t off, unsigned size,
                                                     uint32_t value),
                           void *ctx);
    uint16_t (*event_span)(const void *ring);
    /* Descriptors not free (ring slots for packed, table entries for split). */
    uint16_t (*descs_in_flight)(const void *ring);
};

/* Both formats take at most this many elements per buffer from this driver. */
#define RING_SEGS_MAX INDIRECT_ENTRIES

struct refdrv;

struct drv_queue {
    struct refdrv *drv;
    uint64_t event_slot;    /* VIOSIM_NET_F_DEVMEM_EVENT: the queue's slot (else 0) */
    const struct ring_ops *ops;
    void *ring;
    uint16_t index;
    uint16_t size;
    uint16_t vector;
    uint64_t notify_addr;
    uint64_t buf_gpa;       /* buffer slot of id i: buf_gpa + i * slot_bytes */
    uint8_t *buf;
    uint32_t slot_bytes;
    uint64_t table_gpa;     /* TX indirect table of id i: table_gpa + i * 32 */
    uint8_t *table;
    uint8_t *desc_area;     /* the descriptor ring (packed) or table (split) */
    bool armed;             /* driver event suppression currently asks for interrupts */
};

/* A stretch of guest memory the device reaches by DMA (recorded with ACCESS_PLATFORM
 * only): what the IOMMU tables must map, in whose address space, with what rights. */
struct dev_region {
    uint64_t gpa;
    uint64_t bytes;
    uint32_t pasid;
    bool writable;          /* the device writes it (else mapped read-only) */
};

/* One IOMMU address space (PASID) the driver built. */
struct io_space {
    uint32_t pasid;
    struct iopt pt;
};

struct refdrv {
    const struct vs_host_ops *h;
    const struct refdrv_params *p;
    struct refdrv_stats *st;

    /* PCI */
    uint64_t bar_base[PCI_NUM_BARS];
    uint64_t bar_size[PCI_NUM_BARS]; /* 0: absent (the BAR reads back 0), or the upper half of a 64-bit BAR */
    bool bar_is64[PCI_NUM_BARS];
    bool bar_mapped[PCI_NUM_BARS];
    struct region common, notify, isr, devcfg;
    struct region devmem_event; /* viosim extension's window (vendor data capability) */
    uint32_t devmem_slot_bytes, devmem_slots;
    uint32_t notify_off_multiplier;
    uint8_t msix_cap;
    uint32_t msix_nvec;
    uint64_t msix_table;
    uint16_t vec_rx, vec_tx;

    /* virtio */
    uint8_t status;          /* bits this driver has set */
    bool status_written;
    vs_features offered, accepted;
    bool f_event_idx, f_in_order, f_notif_data, f_indirect;
    bool f_order_platform; /* VIRTIO_F_ORDER_PLATFORM negotiated: hardware barriers */
    bool f_access_platform;
    bool f_devmem_event;     /* VIOSIM_NET_F_DEVMEM_EVENT negotiated (viosim extension) */
    bool f_devmem_recheck;   /* ... and VIOSIM_NET_F_DEVMEM_EVENT_RECHECK: no flushing read */
    bool f_packed;           /* RING_PACKED negotiated: packed rings, else split */
    bool f_ctrl_vq, f_notf_coal, f_vq_notf_coal; /* control queue and coalescing */
    const struct ring_ops *ring_ops; /* the format every queue uses, chosen once */
    uint8_t mac[6];
    struct drv_queue q[DRV_QUEUES];
    uint64_t mem_used;       /* bump allocator: bytes of guest memory handed out */

    /* IOMMU (VIRTIO_F_ACCESS_PLATFORM negotiated; otherwise iova_offset is 0 and the
     * rest unused) */
    uint64_t iova_offset;    /* device address = guest-physical address + this */
    uint64_t io_page;        /* IOMMU page size of the mappings */
    struct dev_region region[DEV_REGIONS_MAX];
    uint32_t nregions;
    struct iopt_pool pt_pool;
    struct io_space space[DRV_QUEUES];
    uint32_t nspaces;

    /* traffic */
    uint32_t frame_len[REFDRV_FRAME_SIZES_MAX];
    uint32_t frame_kinds;
    uint32_t max_frame;
    uint32_t rx_buf_bytes;
    enum refdrv_tx_layout tx_layout;
    uint64_t tx_posted, tx_reaped;
    uint64_t rx_next_seq;    /* frames come back in order: the least sequence expected */
    double tx_interval_ps;
    uint64_t tx_start_ps;
    struct traffic_arrival arrival; /* departure schedule, from tx_start_ps */
    struct traffic_rng size_rng;    /* REFDRV_SIZES_RANDOM picks */
    uint32_t napi_budget;           /* napi: frames per interrupt */
    uint32_t napi_left;             /* napi: frames left in this poll phase; 0 = armed */
    uint64_t idle_timeout_ps;
    uint64_t last_progress_ps, last_status_check_ps;

    /* adaptive coalescing: per data queue, the profile in force and the packet count
     * at the start of the current measurement interval */
    uint32_t coal_level[DATA_QUEUES];
    int coal_trend[DATA_QUEUES];   /* direction the last interval pointed (-1, 0, +1) */
    uint64_t coal_mark_frames[DATA_QUEUES];
    uint64_t coal_mark_ps, coal_interval_ps;

    bool injected;           /* driver.inject_violation done (it happens once) */

    uint32_t tx_len[PVIRTQ_SIZE_MAX]; /* frame length per TX buffer id */
    union {
        struct dpq packed;
        struct dsq split;
    } rings[DRV_QUEUES];
};

VS_STATIC_ASSERT(DSQ_SIZE_MAX == PVIRTQ_SIZE_MAX, "both formats reach 32768 entries");
VS_STATIC_ASSERT(DESC_BYTES == sizeof(struct pvirtq_desc) && DESC_BYTES == DSQ_DESC_BYTES,
                 "descriptors are 16 bytes in both formats");

/* Fault injection (driver.inject_violation): the points of the driver's work where
 * inject() may break the chosen rule. Everything else about it is in one place,
 * inject() under "fault injection" below. */
enum inj_point {
    INJ_RESET,            /* the initial reset: replaced when inject() returns true */
    INJ_INIT_START,       /* after that reset, before ACKNOWLEDGE */
    INJ_INIT_DRIVER,      /* ACKNOWLEDGE and DRIVER set */
    INJ_FEATURES,         /* d->accepted decided, not yet written */
    INJ_FEATURES_OK,      /* FEATURES_OK set and kept */
    INJ_DEVICE_SETUP,     /* num_queues read, before the queues are set up */
    INJ_QUEUE_CONFIGURED, /* queue selected, sized and addressed, not yet enabled */
    INJ_QUEUE_ENABLED,    /* just enabled */
    INJ_BEFORE_DRIVER_OK, /* receive buffers published, DRIVER_OK not yet set */
    INJ_NOTIFY,           /* a notification is about to be written for q */
    INJ_AFTER_DRIVER_OK,  /* DRIVER_OK set, coalescing started */
    INJ_RX_SEG,           /* a receive buffer's element, before it is added (seg) */
    INJ_TX_SEG,           /* a transmit buffer's first element, before it is added (seg) */
    INJ_TX_ADDED,         /* ... and after it was added, before it is published (seg) */
    INJ_MSIX,             /* MSI-X table entries programmed */
};

static bool inject(struct refdrv *d, enum inj_point at, struct drv_queue *q, struct ring_seg *seg);

/* ---- host access, counted ---- */

static uint32_t cfg_rd(struct refdrv *d, uint32_t off, unsigned size)
{
    uint32_t v = d->h->cfg_read(d->h->ctx, off, size);
    d->st->cfg_reads++;
    return size >= 4 ? v : v & ((1u << (8u * size)) - 1u);
}

static void cfg_wr(struct refdrv *d, uint32_t off, unsigned size, uint32_t v)
{
    d->h->cfg_write(d->h->ctx, off, size, v);
    d->st->cfg_writes++;
}

static uint64_t mmio_rd(struct refdrv *d, uint64_t addr, unsigned size)
{
    uint64_t v = d->h->mmio_read(d->h->ctx, addr, size);
    d->st->mmio_reads++;
    return size >= 8 ? v : v & ((1ull << (8u * size)) - 1u);
}

static void mmio_wr(struct refdrv *d, uint64_t addr, unsigned size, uint64_t v)
{
    d->h->mmio_write(d->h->ctx, addr, size, v);
    d->st->mmio_writes++;
}

static uint32_t common_rd(struct refdrv *d, uint32_t off, unsigned size)
{
    return (uint32_t)mmio_rd(d, d->common.addr + off, size);
}

static void common_wr(struct refdrv *d, uint32_t off, unsigned size, uint32_t v)
{
    mmio_wr(d, d->common.addr + off, size, v);
}

/* 64-bit fields are two 32-bit halves, low first ("PCI Device Layout"). */
static void common_wr64(struct refdrv *d, uint32_t off, uint64_t v)
{
    common_wr(d, off, 4, (uint32_t)v);
    common_wr(d, off + 4u, 4, (uint32_t)(v >> 32));
}

/* viosim extension: one posted MMIO write of a queue's suppression fields. Charged as
 * every MMIO write is (host.mmio_write_ns), like a doorbell. */
static void devmem_event_write(void *ctx, uint32_t off, unsigned size, uint32_t value)
{
    struct drv_queue *q = ctx;

    mmio_wr(q->drv, q->event_slot + off, size, value);
    q->drv->st->devmem_event_writes++;
}

/* viosim extension: make sure the suppression writes just posted have reached the
 * device before the rings are re-checked. A read cannot pass posted writes going the
 * same way, and its completion cannot pass the device's earlier posted writes of used
 * entries (PCIe ordering), so after it either the device saw the request or the
 * re-check sees what the device used before seeing it. Not needed when the device
 * re-decides on every slot write (VIOSIM_NET_F_DEVMEM_EVENT_RECHECK). */
static void devmem_event_flush(struct refdrv *d, const struct drv_queue *q)
{
    if (q->event_slot == 0 || d->f_devmem_recheck || d->p->devmem_event_no_flush)
        return;
    (void)mmio_rd(d, q->event_slot, 4);
    d->st->devmem_event_flush_reads++;
}

static uint64_t now_ps(const struct refdrv *d)
{
    return d->h->now_ps(d->h->ctx);
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
    return (v + a - 1u) & ~(a - 1u);
}

/* Time since an earlier instant (0 if the clock went backwards). */
static uint64_t elapsed_ps(uint64_t now, uint64_t since)
{
    return now > since ? now - since : 0;
}

static bool is_pow2(uint64_t v)
{
    return v != 0 && (v & (v - 1u)) == 0;
}

/* ---- ring formats ---- */

/* Packed ("Packed Virtqueues"): workloads/drv_packed.h. */

static enum ring_status from_dpq(enum dpq_status st)
{
    switch (st) {
    case DPQ_OK: return RING_OK;
    case DPQ_FULL: return RING_FULL;
    case DPQ_EMPTY: return RING_EMPTY;
    case DPQ_INVALID: return RING_INVALID;
    case DPQ_BROKEN: return RING_BROKEN;
    }
    return RING_BROKEN;
}

/* Elements in the format's own type; false if there are more than this driver uses. */
static bool to_dpq_segs(const struct ring_seg *segs, uint16_t nsegs, struct dpq_seg *out)
{
    if (nsegs > RING_SEGS_MAX)
        return false;
    for (uint16_t i = 0; i < nsegs; i++)
        out[i] = (struct dpq_seg){ segs[i].addr, segs[i].len, segs[i].device_writable };
    return true;
}

static uint16_t packed_fit_size(uint32_t want, uint32_t max)
{
    uint32_t n = want < max ? want : max;
    return (uint16_t)(n > PVIRTQ_SIZE_MAX ? PVIRTQ_SIZE_MAX : n);
}

static void packed_area_bytes(uint16_t size, uint64_t bytes[RING_AREAS])
{
    bytes[0] = (uint64_t)size * sizeof(struct pvirtq_desc);
    bytes[1] = sizeof(struct pvirtq_event_suppress);
    bytes[2] = sizeof(struct pvirtq_event_suppress);
}

static void packed_init(void *ring, uint8_t *area[RING_AREAS], uint16_t size, bool event_idx,
                        bool in_order)
{
    dpq_init(ring, area[0], area[1], area[2], size, event_idx, in_order);
}

static bool packed_can_add(const void *ring, uint32_t descs, uint16_t *id)
{
    return dpq_can_add(ring, descs, id);
}

static enum ring_status packed_add(void *ring, const struct ring_seg *segs, uint16_t nsegs)
{
    struct dpq_seg s[RING_SEGS_MAX];
    if (!to_dpq_segs(segs, nsegs, s))
        return RING_INVALID;
    return from_dpq(dpq_add(ring, s, nsegs, NULL));
}

static enum ring_status packed_add_indirect(void *ring, uint8_t *table, uint64_t table_addr,
                                            const struct ring_seg *segs, uint16_t nsegs)
{
    struct dpq_seg s[RING_SEGS_MAX];
    if (!to_dpq_segs(segs, nsegs, s))
        return RING_INVALID;
    return from_dpq(dpq_add_indirect(ring, table, table_addr, s, nsegs, NULL));
}

static void packed_publish(void *ring)
{
    dpq_publish(ring);
}

static uint32_t packed_unnotified(const void *ring)
{
    return ((const struct dpq *)ring)->unnotified;
}

static bool packed_needs_notify(void *ring)
{
    return dpq_needs_notify(ring);
}

static uint32_t packed_notify_data(const void *ring, uint16_t vq_index)
{
    return dpq_notify_data(ring, vq_index);
}

static bool packed_has_used(const void *ring)
{
    return dpq_has_used(ring);
}

static enum ring_status packed_get_used(void *ring, struct ring_used *u)
{
    struct dpq_used x;
    enum dpq_status st = dpq_get_used(ring, &x);

    if (st == DPQ_OK)
        *u = (struct ring_used){ x.id, x.len, x.written, x.skipped };
    return from_dpq(st);
}

static void packed_events_off(void *ring)
{
    dpq_set_driver_events(ring, DPQ_EVENTS_DISABLE);
}

static void packed_events_after(void *ring, uint16_t ahead)
{
    dpq_enable_driver_events_after(ring, ahead);
}

static void packed_set_event_mmio(void *ring,
                                  void (*write)(void *ctx, uint32_t off, unsigned size, uint32_t value),
                                  void *ctx)
{
    struct dpq_event_mmio w = { write, ctx };
    dpq_set_event_mmio(ring, &w);
}

static uint16_t packed_slots_in_flight(const void *ring)
{
    return dpq_slots_in_flight(ring);
}

static const struct ring_ops packed_ring_ops = {
    .name = "packed",
    .fit_size = packed_fit_size,
    .area_bytes = packed_area_bytes,
    .init = packed_init,
    .can_add = packed_can_add,
    .add = packed_add,
    .add_indirect = packed_add_indirect,
    .publish = packed_publish,
    .unnotified = packed_unnotified,
    .needs_notify = packed_needs_notify,
    .notify_data = packed_notify_data,
    .has_used = packed_has_used,
    .get_used = packed_get_used,
    .events_off = packed_events_off,
    .events_after = packed_events_after,
    .set_event_mmio = packed_set_event_mmio,
    .event_span = packed_slots_in_flight, /* driver event offsets count ring slots */
    .descs_in_flight = packed_slots_in_flight,
};

/* Split ("Split Virtqueues"): workloads/drv_split.h. */

static enum ring_status from_dsq(enum dsq_status st)
{
    switch (st) {
    case DSQ_OK: return RING_OK;
    case DSQ_FULL: return RING_FULL;
    case DSQ_EMPTY: return RING_EMPTY;
    case DSQ_INVALID: return RING_INVALID;
    case DSQ_BROKEN: return RING_BROKEN;
    }
    return RING_BROKEN;
}

static bool to_dsq_segs(const struct ring_seg *segs, uint16_t nsegs, struct dsq_seg *out)
{
    if (nsegs > RING_SEGS_MAX)
        return false;
    for (uint16_t i = 0; i < nsegs; i++)
        out[i] = (struct dsq_seg){ segs[i].addr, segs[i].len, segs[i].device_writable };
    return true;
}

static void split_area_bytes(uint16_t size, uint64_t bytes[RING_AREAS])
{
    bytes[0] = dsq_desc_bytes(size);
    bytes[1] = dsq_avail_bytes(size);
    bytes[2] = dsq_used_bytes(size);
}

static void split_init(void *ring, uint8_t *area[RING_AREAS], uint16_t size, bool event_idx,
                       bool in_order)
{
    dsq_init(ring, area[0], area[1], area[2], size, event_idx, in_order);
}

static bool split_can_add(const void *ring, uint32_t descs, uint16_t *id)
{
    return dsq_can_add(ring, descs, id);
}

static enum ring_status split_add(void *ring, const struct ring_seg *segs, uint16_t nsegs)
{
    struct dsq_seg s[RING_SEGS_MAX];
    if (!to_dsq_segs(segs, nsegs, s))
        return RING_INVALID;
    return from_dsq(dsq_add(ring, s, nsegs, NULL));
}

static enum ring_status split_add_indirect(void *ring, uint8_t *table, uint64_t table_addr,
                                           const struct ring_seg *segs, uint16_t nsegs)
{
    struct dsq_seg s[RING_SEGS_MAX];
    if (!to_dsq_segs(segs, nsegs, s))
        return RING_INVALID;
    return from_dsq(dsq_add_indirect(ring, table, table_addr, s, nsegs, NULL));
}

static void split_publish(void *ring)
{
    dsq_publish(ring);
}

static uint32_t split_unnotified(const void *ring)
{
    return ((const struct dsq *)ring)->unnotified;
}

static bool split_needs_notify(void *ring)
{
    return dsq_needs_notify(ring);
}

static uint32_t split_notify_data(const void *ring, uint16_t vq_index)
{
    return dsq_notify_data(ring, vq_index);
}

static bool split_has_used(const void *ring)
{
    return dsq_has_used(ring);
}

static enum ring_status split_get_used(void *ring, struct ring_used *u)
{
    struct dsq_used x;
    enum dsq_status st = dsq_get_used(ring, &x);

    if (st == DSQ_OK)
        *u = (struct ring_used){ x.id, x.len, x.written, x.skipped };
    return from_dsq(st);
}

static void split_events_off(void *ring)
{
    dsq_set_driver_events(ring, DSQ_EVENTS_DISABLE);
}

static void split_events_after(void *ring, uint16_t ahead)
{
    dsq_enable_driver_events_after(ring, ahead);
}

static void split_set_event_mmio(void *ring,
                                 void (*write)(void *ctx, uint32_t off, unsigned size, uint32_t value),
                                 void *ctx)
{
    struct dsq_event_mmio w = { write, ctx };
    dsq_set_event_mmio(ring, &w);
}

static uint16_t split_in_flight(const void *ring)
{
    return dsq_in_flight(ring);
}

static uint16_t split_descs_in_flight(const void *ring)
{
    return dsq_descs_in_flight(ring);
}

static const struct ring_ops split_ring_ops = {
    .name = "split",
    .fit_size = dsq_fit_size,
    .area_bytes = split_area_bytes,
    .init = split_init,
    .can_add = split_can_add,
    .add = split_add,
    .add_indirect = split_add_indirect,
    .publish = split_publish,
    .unnotified = split_unnotified,
    .needs_notify = split_needs_notify,
    .notify_data = split_notify_data,
    .has_used = split_has_used,
    .get_used = split_get_used,
    .events_off = split_events_off,
    .events_after = split_events_after,
    .set_event_mmio = split_set_event_mmio,
    .event_span = split_in_flight, /* used_event counts used entries: one per buffer */
    .descs_in_flight = split_descs_in_flight,
};

/* ---- device status ---- */

static void status_set(struct refdrv *d, uint8_t bit)
{
    d->status |= bit;
    common_wr(d, VIRTIO_PCI_COMMON_STATUS, 1, d->status);
    d->status_written = true;
}

static uint8_t status_read(struct refdrv *d)
{
    return (uint8_t)common_rd(d, VIRTIO_PCI_COMMON_STATUS, 1);
}

/* "If any of these steps go irrecoverably wrong, the driver SHOULD set the FAILED status
 * bit to indicate that it has given up on the device." */
static enum refdrv_result give_up(struct refdrv *d, enum refdrv_result r)
{
    if (d->common.found)
        status_set(d, VIRTIO_STATUS_FAILED);
    return r;
}

/* Writing 0 resets the device; "After writing 0 to device_status, the driver MUST wait
 * for a read of device_status to return 0 before reinitializing the device." */
static bool device_reset(struct refdrv *d)
{
    common_wr(d, VIRTIO_PCI_COMMON_STATUS, 1, 0);
    d->status = 0;
    d->status_written = true;
    for (uint32_t i = 0; i < RESET_READS_MAX; i++)
        if (status_read(d) == 0)
            return true;
    return false;
}

/* Live-device check while running: NEEDS_RESET, or a device that dropped DRIVER_OK. */
static enum refdrv_result check_status(struct refdrv *d)
{
    uint8_t s = status_read(d);

    d->last_status_check_ps = now_ps(d);
    if ((s & VIRTIO_STATUS_DEVICE_NEEDS_RESET) || !(s & VIRTIO_STATUS_DRIVER_OK))
        return REFDRV_DEVICE_ERROR;
    return REFDRV_OK;
}

/* ---- PCI: identity, BARs ---- */

static enum refdrv_result pci_identify(struct refdrv *d)
{
    uint32_t vendor = cfg_rd(d, PCI_VENDOR_ID, 2);
    uint32_t device = cfg_rd(d, PCI_DEVICE_ID, 2);
    uint32_t htype = cfg_rd(d, PCI_HEADER_TYPE, 1);

    /* "PCI Device Discovery": modern devices use 0x1040 + virtio device id. */
    if (vendor != VIRTIO_PCI_VENDOR_ID || device != VIRTIO_NET_MODERN_DEVICE_ID)
        return REFDRV_NO_DEVICE;
    if ((htype & PCI_HEADER_TYPE_LAYOUT_MASK) != 0)
        return REFDRV_NO_DEVICE;
    return REFDRV_OK;
}

/* Size every memory BAR: write all-ones, read back the address mask, restore. I/O BARs
 * and reserved memory types are left alone (this driver maps memory space only). */
static void pci_size_bars(struct refdrv *d)
{
    for (int i = 0; i < PCI_NUM_BARS; i++) {
        uint32_t off = PCI_BAR0 + 4u * (uint32_t)i;
        uint32_t lo = cfg_rd(d, off, 4);
        uint32_t type = (lo >> PCI_BAR_MEM_TYPE_SHIFT) & PCI_BAR_MEM_TYPE_FIELD;
        bool is64 = type == PCI_BAR_MEM_TYPE_64;
        uint64_t mask, size;
        uint32_t lo_mask;

        if ((lo & PCI_BAR_IO_SPACE_MASK) || (type != PCI_BAR_MEM_TYPE_32 && !is64))
            continue;
        if (is64 && i + 1 >= PCI_NUM_BARS)
            continue;

        cfg_wr(d, off, 4, 0xffffffffu);
        lo_mask = cfg_rd(d, off, 4) & PCI_BAR_ADDR_LOW_MASK;
        cfg_wr(d, off, 4, lo);
        mask = lo_mask;
        if (is64) {
            uint32_t hi = cfg_rd(d, off + 4u, 4);
            cfg_wr(d, off + 4u, 4, 0xffffffffu);
            mask |= (uint64_t)cfg_rd(d, off + 4u, 4) << 32;
            cfg_wr(d, off + 4u, 4, hi);
        } else if (lo_mask != 0) {
            mask |= 0xffffffff00000000ull; /* a 32-bit BAR's address bits above 31 */
        }
        /* No writable address bit: the slot holds no BAR. Otherwise the BAR decodes a naturally
         * aligned power of two, so the writable bits must be contiguous from the top. */
        size = ~mask + 1u;
        if (mask != 0 && is_pow2(size) && size >= 16u) {
            d->bar_size[i] = size;
            d->bar_is64[i] = is64;
        }
        if (is64)
            i++; /* the upper half is not a BAR of its own */
    }
}

/* Place BARs in the host's MMIO window, largest first, each aligned to its size. A BAR
 * that does not fit (or a 32-bit BAR above 4 GiB) stays unmapped. */
static void pci_assign_bars(struct refdrv *d)
{
    const struct vs_host_ops *h = d->h;
    uint64_t cursor = h->mmio_window_base;
    uint64_t end = h->mmio_window_base + h->mmio_window_size;
    bool placed[PCI_NUM_BARS] = { false };

    if (end < h->mmio_window_base)
        end = UINT64_MAX; /* window reaching the top of the address space */

    for (;;) {
        int pick = -1;
        uint64_t base;
        uint32_t off;

        for (int i = 0; i < PCI_NUM_BARS; i++)
            if (d->bar_size[i] != 0 && !placed[i] && (pick < 0 || d->bar_size[i] > d->bar_size[pick]))
                pick = i;
        if (pick < 0)
            break;
        placed[pick] = true;

        base = align_up(cursor, d->bar_size[pick]);
        if (base == 0 && cursor == 0)
            base = d->bar_size[pick]; /* a BAR at 0 reads as unprogrammed */
        if (base < cursor || base > end || d->bar_size[pick] > end - base)
            continue;
        if (!d->bar_is64[pick] && base + d->bar_size[pick] > 0x100000000ull)
            continue;

        off = PCI_BAR0 + 4u * (uint32_t)pick;
        cfg_wr(d, off, 4, (uint32_t)base);
        if (d->bar_is64[pick])
            cfg_wr(d, off + 4u, 4, (uint32_t)(base >> 32));
        d->bar_base[pick] = base;
        d->bar_mapped[pick] = true;
        cursor = base + d->bar_size[pick];
    }
}

static enum refdrv_result pci_setup_bars(struct refdrv *d)
{
    uint32_t cmd = cfg_rd(d, PCI_COMMAND, 2);

    /* Decode off while the BARs move. */
    cfg_wr(d, PCI_COMMAND, 2, cmd & ~(PCI_COMMAND_MEMORY_MASK | PCI_COMMAND_MASTER_MASK));
    pci_size_bars(d);
    pci_assign_bars(d);
    /* Memory decode for the BARs, bus mastering for the device's DMA; INTx is not used. */
    cmd |= PCI_COMMAND_MEMORY_MASK | PCI_COMMAND_MASTER_MASK | PCI_COMMAND_INTX_DISABLE_MASK;
    cfg_wr(d, PCI_COMMAND, 2, cmd);
    return REFDRV_OK;
}

/* Does [offset, offset + need) lie in mapped BAR bar? */
static bool bar_range_ok(const struct refdrv *d, uint32_t bar, uint64_t offset, uint64_t need)
{
    if (bar >= PCI_NUM_BARS || !d->bar_mapped[bar])
        return false;
    return offset <= d->bar_size[bar] && need <= d->bar_size[bar] - offset;
}

/* ---- PCI: capabilities ---- */

/* One virtio vendor capability at cfg offset at. "The driver MUST ignore any
 * vendor-specific capability structure which has a reserved cfg_type value" / "...a
 * reserved bar value"; "The driver SHOULD use the first instance of each virtio
 * structure type they can support." */
static void parse_virtio_cap(struct refdrv *d, uint32_t at)
{
    uint32_t cap_len, cfg_type, bar, offset, length, min_len, align;
    struct region *r;

    if (at + VIRTIO_PCI_CAP_MIN_LEN > PCI_CAP_AREA_END)
        return;
    cap_len = cfg_rd(d, at + 2u, 1);
    cfg_type = cfg_rd(d, at + 3u, 1);
    bar = cfg_rd(d, at + 4u, 1);
    if (cap_len < VIRTIO_PCI_CAP_MIN_LEN)
        return;
    if (cfg_type == 0 || cfg_type > VIRTIO_PCI_CAP_TYPE_MAX || bar >= PCI_NUM_BARS)
        return;
    if (cfg_type == VIRTIO_PCI_CAP_PCI_CFG)
        return; /* an alternative access path; this driver uses the BARs */

    switch (cfg_type) {
    case VIRTIO_PCI_CAP_COMMON_CFG:
        r = &d->common; min_len = COMMON_CFG_USED_LEN; align = 4;
        break;
    case VIRTIO_PCI_CAP_NOTIFY_CFG:
        r = &d->notify; min_len = 2; align = 2;
        if (cap_len < VIRTIO_PCI_NOTIFY_CAP_LEN || at + VIRTIO_PCI_NOTIFY_CAP_LEN > PCI_CAP_AREA_END)
            return;
        break;
    case VIRTIO_PCI_CAP_ISR_CFG:
        r = &d->isr; min_len = 1; align = 1;
        break;
    default: /* VIRTIO_PCI_CAP_DEVICE_CFG */
        r = &d->devcfg; min_len = 1; align = 4;
        break;
    }
    if (r->found)
        return;

    offset = cfg_rd(d, at + 8u, 4);
    length = cfg_rd(d, at + 12u, 4);
    if (length < min_len || offset % align != 0 || !bar_range_ok(d, bar, offset, min_len))
        return;

    r->found = true;
    r->addr = d->bar_base[bar] + offset;
    r->length = length;
    if (r->length > d->bar_size[bar] - offset)
        r->length = d->bar_size[bar] - offset;
    if (cfg_type == VIRTIO_PCI_CAP_NOTIFY_CFG)
        d->notify_off_multiplier = cfg_rd(d, at + VIRTIO_PCI_CAP_MULT_OFF, 4);
}

/* The MSI-X capability: table size and where the table is. The first usable one wins. */
static void parse_msix_cap(struct refdrv *d, uint32_t at)
{
    uint32_t msgctl, table, bir, offset, nvec;

    if (d->msix_cap != 0 || at + MSIX_CAP_LEN > PCI_CAP_AREA_END)
        return;
    msgctl = cfg_rd(d, at + MSIX_CAP_MSGCTL, 2);
    table = cfg_rd(d, at + MSIX_CAP_TABLE, 4);
    nvec = (msgctl & MSIX_MSGCTL_TABLE_SIZE_MASK) + 1u;
    bir = table & MSIX_BIR_MASK;
    offset = table & ~MSIX_BIR_MASK;
    /* Only the entries this driver programs have to be inside the BAR. */
    if (!bar_range_ok(d, bir, offset, (uint64_t)(nvec < 3u ? nvec : 3u) * MSIX_ENTRY_SIZE))
        return;
    d->msix_cap = (uint8_t)at;
    d->msix_nvec = nvec;
    d->msix_table = d->bar_base[bir] + offset;
}

/* viosim extension (VIOSIM_NET_F_DEVMEM_EVENT): a Vendor data capability whose
 * vendor_id and format say it names the device-memory event suppression window. "The
 * driver MUST qualify the vendor_id before interpreting or writing into the Vendor
 * data capability": anything else is ignored, as is a window that does not fit its BAR
 * or has slots too small for the 4-byte structure. */
static void parse_devmem_event_cap(struct refdrv *d, uint32_t at)
{
    uint32_t bar, offset, length, slot_bytes, slots;

    if (d->devmem_event.found || at + sizeof(struct viosim_devmem_event_cap) > PCI_CAP_AREA_END)
        return;
    if (cfg_rd(d, at + 3u, 1) != VIRTIO_PCI_CAP_VENDOR_CFG ||
        cfg_rd(d, at + 2u, 1) < sizeof(struct viosim_devmem_event_cap) ||
        cfg_rd(d, at + 4u, 2) != VIOSIM_PCI_VNDR_ID || cfg_rd(d, at + 6u, 1) != VIOSIM_VNDR_FMT_DEVMEM_EVENT)
        return;
    bar = cfg_rd(d, at + 7u, 1);
    offset = cfg_rd(d, at + 8u, 4);
    length = cfg_rd(d, at + 12u, 4);
    slot_bytes = cfg_rd(d, at + 16u, 2);
    slots = cfg_rd(d, at + 18u, 2);
    if (bar >= PCI_NUM_BARS || slot_bytes < VIOSIM_DEVMEM_SLOT_BYTES || slot_bytes % 4u != 0 ||
        slots == 0 || offset % 4u != 0 || (uint64_t)slot_bytes * slots > length ||
        !bar_range_ok(d, bar, offset, (uint64_t)slot_bytes * slots))
        return;
    d->devmem_event.found = true;
    d->devmem_event.addr = d->bar_base[bar] + offset;
    d->devmem_event.length = length;
    d->devmem_slot_bytes = slot_bytes;
    d->devmem_slots = slots;
}

static enum refdrv_result pci_walk_caps(struct refdrv *d)
{
    bool seen[PCI_CAP_AREA_END / 4u] = { false };
    uint32_t at;

    if (!(cfg_rd(d, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST_MASK))
        return REFDRV_BAD_CAPS;
    at = cfg_rd(d, PCI_CAPABILITY_LIST, 1) & PCI_CAP_PTR_MASK;
    /* Bounded walk: a list that points back into itself or below the header ends. */
    for (uint32_t n = 0; n < PCI_CAP_WALK_MAX && at != 0; n++) {
        uint32_t id;

        if (at < PCI_CAP_AREA_START || at >= PCI_CAP_AREA_END || seen[at / 4u])
            break;
        seen[at / 4u] = true;
        id = cfg_rd(d, at, 1);
        if (id == PCI_CAP_ID_VNDR) {
            parse_virtio_cap(d, at);
            if (d->p->devmem_event)
                parse_devmem_event_cap(d, at);
        }
        else if (id == PCI_CAP_ID_MSIX)
            parse_msix_cap(d, at);
        at = cfg_rd(d, at + 1u, 1) & PCI_CAP_PTR_MASK;
    }
    /* Common and notify are required to drive the device; this driver also needs MSI-X
     * (the platform offers no INTx). ISR and device config are optional here. */
    if (!d->common.found || !d->notify.found || d->msix_cap == 0)
        return REFDRV_BAD_CAPS;
    return REFDRV_OK;
}

/* ---- MSI-X ---- */

static void msix_setup(struct refdrv *d)
{
    uint32_t used = d->msix_nvec < 3u ? d->msix_nvec : 3u;
    uint32_t ctl;

    d->vec_rx = (uint16_t)(used >= 2u ? 1u : 0u);
    d->vec_tx = (uint16_t)(used >= 3u ? 2u : d->vec_rx);
    for (uint32_t v = 0; v < used; v++) {
        uint64_t e = d->msix_table + (uint64_t)v * MSIX_ENTRY_SIZE;
        mmio_wr(d, e + MSIX_ENTRY_ADDR_LO, 4, (uint32_t)d->h->msi_base);
        mmio_wr(d, e + MSIX_ENTRY_ADDR_HI, 4, (uint32_t)(d->h->msi_base >> 32));
        mmio_wr(d, e + MSIX_ENTRY_DATA, 4, v);
        mmio_wr(d, e + MSIX_ENTRY_CTRL, 4, 0); /* unmask */
    }
    inject(d, INJ_MSIX, NULL, NULL);
    ctl = cfg_rd(d, d->msix_cap + MSIX_CAP_MSGCTL, 2);
    ctl = (ctl | MSIX_MSGCTL_ENABLE_MASK) & ~(uint32_t)MSIX_MSGCTL_FMASK_MASK;
    cfg_wr(d, d->msix_cap + MSIX_CAP_MSGCTL, 2, ctl);
}

/* ---- feature negotiation ---- */

static void features_wanted(vs_features *f)
{
    memset(f, 0, sizeof(*f));
    vs_feature_set(f, VIRTIO_F_VERSION_1_BIT);
    vs_feature_set(f, VIRTIO_F_RING_PACKED_BIT);
    vs_feature_set(f, VIRTIO_NET_F_MAC_BIT);
    vs_feature_set(f, VIRTIO_F_EVENT_IDX_BIT);
    vs_feature_set(f, VIRTIO_F_INDIRECT_DESC_BIT);
    vs_feature_set(f, VIRTIO_F_IN_ORDER_BIT);
    vs_feature_set(f, VIRTIO_F_NOTIFICATION_DATA_BIT);
    vs_feature_set(f, VIRTIO_F_ORDER_PLATFORM_BIT);
    /* "A driver SHOULD accept VIRTIO_F_ACCESS_PLATFORM if it is offered", and then
     * programs the IOMMU (iommu_setup); declined when it cannot (iommu_possible). */
    vs_feature_set(f, VIRTIO_F_ACCESS_PLATFORM_BIT);
}

/* The control queue and the coalescing features, only when coalescing is asked for:
 * otherwise the device runs exactly as without them. */
static void features_wanted_coal(const struct refdrv_params *p, vs_features *f)
{
    if (p->coal_policy == REFDRV_COAL_OFF)
        return;
    vs_feature_set(f, VIRTIO_NET_F_CTRL_VQ_BIT);
    vs_feature_set(f, VIRTIO_NET_F_NOTF_COAL_BIT);
    vs_feature_set(f, VIRTIO_NET_F_VQ_NOTF_COAL_BIT);
}

/* The IOMMU page size the parameters ask for (0: the 4 KiB default). */
static uint64_t io_page_bytes(const struct refdrv_params *p)
{
    return p->iommu_page_bytes != 0 ? p->iommu_page_bytes : IOMMU_PAGE_DEFAULT_BYTES;
}

/* Can this driver honour VIRTIO_F_ACCESS_PLATFORM? ("Reserved Feature Bits": a driver
 * that accepts it "MUST then either disable the IOMMU or configure the IOMMU to
 * translate bus addresses passed to the device into physical addresses in memory".)
 * It needs the platform hook that installs a page table, a page size the table format
 * has, an IOVA offset that keeps pages aligned, and every IOVA of guest memory (rounded
 * out to whole pages) below 2^48. Decided before the driver writes its features. */
static bool iommu_possible(const struct refdrv *d)
{
    const struct vs_host_ops *h = d->h;
    uint64_t page = io_page_bytes(d->p);
    uint64_t end;

    if (h->iommu_set_root == NULL)
        return false;
    if (page != IOMMU_PAGE_SIZE_4K && page != IOMMU_PAGE_SIZE_2M)
        return false;
    if (d->p->iova_offset % page != 0)
        return false;
    if (h->mem_size > IOVA_LIMIT || h->mem_base > IOVA_LIMIT - h->mem_size)
        return false;
    end = align_up(h->mem_base + h->mem_size, page); /* <= 2^48: no overflow */
    return end <= IOVA_LIMIT && d->p->iova_offset <= IOVA_LIMIT - end;
}

static enum refdrv_result negotiate(struct refdrv *d)
{
    vs_features want;
    uint8_t s;

    for (uint32_t w = 0; w < VS_FEATURE_WORDS; w++) {
        common_wr(d, VIRTIO_PCI_COMMON_DFSELECT, 4, w);
        d->offered.w[w] = common_rd(d, VIRTIO_PCI_COMMON_DF, 4);
    }
    features_wanted(&want);
    features_wanted_coal(d->p, &want);
    /* viosim extension: asked for by the configuration and described by the device. */
    if (d->p->devmem_event && d->devmem_event.found) {
        vs_feature_set(&want, VIOSIM_NET_F_DEVMEM_EVENT_BIT);
        vs_feature_set(&want, VIOSIM_NET_F_DEVMEM_EVENT_RECHECK_BIT);
    }
    for (uint32_t w = 0; w < VS_FEATURE_WORDS; w++)
        d->accepted.w[w] = d->offered.w[w] & want.w[w] & ~d->p->decline.w[w];

    /* Features this driver could not use with what the device presented. */
    if (!d->devcfg.found || d->devcfg.length < 6u)
        vs_feature_clear(&d->accepted, VIRTIO_NET_F_MAC_BIT);
    if ((d->notify.addr % 4u) != 0 || d->notify.length < 4u)
        vs_feature_clear(&d->accepted, VIRTIO_F_NOTIFICATION_DATA_BIT);
    /* A feature the driver cannot honour is declined, not accepted and ignored: the
     * device then uses physical addresses ("If this feature bit is set to 0, then the
     * device has same access to memory addresses supplied to it as the driver has"), or,
     * as it MAY, refuses to operate without it (FEATURES_OK not kept). */
    if (!iommu_possible(d))
        vs_feature_clear(&d->accepted, VIRTIO_F_ACCESS_PLATFORM_BIT);
    /* "Feature bit requirements": both coalescing features require CTRL_VQ. */
    if (!vs_feature_has(&d->accepted, VIRTIO_NET_F_CTRL_VQ_BIT)) {
        vs_feature_clear(&d->accepted, VIRTIO_NET_F_NOTF_COAL_BIT);
        vs_feature_clear(&d->accepted, VIRTIO_NET_F_VQ_NOTF_COAL_BIT);
    }

    /* "A driver MUST accept VIRTIO_F_VERSION_1 if it is offered", and this driver has no
     * legacy interface. Without RING_PACKED (not offered, or declined) it drives split
     * rings. */
    if (!vs_feature_has(&d->accepted, VIRTIO_F_VERSION_1_BIT))
        return give_up(d, REFDRV_FEATURES_REFUSED);

    inject(d, INJ_FEATURES, NULL, NULL);
    for (uint32_t w = 0; w < VS_FEATURE_WORDS; w++) {
        common_wr(d, VIRTIO_PCI_COMMON_GFSELECT, 4, w);
        common_wr(d, VIRTIO_PCI_COMMON_GF, 4, d->accepted.w[w]);
    }
    status_set(d, VIRTIO_STATUS_FEATURES_OK);
    /* "Re-read device status to ensure the FEATURES_OK bit is still set: otherwise, the
     * device does not support our subset of features and the device is unusable." */
    s = status_read(d);
    if (s & VIRTIO_STATUS_DEVICE_NEEDS_RESET)
        return give_up(d, REFDRV_DEVICE_ERROR);
    if (!(s & VIRTIO_STATUS_FEATURES_OK)) {
        /* The device did not keep it: FAILED must not set it again (which would ask
         * for the same refused subset once more). */
        d->status &= (uint8_t)~VIRTIO_STATUS_FEATURES_OK;
        return give_up(d, REFDRV_FEATURES_REFUSED);
    }
    inject(d, INJ_FEATURES_OK, NULL, NULL);

    d->f_event_idx = vs_feature_has(&d->accepted, VIRTIO_F_EVENT_IDX_BIT);
    d->f_in_order = vs_feature_has(&d->accepted, VIRTIO_F_IN_ORDER_BIT);
    d->f_notif_data = vs_feature_has(&d->accepted, VIRTIO_F_NOTIFICATION_DATA_BIT);
    d->f_order_platform = vs_feature_has(&d->accepted, VIRTIO_F_ORDER_PLATFORM_BIT);
    d->f_indirect = vs_feature_has(&d->accepted, VIRTIO_F_INDIRECT_DESC_BIT);
    d->f_access_platform = vs_feature_has(&d->accepted, VIRTIO_F_ACCESS_PLATFORM_BIT);
    d->f_ctrl_vq = vs_feature_has(&d->accepted, VIRTIO_NET_F_CTRL_VQ_BIT);
    d->f_notf_coal = vs_feature_has(&d->accepted, VIRTIO_NET_F_NOTF_COAL_BIT);
    d->f_vq_notf_coal = vs_feature_has(&d->accepted, VIRTIO_NET_F_VQ_NOTF_COAL_BIT);
    /* The ring format, decided once for every queue. */
    d->f_packed = vs_feature_has(&d->accepted, VIRTIO_F_RING_PACKED_BIT);
    d->f_devmem_event = vs_feature_has(&d->accepted, VIOSIM_NET_F_DEVMEM_EVENT_BIT);
    d->st->devmem_event_negotiated = d->f_devmem_event ? 1u : 0u;
    d->f_devmem_recheck = vs_feature_has(&d->accepted, VIOSIM_NET_F_DEVMEM_EVENT_RECHECK_BIT);
    d->st->devmem_event_recheck_negotiated = d->f_devmem_recheck ? 1u : 0u;
    d->ring_ops = d->f_packed ? &packed_ring_ops : &split_ring_ops;
    if (d->f_access_platform) {
        d->iova_offset = d->p->iova_offset;
        d->io_page = io_page_bytes(d->p);
    }
    return REFDRV_OK;
}

/* The MAC from the device-specific configuration, read byte by byte (8-bit fields take
 * 8-bit accesses) until config_generation is the same before and after ("Device
 * Configuration Space"). */
static void read_mac(struct refdrv *d)
{
    /* Without VIRTIO_NET_F_MAC: a locally administered unicast address of our own. */
    const uint8_t fallback[6] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x01 };

    memcpy(d->mac, fallback, sizeof(d->mac));
    if (!vs_feature_has(&d->accepted, VIRTIO_NET_F_MAC_BIT))
        return;
    for (uint32_t t = 0; t < MAC_READ_TRIES; t++) {
        uint32_t before = common_rd(d, VIRTIO_PCI_COMMON_CFGGENERATION, 1);
        for (uint32_t i = 0; i < 6u; i++)
            d->mac[i] = (uint8_t)mmio_rd(d, d->devcfg.addr + i, 1);
        if (common_rd(d, VIRTIO_PCI_COMMON_CFGGENERATION, 1) == before)
            break;
    }
}

/* ---- guest memory ---- */

/* Hand out bytes of guest memory aligned (guest-physical) to align. NULL when full. They
 * are zero: guest memory starts zero-filled (vs_host_ops.mem) and is handed out once. */
static uint8_t *mem_alloc(struct refdrv *d, uint64_t bytes, uint64_t align, uint64_t *gpa)
{
    const struct vs_host_ops *h = d->h;
    uint64_t start = align_up(h->mem_base + d->mem_used, align) - h->mem_base;

    if (start < d->mem_used || start > h->mem_size || bytes > h->mem_size - start)
        return NULL;
    d->mem_used = start + bytes;
    *gpa = h->mem_base + start;
    return h->mem + start;
}

/* Guest memory the device will reach by DMA, for queue `queue`; `writable`: the device
 * writes it. Without ACCESS_PLATFORM this is mem_alloc, nothing more. With it, the
 * region is recorded for the IOMMU tables (iommu_setup), and a region whose address
 * space (the queue's PASID) or access differs from the previous region's starts on a
 * fresh IOMMU page. Every IOMMU page then holds regions of one (PASID, access) only, so
 * no page needs two different mappings in one address space, whatever the page size. */
static uint8_t *dev_alloc(struct refdrv *d, uint64_t bytes, uint64_t align, uint16_t queue,
                          bool writable, uint64_t *gpa)
{
    uint32_t pasid = d->p->queue_pasid[queue];
    const struct dev_region *last;
    struct dev_region *r;
    uint8_t *mem;

    if (!d->f_access_platform)
        return mem_alloc(d, bytes, align, gpa);

    assert(queue < DRV_QUEUES && is_pow2(align));
    if (d->nregions >= DEV_REGIONS_MAX)
        return NULL; /* not reached: the driver allocates at most DEV_REGIONS_MAX */
    last = d->nregions > 0 ? &d->region[d->nregions - 1u] : NULL;
    if ((last == NULL || last->pasid != pasid || last->writable != writable) && align < d->io_page)
        align = d->io_page;
    mem = mem_alloc(d, bytes, align, gpa);
    if (mem == NULL)
        return NULL;
    r = &d->region[d->nregions++];
    r->gpa = *gpa;
    r->bytes = bytes;
    r->pasid = pasid;
    r->writable = writable;
    return mem;
}

/* The address the device is given for guest-physical gpa: the IOVA the driver mapped
 * it at with ACCESS_PLATFORM, else the physical address itself ("If
 * VIRTIO_F_ACCESS_PLATFORM is not offered, then a driver MUST pass only physical
 * addresses to the device"; not accepted, the device has "same access to memory
 * addresses supplied to it as the driver has"). The CPU's own accesses never use it. */
static uint64_t dev_addr(const struct refdrv *d, uint64_t gpa)
{
    return gpa + d->iova_offset;
}

/* ---- IOMMU (VIRTIO_F_ACCESS_PLATFORM, "Reserved Feature Bits") ---- */

/* Page-table pages below the root that mapping `bytes` of contiguous IOVA can need: the
 * range touches at most bytes / reach + 2 tables of a level whose tables each cover
 * `reach` bytes (level 1: 2 MiB, level 2: 1 GiB, level 3: 512 GiB). Counted as for
 * 4 KiB pages, so it also bounds 2 MiB pages (which need no level-1 tables). */
static uint64_t tables_bound(uint64_t bytes)
{
    uint64_t n = 0;

    for (unsigned level = 1; level < IOMMU_LEVELS; level++)
        n += (bytes >> iommu_level_shift(level + 1u)) + 2u;
    return n;
}

/* The IOMMU pages covering region r: [*first, *end), the region's start rounded down
 * and its end rounded up to the page size (inside guest memory, which iommu_possible
 * keeps below 2^48, and dev_alloc starts every new group on a page boundary). */
static void region_pages(const struct refdrv *d, const struct dev_region *r, uint64_t *first,
                         uint64_t *end)
{
    *first = r->gpa & ~(d->io_page - 1u);
    *end = align_up(r->gpa + r->bytes, d->io_page);
}

static struct io_space *find_space(struct refdrv *d, uint32_t pasid)
{
    for (uint32_t i = 0; i < d->nspaces; i++)
        if (d->space[i].pasid == pasid)
            return &d->space[i];
    return NULL;
}

/* Map region r in its address space s at IOVA = physical + iova_offset, one IOMMU page
 * at a time. A page an earlier region of the same (PASID, access) already mapped --
 * regions share pages: a ring's event areas sit in its descriptor ring's page, buffers
 * follow each other -- makes iopt_map answer BUSY; it is kept if it already says the
 * same. Any other answer (pool exhausted, a page mapped differently, which dev_alloc's
 * layout rules out) is a failure. */
static bool map_region(struct refdrv *d, struct io_space *s, const struct dev_region *r)
{
    uint64_t first, end;

    region_pages(d, r, &first, &end);
    for (uint64_t pa = first; pa < end; pa += d->io_page) {
        uint64_t iova = pa + d->iova_offset, have_pa, have_size;
        bool have_writable;
        enum iopt_status st = iopt_map(&s->pt, iova, pa, d->io_page, d->io_page, r->writable);

        if (st == IOPT_OK) {
            d->st->iommu_pages_mapped++;
            continue;
        }
        if (st == IOPT_BUSY && iopt_resolve(&s->pt, iova, &have_pa, &have_size, &have_writable) &&
            have_pa == pa && have_size == d->io_page && have_writable == r->writable)
            continue;
        return false;
    }
    return true;
}

/* With ACCESS_PLATFORM negotiated, "configure the IOMMU to translate bus addresses
 * passed to the device into physical addresses in memory": build one address space
 * per distinct PASID of the RX and TX queues (in queue order, so runs are
 * deterministic; the control queue's too when CTRL_VQ is negotiated), map every
 * recorded region in its queue's space, then install each root through the platform.
 * Called once the rings and buffers exist and before DRIVER_OK, which is when the
 * device may start DMA ("The device MUST NOT consume buffers or send any used buffer
 * notifications to the driver before DRIVER_OK").
 * The table pool comes after all device memory, on a fresh IOMMU page (no page mapped
 * for the device covers a table, so the device cannot rewrite its own translations),
 * sized for the worst case at 4 KiB granularity: every root plus tables_bound of every
 * region. A pool that cannot be placed is REFDRV_NO_MEMORY; running out of it anyway,
 * or a platform that refuses a root, is REFDRV_DEVICE_ERROR. */
static enum refdrv_result iommu_setup(struct refdrv *d)
{
    static const uint16_t queues[] = { RX_QUEUE, TX_QUEUE, CTRL_QUEUE };
    const size_t nqueues = d->f_ctrl_vq ? 3u : 2u;
    const struct vs_host_ops *h = d->h;
    uint64_t pages, pool_gpa;

    if (!d->f_access_platform)
        return REFDRV_OK;

    for (size_t i = 0; i < nqueues; i++) {
        uint32_t pasid = d->p->queue_pasid[queues[i]];
        if (find_space(d, pasid) == NULL)
            d->space[d->nspaces++].pasid = pasid;
    }

    pages = d->nspaces; /* the roots */
    for (uint32_t i = 0; i < d->nregions; i++) {
        uint64_t first, end;
        region_pages(d, &d->region[i], &first, &end);
        pages += tables_bound(end - first);
    }
    /* Regions lie in guest memory, so this bound cannot overflow; a pool larger than
     * guest memory would not fit anyway. */
    if (pages > h->mem_size / IOMMU_TABLE_SIZE ||
        mem_alloc(d, pages * IOMMU_TABLE_SIZE, d->io_page, &pool_gpa) == NULL)
        return give_up(d, REFDRV_NO_MEMORY);
    /* The pool follows at least one region, so no table sits at physical address 0
     * (which iopt and the root register both read as "none"). */
    iopt_pool_init(&d->pt_pool, pool_gpa, pages * IOMMU_TABLE_SIZE);

    for (uint32_t i = 0; i < d->nspaces; i++)
        if (iopt_init(&d->space[i].pt, h->mem, h->mem_base, h->mem_size, &d->pt_pool) != IOPT_OK)
            return give_up(d, REFDRV_DEVICE_ERROR);
    for (uint32_t i = 0; i < d->nregions; i++) {
        struct io_space *s = find_space(d, d->region[i].pasid);
        if (s == NULL || !map_region(d, s, &d->region[i]))
            return give_up(d, REFDRV_DEVICE_ERROR);
    }
    for (uint32_t i = 0; i < d->nspaces; i++)
        d->st->iommu_table_pages += d->space[i].pt.tables;

    /* The tables are complete in guest memory before the IOMMU is pointed at them; the
     * platform drops whatever its IOTLB held for the PASID. */
    for (uint32_t i = 0; i < d->nspaces; i++)
        if (h->iommu_set_root(h->ctx, d->space[i].pasid, d->space[i].pt.root) != 0)
            return give_up(d, REFDRV_DEVICE_ERROR);
    return REFDRV_OK;
}

/* ---- queues ---- */

static void notify_queue(struct refdrv *d, struct drv_queue *q)
{
    inject(d, INJ_NOTIFY, q, NULL);
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
static void kick(struct refdrv *d, struct drv_queue *q)
{
    /* The publishing store needs a write barrier before it: "If VIRTIO_F_ORDER_PLATFORM
     * has been negotiated, a driver MUST use the barriers suitable for hardware
     * devices" ("Reserved Feature Bits"); otherwise CPU-to-CPU barriers suffice. */
    d->h->cpu_work(d->h->ctx, d->f_order_platform ? VS_HOST_WORK_BARRIER_DEVICE : VS_HOST_WORK_BARRIER_SMP, 1);
    q->ops->publish(q->ring);
    if (q->ops->unnotified(q->ring) == 0)
        return;
    if (q->ops->needs_notify(q->ring))
        notify_queue(d, q);
    else
        d->st->notifications_suppressed++;
}

/* Select queue index, size it, give it memory, map its vector, enable it
 * ("Virtqueue Configuration"). */
static enum refdrv_result queue_setup(struct refdrv *d, uint16_t index, uint16_t vector)
{
    /* The descriptor area first, 4 KiB aligned; the driver and device areas on cache
     * lines of their own. Both exceed each format's minimum (packed: 16 and 4; split:
     * 16, 2 and 4). */
    static const uint64_t area_align[RING_AREAS] = { RING_ALIGN_BYTES, AREA_ALIGN_BYTES,
                                                     AREA_ALIGN_BYTES };
    static const uint32_t area_reg[RING_AREAS] = { VIRTIO_PCI_COMMON_Q_DESCLO,
                                                   VIRTIO_PCI_COMMON_Q_AVAILLO,
                                                   VIRTIO_PCI_COMMON_Q_USEDLO };
    struct drv_queue *q = &d->q[index];
    const struct ring_ops *ops = d->ring_ops;
    uint32_t max, want, size, noff, width;
    uint64_t bytes[RING_AREAS], gpa[RING_AREAS], notify_rel;
    uint8_t *area[RING_AREAS];

    common_wr(d, VIRTIO_PCI_COMMON_Q_SELECT, 2, index);
    max = common_rd(d, VIRTIO_PCI_COMMON_Q_SIZE, 2);
    if (max == 0) /* "If this field is 0, the virtqueue does not exist." */
        return give_up(d, REFDRV_DEVICE_ERROR);
    want = d->p->queue_size_entries != 0 ? d->p->queue_size_entries : max;
    if (index == CTRL_QUEUE)
        want = CTRL_QUEUE_ENTRIES;
    /* Packed: up to the maximum; split: also a power of two ("Queue Size value is always
     * a power of 2"), so a request (or a device maximum) that is not one rounds down. */
    size = ops->fit_size(want, max);
    if (size == 0)
        return give_up(d, REFDRV_DEVICE_ERROR);
    common_wr(d, VIRTIO_PCI_COMMON_Q_SIZE, 2, size);

    /* The device writes used descriptors (packed: into the descriptor ring; split: the
     * used ring) and its own event suppression; it only reads the driver area, which
     * shares their page(s) and so is mapped writable with them. */
    ops->area_bytes((uint16_t)size, bytes);
    for (uint32_t i = 0; i < RING_AREAS; i++) {
        area[i] = dev_alloc(d, bytes[i], area_align[i], index, true, &gpa[i]);
        if (area[i] == NULL)
            return give_up(d, REFDRV_NO_MEMORY);
    }
    for (uint32_t i = 0; i < RING_AREAS; i++)
        common_wr64(d, area_reg[i], dev_addr(d, gpa[i]));

    /* "After mapping an event to vector, the driver MUST verify success by reading the
     * Vector field value." */
    common_wr(d, VIRTIO_PCI_COMMON_Q_MSIX, 2, vector);
    if (common_rd(d, VIRTIO_PCI_COMMON_Q_MSIX, 2) != vector)
        return give_up(d, REFDRV_DEVICE_ERROR);

    /* Queue Notify address: cap.offset + queue_notify_off * notify_off_multiplier, which
     * must leave room for the notification inside the structure. */
    noff = common_rd(d, VIRTIO_PCI_COMMON_Q_NOFF, 2);
    width = d->f_notif_data ? 4u : 2u;
    notify_rel = (uint64_t)noff * d->notify_off_multiplier;
    if (notify_rel > d->notify.length || width > d->notify.length - notify_rel ||
        (d->notify.addr + notify_rel) % width != 0)
        return give_up(d, REFDRV_BAD_CAPS);

    q->ops = ops;
    q->desc_area = area[0];
    q->ring = &d->rings[index];
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
        ops->set_event_mmio(q->ring, devmem_event_write, q);
    }
    /* Interrupts are asked for only while the driver sleeps (and never when polling). */
    ops->events_off(q->ring);
    q->armed = false;

    inject(d, INJ_QUEUE_CONFIGURED, q, NULL);
    /* "The driver MUST configure the other virtqueue fields before enabling the
     * virtqueue with queue_enable." */
    common_wr(d, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
    inject(d, INJ_QUEUE_ENABLED, q, NULL);
    return REFDRV_OK;
}

/* Buffers: one slot per buffer id, so an id names its memory. The device only reads
 * TX indirect tables and TX buffers (read-only mappings with ACCESS_PLATFORM) and
 * writes RX buffers. */
static enum refdrv_result buffers_setup(struct refdrv *d)
{
    struct drv_queue *rx = &d->q[RX_QUEUE];
    struct drv_queue *tx = &d->q[TX_QUEUE];

    if (d->tx_layout == REFDRV_TX_INDIRECT) {
        tx->table = dev_alloc(d, (uint64_t)tx->size * INDIRECT_ENTRIES * DESC_BYTES,
                              PVIRTQ_DESC_ALIGN, TX_QUEUE, false, &tx->table_gpa);
        if (tx->table == NULL)
            return give_up(d, REFDRV_NO_MEMORY);
    }
    rx->slot_bytes = (uint32_t)align_up(d->rx_buf_bytes, AREA_ALIGN_BYTES);
    rx->buf = dev_alloc(d, (uint64_t)rx->size * rx->slot_bytes, AREA_ALIGN_BYTES, RX_QUEUE, true,
                        &rx->buf_gpa);
    tx->slot_bytes = (uint32_t)align_up(NET_HDR_BYTES + d->max_frame, AREA_ALIGN_BYTES);
    tx->buf = dev_alloc(d, (uint64_t)tx->size * tx->slot_bytes, AREA_ALIGN_BYTES, TX_QUEUE, false,
                        &tx->buf_gpa);
    if (rx->buf == NULL || tx->buf == NULL)
        return give_up(d, REFDRV_NO_MEMORY);
    return REFDRV_OK;
}

/* ---- control queue and notification coalescing ---- */

/* The control queue (CTRL_VQ negotiated, so only with coalescing): a small ring with no
 * MSI-X vector, since the driver polls for each ack, and one command buffer. */
static enum refdrv_result ctrl_setup(struct refdrv *d)
{
    struct drv_queue *cq = &d->q[CTRL_QUEUE];
    enum refdrv_result r;

    if (!d->f_ctrl_vq)
        return REFDRV_OK;
    r = queue_setup(d, CTRL_QUEUE, VIRTIO_MSI_NO_VECTOR);
    if (r != REFDRV_OK)
        return r;
    if (cq->size < 2u) /* a command is a chain of two */
        return give_up(d, REFDRV_DEVICE_ERROR);
    cq->slot_bytes = CTRL_BUF_BYTES;
    cq->buf = dev_alloc(d, CTRL_BUF_BYTES, AREA_ALIGN_BYTES, CTRL_QUEUE, true, &cq->buf_gpa);
    if (cq->buf == NULL)
        return give_up(d, REFDRV_NO_MEMORY);
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
    struct drv_queue *cq = &d->q[CTRL_QUEUE];
    struct ring_seg segs[2];
    struct ring_used u;
    enum ring_status st;
    uint64_t start = now_ps(d);
    int v;

    assert(VIRTIO_NET_CTRL_HDR_BYTES + len <= CTRL_REPLY_OFF &&
           CTRL_REPLY_OFF + result_len + 1u <= CTRL_BUF_BYTES);
    cq->buf[0] = cls;
    cq->buf[1] = cmd;
    memcpy(cq->buf + VIRTIO_NET_CTRL_HDR_BYTES, data, len);
    memset(cq->buf + CTRL_REPLY_OFF, 0xff, result_len + 1u);
    segs[0] = (struct ring_seg){ dev_addr(d, cq->buf_gpa), VIRTIO_NET_CTRL_HDR_BYTES + len, false };
    segs[1] = (struct ring_seg){ dev_addr(d, cq->buf_gpa + CTRL_REPLY_OFF), result_len + 1u, true };
    if (!cq->ops->can_add(cq->ring, 2, NULL) || cq->ops->add(cq->ring, segs, 2) != RING_OK)
        return -1;
    d->h->cpu_work(d->h->ctx, VS_HOST_WORK_CTRL_COMMAND, 1);
    d->st->ctrl_commands++;
    kick(d, cq);
    for (;;) {
        st = cq->ops->get_used(cq->ring, &u);
        if (st == RING_OK)
            break;
        if (st == RING_BROKEN || elapsed_ps(now_ps(d), start) >= d->idle_timeout_ps)
            return -1;
        d->h->cpu_work(d->h->ctx, VS_HOST_WORK_POLL, 1);
        v = d->h->wait_interrupt(d->h->ctx, CTRL_POLL_NS);
        if (v >= 0) {
            d->st->interrupts++;
            if (v == (int)VEC_CONFIG && check_status(d) != REFDRV_OK)
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

static bool coal_vq_set(struct refdrv *d, uint16_t vq, const struct refdrv_coal *c)
{
    uint8_t data[sizeof(struct virtio_net_ctrl_coal_vq)];
    bool ok;

    vs_put_le16(data + offsetof(struct virtio_net_ctrl_coal_vq, vq_index), vq);
    vs_put_le16(data + offsetof(struct virtio_net_ctrl_coal_vq, reserved), 0);
    vs_put_le32(data + offsetof(struct virtio_net_ctrl_coal_vq, coal.max_packets), c->max_packets);
    vs_put_le32(data + offsetof(struct virtio_net_ctrl_coal_vq, coal.max_usecs), c->max_usecs);
    return coal_command(d, VIRTIO_NET_CTRL_NOTF_COAL_VQ_SET, data, sizeof data, NULL, 0, &ok);
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

static bool coal_adapt(struct refdrv *d, uint64_t now)
{
    static const uint16_t queues[DATA_QUEUES] = { RX_QUEUE, TX_QUEUE };
    uint64_t elapsed = elapsed_ps(now, d->coal_mark_ps);

    if (d->p->coal_policy != REFDRV_COAL_ADAPTIVE || !d->f_vq_notf_coal ||
        elapsed < d->coal_interval_ps)
        return true;
    for (uint32_t i = 0; i < DATA_QUEUES; i++) {
        uint64_t frames = queues[i] == RX_QUEUE ? d->st->rx_frames : d->tx_reaped;
        double mpps = (double)(frames - d->coal_mark_frames[i]) * PS_PER_US_INT / (double)elapsed;
        uint32_t target = 0, level = d->coal_level[i];
        int trend;

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
        if (!coal_vq_set(d, queues[i], &coal_profiles[level]))
            return false;
    }
    d->coal_mark_ps = now_ps(d); /* after the commands: their time is not measured */
    return true;
}

/* After DRIVER_OK: the static parameters, or the adaptive policy's first interval. */
static enum refdrv_result coal_start(struct refdrv *d)
{
    if (d->p->coal_policy == REFDRV_COAL_OFF || !d->f_ctrl_vq)
        return REFDRV_OK;
    d->coal_interval_ps = (uint64_t)(d->p->coal_adaptive_interval_us != 0
                                         ? d->p->coal_adaptive_interval_us
                                         : DEFAULT_COAL_INTERVAL_US) * PS_PER_US_INT;
    if (d->p->coal_policy == REFDRV_COAL_STATIC && !coal_static(d))
        return give_up(d, REFDRV_DEVICE_ERROR);
    d->coal_mark_ps = now_ps(d);
    return REFDRV_OK;
}

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
static bool inject(struct refdrv *d, enum inj_point at, struct drv_queue *q, struct ring_seg *seg)
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
        status_set(d, VIRTIO_STATUS_DRIVER);
        break;
    case REFDRV_INJECT_INIT_AFTER_FAILED: /* FAILED, then ACKNOWLEDGE with no reset between */
        if (at != INJ_INIT_START)
            return false;
        status_set(d, VIRTIO_STATUS_FAILED);
        status_set(d, VIRTIO_STATUS_ACKNOWLEDGE);
        (void)device_reset(d); /* and then the proper way */
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
    case REFDRV_INJECT_NOTIFY_BEFORE_DRIVER_OK: /* kick the filled receive queue too early */
        if (at != INJ_BEFORE_DRIVER_OK)
            return false;
        d->injected = true;
        notify_queue(d, q);
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
        (void)coal_vq_set(d, RX_QUEUE, &d->p->coal_rx);
        break;
    case REFDRV_INJECT_CTRL_COAL_VQ_INDEX: /* VQ_SET naming the control queue */
        if (at != INJ_AFTER_DRIVER_OK || !d->f_vq_notf_coal)
            return false;
        (void)coal_vq_set(d, CTRL_QUEUE, &d->p->coal_rx);
        break;
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

/* ---- traffic ---- */

/* Post one empty receive buffer: one device-writable descriptor. */
static bool post_rx(struct refdrv *d)
{
    struct drv_queue *rx = &d->q[RX_QUEUE];
    uint16_t id;
    struct ring_seg seg;

    if (!rx->ops->can_add(rx->ring, 1, &id))
        return false;
    seg.addr = dev_addr(d, rx->buf_gpa + (uint64_t)id * rx->slot_bytes);
    seg.len = d->rx_buf_bytes;
    seg.device_writable = true;
    inject(d, INJ_RX_SEG, rx, &seg);
    if (rx->ops->add(rx->ring, &seg, 1) != RING_OK)
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

/* Build and post the next frame: virtio_net_hdr (all zero: no offloads, "The driver
 * MUST set num_buffers to zero") followed by the test frame. */
static bool post_tx(struct refdrv *d)
{
    struct drv_queue *tx = &d->q[TX_QUEUE];
    uint16_t id;
    uint32_t len;
    uint64_t addr; /* the slot's address for the device */
    uint8_t *slot;
    struct ring_seg segs[2];
    enum ring_status st;

    if (!tx->ops->can_add(tx->ring, tx_slots_per_frame(d), &id))
        return false;
    len = next_frame_len(d);
    addr = dev_addr(d, tx->buf_gpa + (uint64_t)id * tx->slot_bytes);
    slot = tx->buf + (size_t)id * tx->slot_bytes;
    memset(slot, 0, NET_HDR_BYTES);
    traffic_build(slot + NET_HDR_BYTES, len, d->mac, d->p->seed, d->tx_posted, now_ps(d));

    switch (d->tx_layout) {
    case REFDRV_TX_CHAIN:
        segs[0] = (struct ring_seg){ addr, NET_HDR_BYTES, false };
        segs[1] = (struct ring_seg){ addr + NET_HDR_BYTES, len, false };
        inject(d, INJ_TX_SEG, tx, &segs[0]);
        st = tx->ops->add(tx->ring, segs, 2);
        break;
    case REFDRV_TX_INDIRECT:
        segs[0] = (struct ring_seg){ addr, NET_HDR_BYTES, false };
        segs[1] = (struct ring_seg){ addr + NET_HDR_BYTES, len, false };
        inject(d, INJ_TX_SEG, tx, &segs[0]);
        st = tx->ops->add_indirect(tx->ring, tx->table + (size_t)id * INDIRECT_ENTRIES * DESC_BYTES,
                                   dev_addr(d, tx->table_gpa + (uint64_t)id * INDIRECT_ENTRIES * DESC_BYTES),
                                   segs, 2);
        break;
    default:
        segs[0] = (struct ring_seg){ addr, NET_HDR_BYTES + len, false };
        inject(d, INJ_TX_SEG, tx, &segs[0]);
        st = tx->ops->add(tx->ring, segs, 1);
        break;
    }
    if (st != RING_OK)
        return false;
    inject(d, INJ_TX_ADDED, tx, &segs[0]);
    d->tx_len[id] = len;
    d->tx_posted++;
    traffic_arrival_advance(&d->arrival);
    d->h->cpu_work(d->h->ctx, VS_HOST_WORK_TX_PACKET, 1);
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

/* Post the frames that are due, up to a burst, then publish + notify once. */
static uint32_t tx_send(struct refdrv *d)
{
    uint32_t n = 0;

    while (d->tx_posted < d->p->frames_count && n < TX_BURST_MAX && !closed_window_full(d)) {
        uint64_t due = tx_due_ps(d);
        if (due != 0 && now_ps(d) < due)
            break;
        if (!post_tx(d))
            break;
        n++;
    }
    if (n > 0)
        kick(d, &d->q[TX_QUEUE]);
    return n;
}

/* Reclaim transmitted buffers. Returns how many, or -1 when the queue broke. */
static int64_t tx_reap(struct refdrv *d)
{
    struct drv_queue *tx = &d->q[TX_QUEUE];
    struct ring_used u;
    enum ring_status st;
    int64_t n = 0;

    while ((st = tx->ops->get_used(tx->ring, &u)) == RING_OK) {
        d->st->tx_frames++;
        d->st->tx_bytes += d->tx_len[u.id];
        d->tx_reaped++;
        d->h->cpu_work(d->h->ctx, VS_HOST_WORK_TX_REAP, 1);
        n++;
    }
    return st == RING_BROKEN ? -1 : n;
}

/* Check one received buffer: header, then the frame against what the sender wrote. */
static void rx_consume(struct refdrv *d, const struct ring_used *u)
{
    struct drv_queue *rx = &d->q[RX_QUEUE];
    const uint8_t *slot = rx->buf + (size_t)u->id * rx->slot_bytes;
    struct traffic_info info = { 0, 0, 0 };
    uint32_t flen = 0;
    bool good = false;

    /* Without VIRTIO_NET_F_MRG_RXBUF "the device MUST set num_buffers to 1". */
    if (u->written && u->len >= NET_HDR_BYTES && u->len <= d->rx_buf_bytes &&
        vs_le16(slot + NET_HDR_NUM_BUFFERS) == 1u) {
        flen = u->len - NET_HDR_BYTES;
        /* A skipped IN_ORDER buffer counts as completely written: the frame's own
         * length field says where it ends. */
        good = traffic_check(slot + NET_HDR_BYTES, flen, !u->skipped, d->mac, d->p->seed,
                             &info) == TRAFFIC_GOOD;
        if (good)
            flen = info.len;
    }
    /* Loopback keeps order: a sequence number never sent, or one at or below what was
     * already received (duplicate, reordering), is a bad frame. */
    if (good && (info.seq >= d->tx_posted || info.seq < d->rx_next_seq))
        good = false;

    d->st->rx_frames++;
    d->st->rx_bytes += flen;
    if (!good) {
        d->st->rx_bad_payload++;
    } else {
        uint64_t now = now_ps(d);
        d->rx_next_seq = info.seq + 1u;
        if (d->p->expect_loopback && d->st->latency != NULL)
            hist_record(d->st->latency, now >= info.tx_time_ps ? now - info.tx_time_ps : 0);
    }
    d->h->cpu_work(d->h->ctx, VS_HOST_WORK_RX_PACKET, 1);
}

/* Take received frames. Their buffers go back in batches, once half the ring (at most
 * RX_REFILL_BATCH_MAX) is free, so one publish + notification covers many buffers; the
 * device is never left without buffers, since at least half the ring stays posted.
 * Returns how many frames, or -1 when the queue broke. */
static int64_t rx_reap(struct refdrv *d)
{
    struct drv_queue *rx = &d->q[RX_QUEUE];
    uint32_t batch = rx->size / 2u;
    struct ring_used u;
    enum ring_status st;
    int64_t n = 0;

    while ((st = rx->ops->get_used(rx->ring, &u)) == RING_OK) {
        rx_consume(d, &u);
        n++;
    }
    if (batch > RX_REFILL_BATCH_MAX)
        batch = RX_REFILL_BATCH_MAX;
    if (batch == 0)
        batch = 1;
    if ((uint32_t)(rx->size - rx->ops->descs_in_flight(rx->ring)) >= batch) {
        while (post_rx(d))
            ;
        kick(d, rx);
    }
    return st == RING_BROKEN ? -1 : n;
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

/* Ask for an interrupt once the device has used `ahead` more units (ring_ops.event_span)
 * beyond the next one (EVENT_IDX; otherwise at the next), or stop asking. */
static void arm(struct drv_queue *q, uint16_t ahead)
{
    q->ops->events_after(q->ring, ahead);
    q->armed = true;
}

static void disarm(struct drv_queue *q)
{
    if (!q->armed)
        return;
    q->ops->events_off(q->ring);
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
    struct drv_queue *rx = &d->q[RX_QUEUE];
    struct drv_queue *tx = &d->q[TX_QUEUE];
    bool tx_blocked = d->tx_posted < d->p->frames_count &&
                      !tx->ops->can_add(tx->ring, tx_slots_per_frame(d), NULL);
    bool want_rx = d->p->expect_loopback && d->st->rx_frames < d->p->frames_count;
    bool want_tx = d->tx_reaped < d->tx_posted && (tx_blocked || d->tx_posted >= d->p->frames_count);
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
        arm(rx, 0);
    if (want_tx)
        arm(tx, (uint16_t)(tx->ops->event_span(tx->ring) * 3u / 4u));
    if (want_rx || want_tx)
        devmem_event_flush(d, want_tx ? tx : rx); /* one read flushes both queues' writes */
    if ((want_rx && rx->ops->has_used(rx->ring)) || (want_tx && tx->ops->has_used(tx->ring))) {
        disarm(rx);
        disarm(tx);
        return -2;
    }

    timeout_ns = deadline > now ? (deadline - now + PS_PER_NS - 1u) / PS_PER_NS : 1u;
    if (timeout_ns == 0)
        timeout_ns = 1;
    v = d->h->wait_interrupt(d->h->ctx, timeout_ns);
    disarm(rx);
    disarm(tx);
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
 * loop itself does. Each is a "now >= deadline" test of run_traffic or what it calls. */
static uint64_t next_poll_deadline(const struct refdrv *d)
{
    const struct drv_queue *tx = &d->q[TX_QUEUE];
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

static enum refdrv_result run_traffic(struct refdrv *d)
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

        got_tx = tx_reap(d);
        got_rx = rx_reap(d);
        if (got_tx < 0 || got_rx < 0)
            return REFDRV_DEVICE_ERROR; /* the device returned an impossible buffer id */
        sent = tx_send(d);
        if (traffic_done(d))
            return REFDRV_OK;
        if (d->p->coal_policy == REFDRV_COAL_ADAPTIVE && !coal_adapt(d, now_ps(d)))
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
            enum refdrv_result r = check_status(d);
            return r != REFDRV_OK ? r : REFDRV_TIMEOUT;
        }
        if (elapsed_ps(now, d->last_status_check_ps) >= status_interval &&
            elapsed_ps(now, d->last_progress_ps) >= status_interval) {
            if (check_status(d) != REFDRV_OK)
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
                    if (v == (int)VEC_CONFIG && check_status(d) != REFDRV_OK)
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
            /* Vector 0 is configuration changes only (or shared by everything when the
             * table has one entry): the device sets NEEDS_RESET and then "MUST send a
             * device configuration change notification". */
            if (v == (int)VEC_CONFIG && check_status(d) != REFDRV_OK)
                return REFDRV_DEVICE_ERROR;
        }
    }
}

/* ---- parameters ---- */

static void traffic_setup(struct refdrv *d)
{
    const struct refdrv_params *p = d->p;
    uint32_t kinds = p->frame_sizes_count;

    if (kinds > REFDRV_FRAME_SIZES_MAX)
        kinds = REFDRV_FRAME_SIZES_MAX;
    d->frame_kinds = 0;
    d->max_frame = 0;
    for (uint32_t i = 0; i < kinds; i++) {
        uint32_t len = traffic_frame_len(p->frame_sizes_bytes[i]);
        d->frame_len[d->frame_kinds++] = len;
        if (len > d->max_frame)
            d->max_frame = len;
    }
    if (d->frame_kinds == 0) {
        d->frame_len[0] = traffic_frame_len(DEFAULT_FRAME_BYTES);
        d->frame_kinds = 1;
        d->max_frame = d->frame_len[0];
    }
    d->rx_buf_bytes = p->rx_buffer_bytes == 0 ? DEFAULT_RX_BUFFER_BYTES : p->rx_buffer_bytes;
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

/* ---- the whole driver ---- */

static enum refdrv_result bring_up(struct refdrv *d)
{
    enum refdrv_result r;

    r = pci_identify(d);
    if (r != REFDRV_OK)
        return r;
    r = pci_setup_bars(d);
    if (r != REFDRV_OK)
        return r;
    r = pci_walk_caps(d);
    if (r != REFDRV_OK)
        return r;
    msix_setup(d);

    /* "Device Initialization": reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK,
     * re-read, device-specific setup, DRIVER_OK. */
    if (!inject(d, INJ_RESET, NULL, NULL) && !device_reset(d))
        return REFDRV_DEVICE_ERROR;
    inject(d, INJ_INIT_START, NULL, NULL);
    status_set(d, VIRTIO_STATUS_ACKNOWLEDGE);
    status_set(d, VIRTIO_STATUS_DRIVER);
    inject(d, INJ_INIT_DRIVER, NULL, NULL);
    r = negotiate(d);
    if (r != REFDRV_OK)
        return r;
    d->tx_layout = d->p->tx_layout;
    if (d->tx_layout == REFDRV_TX_INDIRECT && !d->f_indirect)
        d->tx_layout = REFDRV_TX_CHAIN;
    if (d->tx_layout > REFDRV_TX_INDIRECT)
        d->tx_layout = REFDRV_TX_ONE_DESC;
    read_mac(d);

    common_wr(d, VIRTIO_PCI_COMMON_MSIX, 2, VEC_CONFIG);
    if (common_rd(d, VIRTIO_PCI_COMMON_MSIX, 2) != VEC_CONFIG)
        return give_up(d, REFDRV_DEVICE_ERROR);
    /* receiveq1 and transmitq1 must exist, and controlq with CTRL_VQ. */
    if (common_rd(d, VIRTIO_PCI_COMMON_NUMQ, 2) < (d->f_ctrl_vq ? DRV_QUEUES : DATA_QUEUES))
        return give_up(d, REFDRV_DEVICE_ERROR);
    inject(d, INJ_DEVICE_SETUP, NULL, NULL);
    r = queue_setup(d, RX_QUEUE, d->vec_rx);
    if (r != REFDRV_OK)
        return r;
    r = queue_setup(d, TX_QUEUE, d->vec_tx);
    if (r != REFDRV_OK)
        return r;
    /* A chain of two needs a ring of at least two. */
    if (d->tx_layout == REFDRV_TX_CHAIN && d->q[TX_QUEUE].size < 2u)
        d->tx_layout = REFDRV_TX_ONE_DESC;
    r = buffers_setup(d);
    if (r != REFDRV_OK)
        return r;
    r = ctrl_setup(d);
    if (r != REFDRV_OK)
        return r;
    r = iommu_setup(d);
    if (r != REFDRV_OK)
        return r;

    /* Populate the receive queue before the device goes live; the notification waits
     * for DRIVER_OK ("The driver MUST NOT send any buffer available notifications to
     * the device before setting DRIVER_OK"). */
    while (post_rx(d))
        ;
    d->q[RX_QUEUE].ops->publish(d->q[RX_QUEUE].ring);

    inject(d, INJ_BEFORE_DRIVER_OK, &d->q[RX_QUEUE], NULL);
    status_set(d, VIRTIO_STATUS_DRIVER_OK);
    if (status_read(d) & VIRTIO_STATUS_DEVICE_NEEDS_RESET)
        return REFDRV_DEVICE_ERROR;
    kick(d, &d->q[RX_QUEUE]);
    r = coal_start(d);
    if (r == REFDRV_OK)
        inject(d, INJ_AFTER_DRIVER_OK, NULL, NULL);
    return r;
}

static bool host_ops_usable(const struct vs_host_ops *h)
{
    return h != NULL && h->cfg_read != NULL && h->cfg_write != NULL && h->mmio_read != NULL &&
           h->mmio_write != NULL && h->wait_interrupt != NULL && h->cpu_work != NULL &&
           h->now_ps != NULL;
}

size_t refdrv_state_bytes(void)
{
    return sizeof(struct refdrv);
}

enum refdrv_result refdrv_run(const struct vs_host_ops *host, const struct refdrv_params *p,
                              struct refdrv_stats *stats)
{
    /* The driver's own bookkeeping (rings' id tables): once, off the thread's stack. */
    void *state = calloc(1, sizeof(struct refdrv));
    if (state == NULL)
        return REFDRV_NO_MEMORY;
    enum refdrv_result r = refdrv_run_in(state, host, p, stats);
    free(state);
    return r;
}

enum refdrv_result refdrv_run_in(void *state, const struct vs_host_ops *host,
                                 const struct refdrv_params *p, struct refdrv_stats *stats)
{
    struct refdrv_stats scratch;
    struct refdrv *d = state;
    enum refdrv_result r;

    if (stats == NULL) {
        memset(&scratch, 0, sizeof(scratch));
        stats = &scratch;
    } else {
        struct hist *lat = stats->latency;
        memset(stats, 0, sizeof(*stats));
        stats->latency = lat;
    }
    if (!host_ops_usable(host) || p == NULL)
        return REFDRV_NO_DEVICE;
    if (host->mem == NULL || host->mem_size == 0)
        return REFDRV_NO_MEMORY;

    d->h = host;
    d->p = p;
    d->st = stats;
    traffic_setup(d);

    r = bring_up(d);
    if (r == REFDRV_OK)
        r = run_traffic(d);

    /* Leave the device reset, whatever happened, once we have touched its status. */
    if (d->status_written)
        device_reset(d);
    return r;
}

const char *refdrv_inject_name(enum refdrv_inject i)
{
    static const char *const names[REFDRV_INJECT_COUNT] = {
#define REFDRV_INJECT_NAME(name) #name,
        REFDRV_INJECTIONS(REFDRV_INJECT_NAME)
#undef REFDRV_INJECT_NAME
    };
    return (unsigned)i < REFDRV_INJECT_COUNT ? names[i] : "unknown";
}

const char *refdrv_result_name(enum refdrv_result r)
{
    switch (r) {
    case REFDRV_OK: return "ok";
    case REFDRV_NO_DEVICE: return "no_device";
    case REFDRV_BAD_CAPS: return "bad_caps";
    case REFDRV_FEATURES_REFUSED: return "features_refused";
    case REFDRV_NO_MEMORY: return "no_memory";
    case REFDRV_DEVICE_ERROR: return "device_error";
    case REFDRV_TIMEOUT: return "timeout";
    }
    return "unknown";
}
