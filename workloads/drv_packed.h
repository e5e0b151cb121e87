/* drv_packed.h -- driver side of a packed virtqueue ("Packed Virtqueues").
 *
 * The ring lives in guest memory that the driver reaches with plain loads and stores,
 * so this module takes host pointers to the three areas and never calls the platform.
 * It owns the driver's half of the protocol:
 *
 *   dpq_can_add() / dpq_add() / dpq_add_indirect()
 *                   -> write a buffer's descriptors. The first buffer of an open batch
 *                      keeps its head flags back, so nothing is visible yet;
 *   dpq_publish()   -> write that one deferred flags word: the whole batch becomes
 *                      available at once ("Placing Available Buffers Into The
 *                      Descriptor Ring": the head's flags are written last);
 *   dpq_needs_notify() -> read the device event suppression structure and decide
 *                      whether the device wants an available buffer notification for
 *                      what was published since the last decision;
 *   dpq_get_used()  -> reap one used buffer (chains skip their slots; with IN_ORDER a
 *                      single used descriptor may stand for a batch of buffers);
 *   dpq_set_driver_events() / dpq_enable_driver_events_after()
 *                   -> ask for used buffer notifications (now or after some more
 *                      completions) or suppress them.
 *
 * Buffer ids are handed out by the queue from a free list; an id stays owned by the
 * device from dpq_add until dpq_get_used returns it. Everything the device writes is
 * hostile: a used descriptor naming an id that is out of range or not owned by the
 * device breaks the queue (sticky; every later call returns DRV_BROKEN).
 *
 * The struct holds per-id tables for the largest ring (32768 entries, ~330 KiB):
 * allocate it once (calloc) rather than on a thread stack.
 */
#ifndef VIOSIM_DRV_PACKED_H
#define VIOSIM_DRV_PACKED_H

#include <stdbool.h>
#include <stdint.h>

#include "drv_ring.h"
#include "virtio_wire.h"

/* The format-neutral table over the functions below (drv_ring.h). The viosim
 * extension's slot (struct drv_event_mmio) holds off_wrap at 0 and flags at 2. */
extern const struct drv_ring_ops dpq_ring_ops;

/* The queue size for a driver that wants `want` entries of a device allowing `max`: the
 * smaller, at most 32768 (a packed ring needs no power of two); 0 when either is 0. */
uint16_t dpq_fit_size(uint32_t want, uint32_t max);

/* Bytes of the three areas: the descriptor ring (16 * size), the driver and the device
 * event suppression structures (4 each). */
void dpq_area_bytes(uint16_t size, uint64_t bytes[DRV_RING_AREAS]);

struct dpq {
    /* Guest memory, as the driver's CPU sees it. */
    uint8_t *desc;               /* descriptor ring: size * 16 bytes */
    uint8_t *driver_event;       /* driver event suppression (written by the driver) */
    const uint8_t *device_event; /* device event suppression (read by the driver) */
    uint16_t size;
    bool event_idx;              /* VIRTIO_F_EVENT_IDX negotiated */
    bool in_order;               /* VIRTIO_F_IN_ORDER negotiated */
    /* Driver event suppression in device memory (viosim extension); write NULL: the
     * spec's placement, driver_event in guest memory. */
    struct drv_event_mmio event_mmio;

    /* Making buffers available: next slot and the Driver Ring Wrap Counter. */
    uint16_t next_avail;
    bool avail_wrap;
    uint16_t free_slots;         /* ring slots not owned by the device */
    uint16_t free_ids;           /* buffer ids not owned by the device */
    uint16_t free_head;          /* free-id list (DRV_NO_ID when empty) */

    /* The open batch: its first descriptor's flags are not written yet. */
    bool batch_open;
    uint16_t batch_head;
    uint16_t batch_head_flags;
    uint32_t batch_slots;

    /* Descriptors published since the last dpq_needs_notify() decision. */
    uint32_t unnotified;

    /* Reaping: next slot where the device writes a used descriptor, and the used
     * wrap counter the driver expects there. */
    uint16_t next_used;
    bool used_wrap;
    /* IN_ORDER batch being returned: the id that ends it and the used descriptor's
     * length and WRITE flag (read once, when the batch's descriptor was found). */
    bool inorder_batch;
    uint16_t inorder_last_id;
    uint32_t inorder_len;
    bool inorder_written;

    enum drv_broken broken;

    /* Per buffer id. These tables stay last: dpq_init zeroes only their first `size`
     * entries, and nothing reads beyond them. */
    uint16_t id_slots[PVIRTQ_SIZE_MAX];   /* ring slots of the buffer; 0: id is free */
    uint32_t id_wlen[PVIRTQ_SIZE_MAX];    /* device-writable bytes of the buffer */
    uint16_t id_next_free[PVIRTQ_SIZE_MAX];
    /* Published and not yet reaped: the only ids a used descriptor may name (a buffer
     * still in the open batch has not been seen by the device). */
    bool id_owned[PVIRTQ_SIZE_MAX];
    /* Per ring slot: the id of the buffer whose first descriptor is there (IN_ORDER
     * reaping walks buffers in ring order). */
    uint16_t slot_id[PVIRTQ_SIZE_MAX];
};

/* Start a queue: both wrap counters at 1, all ids free ("Driver and Device Ring Wrap
 * Counters"). The caller has zeroed the three areas ("The descriptor ring is
 * zero-initialized"). size: 1..32768; other sizes are clamped (assert in debug). */
