/* drv_split.h -- driver side of a split virtqueue ("Split Virtqueues").
 *
 * The counterpart of drv_packed.h for the older format, with the same shape of API so
 * a driver picks one of the two once, when it sets a queue up. The ring lives in guest
 * memory that the driver reaches with plain loads and stores; this module takes host
 * pointers to the three areas and never calls the platform:
 *
 *   Descriptor Table  (Descriptor Area)  written by the driver only
 *   Available Ring    (Driver Area)      written by the driver only
 *   Used Ring         (Device Area)      written by the device only (the driver zeroes
 *                                        its flags once, at set-up)
 *
 * The driver's half of the protocol:
 *
 *   dsq_can_add() / dsq_add() / dsq_add_indirect()
 *                   -> write a buffer's descriptors and its available ring entry. The
 *                      device sees neither until the next publish;
 *   dsq_publish()   -> a release barrier, then avail->idx: the whole batch becomes
 *                      available at once ("Updating idx");
 *   dsq_needs_notify() -> a full barrier, then used->flags (or avail_event with
 *                      EVENT_IDX): does the device want an available buffer
 *                      notification for what was published since the last decision?
 *   dsq_get_used()  -> reap one used buffer by used->idx (with IN_ORDER a single used
 *                      ring entry may stand for a batch of buffers);
 *   dsq_set_driver_events() / dsq_enable_driver_events_after()
 *                   -> ask for used buffer notifications (now or after some more
 *                      completions) or suppress them: avail->flags without EVENT_IDX,
 *                      used_event with it.
 *
 * A buffer's id is the index of its first descriptor (the chain's head), as the used
 * ring reports it. Free descriptors are kept in a FIFO list linked through a private
 * copy of the `next` fields, so a chain is taken from the list as it already stands
 * and, with IN_ORDER (buffers come back in the order they went out), descriptors are
 * used in ring order: 0, 1, 2, ... wrapping at the end of the table, as "The Virtqueue
 * Descriptor Table" requires.
 *
 * Everything the device writes is hostile: a used entry naming an id that is out of
 * range or not a buffer the device owns, or a used->idx that moved by more than the
 * number of buffers the device owns, breaks the queue (sticky; every later call
 * returns DRV_BROKEN).
 *
 * The struct holds per-descriptor tables for the largest ring (32768 entries, ~420 KiB):
 * allocate it once (calloc) rather than on a thread stack.
 */
#ifndef VIOSIM_DRV_SPLIT_H
#define VIOSIM_DRV_SPLIT_H

#include <stdbool.h>
#include <stdint.h>

#include "drv_ring.h"
#include "virtio_wire.h"

/* The split ring's wire layout (SVIRTQ_* offsets, sizes and alignment, the
 * VIRTQ_AVAIL_F_ / VIRTQ_USED_F_ flags) is the device's, from virtio_wire.h. */

/* The queue size a driver can use for split rings when it wants `want` entries and the
 * device allows `max`: the largest power of two not above either (and not above
 * SVIRTQ_SIZE_MAX); 0 when max or want is 0. */
uint16_t dsq_fit_size(uint32_t want, uint32_t max);

/* ---- The queue ---- */

/* The format-neutral table over the functions below (drv_ring.h). A buffer's id is its
 * head descriptor's index. The viosim extension's slot (struct drv_event_mmio) holds
 * flags at 0 and used_event at 2. */
extern const struct drv_ring_ops dsq_ring_ops;

/* SVIRTQ_DESC_TABLE_BYTES, SVIRTQ_AVAIL_RING_BYTES and SVIRTQ_USED_RING_BYTES of `size`. */
void dsq_area_bytes(uint16_t size, uint64_t bytes[DRV_RING_AREAS]);

struct dsq {
    /* Guest memory, as the driver's CPU sees it. */
    uint8_t *desc;               /* descriptor table: SVIRTQ_DESC_TABLE_BYTES(size) */
    uint8_t *avail;              /* available ring: SVIRTQ_AVAIL_RING_BYTES(size) */
    const uint8_t *used;         /* used ring: SVIRTQ_USED_RING_BYTES(size) */
    uint16_t size;               /* a power of two */
    bool event_idx;              /* VIRTIO_F_EVENT_IDX negotiated */
    bool in_order;               /* VIRTIO_F_IN_ORDER negotiated */

