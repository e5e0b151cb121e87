/* refdrv.h -- the reference virtio-net driver.
 *
 * Brings the device up as the spec's driver requirements say ("Device
 * Initialization": reset, ACKNOWLEDGE, DRIVER, feature negotiation, FEATURES_OK
 * re-read, queue set-up, DRIVER_OK) over PCI (enumeration, BAR sizing and
 * assignment, capability walk, MSI-X), then transmits frames on the TX queue and
 * receives them on the RX queue, checking every payload. Packed rings when
 * VIRTIO_F_RING_PACKED is negotiated, split rings otherwise (the device does not offer
 * it, or `decline` has it).
 */
#ifndef VIOSIM_REFDRV_H
#define VIOSIM_REFDRV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hist.h"
#include "host_ops.h"
#include "traffic.h"
#include "virtio_wire.h"

#define REFDRV_FRAME_SIZES_MAX 16
/* Queue pairs the driver can drive (driver.queue_pairs_count): as many as a virtio-net
 * device can have ("max_virtqueue_pairs", 1 .. 0x8000) is more than this model offers
 * (VNET_PAIRS_MAX), so the driver stops at the model's 256. */
#define REFDRV_PAIRS_MAX 256u

enum refdrv_mode {
    REFDRV_MODE_INTERRUPT, /* sleep until an interrupt when there is nothing to do */
    REFDRV_MODE_POLL,      /* keep polling the rings, interrupts suppressed */
    REFDRV_MODE_NAPI,      /* sleep until an interrupt, then poll with interrupts off until
                              napi_budget_frames frames are done or the device has nothing
                              outstanding, then ask for interrupts again */
};

/* How frame sizes follow one another. */
enum refdrv_size_mix {
    REFDRV_SIZES_CYCLE = 0, /* frame_sizes_bytes in order, over and over */
    REFDRV_SIZES_RANDOM,    /* a uniform, seeded pick from frame_sizes_bytes per frame */
    REFDRV_SIZES_IMIX,      /* simple IMIX 7:4:1 (traffic.h); frame_sizes_bytes unused */
};

/* How a transmitted frame is described to the device. Every layout carries the 12-byte
 * struct virtio_net_hdr followed by the frame. */
enum refdrv_tx_layout {
    REFDRV_TX_ONE_DESC = 0, /* header and frame in one descriptor (the default) */
    REFDRV_TX_CHAIN,        /* header and frame in a chain of two descriptors */
    REFDRV_TX_INDIRECT,     /* one indirect descriptor to a table of two (header, frame);
                               a chain when VIRTIO_F_INDIRECT_DESC is not negotiated */
};

/* Notification coalescing ("Notifications Coalescing"): whether and how the driver
 * tunes the device's max_packets / max_usecs over the control queue. */
enum refdrv_coal_policy {
    REFDRV_COAL_OFF = 0,  /* CTRL_VQ and the coalescing features are not negotiated */
    REFDRV_COAL_STATIC,   /* RX_SET and TX_SET once, after DRIVER_OK */
    REFDRV_COAL_ADAPTIVE, /* VQ_SET per queue, a profile step per interval (refdrv/queues.c) */
};

/* Fault injection (driver.inject_violation, docs/conformance.md): the driver breaks one
 * driver-conformance rule (model/conformance.h) once, at a natural point of its work,
 * and otherwise behaves as usual. X(name): the rule's name, or for RING_RULE the device
 * reason (model/vs_reason.h) the mistake must produce. NONE: a clean driver. Some need
 * a configuration: QUEUE_SIZE_ZERO packed rings, QUEUE_SIZE_NOT_POWER_OF_2 split rings,
 * NOTIFY_QUEUE_NOT_ENABLED no control queue (coal_policy off), CTRL_COAL_* a control
 * queue (coal_policy static or adaptive), TX_HAS_WRITABLE and TX_FRAME_TOO_SHORT the
 * one_desc layout, DESC_ZERO_LENGTH no indirect table (docs/conformance.md). */
