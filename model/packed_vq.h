/* packed_vq.h -- device side of a packed virtqueue ("Packed Virtqueues").
 *
 * Calling pattern of a device personality, per request:
 *   pvq_pop()     -> one available buffer (a chain, possibly through an indirect table),
 *                    its segments in the caller's array, the ring slots it used;
 *   ...the personality moves the data through the same guest ops...
 *   pvq_push()    -> queue the used descriptor of that buffer (the batch's first is
 *                    held back; the others are written now, or with IN_ORDER, once
 *                    the run of buffers they stand for ends);
 *   pvq_flush()   -> publish the batch: the first used descriptor is written last, in
 *                    one write with its flags, so the driver sees the whole batch at
 *                    once ("Receiving Used Buffers From The Device");
 *   pvq_should_interrupt() -> read the driver's event suppression structure and decide.
 *
 * All guest memory goes through struct vs_guest_ops. Every violation found in guest
 * input makes the queue broken (sticky, with a reason); every later call returns
 * VQ_BROKEN without touching memory.
 */
#ifndef VIOSIM_PACKED_VQ_H
#define VIOSIM_PACKED_VQ_H

#include <stdbool.h>
#include <stdint.h>

#include "guest_ops.h"
#include "vq.h"
#include "vs_reason.h"

struct pvq {
    struct vq_config cfg;

    /* Device's read position and Driver Ring Wrap Counter as the device tracks it. */
    uint16_t next_avail;
    bool avail_wrap;
    /* Device's write position and Device Ring Wrap Counter. */
    uint16_t next_used;
    bool used_wrap;

    /* The open batch: its first used descriptor, the one the driver polls, held back
     * whole (len, id, flags) until pvq_flush writes it last. */
    uint16_t batch_head;
    uint16_t batch_head_flags;
    uint16_t batch_head_id;
    uint32_t batch_head_len;
    uint32_t batch_count;
    uint32_t batch_slots;       /* ring slots covered by the open batch */

    /* IN_ORDER ("In-order use of descriptors"): one used descriptor stands for a run of
     * buffers, at the run's first slot with the id of its last buffer. run_extends: the
     * last buffer pushed had no device-writable part, so it was used completely with
     * nothing to report and the next buffer may take over the run's descriptor. The
     * batch's first run is the batch head; a later run's descriptor is held in run_*
     * (run_held) until the run ends. */
    bool run_extends;
    bool run_held;
    uint16_t run_pos;
    uint16_t run_flags;
    uint16_t run_id;
    uint32_t run_len;

    /* Used position (with wrap) when the device last decided about an interrupt;
     * the EVENT_IDX (RING_EVENT_FLAGS_DESC) test asks whether the driver's
     * off_wrap was passed since then. */
    uint16_t signalled_used;
    bool signalled_wrap;
    uint32_t unsignalled_slots; /* slots published since then (saturates at 2*size) */

    /* Used position when the device last decided to notify, and slots published since
     * (saturates at 2*size): what pvq_recheck_driver_event may still notify about. */
    uint16_t notified_used;
    bool notified_wrap;
    uint32_t unnotified_slots;

    /* Available-count hint from NOTIFICATION_DATA: where the driver says its next
     * available descriptor will be. */
    uint16_t hint_next_off;
    bool hint_next_wrap;
    bool hint_valid;

    /* Descriptor cache of the fetch unit (cfg.fetch_batch, cfg.fetch_source): ring
     * descriptors read ahead of use, as read, in ring order from the device's read
     * position: entries [cache_first, cache_first + cache_count) of `cache` hold slots
     * next_avail, next_avail + 1, ... An entry is used only once its own flags say it
     * is available for its wrap counter; the first that is not ends the cache. */
    uint8_t cache[VQ_FETCH_BATCH_MAX][16];
    uint16_t cache_first, cache_count;
    /* Where the device last found the descriptor at its read position not available
     * (the driver's end of the ring then); forgotten when the device moves on. Sizes
     * READ_AHEAD's speculative reads. */
    bool end_seen;
    uint16_t end_pos;
    bool end_wrap;

    enum vs_reason broken; /* VS_REASON_NONE while healthy; sticky otherwise */
    struct vq_stats stats;
};

