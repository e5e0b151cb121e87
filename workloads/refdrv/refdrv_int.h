/* refdrv_int.h -- what the parts of the reference virtio-net driver share (packed or
 * split rings, MSI-X). The public interface is workloads/refdrv.h; nothing outside
 * workloads/refdrv/ includes this header.
 *
 * The driver in files by job:
 *   bringup.c  device status, PCI (identity, BARs, capabilities), MSI-X, feature
 *              negotiation, the order of bring-up and the entry points refdrv_run*
 *   memory.c   guest memory (bump allocator) and the IOMMU tables (ACCESS_PLATFORM)
 *   queues.c   queue set-up, notifications, the control queue and coalescing
 *   inject.c   fault injection (driver.inject_violation)
 *   txrx.c     transmit, receive, interrupts, polling and NAPI; traffic parameters
 * Functions one part offers the others are named rd_*; the small host accessors are
 * static inline below.
 *
 * Straight-line firmware: every step below is one function, in the order the spec's
 * driver requirements give them ("Device Initialization", "Virtio Over PCI Bus").
 * The device is not trusted: every value read from configuration space or a BAR is
 * range-checked before it is used as a size, an offset or an index, and every used
 * buffer goes through the ring module's checks (drv_packed or drv_split).
 *
 * Ring format: packed when VIRTIO_F_RING_PACKED is negotiated, split otherwise (the
 * device did not offer it, or the parameters decline it). The choice is made once,
 * after FEATURES_OK, as a table of functions (struct drv_ring_ops, drv_ring.h: drv_packed's
 * dpq_ring_ops or drv_split's dsq_ring_ops) every queue uses; the traffic code never
 * asks which format it drives. Split queues have a power-of-two
 * size ("Queue Size value is always a power of 2"): the requested size is rounded down.
 *
 * MSI-X vectors, as Linux assigns them: 0 = configuration changes, then one per data
 * queue in queue order (1 = receiveq1, 2 = transmitq1, 3 = receiveq2, ...; queue i
 * uses i + 1). A table too small for that shares, as Linux falls back: with 2 or more
 * entries every data queue uses 1, with 1 entry everything uses 0. The control queue
 * has none (the driver polls for its acks). Every entry sends address host->msi_base,
 * data = its entry number.
 *
 * Multiqueue (driver.queue_pairs_count > 1, VIRTIO_NET_F_MQ and CTRL_VQ negotiated;
 * "Device Initialization", "Automatic receive steering in multiqueue mode"): the driver
 * reads max_virtqueue_pairs, uses P = min(wanted, max) pairs, and sets up receiveq1..P
 * and transmitq1..P (queues 0 .. 2P-1) and the control queue, which is queue
 * 2 * max_virtqueue_pairs whatever P is; the queues of pairs past P stay disabled. The
 * driver's own tables hold them compactly: slot 2k is receiveq(k+1), 2k+1 transmitq(k+1),
 * slot 2P the control queue (q->index is the device's queue index). Every receive queue
 * is filled before DRIVER_OK; after it the driver sends VQ_PAIRS_SET(P) ("The driver MUST
 * configure the virtqueues before enabling them") and waits for VIRTIO_NET_OK before it
 * transmits anything ("MUST queue packets only on any transmitq1 before the
 * VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET command"): an ERR answer ends the run with
 * REFDRV_MQ_REFUSED. With one pair nothing of this happens and everything is as before.
 *
 * Guest memory, allocated upwards from host->mem_base:
 *   RX descriptor area (4 KiB aligned), RX driver area, RX device area (64 B aligned
 *   each: packed, the two 4-byte event suppression structures, a cache line apiece;
 *   split, the available ring and the used ring), then the same for TX; TX indirect
 *   tables (32 B per buffer id, only with REFDRV_TX_INDIRECT); RX buffers (one per id,
 *   rx_buffer_bytes rounded up to 64 B); TX buffers (one per id: 12-byte virtio_net_hdr
 *   + largest frame, rounded up to 64 B). Buffer id i always uses slot i (a split
 *   ring's id is its head descriptor's index, below the queue size too). With several
 *   pairs: the rings of every data queue in queue order, then each pair's TX tables, RX
 *   buffers and TX buffers, pair by pair.
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

#ifndef VIOSIM_REFDRV_INT_H
#define VIOSIM_REFDRV_INT_H

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

/* virtio-net queue numbering ("Virtqueues"): receiveq1 = 0, transmitq1 = 1, the control
 * queue 2 without VIRTIO_NET_F_MQ (2 * max_virtqueue_pairs with it). */
