/* pci_transport.h -- the virtio PCI transport of one function: what every virtio
 * device over PCI has, whatever its type ("Virtio Over PCI Bus").
 *
 * Owns the configuration space and its capabilities, the BAR layout (one table of
 * regions; 64- or 32-bit BARs), the common configuration, notifications, ISR, MSI-X
 * (or none) and the outbox of messages, the legacy INTx pin, the DMA gate (bus-master enable, per-queue generation), the queues' ring
 * state, the order in which buffers of a queue are taken and finished, publishing used
 * buffers and the notification decision, and the NEEDS_RESET path (pt_fail, with a
 * named reason). It knows nothing of the device type: a personality (virtio_net.h, or
 * the toy block device in tests/model/test_transport.c) plugs in through two tables:
 *  - struct pt_device: what the transport asks the personality (feature dependencies,
 *    device configuration, queue existence, queue enable/reset, device reset);
 *  - struct pt_role, one per queue: how a buffer of that queue is taken, moved and
 *    finished, how a publication is counted (coalescing), and the flags the platform's
 *    engine loop needs to know how the queue waits.
 * Untimed: the platform calls in and charges for what was done.
 */
#ifndef VIOSIM_PCI_TRANSPORT_H
#define VIOSIM_PCI_TRANSPORT_H

#include <stdbool.h>
#include <stdint.h>

#include "guest_ops.h"
#include "msix.h"
#include "packed_vq.h"
#include "split_vq.h"
#include "pci_cfg.h"
#include "virtio_pci.h"
#include "virtio_wire.h"
#include "vs_reason.h"

/* Queues of one function at most (virtio-net with 256 queue pairs and the control
 * queue: 513). */
#define PT_QUEUES_MAX 513u
/* Most buffers of one queue in flight at once (slots per queue). */
#define PT_ENGINES_MAX 32u
/* "No queue": a failure or a kick that names none. */
#define PT_NO_QUEUE 0xffffu

/* What the composition tells the transport. */
struct pt_params {
    uint16_t device_id;               /* PCI device ID: 0x1040 + the virtio device ID */
    uint32_t class_code;
    uint8_t revision_id;
    uint16_t subsystem_vendor_id;
    uint16_t subsystem_id;
    uint16_t queue_size_max;          /* entries, 1..32768 */
    uint32_t notify_off_multiplier;
    uint16_t num_queues;              /* 1..PT_QUEUES_MAX */
    vs_features device_features;      /* the personality's offered bits */
    vs_features withdraw;             /* offered features removed (quirk), both parts */
    uint32_t device_cfg_bytes;        /* length of the device-specific configuration */
    uint32_t used_batch_max;          /* buffers per used-ring publication, >= 1 */
    bool devmem_event;                /* offer the device-memory event window (viosim) */
    bool devmem_event_recheck;
    uint32_t engines;                 /* slots per queue, 1..PT_ENGINES_MAX (0: 1) */
    uint16_t fetch_batch;
    enum vq_fetch_source fetch_source;
    /* PCI presentation (false, false: 64-bit BARs 0 and 2, an MSI-X capability). */
    bool bars_32bit;                  /* 32-bit memory BARs: virtio structures in BAR0,
                                       * MSI-X table and PBA in BAR1 */
    bool no_msix;                     /* no MSI-X capability, table or PBA: INTx only */
};

/* Where each virtio structure lives: BAR and offset, computed once at init. */
enum pt_region_kind {
    PT_REGION_COMMON, PT_REGION_ISR, PT_REGION_DEVICE, PT_REGION_NOTIFY,
    PT_REGION_MSIX_TABLE, PT_REGION_MSIX_PBA,
    PT_REGION_DEVMEM_EVENT, /* viosim extension; length 0 (absent) unless offered */
    PT_REGION_COUNT
};
struct pt_region {
    uint8_t bar;
    uint32_t offset;
    uint32_t length;
};

