/* split_vq.h -- device side of a split virtqueue ("Split Virtqueues"), the format of
 * virtio 1.0 and earlier, kept for comparison studies against the packed format.
 *
 * Calling pattern of a device personality, per request (the same steps as
 * packed_vq.h, behind the same table of functions, vq.h):
 *   svq_pop()     -> one available buffer: the head index from the available ring,
 *                    then the chain through the descriptor table (and at most one
 *                    indirect table at its end), its segments in the caller's array;
 *   ...the personality moves the data through the same guest ops...
 *   svq_push()    -> queue the used ring element {id, len} of that buffer;
 *   svq_flush()   -> publish the batch: the queued elements in one contiguous DMA
 *                    write (two at the ring's end), then used->idx, so the driver sees
 *                    every element (and its len) of the batch at once ("The Virtqueue
 *                    Used Ring": the device MUST set len prior to updating used idx);
 *   svq_should_interrupt() -> read the driver's suppression field and decide.
 *
 * All guest memory goes through struct vs_guest_ops. Every violation found in guest
 * input makes the queue broken (sticky, with a reason); every later call returns
 * VQ_BROKEN without touching memory.
 */
#ifndef VIOSIM_SPLIT_VQ_H
#define VIOSIM_SPLIT_VQ_H

#include <stdbool.h>
#include <stdint.h>

#include "guest_ops.h"
#include "virtio_wire.h"
#include "vq.h"
#include "vs_reason.h"

/* The split ring's wire format (struct svirtq_*, SVIRTQ_* offsets, sizes and
 * alignment) is in virtio_wire.h, shared with the reference driver. */

/* Used elements the device holds before writing them out (512 bytes: two TLPs at a
 * 256-byte max payload). A publication of more buffers than this, or than the queue
 * size, is written in several pieces, all before used->idx. */
#define SVQ_USED_BUF_ELEMS 64u

/* ---- Device state ----
 * Indices named *_idx are free-running 16-bit counters, exactly as the driver sees
 * avail->idx and used->idx; the ring entry is idx % size (size is a power of two,
 * so this stays continuous across the 65535 -> 0 wrap). */
struct svq {
    struct vq_config cfg;

    /* Available side: the device's next entry in the available ring, and the last
     * avail->idx read from the guest (a cache: while it is ahead, pop and peek do
     * not read avail->idx again). */
    uint16_t last_avail_idx;
    uint16_t shadow_avail_idx;

    /* Used side: the index of the next used element to write (includes pushed but
     * unpublished elements), and the value last written to used->idx. */
    uint16_t used_idx;
    uint16_t published_used_idx;
    uint32_t pending;           /* pushed since the last flush */
    /* Used elements pushed but not written yet, for indices used_idx - used_buf_count
     * .. used_idx - 1: the device's write-combining buffer, written to the used ring in
     * one DMA write per contiguous range (two at the ring's end) at flush, or when it
     * fills. */
    uint8_t used_buf[SVQ_USED_BUF_ELEMS][sizeof(struct svirtq_used_elem)];
    uint16_t used_buf_count;

    /* used->idx as of the last interrupt decision ("old" of the EVENT_IDX rule) and
     * how many elements were published since (saturates at 65536, beyond which
     * every used_event value has been passed). */
    uint16_t signalled_used_idx;
    uint32_t unsignalled;
    /* used->idx when the device last decided to notify, and elements published since
     * (saturates at 65536): what svq_recheck_driver_event may still notify about. */
    uint16_t notified_used_idx;
    uint32_t unnotified;

    /* NOTIFICATION_DATA: the driver's available idx as the last notification carried
     * it (next_off | next_wrap << 15), kept while 1..size entries ahead of
     * last_avail_idx; and the last avail->idx read from memory (shadow_avail_idx may
     * be ahead of it on the word of a hint). */
    uint16_t hint_avail_idx;
    bool hint_valid;
    uint16_t read_avail_idx;

    /* Fetch unit (cfg.fetch_batch, cfg.fetch_source). Heads: available ring entries
     * read ahead of use, head_cache[head_first ..] for indices last_avail_idx, ...;
     * only entries below avail->idx as read are ever kept. Descriptors (with
     * IN_ORDER): a run of descriptor table entries read together, desc_cache[desc_first
     * ..] for table indices desc_at, desc_at + 1, ...; dropped whenever heads are
     * fetched, so every cached descriptor was read after avail->idx covered its buffer. */
    uint16_t head_cache[VQ_FETCH_BATCH_MAX];
    uint16_t head_first, head_count;
    uint8_t desc_cache[VQ_FETCH_BATCH_MAX][16];
    uint16_t desc_first, desc_count, desc_at;

    enum vs_reason broken; /* VS_REASON_NONE while healthy; sticky otherwise */
    struct vq_stats stats;
};

/* Reset the queue and take the driver's configuration: every index starts at 0
 * ("idx ... starts at 0, and increases"). Does not touch guest memory and does not
 * validate (svq_check_config does), but a size the ring arithmetic cannot use (0,
 * above 32768, not a power of two) leaves the queue broken. */