#define REFDRV_INJECTIONS(X) \
    X(NONE) \
    X(STATUS_BIT_CLEARED) X(STATUS_RESERVED_BIT) X(INIT_ORDER) X(INIT_AFTER_FAILED) \
    X(RESET_NOT_AWAITED) X(FEATURE_NOT_OFFERED) X(FEATURE_VERSION_1_DECLINED) \
    X(FEATURE_DEPENDENCY) X(FEATURE_AFTER_FEATURES_OK) X(READ_ONLY_FIELD_WRITTEN) \
    X(QUEUE_SIZE_ZERO) X(QUEUE_SIZE_NOT_POWER_OF_2) X(QUEUE_CONFIG_AFTER_ENABLE) \
    X(QUEUE_ENABLE_ZERO) X(QUEUE_RESET_NOT_NEGOTIATED) X(NOTIFY_BEFORE_DRIVER_OK) \
    X(NOTIFY_WIDTH) X(NOTIFY_WRONG_QUEUE) X(NOTIFY_QUEUE_NOT_ENABLED) \
    X(CTRL_COAL_NOT_NEGOTIATED) X(CTRL_COAL_VQ_INDEX) X(CTRL_MQ_PAIRS) \
    X(CTRL_MQ_PAIRS_NOT_ENABLED) X(TX_QUEUE_NOT_IN_USE) \
    /* RING_RULE, by device reason */ \
    X(TX_HAS_WRITABLE) X(RX_HAS_READABLE) X(DESC_ZERO_LENGTH) X(TX_FRAME_TOO_SHORT) \
    X(RX_BUFFER_TOO_SMALL) X(RING_MISALIGNED) X(MSIX_RESERVED_BITS)

enum refdrv_inject {
#define REFDRV_INJECT_ENUM(name) REFDRV_INJECT_##name,
    REFDRV_INJECTIONS(REFDRV_INJECT_ENUM)
#undef REFDRV_INJECT_ENUM
    REFDRV_INJECT_COUNT
};

/* The injection's name as in the list above ("NONE" for none). */
const char *refdrv_inject_name(enum refdrv_inject i);

struct refdrv_coal {
    uint32_t max_packets;
    uint32_t max_usecs;
};

struct refdrv_params {
    uint64_t frames_count;          /* frames to transmit (and expect back in loopback) */
    uint32_t frame_sizes_bytes[REFDRV_FRAME_SIZES_MAX]; /* cycled in order */
    uint32_t frame_sizes_count;
    uint32_t rx_buffer_bytes;       /* size of each posted receive buffer; 0: 1526, or with
                                       mrg_rxbuf negotiated 2048 */
    uint16_t queue_size_entries;    /* driver's queue size (<= device maximum) */
    double tx_rate_mpps;            /* offered load; 0 = as fast as the rings allow */
    enum traffic_arrival_kind arrival; /* poisson, onoff need tx_rate_mpps > 0 */
    uint32_t closed_loop_requests;  /* closed: frames sent and not yet received back, at most */
    enum traffic_period_kind onoff_periods;
    double onoff_on_us, onoff_off_us; /* onoff: (mean) length of on and off periods */
    enum refdrv_size_mix frame_size_mix;
    /* 0: plain test frames (traffic_build); N: flow frames (IPv4/UDP, traffic_build_flow)
     * of N flows, frame k in flow k mod N; at least TRAFFIC_FLOW_HDR_BYTES long. */
    uint32_t flows_count;
    /* Queue pairs wanted (0 or 1: one, VIRTIO_NET_F_MQ not accepted). More than one:
     * VIRTIO_NET_F_MQ and VIRTIO_NET_F_CTRL_VQ accepted when offered, min(this,
     * max_virtqueue_pairs) pairs set up and enabled with VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET.
     * Frame k leaves on transmitq (flow mod pairs) + 1 with flows, (k mod pairs) + 1
     * without (refdrv/txrx.c). At most REFDRV_PAIRS_MAX. */
    uint16_t queue_pairs_count;
    /* Accept VIRTIO_NET_F_MRG_RXBUF when offered: receive buffers of rx_buffer_bytes,
     * a frame spread over num_buffers of them is put back together and checked. */
    bool mrg_rxbuf;
    enum refdrv_mode mode;
    uint32_t napi_budget_frames;    /* napi: frames per interrupt; 0 = 64 */
    bool expect_loopback;           /* every frame sent must come back intact */
    vs_features decline;            /* features the driver refuses even if offered */
    uint64_t seed;                  /* payload pattern, arrival and size-mix seed */
    uint64_t idle_timeout_ns;       /* give up waiting for frames after this long idle */
    enum refdrv_tx_layout tx_layout;
    /* With VIRTIO_F_ACCESS_PLATFORM negotiated the driver maps everything the device
     * touches in IOMMU page tables it builds (workloads/iopt.h) and gives the device
     * IOVAs: iova = physical address + iova_offset. */
    uint64_t iova_offset;           /* multiple of iommu_page_bytes, IOVA < 2^48 */
    uint64_t iommu_page_bytes;      /* 4096 or 2097152 */
    uint32_t queue_pasid[3];        /* address space of RX, TX, control queue memory */
    enum refdrv_coal_policy coal_policy;
    struct refdrv_coal coal_rx, coal_tx; /* static: what RX_SET and TX_SET send */
    uint32_t coal_adaptive_interval_us;  /* adaptive: measurement interval; 0 = 50 */
    /* viosim-specific, NON-STANDARD: accept VIOSIM_NET_F_DEVMEM_EVENT when the device
     * offers it (with its vendor data capability) and write the driver's event
     * suppression fields to device memory by MMIO (docs/event-suppression.md). */
    bool devmem_event;
    /* With devmem_event: skip the MMIO read that flushes the suppression writes before
     * the rings are re-checked. UNSAFE (notifications can be lost); for studying that
     * race only. */
    bool devmem_event_no_flush;
    enum refdrv_inject inject;      /* the rule to break once; NONE: a clean driver */
};