    /* Free descriptors: a FIFO list through desc_next (first and last entry). */
    uint16_t free_descs;
    uint16_t free_head, free_tail;

    /* Making buffers available. avail_idx is the value of avail->idx (free-running);
     * `added` entries are written after it and not yet published. */
    uint16_t avail_idx;
    uint16_t added;
    /* Buffers published since the last dsq_needs_notify() decision. */
    uint32_t unnotified;

    /* Reaping: the next used ring entry to read (free-running), used->idx as last read,
     * and the buffers the device owns (published, not yet reaped). */
    uint16_t last_used;
    uint16_t used_idx_seen;
    uint16_t owned;
    /* IN_ORDER batch being returned: the head that ends it and its used entry's length. */
    bool inorder_batch;
    uint16_t inorder_last_id;
    uint32_t inorder_len;

    /* Driver event suppression in device memory (viosim extension); write NULL: the
     * spec's placement in the available ring. */
    struct drv_event_mmio event_mmio;

    /* Driver event suppression as last written. */
    bool events_enabled;
    uint16_t used_event;         /* EVENT_IDX: the used_event value written */

    enum drv_broken broken;

    /* The tables from here on stay last: dsq_init zeroes only their first `size` entries,
     * and nothing reads beyond them.
     * Per descriptor. desc_next is the driver's own copy of the links (chains and the
     * free list); the table in guest memory is never read back. */
    uint16_t desc_next[SVIRTQ_SIZE_MAX];
    /* Per head (buffer id): descriptors in the chain (0: not the head of a buffer), its
     * last descriptor, its device-writable bytes, and whether the device owns it
     * (published and not yet reaped: the only ids a used entry may name). */
    uint16_t id_descs[SVIRTQ_SIZE_MAX];
    uint16_t id_last[SVIRTQ_SIZE_MAX];
    uint32_t id_wlen[SVIRTQ_SIZE_MAX];
    bool id_owned[SVIRTQ_SIZE_MAX];
    /* Per available ring entry: the head written there (IN_ORDER reaping walks buffers
     * in the order they were made available; publishing walks the batch). */
    uint16_t avail_head[SVIRTQ_SIZE_MAX];
};

/* Start a queue: every descriptor free, indices at 0, used->flags written 0 ("The
 * driver MUST initialize flags in the used ring to 0 when allocating the used ring").
 * The caller has zeroed the three areas and aligned them (SVIRTQ_*_ALIGN). size: a power of
 * two, 1..32768; anything else is rounded down (assert in debug). */
void dsq_init(struct dsq *q, uint8_t *desc, uint8_t *avail, uint8_t *used, uint16_t size,
              bool event_idx, bool in_order);

/* Room for one more buffer of ndescs descriptors? If so and id != NULL, *id is the
 * buffer id (head descriptor) the next dsq_add/dsq_add_indirect will use. */
bool dsq_can_add(const struct dsq *q, uint32_t ndescs, uint16_t *id);

/* Write a buffer of nsegs elements as a chain of nsegs descriptors (NEXT and `next` on
 * all but the last) and its head into the next available ring entry. Returns the id.
 * DRV_INVALID: nsegs 0 or above the queue size ("A driver MUST NOT create a descriptor
 * chain longer than the Queue Size"), a zero length, a readable element after a
 * writable one, a chain above 4 GiB in total. DRV_FULL: no room (nothing written). */
enum drv_status dsq_add(struct dsq *q, const struct drv_seg *segs, uint16_t nsegs, uint16_t *id);