#define RX_QUEUE 0u
#define TX_QUEUE 1u
#define CTRL_QUEUE 2u
#define DATA_QUEUES 2u /* receiveq1 and transmitq1: what the driver always needs */
#define DRV_QUEUES 3u
/* Queue slots of the driver's tables: every pair's two, then the control queue. */
#define DRV_QUEUES_MAX (2u * REFDRV_PAIRS_MAX + 1u)
/* The PASID roles of driver.queue_pasid: every receive queue, every transmit queue, the
 * control queue. */
#define PASID_RX   0u
#define PASID_TX   1u
#define PASID_CTRL 2u
/* Sequence numbers a multiqueue loopback run tracks past the oldest frame not yet back
 * (rx_seen): frames come back in any order over the receive queues. */
#define RX_SEEN_BITS (1u << 20)

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
#define DEFAULT_MRG_RX_BUFFER_BYTES 2048u /* MRG_RXBUF: a page-friendly size, as Linux's */
#define DEFAULT_FRAME_BYTES   64u
#define DEFAULT_IDLE_TIMEOUT_NS 1000000u
#define DEFAULT_NAPI_BUDGET_FRAMES 64u /* Linux's NAPI_POLL_WEIGHT */
#define TX_BURST_MAX          32u     /* frames written before one publish + notify decision */
#define RX_REFILL_BATCH_MAX   32u     /* free receive buffers that trigger a refill */
#define RING_ALIGN_BYTES      4096u
#define AREA_ALIGN_BYTES      64u
#define INDIRECT_ENTRIES      2u
#define DESC_BYTES            16u     /* a descriptor, in either format's tables */
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
#define TX_EARLY_WAIT_NS      20000u  /* TX_QUEUE_NOT_IN_USE: how long the early frame is awaited */
#define DEFAULT_COAL_INTERVAL_US 50u
#define PS_PER_US_INT         1000000u
/* Device-reached regions: per queue the three ring areas (packed: descriptor ring and
 * two event areas; split: descriptor table, available and used rings) and buffers;
 * TX also indirect tables. */
#define DEV_REGIONS_MAX       (DRV_QUEUES_MAX * 5u)

/* One virtio structure located through a vendor capability. */
struct region {
    bool found;
    uint64_t addr;   /* BAR base + cap.offset */
    uint64_t length; /* cap.length, clipped to the BAR */
};

struct refdrv;

struct drv_queue {
    struct refdrv *drv;
    uint64_t event_slot;    /* VIOSIM_NET_F_DEVMEM_EVENT: the queue's slot (else 0) */
    const struct drv_ring_ops *ops;
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
    bool posted;            /* TX: frames added since the last kick */
};

/* MRG_RXBUF: a receive frame being put back together from its buffers (one per pair). */
struct rx_frame {
    uint8_t *data;          /* header + frame, in the driver's own memory */
    uint32_t room;          /* bytes at data */
    uint32_t len;           /* bytes copied so far */
    uint16_t left;          /* buffers still to come; 0: no frame in progress */
    bool bad;               /* a buffer did not fit or was not written */
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
    bool intx;               /* no MSI-X capability: interrupts by INTx, read ISR on each */

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
    bool f_mq;               /* VIRTIO_NET_F_MQ negotiated */
    bool f_mrg_rxbuf;        /* VIRTIO_NET_F_MRG_RXBUF negotiated */
    uint16_t pairs;          /* queue pairs in use: 1, or P with VIRTIO_NET_F_MQ */
    uint16_t max_pairs;      /* the device's max_virtqueue_pairs (1 without MQ) */
    struct drv_queue *cq;    /* the control queue's slot, q[2 * pairs] */
    const struct drv_ring_ops *ring_ops; /* the format every queue uses, chosen once */
    uint8_t mac[6];
    struct drv_queue q[DRV_QUEUES_MAX];
    uint64_t mem_used;       /* bump allocator: bytes of guest memory handed out */

