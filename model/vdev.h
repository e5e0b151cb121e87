/* vdev.h -- the whole virtio-net PCI function, composed from the kernels.
 *
 * Owns the BAR layout (one table), routes config and BAR accesses to the kernels
 * (pci_cfg, virtio_pci, msix, the device-specific config), gates DMA on bus-master
 * enable, runs the net personality on the packed queues, and turns any guest
 * violation into DEVICE_NEEDS_RESET with a named reason plus a configuration change
 * notification. Untimed: the platform calls in and charges for what was done.
 */
#ifndef VIOSIM_VDEV_H
#define VIOSIM_VDEV_H

#include <stdbool.h>
#include <stdint.h>

#include "guest_ops.h"
#include "coalesce.h"
#include "msix.h"
#include "net_backend.h"
#include "packed_vq.h"
#include "split_vq.h"
#include "pci_cfg.h"
#include "virtio_pci.h"
#include "virtio_wire.h"
#include "vs_reason.h"


struct vdev_params {
    uint8_t revision_id;
    uint16_t subsystem_vendor_id;
    uint16_t subsystem_id;
    uint16_t queue_size_max;          /* entries, 1..32768 */
    uint32_t notify_off_multiplier;   /* bytes; 0 or a power of two that is a multiple of 4 */
    vs_features withdraw;             /* offered features removed (quirk) */
    uint8_t mac[6];
    uint32_t max_frame_bytes;         /* largest frame accepted on TX, without virtio-net header */
    uint32_t rx_fifo_frames;          /* frames the device can hold waiting for RX buffers */
    enum vdev_backend backend;
    struct net_peer responder;        /* VDEV_BACKEND_RESPONDER: the peer's MAC and IPv4 */
    uint32_t used_batch_max;          /* buffers per used-ring publication, >= 1 */
    /* viosim-specific, NON-STANDARD: offer VIOSIM_NET_F_DEVMEM_EVENT and its window
     * (docs/event-suppression.md). false = a standard device, byte for byte. */
    bool devmem_event;
    /* With devmem_event: also offer VIOSIM_NET_F_DEVMEM_EVENT_RECHECK (re-decide on slot
     * writes). */
    bool devmem_event_recheck;
    uint32_t queue_engines;           /* buffers of one queue in flight at once, 1..VDEV_ENGINES_MAX
                                       * (0 counts as 1): the per-slot scratch vdev_init allocates */
    uint16_t fetch_batch;             /* descriptors per fetch read at most, 1..VQ_FETCH_BATCH_MAX (0: 1) */
    enum vq_fetch_source fetch_source; /* where the fetch count comes from (vq.h) */
};

/* Most buffers of one queue in flight at once (slots per queue). */
#define VDEV_ENGINES_MAX 32u

/* Queue numbering of a virtio-net device with one queue pair ("Virtqueues"). */
#define VDEV_QUEUE_RX   0u
#define VDEV_QUEUE_TX   1u
#define VDEV_QUEUE_CTRL 2u
#define VDEV_QUEUES     3u

/* Where each virtio structure lives: BAR and offset, computed once at init. */
enum vdev_region_kind {
    VDEV_REGION_COMMON, VDEV_REGION_ISR, VDEV_REGION_DEVICE, VDEV_REGION_NOTIFY,
    VDEV_REGION_MSIX_TABLE, VDEV_REGION_MSIX_PBA,
    VDEV_REGION_DEVMEM_EVENT, /* viosim extension; length 0 (absent) unless offered */
    VDEV_REGION_COUNT
};
struct vdev_region {
    uint8_t bar;
    uint32_t offset;
    uint32_t length;
};

/* What one processing step did, for the platform to charge. */
struct vdev_work {
    uint32_t buffers;        /* buffers (chains) completed */
    uint32_t descs;          /* descriptors fetched */
    uint32_t bytes_read;     /* buffer bytes read from guest memory */
    uint32_t bytes_written;  /* buffer bytes written to guest memory */
    uint32_t frames;         /* frames transmitted or received */
};

enum vdev_step {
    VDEV_STEP_DONE,     /* did one unit of work; call again */
    VDEV_STEP_WAIT,     /* vdev_finish: an earlier-taken buffer of the queue is not finished */
    VDEV_STEP_IDLE,     /* nothing to do on this queue now */
    VDEV_STEP_BLOCKED,  /* work exists but waits for a resource (RX FIFO full / no RX buffer) */
    VDEV_STEP_FAILED,   /* the device needs a reset (vdev.error says why) */
};

/* One queue: its ring format (picked when the driver enables it) and that format's
 * state. */