/* What one processing step did, for the platform to charge. */
struct pt_work {
    uint32_t buffers;        /* buffers (chains) completed */
    uint32_t descs;          /* descriptors fetched */
    uint32_t bytes_read;     /* buffer bytes read from guest memory */
    uint32_t bytes_written;  /* buffer bytes written to guest memory */
    uint32_t frames;         /* frames transmitted or received (requests, for others) */
};

enum pt_step {
    PT_STEP_DONE,     /* did one unit of work; call again */
    PT_STEP_WAIT,     /* pt_finish: an earlier-taken buffer of the queue is not finished */
    PT_STEP_IDLE,     /* nothing to do on this queue now */
    PT_STEP_BLOCKED,  /* work exists but waits for a resource (the role says which) */
    PT_STEP_FAILED,   /* the device needs a reset (pt.error says why) */
};

/* One queue: its ring format (picked when the driver enables it) and that format's
 * state. */
struct pt_queue {
    const struct vq_ops *ops;
    struct vq_config cfg;
    union {
        struct pvq packed;
        struct svq split;
    } ring;
    bool enabled;
    uint64_t kicks;
    /* Buffers in flight (pt_take .. pt_finish): the next take's number and the number
     * of the buffer whose turn it is to finish. Cleared with the queue. */
    uint32_t take_seq, finish_seq;
    /* Finished buffers of a group the role holds (holds_publication), not yet pushed:
     * pt.held[q][0 .. held_count - 1]. */
    uint32_t held_count;
};

/* A finished buffer waiting for its group's last one before it is pushed. */
struct pt_held {
    struct vq_elem e;
    uint32_t written;
};

struct pt;

/* A DMA gate: the platform's ops wrapped with the bus-master check, the counters and
 * the queue-generation check. */
struct pt_gate {
    struct pt *tp;
    uint16_t queue;
    const struct vs_guest_ops *platform;
    struct vs_guest_ops ops;
    bool aborted;        /* an access saw the queue reset */
    bool pinned;         /* compare against `gen` (a slot's take) instead of the current */
    uint32_t gen;
};

/* One buffer of a queue in flight: the element pt_take found, the chain it spans, and
 * its place in the queue's completion order. The personality keeps what its data moves
 * through in its own per-slot scratch, indexed by the same (queue, slot). */
struct pt_slot {
    struct vq_elem e;
    struct vq_seg *segs;     /* one chain, queue_size_max entries */
    uint32_t written;        /* used length to return (the role's finish sets it) */
    bool busy;               /* taken and not yet finished */
    uint32_t seq;            /* take order within the queue's generation */
    uint32_t generation;     /* the queue's generation at take */
    struct pt_gate gate;
};

/* The cause a role's published hook returns: hold the decision (0), or decide now
 * because every publication is decided on (no coalescing in force); other non-zero
 * causes are the personality's own, passed back to its decided hook. */
#define PT_DECIDE_HOLD  0u
#define PT_DECIDE_EVERY 1u

/* A queue's role: how the personality handles a buffer of it, and how it waits.
 * ctx is pt.dev_ctx. Hooks run inside pt_take / pt_move / pt_finish / pt_complete,
 * after the transport's checks (queue live, slot fresh, turn come). */
struct pt_role {
    /* Take the next buffer into sl: usually pt_pop plus the personality's checks. */
    enum pt_step (*take)(void *ctx, uint16_t q, unsigned k, struct pt_slot *sl, struct pt_work *w);
    /* The buffer's data DMA only, through sl->gate.ops. */
    enum pt_step (*move)(void *ctx, uint16_t q, unsigned k, struct pt_slot *sl, struct pt_work *w);
    /* In take order, before the used buffer is pushed: set sl->written. NULL: keep
     * what move left. */
    void (*finish)(void *ctx, uint16_t q, unsigned k, struct pt_slot *sl);
    /* While true, finished buffers wait, unpushed, for the one that ends the hold; then
     * all are pushed and published together (a group the driver must see whole: a
     * merged receive frame). Asked after finish. NULL: never. */
    bool (*holds_publication)(const void *ctx, uint16_t q);
    /* n used buffers were published: 0 to hold the notification decision (coalescing
     * counts on), else a non-zero cause to decide now. NULL: decide every time. */
    unsigned (*published)(void *ctx, uint16_t q, uint32_t n);
    /* A decision taken with `cause` (from published, or pt_decide's caller): whether
     * the driver's event suppression let the notification through. May be NULL. */
    void (*decided)(void *ctx, uint16_t q, unsigned cause, bool interrupt);
    /* The queue is live but parked: the personality does not serve it now (take
     * answers IDLE whatever its ring holds: virtio-net's transmit queues of pairs not in
     * use), and the driver notified it. The personality may look at the ring, reading
     * only, through ops (the conformance checker's business); take does the same look
     * itself. NULL: nothing to look at. See pt_look_parked. */
    void (*look_parked)(void *ctx, uint16_t q, const struct vs_guest_ops *ops);

