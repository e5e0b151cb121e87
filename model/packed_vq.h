/* packed_vq.h -- device side of a packed virtqueue ("Packed Virtqueues").
 *
 * Calling pattern of a device personality, per request:
 *   pvq_pop()     -> one available buffer (a chain, possibly through an indirect table),
 *                    its segments in the caller's array, the ring slots it used;
 *   ...the personality moves the data through the same guest ops...
 *   pvq_push()    -> queue the used descriptor of that buffer (everything but the
 *                    head's flags is written now);
 *   pvq_flush()   -> publish the batch: the first pending used descriptor's flags are
 *                    written last, so the driver sees the whole batch at once
 *                    ("Receiving Used Buffers From The Device");
 *   pvq_should_interrupt() -> read the driver's event suppression structure and decide.
 *
 * All guest memory goes through struct vs_guest_ops. Every violation found in guest
 * input makes the queue broken (sticky, with a reason); every later call returns
 * PVQ_BROKEN without touching memory.
 */
#ifndef VIOSIM_PACKED_VQ_H
#define VIOSIM_PACKED_VQ_H

#include <stdbool.h>
#include <stdint.h>

#include "guest_ops.h"
#include "vs_reason.h"

enum pvq_status {
    PVQ_OK = 0,
    PVQ_EMPTY,  /* pvq_pop: no available buffer at the device's position */
    PVQ_BROKEN, /* guest input violated the spec; see pvq.broken */
};

/* What the queue is told when the driver enables it. */
struct pvq_config {
    uint16_t size;             /* queue size: 1..32768, need not be a power of two */
    uint64_t desc_addr;        /* descriptor ring ("Descriptor Area") */
    uint64_t driver_addr;      /* driver event suppression ("Driver Area") */
    uint64_t device_addr;      /* device event suppression ("Device Area") */
    bool indirect_desc;        /* VIRTIO_F_INDIRECT_DESC negotiated */
    bool event_idx;            /* VIRTIO_F_EVENT_IDX negotiated */
    bool in_order;             /* VIRTIO_F_IN_ORDER negotiated */
};

/* One segment of a buffer, in chain order: device-readable ones first. */
struct pvq_seg {
    uint64_t addr;
    uint32_t len;
    bool device_writable;
};

/* One available buffer as popped. */
struct pvq_elem {
    uint16_t id;             /* buffer id (from the last descriptor of the chain) */
    uint16_t slots;          /* ring slots the buffer occupied (an indirect table counts 1) */
    uint16_t head;           /* ring index of the first descriptor */
    uint32_t nsegs;          /* segments written to the caller's array */
    uint32_t readable_bytes; /* total length of device-readable segments */
    uint32_t writable_bytes; /* total length of device-writable segments */
    bool indirect;           /* buffer was described by an indirect table */
};

/* Work done, for the platform to charge and the stats to report. */
struct pvq_stats {
    uint64_t buffers_popped;
    uint64_t descs_read;      /* ring descriptors and indirect entries fetched */
    uint64_t indirect_tables;
    uint64_t used_pushed;
    uint64_t flushes;
    uint64_t event_reads;     /* reads of the driver event suppression structure */
    uint64_t event_writes;    /* writes of the device event suppression structure */
    uint64_t interrupts_suppressed;
};

struct pvq {
    struct pvq_config cfg;

    /* Device's read position and Driver Ring Wrap Counter as the device tracks it. */
    uint16_t next_avail;
    bool avail_wrap;
    /* Device's write position and Device Ring Wrap Counter. */
    uint16_t next_used;
    bool used_wrap;

    /* The open batch: first pending used descriptor (flags not yet written). */
    uint16_t batch_head;
    uint16_t batch_head_flags;
    uint32_t batch_count;
    uint32_t batch_slots;       /* ring slots covered by the open batch */

    /* Used position (with wrap) when the device last decided about an interrupt;
     * the EVENT_IDX (RING_EVENT_FLAGS_DESC) test asks whether the driver's
     * off_wrap was passed since then. */
    uint16_t signalled_used;
    bool signalled_wrap;
    uint32_t unsignalled_slots; /* slots published since then (saturates at 2*size) */

    /* Available-count hint from NOTIFICATION_DATA: where the driver says its next
     * available descriptor will be. */
    uint16_t hint_next_off;
    bool hint_next_wrap;
    bool hint_valid;

    enum vs_reason broken; /* VS_REASON_NONE while healthy; sticky otherwise */
    struct pvq_stats stats;
};

/* Reset the queue and take the driver's configuration. Both wrap counters start
 * at 1 ("Driver and Device Ring Wrap Counters"). Does not touch guest memory and
 * does not validate: callers check size and alignment first (pvq_check_config). */
void pvq_init(struct pvq *q, const struct pvq_config *cfg);

/* Validate a configuration before enabling: size within 1..size_max, areas aligned
 * ("Structure Size and Alignment"). Returns VS_REASON_NONE or why not. */
enum vs_reason pvq_check_config(const struct pvq_config *cfg, uint16_t size_max);

/* Is a buffer available at the device's position? Reads the flags of one descriptor. */
enum pvq_status pvq_peek(struct pvq *q, const struct vs_guest_ops *ops, bool *available);

/* Take the next available buffer. segs/max_segs is the caller's array; a chain with
 * more segments than min(max_segs, queue size) breaks the queue (CHAIN_TOO_LONG).
 * Returns PVQ_EMPTY (nothing consumed) if no buffer is available. */
enum pvq_status pvq_pop(struct pvq *q, const struct vs_guest_ops *ops, struct pvq_elem *elem,
                        struct pvq_seg *segs, uint32_t max_segs);

/* Queue the used descriptor for elem with written_len bytes written by the device.
 * Used descriptors are written in the order pushed, each advancing the device's
 * used position by elem->slots. */
enum pvq_status pvq_push(struct pvq *q, const struct vs_guest_ops *ops,
                         const struct pvq_elem *elem, uint32_t written_len);

/* Publish the open batch: write the first pending descriptor's flags. No-op if empty. */
enum pvq_status pvq_flush(struct pvq *q, const struct vs_guest_ops *ops);

/* After a flush: read the driver event suppression structure and decide whether
 * the driver wants a used buffer notification for what was published since the last
 * decision ("Driver and Device Event Suppression"). */
enum pvq_status pvq_should_interrupt(struct pvq *q, const struct vs_guest_ops *ops,
                                     bool *interrupt);

/* Write the device event suppression structure: ask the driver to send available
 * buffer notifications (enable) or not. With EVENT_IDX, enable uses
 * RING_EVENT_FLAGS_DESC at the device's current read position. */
enum pvq_status pvq_set_notifications(struct pvq *q, const struct vs_guest_ops *ops,
                                      bool enable);

/* Record the NOTIFICATION_DATA hint (next_off, next_wrap) sent with a notification. */
void pvq_set_avail_hint(struct pvq *q, uint16_t next_off, bool next_wrap);

/* Number of descriptors the hint says are available beyond the device's read
 * position (0 if no hint). Never trusted for correctness, only for batching. */
uint32_t pvq_hint_count(const struct pvq *q);

#endif