/* Reset the queue and take the driver's configuration. Both wrap counters start
 * at 1 ("Driver and Device Ring Wrap Counters"). Does not touch guest memory and
 * does not validate: callers check size and alignment first (pvq_check_config). */
void pvq_init(struct pvq *q, const struct vq_config *cfg);

/* Validate a configuration before enabling: size within 1..size_max, areas aligned
 * ("Structure Size and Alignment"). Returns VS_REASON_NONE or why not. */
enum vs_reason pvq_check_config(const struct vq_config *cfg, uint16_t size_max);

/* Is a buffer available at the device's position? Answers from the descriptor cache
 * when it holds an available descriptor there, else reads the flags of one descriptor. */
enum vq_status pvq_peek(struct pvq *q, const struct vs_guest_ops *ops, bool *available);

/* Take the next available buffer, its descriptors from the cache or fetched in reads
 * of up to cfg.fetch_batch descriptors (two reads when the range passes the ring's
 * end). segs/max_segs is the caller's array; a chain with
 * more segments than min(max_segs, queue size) breaks the queue (CHAIN_TOO_LONG).
 * Returns VQ_EMPTY (nothing consumed) if no buffer is available. */
enum vq_status pvq_pop(struct pvq *q, const struct vs_guest_ops *ops, struct vq_elem *elem,
                        struct vq_seg *segs, uint32_t max_segs);

/* Queue the used descriptor for elem with written_len bytes written by the device.
 * Used descriptors are written in the order pushed, each advancing the device's
 * used position by elem->slots. With IN_ORDER, buffers with no device-writable part
 * share the descriptor of the buffer pushed after them (the spec lets one used
 * descriptor with the last buffer's id stand for a batch; a skipped buffer counts as
 * used completely, true of a buffer the device only reads). */
enum vq_status pvq_push(struct pvq *q, const struct vs_guest_ops *ops,
                         const struct vq_elem *elem, uint32_t written_len);

/* Publish the open batch: write a held run's descriptor, then the batch's first
 * descriptor (len, id and flags in one aligned 8-byte write). No-op if empty. */
enum vq_status pvq_flush(struct pvq *q, const struct vs_guest_ops *ops);

/* After a flush: read the driver event suppression structure (by DMA, or from the
 * device-local copy when cfg.driver_event_local is set) and decide whether
 * the driver wants a used buffer notification for what was published since the last
 * decision ("Driver and Device Event Suppression"). */
enum vq_status pvq_should_interrupt(struct pvq *q, const struct vs_guest_ops *ops,
                                     bool *interrupt);

/* viosim extension (VIOSIM_NET_F_DEVMEM_EVENT_RECHECK): after the driver rewrote the
 * device-local copy of its event suppression structure, would it ask for a notification
 * for a slot published since the last notification? DISABLE: no; DESC with EVENT_IDX:
 * if that slot is among them; otherwise: if anything was published since. whole_slot is
 * not needed for the packed format (its flags say whether the driver asks). */
enum vq_status pvq_recheck_driver_event(struct pvq *q, bool whole_slot, bool *interrupt);

/* Write the device event suppression structure: ask the driver to send available
 * buffer notifications (enable) or not. With EVENT_IDX, enable uses
 * RING_EVENT_FLAGS_DESC at the device's current read position. */
enum vq_status pvq_set_notifications(struct pvq *q, const struct vs_guest_ops *ops,
                                      bool enable);

/* The device's position (vq_ops.position): next_avail | avail_wrap << 15. */
uint32_t pvq_position(const struct pvq *q);
/* After pvq_init, continue at a position (vq_ops.resume_at). */
bool pvq_resume_at(struct pvq *q, uint32_t position);

/* Record the NOTIFICATION_DATA hint (next_off, next_wrap) sent with a notification. */
void pvq_set_avail_hint(struct pvq *q, uint16_t next_off, bool next_wrap);

/* Number of descriptors the hint says are available beyond the device's read
 * position (0 if no hint). Never trusted for correctness, only for batching. */
uint32_t pvq_hint_count(const struct pvq *q);

/* The packed format's entry in the ring-format table (vq.h). */
extern const struct vq_ops packed_vq_ops;

#endif