    /* For the platform's engine loop (it never asks which queue it runs):
     * IDLE from take means "wait for the driver" (arm notifications, sleep until a
     * kick); BLOCKED means "wait for the device's other side" (the role's waits_on).
     * idle_waits_for_driver false turns that round (RX: IDLE is "no frame yet", the
     * device's side; BLOCKED is "no buffer", the driver's). */
    bool idle_waits_for_driver;
    /* Woken by a kick of its own queue only, not by every register write. */
    bool wakes_on_kick_only;
    /* One engine whatever device.queue_engines says (a queue of rare commands). */
    bool single_engine;
    /* Cross-queue wake-ups (0: none): a completed step of a queue whose role signals
     * S (a step that moved frames if signals_on_frames, else one that completed
     * buffers) wakes the engines of queues whose role waits_on S; a BLOCKED engine of
     * queue q asks still_blocked(ctx, q) before it sleeps on its waits_on. Which
     * queues a step gave work to, the personality says with pt_wake (pt_take_wake):
     * a platform may wake only those instead of every queue waiting on S. */
    unsigned waits_on, signals;
    bool signals_on_frames;   /* signal when the step moved frames (else: buffers) */
    /* Every step that gives this queue work on its waits_on marks it (pt_wake): a
     * platform may wake it alone, when a step signalling waits_on marked it, instead of
     * with every queue waiting on that signal. false: wake it on every such step. */
    bool woken_by_mark;
    bool (*still_blocked)(const void *ctx, uint16_t q);
    /* Has coalescing parameters (the platform runs a max_usecs timer for it). */
    bool coalesces;
    /* A completed step may have changed other queues' coalescing parameters. */
    bool changes_coalescing;
};

/* What the transport asks the device type. ctx is pt.dev_ctx. */
struct pt_device {
    /* FEATURES_OK: the device type's feature dependencies hold ("Feature Bits"). */
    bool (*features_ok)(void *ctx, const vs_features *drv);
    /* Device-specific configuration: an access within device_cfg_bytes. */
    uint64_t (*config_read)(void *ctx, uint32_t off, unsigned size);
    void (*config_write)(void *ctx, uint32_t off, unsigned size, uint64_t value);
    /* Does queue q (< num_queues) exist with the features negotiated? */
    bool (*queue_exists)(void *ctx, uint16_t q);
    /* The driver enabled queue q (after the transport set up its ring). */
    void (*queue_enabled)(void *ctx, uint16_t q);
    /* Queue q's state is being cleared (queue reset, device reset). */
    void (*queue_reset)(void *ctx, uint16_t q);
    /* Device reset, after the transport's own state is cleared. */
    void (*reset)(void *ctx);
    /* The role of queue q as the device type numbers its queues now (optional; NULL
     * keeps pt_init's). Asked for every queue after a device reset and when the driver
     * sets FEATURES_OK: a device type whose queue numbering depends on the features
     * negotiated (virtio-net's control queue) fixes its roles there, before the driver
     * sets up any queue. */
    const struct pt_role *(*queue_role)(void *ctx, uint16_t q);
};