    /* IOMMU (VIRTIO_F_ACCESS_PLATFORM negotiated; otherwise iova_offset is 0 and the
     * rest unused) */
    uint64_t iova_offset;    /* device address = guest-physical address + this */
    uint64_t io_page;        /* IOMMU page size of the mappings */
    struct dev_region region[DEV_REGIONS_MAX];
    uint32_t nregions;
    struct iopt_pool pt_pool;
    struct io_space space[DRV_QUEUES];     /* one per distinct PASID of the three roles */
    uint32_t nspaces;

    /* traffic */
    uint32_t frame_len[REFDRV_FRAME_SIZES_MAX];
    uint32_t frame_kinds;
    uint32_t max_frame;
    uint32_t rx_buf_bytes;
    enum refdrv_tx_layout tx_layout;
    uint64_t tx_posted, tx_reaped;
    uint64_t rx_next_seq;    /* frames come back in order: the least sequence expected;
                                several pairs: the oldest frame not yet back */
    /* Several pairs: which of the sequence numbers rx_next_seq .. + RX_SEEN_BITS came back
     * (bit s mod RX_SEEN_BITS), since frames return in any order over the pairs. */
    uint64_t rx_seen[RX_SEEN_BITS / 64u];
    uint64_t tx_posted_pair[REFDRV_PAIRS_MAX]; /* frames posted per pair */
    /* MRG_RXBUF: the frame being put back together, per pair. */
    struct rx_frame rx_frame[REFDRV_PAIRS_MAX];
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

    uint32_t tx_len[REFDRV_PAIRS_MAX][PVIRTQ_SIZE_MAX]; /* frame length per TX buffer id */
    union {
        struct dpq packed;
        struct dsq split;
    } rings[DRV_QUEUES_MAX];
};

VS_STATIC_ASSERT(SVIRTQ_SIZE_MAX == PVIRTQ_SIZE_MAX, "both formats reach 32768 entries");
VS_STATIC_ASSERT(DESC_BYTES == sizeof(struct pvirtq_desc) && DESC_BYTES == SVIRTQ_DESC_BYTES,
                 "descriptors are 16 bytes in both formats");

/* Fault injection (driver.inject_violation): the points of the driver's work where
 * rd_inject() may break the chosen rule. Everything else about it is in one place,
 * rd_inject() under "fault injection" below. */
enum inj_point {
    INJ_RESET,            /* the initial reset: replaced when rd_inject() returns true */
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
    INJ_MQ_PAIRS,         /* DRIVER_OK set, VQ_PAIRS_SET about to be sent (several pairs) */
    INJ_RX_SEG,           /* a receive buffer's element, before it is added (seg) */
    INJ_TX_SEG,           /* a transmit buffer's first element, before it is added (seg) */
    INJ_TX_ADDED,         /* ... and after it was added, before it is published (seg) */
    INJ_MSIX,             /* MSI-X table entries programmed */
};


/* ---- host access, counted ---- */

static inline uint32_t cfg_rd(struct refdrv *d, uint32_t off, unsigned size)
{
    uint32_t v = d->h->cfg_read(d->h->ctx, off, size);
    d->st->cfg_reads++;
    return size >= 4 ? v : v & ((1u << (8u * size)) - 1u);
}

static inline void cfg_wr(struct refdrv *d, uint32_t off, unsigned size, uint32_t v)
{
    d->h->cfg_write(d->h->ctx, off, size, v);
    d->st->cfg_writes++;
}

static inline uint64_t mmio_rd(struct refdrv *d, uint64_t addr, unsigned size)
{
    uint64_t v = d->h->mmio_read(d->h->ctx, addr, size);
    d->st->mmio_reads++;
    return size >= 8 ? v : v & ((1ull << (8u * size)) - 1u);
}

static inline void mmio_wr(struct refdrv *d, uint64_t addr, unsigned size, uint64_t v)
{
    d->h->mmio_write(d->h->ctx, addr, size, v);
    d->st->mmio_writes++;
}

static inline uint32_t common_rd(struct refdrv *d, uint32_t off, unsigned size)
{
    return (uint32_t)mmio_rd(d, d->common.addr + off, size);
}