struct vdev_queue {
    const struct vq_ops *ops;
    struct vq_config cfg;
    union {
        struct pvq packed;
        struct svq split;
    } ring;
    bool enabled;
    uint64_t kicks;
    /* Buffers in flight (vdev_take .. vdev_finish): the next take's number, the number
     * of the buffer whose turn it is to finish, and (TX, loopback) FIFO places taken
     * buffers hold. Cleared with the queue. */
    uint32_t take_seq, finish_seq;
    uint32_t fifo_reserved;
};

struct vdev;

/* A DMA gate: the platform's ops wrapped with the bus-master check, the counters and
 * the queue-generation check. */
struct vdev_gate {
    struct vdev *dev;
    uint16_t queue;
    const struct vs_guest_ops *platform;
    struct vs_guest_ops ops;
    bool aborted;        /* an access saw the queue reset */
    bool pinned;         /* compare against `gen` (a slot's take) instead of the current */
    uint32_t gen;
};

/* One buffer of a queue in flight: the element vdev_take found, the scratch its data
 * moves through, and its place in the queue's completion order. The queues' engines
 * (and a queue's several engines) run concurrently in the platform and any phase may
 * be suspended in a DMA, so nothing here is shared between slots. */
struct vdev_slot {
    struct vq_elem e;
    struct vq_seg *segs;     /* one chain, queue_size_max entries */
    uint8_t *frame_buf;      /* one frame with its virtio-net header (TX, RX) */
    uint32_t len;            /* RX: header + frame bytes to write */
    uint32_t written;        /* used length to return */
    bool drop;               /* RX: the frame did not fit; the buffer goes back unused */
    bool busy;               /* taken and not yet finished */
    uint32_t seq;            /* take order within the queue's generation */
    uint32_t generation;     /* the queue's generation at take */
    struct vdev_gate gate;
};

/* Why a used buffer notification decision was taken under coalescing. */
enum vdev_coal_cause {
    VDEV_COAL_BY_PACKETS, /* max_packets buffers counted */
    VDEV_COAL_BY_TIMER,   /* max_usecs elapsed since the first counted buffer */
    VDEV_COAL_BY_CHANGE,  /* new parameters met the conditions at once */
    VDEV_COAL_CAUSES
};

struct vdev_stats {
    uint64_t tx_frames, tx_bytes;
    uint64_t rx_frames, rx_bytes;
    struct net_backend_counts backend; /* sink drops, responder answers */
    uint64_t rx_no_buffer;       /* RX step found a frame but no receive buffer */
    uint64_t rx_dropped_too_big; /* frame larger than the receive buffer (no MRG_RXBUF) */
    uint64_t ctrl_commands;
    uint64_t ctrl_ok, ctrl_err;  /* control commands answered VIRTIO_NET_OK / _ERR */
    /* Notifications sent under coalescing, per queue and cause (enum vdev_coal_cause),
     * and decisions whose conditions were met but the driver suppressed. */
    uint64_t coal_notify[VDEV_QUEUES][VDEV_COAL_CAUSES];
    uint64_t coal_suppressed[VDEV_QUEUES];
    uint64_t interrupts_raised;  /* used buffer notifications decided */
    uint64_t config_interrupts;
    uint64_t dma_reads[VS_DMA_KIND_COUNT], dma_writes[VS_DMA_KIND_COUNT];
    uint64_t dma_read_bytes, dma_write_bytes;
    uint64_t dma_blocked;        /* DMA refused: bus mastering off */
    uint64_t mmio_reads, mmio_writes, mmio_unclaimed;
    uint64_t cfg_reads, cfg_writes;
    uint64_t resets;
    /* Event suppression decisions per queue: the driver's fields read by DMA (across the
     * link) or from the device-local copy (VIOSIM_NET_F_DEVMEM_EVENT). */
    uint64_t event_reads_link[VDEV_QUEUES], event_reads_local[VDEV_QUEUES];
    uint64_t devmem_event_writes;         /* slot writes taken */
    uint64_t devmem_event_writes_ignored; /* slot writes while the extension is not negotiated */
    uint64_t devmem_event_recheck_interrupts; /* notifications decided on a slot write */
    /* Ring statistics of queues since reset or re-enabled (a queue's own are cleared
     * with it); vdev_ring_stats adds the live queue's. */
    struct vq_stats ring_retired[VDEV_QUEUES];
};

#define VDEV_MSI_OUTBOX 128u

struct vdev {
    struct vdev_params p;
    struct pci_cfg pci;
    struct vpci vpci;
    struct msix msix;
    struct virtio_net_config netcfg;
    struct vdev_region region[VDEV_REGION_COUNT];
    uint8_t cap_pci_cfg;     /* config-space offset of the PCI-cfg access capability */
    uint8_t cap_msix;        /* config-space offset of the MSI-X capability */
    uint16_t num_queues;
    struct vdev_queue q[VDEV_QUEUES];