struct pt_stats {
    uint64_t interrupts_raised;  /* used buffer notifications decided */
    uint64_t config_interrupts;
    uint64_t dma_reads[VS_DMA_KIND_COUNT], dma_writes[VS_DMA_KIND_COUNT];
    uint64_t dma_read_bytes, dma_write_bytes;
    uint64_t dma_blocked;        /* DMA refused: bus mastering off */
    uint64_t mmio_reads, mmio_writes, mmio_unclaimed;
    uint64_t cfg_reads, cfg_writes;
    uint64_t resets;
    uint64_t function_resets;    /* pt_function_reset calls */
    uint64_t intx_asserts, intx_deasserts; /* INTx pin transitions */
    /* Event suppression decisions per queue: the driver's fields read by DMA (across the
     * link) or from the device-local copy (VIOSIM_NET_F_DEVMEM_EVENT). */
    uint64_t event_reads_link[PT_QUEUES_MAX], event_reads_local[PT_QUEUES_MAX];
    uint64_t devmem_event_writes;         /* slot writes taken */
    uint64_t devmem_event_writes_ignored; /* slot writes while the extension is not negotiated */
    uint64_t devmem_event_recheck_interrupts; /* notifications decided on a slot write */
    /* Ring statistics of queues since reset or re-enabled (a queue's own are cleared
     * with it); pt_ring_stats adds the live queue's. */
    struct vq_stats ring_retired[PT_QUEUES_MAX];
};

/* At most one message per vector is outstanding. */
#define PT_MSI_OUTBOX MSIX_VECTORS_MAX

struct pt {
    struct pt_params p;
    const struct pt_device *dev;
    void *dev_ctx;
    const struct pt_role *role[PT_QUEUES_MAX];

    struct pci_cfg pci;
    struct vpci vpci;
    struct msix msix;
    struct pt_region region[PT_REGION_COUNT];
    uint8_t cap_pci_cfg;     /* config-space offset of the PCI-cfg access capability */
    uint8_t cap_msix;        /* config-space offset of the MSI-X capability */
    uint16_t num_queues;
    struct pt_queue *q;      /* num_queues of them (allocated by pt_init) */
    /* Per queue whose role holds publication: queue_size_max places for its held
     * buffers (allocated by pt_init; NULL for other queues). */
    struct pt_held **held;

    bool fe_attached;        /* pt_fe_attach since the last reset (register-less front end) */
    enum vs_reason error;    /* sticky until reset; VS_REASON_NONE while healthy */
    uint16_t error_queue;    /* queue being processed when it happened (PT_NO_QUEUE: none) */

    /* Per-slot state: `engines` slots per queue (pt_slot), for num_queues queues
     * (allocated by pt_init). */
    struct pt_slot (*slot)[PT_ENGINES_MAX];
    uint32_t engines;        /* slots per queue in use: p.engines, at least 1 */

    struct msix_message outbox[PT_MSI_OUTBOX];
    uint32_t outbox_head, outbox_count;
    /* Legacy INTx: whether the function drives its INTA# pin now (pt_intx_asserted). */
    bool intx_line;

    /* Queues a step gave work to across the device (pt_wake), one bit per queue, until
     * the platform takes them (pt_take_wake); cleared by device reset. */
    uint64_t wake[(PT_QUEUES_MAX + 63u) / 64u];

    /* DMA gate per queue for the queue-level operations (pt_complete, notifications);
     * the buffer phases use their slot's gate. */
    struct pt_gate gate[PT_QUEUES_MAX];

    /* Per-queue generation, bumped whenever the driver resets the device or the queue
     * or enables it. The platform may suspend a step inside a DMA (the access takes
     * simulated time) and run a register write meanwhile: a step whose queue changed
     * generation under it stops at once, without touching the new queue state. */
    uint32_t generation[PT_QUEUES_MAX];

    /* viosim extension (VIOSIM_NET_F_DEVMEM_EVENT): the driver's suppression fields of
     * each queue as it last wrote them by MMIO; cleared by device and queue reset. */
    uint8_t devmem_event[PT_QUEUES_MAX][VIOSIM_DEVMEM_SLOT_BYTES];