void svq_init(struct svq *q, const struct vq_config *cfg);

/* Validate a configuration before enabling: size a power of two within
 * 1..min(size_max, 32768) (QUEUE_SIZE_INVALID), each part aligned as the "Split
 * Virtqueues" table says (RING_MISALIGNED), no part running past 2^64
 * (DMA_OUT_OF_RANGE). Returns VS_REASON_NONE or why not. */
enum vs_reason svq_check_config(const struct vq_config *cfg, uint16_t size_max);

/* Is a buffer available at the device's position? Reads avail->idx unless the
 * cached value or a NOTIFICATION_DATA hint already says so. */
enum vq_status svq_peek(struct svq *q, const struct vs_guest_ops *ops, bool *available);

/* Take the next available buffer. avail->idx is read only when the device has used
 * every entry it knows of (from an earlier read or a NOTIFICATION_DATA hint). Heads
 * come from the available ring in reads of up to cfg.fetch_batch entries (two when the
 * range passes the ring's end), never beyond avail->idx as known; with IN_ORDER and a batch above one, descriptors come in runs of
 * consecutive table entries up to the last head known available. segs/max_segs is the caller's array; a buffer with
 * more elements than min(max_segs, queue size) breaks the queue (CHAIN_TOO_LONG).
 * elem->id and elem->head are the head index; elem->slots is always 1 (a split
 * buffer takes one available ring entry whatever its chain length; the field only
 * matters to the packed format). Returns VQ_EMPTY (nothing consumed) if no buffer
 * is available; a broken queue has consumed nothing either. */
enum vq_status svq_pop(struct svq *q, const struct vs_guest_ops *ops, struct vq_elem *elem,
                       struct vq_seg *segs, uint32_t max_segs);

/* Queue the used element {elem->id, written_len} for the next used ring entry. It is
 * held in the device (used_buf) and written with the rest of the batch by svq_flush;
 * only when the buffer is full (SVQ_USED_BUF_ELEMS, or the queue size) does push write
 * what it holds first. The driver does not look at an entry before used->idx covers it.
 * One element per buffer, also with IN_ORDER: writing only the last of a batch is an
 * optimisation the spec allows, but some in-order drivers (DPDK's split receive path)
 * read every entry's len, and the contiguous write costs the same TLPs here.
 * Contract: elem is one svq_pop returned (elem->id < queue size; asserted). */
enum vq_status svq_push(struct svq *q, const struct vs_guest_ops *ops,
                        const struct vq_elem *elem, uint32_t written_len);

/* Publish what was pushed: write the held elements as one DMA write (two when they
 * pass the ring's end), then used->idx. No-op (no access) if nothing pending. */
enum vq_status svq_flush(struct svq *q, const struct vs_guest_ops *ops);

/* After a flush: read avail->flags (or used_event with EVENT_IDX; both from the
 * device-local copy instead when cfg.driver_event_local is set) and decide whether
 * the driver wants a used buffer notification for what was published since the
 * last decision ("Used Buffer Notification Suppression"). */
enum vq_status svq_should_interrupt(struct svq *q, const struct vs_guest_ops *ops,
                                    bool *interrupt);

/* viosim extension (VIOSIM_NET_F_DEVMEM_EVENT_RECHECK): after the driver rewrote the
 * device-local copy of its suppression fields, would they ask for a notification for
 * an element published since the last notification? Without EVENT_IDX: if flags has
 * NO_INTERRUPT clear. With EVENT_IDX only a whole-slot write asks (a used_event moved on
 * its own is how a driver keeps notifications off): if used_event is among them. */
enum vq_status svq_recheck_driver_event(struct svq *q, bool whole_slot, bool *interrupt);

/* Ask the driver for (enable) or spare (disable) available buffer notifications
 * ("Available Buffer Notification Suppression"). Without EVENT_IDX: used->flags.
 * With EVENT_IDX: enable writes avail_event = last_avail_idx; disable writes
 * nothing. After enabling, the caller peeks again: a buffer the driver made
 * available before the write may not have been notified. */
enum vq_status svq_set_notifications(struct svq *q, const struct vs_guest_ops *ops,
                                     bool enable);

/* Record the NOTIFICATION_DATA hint sent with a notification: the driver's available
 * idx, which pop and peek then use instead of reading avail->idx while it is ahead
 * ("Driver Notifications"). A hint more than a ring ahead of the device, or not ahead,
 * is ignored. */
void svq_set_avail_hint(struct svq *q, uint16_t next_off, bool next_wrap);

/* The device's position (vq_ops.position): the next available index. */
uint32_t svq_position(const struct svq *q);
/* After svq_init, continue at a position (vq_ops.resume_at): any 16-bit index. */
bool svq_resume_at(struct svq *q, uint32_t position);

/* Number of buffers the hint says are available beyond the device's position (0 if
 * no hint is kept). */
uint32_t svq_hint_count(const struct svq *q);

/* The split format's entry in the ring-format table (vq.h). */
extern const struct vq_ops split_vq_ops;

#endif