static inline void common_wr(struct refdrv *d, uint32_t off, unsigned size, uint32_t v)
{
    mmio_wr(d, d->common.addr + off, size, v);
}

/* 64-bit fields are two 32-bit halves, low first ("PCI Device Layout"). */
static inline void common_wr64(struct refdrv *d, uint32_t off, uint64_t v)
{
    common_wr(d, off, 4, (uint32_t)v);
    common_wr(d, off + 4u, 4, (uint32_t)(v >> 32));
}

/* viosim extension: one posted MMIO write of a queue's suppression fields. Charged as
 * every MMIO write is (host.mmio_write_ns), like a doorbell. */
static inline void devmem_event_write(void *ctx, uint32_t off, unsigned size, uint32_t value)
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
static inline void devmem_event_flush(struct refdrv *d, const struct drv_queue *q)
{
    if (q->event_slot == 0 || d->f_devmem_recheck || d->p->devmem_event_no_flush)
        return;
    (void)mmio_rd(d, q->event_slot, 4);
    d->st->devmem_event_flush_reads++;
}

/* Several pairs: what follows is pair k's work (k >= 0), or shared work again after
 * every pair's is done (-1) -- vs_host_ops.cpu_for_pair. Nothing with one pair. */
static inline void on_pair(struct refdrv *d, int32_t k)
{
    if (d->pairs > 1u && d->h->cpu_for_pair != NULL)
        d->h->cpu_for_pair(d->h->ctx, k);
}

static inline uint64_t now_ps(const struct refdrv *d)
{
    return d->h->now_ps(d->h->ctx);
}

static inline uint64_t align_up(uint64_t v, uint64_t a)
{
    return (v + a - 1u) & ~(a - 1u);
}

/* Time since an earlier instant (0 if the clock went backwards). */
static inline uint64_t elapsed_ps(uint64_t now, uint64_t since)
{
    return now > since ? now - since : 0;
}

static inline bool is_pow2(uint64_t v)
{
    return v != 0 && (v & (v - 1u)) == 0;
}

/* ---- bringup.c ---- */

void rd_status_set(struct refdrv *d, uint8_t bit);
enum refdrv_result rd_give_up(struct refdrv *d, enum refdrv_result r);
bool rd_device_reset(struct refdrv *d);
enum refdrv_result rd_check_status(struct refdrv *d);
bool rd_interrupt_is_config(struct refdrv *d, int v);
bool rd_iommu_possible(const struct refdrv *d);

/* ---- memory.c ---- */

uint8_t *rd_dev_alloc(struct refdrv *d, uint64_t bytes, uint64_t align, uint16_t queue,
                      bool writable, uint64_t *gpa);
uint64_t rd_dev_addr(const struct refdrv *d, uint64_t gpa);
uint8_t *rd_host_alloc(struct refdrv *d, uint64_t bytes, uint64_t align);
enum refdrv_result rd_iommu_setup(struct refdrv *d);

/* ---- queues.c ---- */

void rd_notify_queue(struct refdrv *d, struct drv_queue *q);
void rd_kick(struct refdrv *d, struct drv_queue *q);
enum refdrv_result rd_queue_setup(struct refdrv *d, uint16_t slot, uint16_t index, uint16_t vector);
enum refdrv_result rd_buffers_setup(struct refdrv *d);
enum refdrv_result rd_ctrl_setup(struct refdrv *d);
bool rd_coal_vq_set(struct refdrv *d, uint16_t vq, const struct refdrv_coal *c);
bool rd_coal_adapt(struct refdrv *d, uint64_t now);
enum refdrv_result rd_coal_start(struct refdrv *d);
enum refdrv_result rd_mq_start(struct refdrv *d);
void rd_mq_pairs_wrong(struct refdrv *d, uint32_t pairs);

/* ---- inject.c ---- */

bool rd_inject(struct refdrv *d, enum inj_point at, struct drv_queue *q, struct drv_seg *seg);

/* ---- txrx.c ---- */

bool rd_post_rx(struct refdrv *d, struct drv_queue *rx);
bool rd_tx_before_pairs(struct refdrv *d);
enum refdrv_result rd_mrg_setup(struct refdrv *d);
enum refdrv_result rd_run_traffic(struct refdrv *d);
void rd_traffic_setup(struct refdrv *d);

#endif