    struct pt_stats stats;
};

/* Build the function. roles[q] for q < p->num_queues; dev and its ctx stay the
 * caller's. Allocates the slots' chains; false if allocation failed (then pt_fini has
 * run). The device is left reset (dev->reset called). */
bool pt_init(struct pt *tp, const struct pt_params *p, const struct pt_device *dev, void *ctx,
             const struct pt_role *const *roles);
void pt_fini(struct pt *tp);
/* Function Level Reset (or a conventional reset of the function, as QEMU's DEVICE_RESET
 * asks): configuration space and MSI-X as at power-on, then a device reset; counters and
 * the conformance record kept. The platform's in-flight work sees its queues reset. */
void pt_function_reset(struct pt *tp);

/* Configuration space (ECAM-style: off 0..4095, size 1/2/4). */
uint32_t pt_cfg_read(struct pt *tp, uint32_t off, unsigned size);
void pt_cfg_write(struct pt *tp, uint32_t off, unsigned size, uint32_t value);

/* Memory space. Returns false when no BAR claims the address (unsupported request:
 * reads then return all-ones). A notify write sets *kicked_queue (else PT_NO_QUEUE). */
bool pt_mmio_read(struct pt *tp, uint64_t addr, unsigned size, uint64_t *value);
bool pt_mmio_write(struct pt *tp, uint64_t addr, unsigned size, uint64_t value,
                   uint16_t *kicked_queue);

/* Processing in phases, so that up to `engines` buffers of one queue can be in flight,
 * each in its own slot (0 .. engines - 1), issuing its own DMA:
 *   pt_take   -> ring state: the role takes the next buffer (descriptor fetch) into the
 *                slot and checks it. DONE (slot busy), or IDLE / BLOCKED / FAILED;
 *   pt_move   -> the buffer's data DMA only (no ring state);
 *   pt_finish -> ring state: in take order (WAIT if an earlier buffer of the queue is
 *                not finished yet; call again after it is), the role's finish, then the
 *                used buffer is pushed (and published when the batch is full).
 * A caller must not run two pt_take, or two pt_finish, of one queue at the same time
 * (they share the ring); move runs alongside anything. A slot whose queue was reset
 * after its take gets IDLE from move and finish and touches nothing.
 * ops: the platform's guest memory for this slot's DMA. */
enum pt_step pt_take(struct pt *tp, uint16_t q, unsigned slot, const struct vs_guest_ops *ops,
                     struct pt_work *w);
enum pt_step pt_move(struct pt *tp, uint16_t q, unsigned slot, struct pt_work *w);
enum pt_step pt_finish(struct pt *tp, uint16_t q, unsigned slot, struct pt_work *w);
/* Would pt_finish(tp, q, slot) return PT_STEP_WAIT (and touch nothing)? True when the
 * slot holds a live buffer of q whose turn has not come. pt_finish itself decides WAIT
 * with it; inline so that a platform whose engines wake to find it is not yet their
 * turn (most wake-ups, with many engines per queue) need not make the call. */
static inline bool pt_finish_waits(const struct pt *tp, uint16_t q, unsigned slot)
{
    if (q >= PT_QUEUES_MAX || q >= tp->num_queues || slot >= tp->engines ||
        tp->error != VS_REASON_NONE)
        return false;
    const struct pt_slot *sl = &tp->slot[q][slot];
    return sl->busy && sl->generation == tp->generation[q] && sl->seq != tp->q[q].finish_seq;
}
/* take, move and finish on slot 0: one buffer start to end. */
enum pt_step pt_step_one(struct pt *tp, uint16_t q, const struct vs_guest_ops *ops,
                         struct pt_work *w);

/* Queue q is parked (pt_role.look_parked) and a notification for it came: let its role
 * look, through slot `slot`'s DMA gate (q's generation now). For a platform whose
 * engines of a parked queue sleep instead of taking: call it from an engine of q with
 * no buffer taken, when a notification for q arrives. Nothing happens unless q is live
 * and its role has the hook. */