/* Write a buffer as one descriptor with VIRTQ_DESC_F_INDIRECT (and nothing else: "The
 * driver MUST NOT set both VIRTQ_DESC_F_INDIRECT and VIRTQ_DESC_F_NEXT") pointing to a
 * table of nsegs descriptors that this call writes at `table` (host pointer of guest
 * address table_addr, 16-byte entries chained by NEXT with next = 1, 2, ... as IN_ORDER
 * requires; never INDIRECT inside). Only with VIRTIO_F_INDIRECT_DESC negotiated (the
 * caller's business). Errors as dsq_add. */
enum drv_status dsq_add_indirect(struct dsq *q, uint8_t *table, uint64_t table_addr,
                                 const struct drv_seg *segs, uint16_t nsegs, uint16_t *id);

/* Make the batch visible: a release barrier, then avail->idx ("The driver MUST perform
 * a suitable memory barrier before the idx update"). No-op without one. Returns the
 * number of buffers published. */
uint32_t dsq_publish(struct dsq *q);

/* After dsq_publish: must the driver notify the device? ("Notifying The Device": a full
 * barrier, then flags or avail_event.) Without EVENT_IDX: unless used->flags has
 * NO_NOTIFY. With EVENT_IDX (flags ignored): iff one of the buffers published since the
 * last decision was written at available index avail_event. The count restarts at 0
 * after each call. */
bool dsq_needs_notify(struct dsq *q);

/* The pure EVENT_IDX test: did moving an index from old_idx to new_idx (16-bit,
 * free-running) pass `event`, i.e. is event in [old_idx, new_idx)? */
bool dsq_need_event(uint16_t event, uint16_t new_idx, uint16_t old_idx);

/* The 32-bit NOTIFICATION_DATA value for queue vq_index ("Driver Notifications":
 * without RING_PACKED next_off is the 15 least significant bits of the available index
 * and next_wrap its bit 15): vq_index | avail->idx << 16. */
uint32_t dsq_notify_data(const struct dsq *q, uint16_t vq_index);

/* Is a used buffer (or the rest of an IN_ORDER batch) waiting? Reads used->idx. */
bool dsq_has_used(const struct dsq *q);

/* Reap one used buffer into *u: an acquire barrier after used->idx, then the entry;
 * the buffer's descriptors go back to the free list. DRV_EMPTY when none; DRV_BROKEN if
 * the device wrote something impossible (sticky). */
enum drv_status dsq_get_used(struct dsq *q, struct drv_used *u);

/* Write the driver's used buffer notification suppression -- without EVENT_IDX
 * avail->flags (NO_INTERRUPT or 0), with it used_event (ENABLE: the driver's next used
 * position) -- then a full barrier, so a later dsq_has_used re-check cannot be ordered
 * before the write ("beware the problem of missing notifications between emptying the
 * ring and reenabling notifications"). With EVENT_IDX, DISABLE sets used_event one short of the driver's position: the
 * device can reach it only after a whole lap of the 16-bit index, and dsq_get_used moves
 * it along while reaping so it never does ("The driver MUST set flags to 0" then). */
void dsq_set_driver_events(struct dsq *q, enum drv_events ev);

/* viosim extension: from now on write flags and used_event to the device-memory slot
 * through w (2-byte writes, except that asking for notifications with EVENT_IDX writes
 * the whole slot, flags 0 and used_event, in one 4-byte write; NULL write: back to the
 * available ring, which then no
 * longer carries them for the device). The writes are posted: before re-checking the
 * ring after enabling, the caller makes sure they reached the device (an MMIO read). */
void dsq_set_event_mmio(struct dsq *q, const struct drv_event_mmio *w);

/* Ask for a used buffer notification only once the device has written the used entry
 * `ahead` entries past the driver's next used position (with EVENT_IDX: used_event;
 * clamped to size - 1). Without EVENT_IDX this is plain ENABLE.
 * dsq_set_driver_events(q, DRV_EVENTS_ENABLE) is ahead 0. */
void dsq_enable_driver_events_after(struct dsq *q, uint16_t ahead);

/* Buffers and descriptors currently not free (added, published or not, and not yet
 * reaped). */
uint16_t dsq_in_flight(const struct dsq *q);
uint16_t dsq_descs_in_flight(const struct dsq *q);

#endif