struct refdrv_stats {
    uint64_t tx_frames, tx_bytes;
    uint64_t rx_frames, rx_bytes;
    uint64_t rx_bad_payload;        /* frames whose payload did not match what was sent */
    uint64_t rx_flow_frames;        /* good frames that were flow frames (IPv4/UDP) */
    /* Multiqueue: pairs in use (1 without VIRTIO_NET_F_MQ), and per pair (index 0 is
     * receiveq1/transmitq1) the frames whose transmission completed on its transmitq and
     * the frames received on its receiveq (good or bad). */
    uint64_t mq_pairs;
    uint64_t tx_frames_pair[REFDRV_PAIRS_MAX], rx_frames_pair[REFDRV_PAIRS_MAX];
    /* VIRTIO_NET_F_MRG_RXBUF: negotiated (0/1), receive buffers used, and frames that
     * came in more than one buffer. */
    uint64_t mrg_rxbuf_negotiated, rx_buffers, rx_merged_frames;
    uint64_t notifications;         /* notify writes to the device */
    uint64_t notifications_suppressed; /* kicks skipped because the device asked so */
    uint64_t interrupts;
    uint64_t polls_empty;
    /* Control queue (coalescing only): commands sent, commands not answered
     * VIRTIO_NET_OK (or a VQ_GET read-back that differs), adaptive profile changes. */
    uint64_t ctrl_commands, ctrl_errors, coal_retunes;
    uint64_t mmio_reads, mmio_writes, cfg_reads, cfg_writes;
    /* VIRTIO_F_ACCESS_PLATFORM only: IOMMU pages the driver mapped (over all address
     * spaces) and page-table pages it built for them (roots included). */
    uint64_t iommu_pages_mapped, iommu_table_pages;
    /* VIOSIM_NET_F_DEVMEM_EVENT: negotiated (0/1), MMIO writes of suppression fields,
     * and MMIO reads that flush them before the ring is re-checked. */
    uint64_t devmem_event_negotiated;
    uint64_t devmem_event_recheck_negotiated; /* VIOSIM_NET_F_DEVMEM_EVENT_RECHECK too */
    uint64_t devmem_event_writes, devmem_event_flush_reads;
    /* Latency of each frame from posting on TX to reaping on RX, picoseconds, recorded
     * only in loopback; owned by the caller (may be NULL). */
    struct hist *latency;
};

enum refdrv_result {
    REFDRV_OK = 0,
    REFDRV_NO_DEVICE,         /* vendor/device id not a virtio-net modern device */
    REFDRV_BAD_CAPS,          /* a required virtio capability is missing or malformed */
    REFDRV_FEATURES_REFUSED,  /* device did not keep FEATURES_OK */
    REFDRV_NO_MEMORY,         /* guest memory too small for rings and buffers */
    REFDRV_DEVICE_ERROR,      /* device set DEVICE_NEEDS_RESET */
    REFDRV_TIMEOUT,           /* traffic stalled for idle_timeout_ns */
    REFDRV_MQ_REFUSED,        /* VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET not answered VIRTIO_NET_OK */
};

const char *refdrv_result_name(enum refdrv_result r);

/* Run the whole driver: init, traffic, then reset the device. */
enum refdrv_result refdrv_run(const struct vs_host_ops *host, const struct refdrv_params *p,
                              struct refdrv_stats *stats);
/* The same in caller-provided state of refdrv_state_bytes() bytes, zero-filled and
 * suitably aligned for any object, as calloc gives (calloc's fresh pages are zero
 * without being written, and most of the state's tables are never touched). For a caller that may abandon a run midway,
 * e.g. a simulation stopped while the driver's thread waits: it still owns, and frees,
 * the state. */
size_t refdrv_state_bytes(void);
enum refdrv_result refdrv_run_in(void *state, const struct vs_host_ops *host,
                                 const struct refdrv_params *p, struct refdrv_stats *stats);

#endif