void pt_look_parked(struct pt *tp, uint16_t q, unsigned slot, const struct vs_guest_ops *ops);

/* For the roles' take: pop the next available buffer of q into sl (IDLE when none). */
enum pt_step pt_pop(struct pt *tp, uint16_t q, struct pt_slot *sl, struct pt_work *w);
/* A buffer DMA of the slot failed with s: IDLE if the queue was reset meanwhile, else
 * the device needs a reset. */
enum pt_step pt_dma_failed(struct pt *tp, uint16_t q, const struct pt_slot *sl,
                           enum vs_dma_status s);
/* Buffer data helpers: copy the device-readable segments into dst (at most cap bytes),
 * write src across the device-writable ones, or at byte `off` of the writable part. */
enum vs_dma_status pt_read_segments(const struct vs_guest_ops *ops, const struct vq_seg *segs,
                                    uint32_t nsegs, uint8_t *dst, uint32_t cap,
                                    uint32_t *copied);
enum vs_dma_status pt_write_segments(const struct vs_guest_ops *ops, const struct vq_seg *segs,
                                     uint32_t nsegs, const uint8_t *src, uint32_t len);
enum vs_dma_status pt_write_writable_at(const struct vs_guest_ops *ops,
                                        const struct vq_seg *segs, uint32_t nsegs,
                                        uint32_t off, const void *src, uint32_t len);

/* Publish queue q's pending used buffers (head flags last); then, unless the role's
 * published hook holds the decision (coalescing), read the driver's event suppression
 * and queue the MSI-X message in the outbox if it wants one. */
enum pt_step pt_complete(struct pt *tp, uint16_t q, const struct vs_guest_ops *ops);
/* Take the notification decision for q now, with `cause` (the personality's, passed to
 * its decided hook), through q's queue-level DMA gate. The calling rule of
 * pt_complete: never while a pt_finish, pt_complete or notification call of q is
 * suspended in a DMA. */
enum pt_step pt_decide(struct pt *tp, uint16_t q, const struct vs_guest_ops *ops, unsigned cause);

/* Before sleeping: ask the driver for notifications on q, then re-check. Returns
 * PT_STEP_DONE if buffers became available meanwhile (do not sleep), IDLE otherwise. */
enum pt_step pt_arm_notifications(struct pt *tp, uint16_t q, const struct vs_guest_ops *ops);
/* After waking: tell the driver notifications are not needed while we process. */
enum pt_step pt_quiet_notifications(struct pt *tp, uint16_t q, const struct vs_guest_ops *ops);

/* Enter the error state: DEVICE_NEEDS_RESET plus a configuration change notification,
 * naming `why` and the queue (PT_NO_QUEUE: none). Returns PT_STEP_FAILED. */
enum pt_step pt_fail(struct pt *tp, uint16_t q, enum vs_reason why);

/* Does [addr, addr + size) fall in the device-memory event suppression window (a
 * viosim extension; never true when the device does not offer it)? The platform uses
 * it to apply these posted writes when they arrive rather than when they are sent. */
bool pt_is_devmem_event_write(const struct pt *tp, uint64_t addr, unsigned size);
/* Ring statistics of queue q over the device's life (every generation). */
struct vq_stats pt_ring_stats(const struct pt *tp, uint16_t q);

/* Is queue q enabled, DRIVER_OK set, and the device healthy? */
bool pt_queue_live(const struct pt *tp, uint16_t q);
/* Is feature `bit` negotiated? */
static inline bool pt_negotiated(const struct pt *tp, unsigned bit)
{
    return vpci_negotiated(&tp->vpci, bit);
}