    enum vs_reason error;    /* sticky until reset; VS_REASON_NONE while healthy */
    uint16_t error_queue;    /* queue being processed when it happened (0xffff: none) */

    /* Frames waiting for receive buffers (loopback, responder answers): rx_fifo_frames
     * of up to max_frame_bytes (net_backend.h). */
    struct net_fifo fifo;

    /* Per-slot scratch: p.queue_engines slots per queue (vdev_slot). */
    struct vdev_slot slot[VDEV_QUEUES][VDEV_ENGINES_MAX];
    uint32_t engines;        /* slots per queue in use: p.queue_engines, at least 1 */

    struct msix_message outbox[VDEV_MSI_OUTBOX];
    uint32_t outbox_head, outbox_count;

    /* DMA gate per queue for the queue-level operations (vdev_complete, notifications);
     * the buffer phases use their slot's gate. */
    struct vdev_gate gate[VDEV_QUEUES];

    /* Per-queue generation, bumped whenever the driver resets the device or the queue
     * or enables it. The platform may suspend a step inside a DMA (the access takes
     * simulated time) and run a register write meanwhile: a step whose queue changed
     * generation under it stops at once, without touching the new queue state. */
    uint32_t generation[VDEV_QUEUES];

    /* Notification coalescing: per queue, and the values of the last TX_SET / RX_SET
     * that a re-enabled queue takes ("Notifications Coalescing", device normative). */
    struct coal_queue coal[VDEV_QUEUES]; /* model/coalesce.h */
    struct virtio_net_ctrl_coal coal_tx_set, coal_rx_set;
    /* viosim extension (VIOSIM_NET_F_DEVMEM_EVENT): the driver's suppression fields of
     * each queue as it last wrote them by MMIO; cleared by device and queue reset. */
    uint8_t devmem_event[VDEV_QUEUES][VIOSIM_DEVMEM_SLOT_BYTES];

    struct vdev_stats stats;
};

/* Validate params (returns a static message or NULL when fine), then build the
 * function. vdev_init allocates the FIFO and scratch; vdev_fini frees them.
 * Returns false if allocation failed. */
const char *vdev_check_params(const struct vdev_params *p);
bool vdev_init(struct vdev *d, const struct vdev_params *p);
void vdev_fini(struct vdev *d);

/* Configuration space (ECAM-style: off 0..4095, size 1/2/4). */
uint32_t vdev_cfg_read(struct vdev *d, uint32_t off, unsigned size);
void vdev_cfg_write(struct vdev *d, uint32_t off, unsigned size, uint32_t value);

/* Memory space. Returns false when no BAR claims the address (unsupported request:
 * reads then return all-ones). A notify write sets *kicked_queue (else 0xffff). */
bool vdev_mmio_read(struct vdev *d, uint64_t addr, unsigned size, uint64_t *value);
bool vdev_mmio_write(struct vdev *d, uint64_t addr, unsigned size, uint64_t value,
                     uint16_t *kicked_queue);

/* Processing in phases, so that up to p.queue_engines buffers of one queue can be in
 * flight, each in its own slot (0 .. engines - 1), issuing its own DMA:
 *   vdev_take   -> ring state: pop the next buffer (descriptor fetch) into the slot and
 *                  check it; RX also takes the next frame from the FIFO; TX (loopback)
 *                  reserves a FIFO place. DONE (slot busy), or IDLE / BLOCKED / FAILED
 *                  as the one-call steps below say;
 *   vdev_move   -> the buffer's data DMA only (no ring state);
 *   vdev_finish -> ring state: in take order (WAIT if an earlier buffer of the queue is
 *                  not finished yet; call again after it is), TX puts the frame in the
 *                  FIFO, then the used buffer is pushed (and published when the batch is
 *                  full).
 * A caller must not run two vdev_take, or two vdev_finish, of one queue at the same
 * time (they share the ring); move runs alongside anything. A slot whose queue was
 * reset after its take gets IDLE from move and finish and touches nothing.
 * ops: the platform's guest memory for this slot's DMA. */
enum vdev_step vdev_take(struct vdev *d, uint16_t q, unsigned slot, const struct vs_guest_ops *ops,
                         struct vdev_work *w);
enum vdev_step vdev_move(struct vdev *d, uint16_t q, unsigned slot, struct vdev_work *w);
enum vdev_step vdev_finish(struct vdev *d, uint16_t q, unsigned slot, struct vdev_work *w);
/* Would vdev_finish(d, q, slot) return VDEV_STEP_WAIT (and touch nothing)? True when
 * the slot holds a live buffer of q whose turn has not come. vdev_finish itself decides
 * WAIT with it; inline so that a platform whose engines wake to find it is not yet their
 * turn (most wake-ups, with many engines per queue) need not make the call. */