void dpq_init(struct dpq *q, uint8_t *desc, uint8_t *driver_event, const uint8_t *device_event,
              uint16_t size, bool event_idx, bool in_order);

/* Room for one more buffer taking nslots ring slots? If so and id != NULL, *id is the
 * buffer id the next dpq_add/dpq_add_indirect will use. */
bool dpq_can_add(const struct dpq *q, uint32_t nslots, uint16_t *id);

/* Write a buffer of nsegs elements as a chain of nsegs descriptors (NEXT on all but the
 * last; the id on every descriptor, the spec needs it on the last). Returns the id.
 * DRV_INVALID: nsegs 0 or above the queue size, a zero length, a readable element after
 * a writable one, writable bytes above 4 GiB. DRV_FULL: no room (nothing written). */
enum drv_status dpq_add(struct dpq *q, const struct drv_seg *segs, uint16_t nsegs, uint16_t *id);

/* Write a buffer as one descriptor with VIRTQ_DESC_F_INDIRECT pointing to a table of
 * nsegs descriptors that this call writes at `table` (host pointer of guest address
 * table_addr, 16-byte entries; only VIRTQ_DESC_F_WRITE is set in them: "The driver MUST
 * NOT set any flags except DESC_F_WRITE within an indirect descriptor"). Only with
 * VIRTIO_F_INDIRECT_DESC negotiated (the caller's business). Errors as dpq_add. */
enum drv_status dpq_add_indirect(struct dpq *q, uint8_t *table, uint64_t table_addr,
                                 const struct drv_seg *segs, uint16_t nsegs, uint16_t *id);

/* Make the open batch visible: a release barrier, then the first descriptor's flags.
 * No-op without an open batch. Returns the number of descriptors published. */
uint32_t dpq_publish(struct dpq *q);

/* After dpq_publish: must the driver notify the device? ("Sending Available Buffer
 * Notifications": a full barrier, then the device event suppression structure.)
 * ENABLE -> yes; DISABLE -> no; DESC (EVENT_IDX) -> yes iff the descriptor it names
 * was among those published since the last decision. A malformed structure (reserved
 * flags value, DESC without EVENT_IDX, offset outside the ring) gets a notification:
 * a spurious one is harmless, a missing one stalls the queue. The count of published
 * descriptors restarts at 0 after each call. */
bool dpq_needs_notify(struct dpq *q);

/* The pure EVENT_IDX test behind dpq_needs_notify: were any of the `count` descriptors
 * just before (new_off, new_wrap) the one that event_off_wrap names? Also answers true
 * when the event names a slot outside a ring of `size` or count >= size. */
bool dpq_event_hit(uint16_t size, uint16_t event_off_wrap, uint16_t new_off, bool new_wrap,
                   uint32_t count);

/* The 32-bit NOTIFICATION_DATA value for queue vq_index: the next descriptor not yet
 * made available -- the open batch's head if there is one ("When notifying the device,
 * driver MUST set next_off and next_wrap to match the next descriptor not yet made
 * available to the device"). */
uint32_t dpq_notify_data(const struct dpq *q, uint16_t vq_index);

/* Is a used descriptor (or the rest of an IN_ORDER batch) waiting? Reads one flags word. */
bool dpq_has_used(const struct dpq *q);

/* Reap one used buffer into *u. DRV_EMPTY when none; DRV_BROKEN if the device named an
 * impossible id (sticky). */
enum drv_status dpq_get_used(struct dpq *q, struct drv_used *u);

/* Write the driver event suppression structure: DISABLE is RING_EVENT_FLAGS_DISABLE;
 * ENABLE is RING_EVENT_FLAGS_ENABLE, or with EVENT_IDX RING_EVENT_FLAGS_DESC at the
 * driver's next used position (the next buffer used). Off_wrap first, then flags, with a
 * barrier between; then a full barrier, so a later dpq_has_used re-check cannot be
 * ordered before the write ("beware the problem of missing notifications between
 * emptying the ring and reenabling used buffer notifications"). */
void dpq_set_driver_events(struct dpq *q, enum drv_events ev);

/* viosim extension: from now on write the driver event suppression structure to the
 * device-memory slot through w (NULL write: back to guest memory). ENABLE with
 * EVENT_IDX is one 4-byte write (off_wrap and flags together, so the device never sees
 * DESC with a stale offset); every other change is a 2-byte write of flags. The
 * writes are posted: before re-checking the ring after enabling, the caller makes sure
 * they reached the device (an MMIO read), or a buffer used meanwhile may go unnoticed. */
void dpq_set_event_mmio(struct dpq *q, const struct drv_event_mmio *w);

/* Ask for a used buffer notification only once the device has used the slot that lies
 * slots_ahead slots past the driver's next used position (with EVENT_IDX: flags DESC at
 * that slot; clamped to the ring). Lets a driver waiting for ring space sleep through
 * most completions, e.g. slots_ahead = 3/4 of the slots in flight. Without EVENT_IDX
 * this is plain ENABLE. dpq_set_driver_events(q, DRV_EVENTS_ENABLE) is slots_ahead 0. */
void dpq_enable_driver_events_after(struct dpq *q, uint16_t slots_ahead);

/* Buffers and ring slots not free (added, published or not, and not yet reaped). */
uint16_t dpq_in_flight(const struct dpq *q);
uint16_t dpq_slots_in_flight(const struct dpq *q);

#endif