/* ---- Running the device until idle (untimed front ends) ----
 * A front end without time (the untimed test rig, serve --qemu-proxy) runs the device
 * after each register access until nothing moves. One call does it for every live
 * queue, through the queues' roles, never asking which queue is which:
 *  - a round visits the queues in a fixed order: first those whose role feeds others
 *    and waits for the driver (signals, idle_waits_for_driver: virtio-net's transmit
 *    queues), then those that wait for the device's other side (not
 *    idle_waits_for_driver: the receive queues), then the rest (the control queue);
 *    within each, by queue number. Work a queue gives another reaches it in the same
 *    round when the giver comes first;
 *  - a visit asks the driver not to notify (pt_quiet_notifications), completes up to
 *    steps_max buffers (pt_step_one), publishes them (pt_complete); when the queue
 *    stopped waiting for the driver (its role's idle_waits_for_driver says which of IDLE
 *    and BLOCKED that is: "Driver and Device Event Suppression"), it asks for
 *    notifications again and re-checks (pt_arm_notifications);
 *  - a re-check that finds buffers is followed by more steps at once; a round moved
 *    something only when a buffer completed. So neither a receive queue with buffers
 *    but no frame (waiting for the device's other side: not re-checked) nor buffers a
 *    queue does not take now (a transmit queue of a pair not in use: re-checked once,
 *    then left armed) keeps the loop going;
 *  - the loop repeats while a round moved something, at most rounds_max rounds; it
 *    stops at once when the device fails (NEEDS_RESET: tp->error names the reason,
 *    tp->error_queue the queue).
 * Decisions the personality holds for a later time (virtio-net's coalescing timer) stay
 * held: a front end that has no timer takes them itself afterwards. */
struct pt_idle {
    /* In. The DMA path of queue q, asked once per visit (a front end may tag each
     * queue's accesses, with its PASID for example); ctx is the front end's. */
    const struct vs_guest_ops *(*queue_ops)(void *ctx, uint16_t q);
    void *ctx;
    uint32_t rounds_max;   /* rounds over the queues (0: none) */
    uint32_t steps_max;    /* buffers one queue completes per visit (0: none) */
    uint64_t *buffers;     /* optional, num_queues counters: += buffers completed per queue */
    /* Out (set by pt_run_idle). */
    uint32_t rounds;       /* rounds run */
    uint64_t done;         /* buffers completed, every queue */
    bool spent;            /* the last round allowed still moved: work may be left */
};

/* Run every live queue until a round moves nothing (see above). Returns PT_STEP_DONE if
 * anything moved, PT_STEP_IDLE if nothing did, PT_STEP_FAILED if the device needs a
 * reset (before or during the call). */
enum pt_step pt_run_idle(struct pt *tp, struct pt_idle *run);

/* The personality gave queue q work from another queue's step (frames to receive,
 * FIFO space to transmit into): mark q for the platform to wake. */
void pt_wake(struct pt *tp, uint16_t q);
/* The lowest-numbered queue marked by pt_wake, unmarked; false when none is. */
bool pt_take_wake(struct pt *tp, uint16_t *q);

/* ---- A front end without registers (vhost-user) ----
 * Some front ends own the PCI function themselves and hand the device only what the
 * driver settled: QEMU or DPDK speaking vhost-user (QEMU's docs/interop/vhost-user.rst)
 * pass the negotiated feature bits, then per ring its size, the three area addresses,
 * the position to resume from and an eventfd to signal used buffers on; they ask for
 * the position back when they stop a ring. No register is read or written. These calls
 * put the function in the state a driver's register writes would leave it in and leave
 * everything else (processing, publication, notification decisions, NEEDS_RESET) to the
 * calls above, so a personality runs the same under either kind of front end. */

/* The message address of every MSI-X vector under a register-less front end. The
 * message data is the vector, so pt_fe_msi_queue can name the queue it is for. */
#define PT_FE_MSI_ADDRESS 0xfee00000ull

/* Reset the function, then: memory decoding and bus mastering on; `features` taken as
 * the driver's (without the device type's features_ok check: the front end negotiated
 * with its driver and may leave out features the back end never sees, such as
 * virtio-net's CTRL_VQ, whose queue the front end keeps); status ACKNOWLEDGE | DRIVER
 * | FEATURES_OK | DRIVER_OK; MSI-X enabled, every vector unmasked with address
 * PT_FE_MSI_ADDRESS and data = the vector; configuration changes on vector 0 and queue
 * q's used buffer notifications on vector 1 + q. Features the function does not offer
 * are dropped (the caller decides what to offer and checks what it gets). */