static inline bool vdev_finish_waits(const struct vdev *d, uint16_t q, unsigned slot)
{
    if (q >= VDEV_QUEUES || slot >= d->engines || d->error != VS_REASON_NONE)
        return false;
    const struct vdev_slot *sl = &d->slot[q][slot];
    return sl->busy && sl->generation == d->generation[q] && sl->seq != d->q[q].finish_seq;
}

/* Processing, one buffer per call (take, move and finish on slot 0), on a queue that is
 * enabled after DRIVER_OK. ops: the platform's guest memory. */
enum vdev_step vdev_tx_step(struct vdev *d, const struct vs_guest_ops *ops, struct vdev_work *w);
enum vdev_step vdev_rx_step(struct vdev *d, const struct vs_guest_ops *ops, struct vdev_work *w);
/* One control command ("Control Virtqueue"): see vdev.c for what the device answers
 * and what makes a buffer malformed. */
enum vdev_step vdev_ctrl_step(struct vdev *d, const struct vs_guest_ops *ops, struct vdev_work *w);

/* Publish queue q's pending used buffers (head flags last) and, if the driver's event
 * suppression allows, queue its MSI-X message in the outbox. Under notification
 * coalescing (q a transmit or receive queue with non-zero max_packets and max_usecs)
 * the buffers are counted and the suppression check and message wait until
 * max_packets are counted or the platform's timer ends (vdev_coal_expire). */
enum vdev_step vdev_complete(struct vdev *d, uint16_t q, const struct vs_guest_ops *ops);

/* Coalescing timer of queue q: true while published buffers wait for a notification
 * decision and max_usecs is in force; then *usecs is max_usecs and *window names the
 * counting window, which started with its first buffer. A later call that returns a
 * different window means the old one ended (a decision was taken) and a new one began.
 * The platform starts max_usecs at the window's first buffer and calls
 * vdev_coal_expire when it ends. */
bool vdev_coal_timer(const struct vdev *d, uint16_t q, uint32_t *usecs, uint32_t *window);
/* max_usecs of `window` elapsed: take the notification decision (event suppression
 * still applies). IDLE when that window already ended (a stale timer), DONE when the
 * decision was taken, FAILED when the device needs a reset. It reads and writes q's
 * used-side ring state through q's queue-level DMA gate: never call it while a
 * vdev_finish, vdev_complete, vdev_arm_notifications or vdev_quiet_notifications of q
 * is suspended in a DMA (nor they while it is). */
enum vdev_step vdev_coal_expire(struct vdev *d, uint16_t q, uint32_t window,
                                const struct vs_guest_ops *ops);
/* A control command changed q's coalescing parameters ("Notifications When Coalescing
 * Parameters Change"): vdev_coal_recheck checks the conditions at once and decides
 * if they are met (DONE), else IDLE. The packet condition only: the platform, which
 * owns time, re-arms its timer with the new max_usecs from the window's start. The
 * same calling rule as vdev_coal_expire. */
bool vdev_coal_recheck_needed(const struct vdev *d, uint16_t q);
enum vdev_step vdev_coal_recheck(struct vdev *d, uint16_t q, const struct vs_guest_ops *ops);

/* Before sleeping: ask the driver for notifications on q, then re-check. Returns
 * VDEV_STEP_DONE if buffers became available meanwhile (do not sleep), IDLE otherwise. */
enum vdev_step vdev_arm_notifications(struct vdev *d, uint16_t q, const struct vs_guest_ops *ops);
/* After waking: tell the driver notifications are not needed while we process. */
enum vdev_step vdev_quiet_notifications(struct vdev *d, uint16_t q, const struct vs_guest_ops *ops);

/* Does [addr, addr + size) fall in the device-memory event suppression window (a
 * viosim extension; never true when the device does not offer it)? The platform uses
 * it to apply these posted writes when they arrive rather than when they are sent. */
bool vdev_is_devmem_event_write(const struct vdev *d, uint64_t addr, unsigned size);
/* Ring statistics of queue q over the device's life (every generation). */
struct vq_stats vdev_ring_stats(const struct vdev *d, uint16_t q);

/* Is queue q enabled, DRIVER_OK set, and the device healthy? */
bool vdev_queue_live(const struct vdev *d, uint16_t q);
/* Frames waiting in the device for RX buffers. */
uint32_t vdev_fifo_frames(const struct vdev *d);
bool vdev_fifo_full(const struct vdev *d);

/* Take the next MSI-X message to send (posted write), oldest first. Messages wait
 * while the command register's bus-master enable is clear. */
bool vdev_take_msi(struct vdev *d, struct msix_message *msg);

#endif