void pt_fe_attach(struct pt *tp, const vs_features *features);

/* One ring as the front end describes it. Addresses are the device's (guest physical:
 * the caller translates a front end's own virtual addresses first). */
struct pt_fe_ring {
    uint16_t size;            /* entries */
    uint64_t desc;            /* descriptor area (table, or packed descriptor ring) */
    uint64_t driver;          /* driver area (split: available ring; packed: driver event suppression) */
    uint64_t device;          /* device area (split: used ring; packed: device event suppression) */
    /* Where the device resumes, in vhost-user's SET_VRING_BASE format (vq_ops.position):
     * split, the next available index (16 bits, "The Virtqueue Available Ring": idx is
     * free-running); packed, the next descriptor offset in bits 0-14 and the Driver
     * Ring Wrap Counter in bit 15 ("Driver and Device Ring Wrap Counters"), optionally
     * the used half (bits 16-31) equal to it. */
    uint32_t position;
};

enum pt_fe_start {
    PT_FE_STARTED,           /* the queue is enabled and live */
    PT_FE_NO_QUEUE,          /* q is not a queue of this function with these features */
    PT_FE_NOT_ATTACHED,      /* no pt_fe_attach since the last reset */
    PT_FE_CONFIG_REFUSED,    /* size or areas refused: *why names the reason */
    PT_FE_POSITION_REFUSED,  /* position is not a place in this ring */
};

/* Start queue q on r (after pt_fe_attach; a queue already running is stopped first,
 * without publishing: call pt_fe_queue_stop before if it has work). The ring format is
 * decided here (RING_PACKED negotiated or not), as when a driver enables it. A refusal
 * leaves q disabled and the device healthy: the front end's request was refused, the
 * driver broke no rule the device could see. */
enum pt_fe_start pt_fe_queue_start(struct pt *tp, uint16_t q, const struct pt_fe_ring *r,
                                   enum vs_reason *why);

/* Stop queue q and return its position (vhost-user's GET_VRING_BASE; the same format
 * as pt_fe_ring.position, the used half equal to the available half). Used buffers not
 * yet published are published first (through ops): a group the role still holds (a
 * merged receive frame cut by the stop) goes back unused, each buffer with a used
 * length of 0, counted in *held_out; so every buffer before the position is used and
 * the front end may resume there. No notification is decided: the front end stopping
 * the ring reads it itself. The queue is then cleared (its personality's queue_reset runs). A queue not started
 * returns `fallback` (the front end's own last position). */
uint32_t pt_fe_queue_stop(struct pt *tp, uint16_t q, const struct vs_guest_ops *ops,
                          uint32_t fallback, uint32_t *held_out);

/* The queue an outbox message (pt_take_msi) signals under pt_fe_attach, or PT_NO_QUEUE
 * for a configuration change (or a message not made by pt_fe_attach's table). */
uint16_t pt_fe_msi_queue(const struct pt *tp, const struct msix_message *m);

/* Take the next MSI-X message to send (posted write), oldest first. Messages wait
 * while the command register's bus-master enable is clear. */
bool pt_take_msi(struct pt *tp, struct msix_message *msg);

/* The level of the function's INTA# pin (legacy INTx), the other half of the interrupt
 * outbox. Used when MSI-X is absent or disabled ("ISR status capability": the Status
 * register's Interrupt Status bit is the OR of the ISR bits, the pin follows it unless
 * the Command register's Interrupt Disable masks it). It changes only inside pt_* calls
 * (an interrupt raised, an ISR read, a configuration write, a reset): a platform reads
 * it after each call and compares with what it last delivered; stats.intx_asserts
 * counts the rising edges, so a deassert and re-assert between two reads is seen too.
 * Not gated by bus-master enable (INTx is not a memory write). */
static inline bool pt_intx_asserted(const struct pt *tp)
{
    return tp->intx_line;
}

#endif
