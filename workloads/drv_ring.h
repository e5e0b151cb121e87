/* drv_ring.h -- the driver side of a virtqueue, whatever its format.
 *
 * A driver picks a ring format once, when it sets a queue up (packed when
 * VIRTIO_F_RING_PACKED is negotiated, split otherwise), as a table of functions: struct
 * drv_ring_ops. drv_packed.h ("Packed Virtqueues") and drv_split.h ("Split Virtqueues")
 * each implement it over their own state (struct dpq, struct dsq) and export their table
 * (dpq_ring_ops, dsq_ring_ops); their typed functions take the same element, used-buffer,
 * status and event types, declared here once.
 *
 * The calls, in the order a driver makes them:
 *
 *   can_add / add / add_indirect -> write a buffer; the device sees nothing yet;
 *   publish          -> make everything added since the last publish available at once
 *                       (a release barrier, then the one store that exposes it);
 *   needs_notify     -> a full barrier, then the device's suppression: does it want an
 *                       available buffer notification for what was published since the
 *                       last decision?
 *   notify_data      -> the NOTIFICATION_DATA value of that notification;
 *   has_used / get_used -> reap used buffers; everything the device wrote is hostile and a
 *                       lie breaks the queue (sticky: every later call says DRV_BROKEN);
 *   set_driver_events / enable_driver_events_after -> ask for used buffer notifications
 *                       (now, or only after more completions) or suppress them.
 */
#ifndef VIOSIM_DRV_RING_H
#define VIOSIM_DRV_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DRV_NO_ID      0xffffu
#define DRV_RING_AREAS 3u /* descriptor, driver and device areas, in that order */

enum drv_status {
    DRV_OK = 0,
    DRV_FULL,    /* not enough free descriptors (or, packed, no free buffer id) */
    DRV_EMPTY,   /* get_used: no used buffer at the driver's position */
    DRV_INVALID, /* the caller's request breaks a driver rule (nothing written) */
    DRV_BROKEN,  /* the device wrote something impossible; see the queue's `broken` */
};

/* Why a queue stopped trusting the device. */
enum drv_broken {
    DRV_HEALTHY = 0,
    DRV_BROKEN_ID_RANGE,     /* a used element's id is not below the queue size */
    DRV_BROKEN_ID_NOT_OWNED, /* a used element's id is not a buffer the device owns */
    DRV_BROKEN_IDX_JUMP,     /* split: used->idx moved by more than the buffers the device
                                owns (or backwards) */
    DRV_BROKEN_BATCH_LONG,   /* split, IN_ORDER: the used entry's buffer lies further ahead
                                than used->idx moved */
};

/* One element of a buffer. Device-readable elements come before device-writable ones
 * ("Message Framing" / "Scatter-Gather Support": the driver MUST place any
 * device-writable descriptor elements after any device-readable descriptor elements). */
struct drv_seg {
    uint64_t addr;
    uint32_t len;
    bool device_writable;
};

/* One buffer given back by the device. */
struct drv_used {
    uint16_t id;
    /* Bytes the device wrote; 0 when nothing was written (packed: the used descriptor
     * had no VIRTQ_DESC_F_WRITE, whose length the spec then reserves; split: the buffer
     * has no device-writable element). */
    uint32_t len;
    bool written;
    /* IN_ORDER batch member that had no used element of its own: "assumed to have been
     * used (read or written) by the device completely", so len is the buffer's whole
     * device-writable length. */
    bool skipped;
};

enum drv_events {
    DRV_EVENTS_DISABLE, /* no used buffer notifications, please */
    DRV_EVENTS_ENABLE,  /* notify at the next buffer used (with EVENT_IDX: name it) */
};

/* viosim-specific, NON-STANDARD (VIOSIM_NET_F_DEVMEM_EVENT, docs/event-suppression.md):
 * the driver's event suppression fields live in a device-memory slot that the driver
 * writes by MMIO. write(ctx, off, size, value) is one posted MMIO write of size bytes at
 * offset off of the queue's slot (the layout is the format's: drv_packed.h,
 * drv_split.h). */
struct drv_event_mmio {
    void (*write)(void *ctx, uint32_t off, unsigned size, uint32_t value);
    void *ctx;
};

/* One format's functions, on its state (`ring`: a struct dpq or struct dsq of
 * state_bytes, allocated once -- they hold per-id tables for the largest ring). */
struct drv_ring_ops {
    const char *name;   /* "packed" or "split" */
    size_t state_bytes;
    /* The queue size to use when the driver wants `want` entries and the device allows
     * `max` (0: unusable). */
    uint16_t (*fit_size)(uint32_t want, uint32_t max);
    /* Bytes of the descriptor, driver and device areas for a queue of `size`. */
    void (*area_bytes)(uint16_t size, uint64_t bytes[DRV_RING_AREAS]);
    /* Start a queue on zeroed, aligned areas. */
    void (*init)(void *ring, uint8_t *area[DRV_RING_AREAS], uint16_t size, bool event_idx,
                 bool in_order);
    /* Room for one more buffer of ndescs descriptors? If so and id != NULL, *id is the id
     * the next add/add_indirect will use. */
    bool (*can_add)(const void *ring, uint32_t ndescs, uint16_t *id);
    /* A buffer as a chain of nsegs descriptors; its id through *id (may be NULL). */
    enum drv_status (*add)(void *ring, const struct drv_seg *segs, uint16_t nsegs, uint16_t *id);
    /* A buffer as one descriptor pointing to a table of nsegs entries that this call
     * writes at `table` (host pointer of guest address table_addr). */
    enum drv_status (*add_indirect)(void *ring, uint8_t *table, uint64_t table_addr,
                                    const struct drv_seg *segs, uint16_t nsegs, uint16_t *id);
    /* Make what was added visible; returns what the format counts (packed: descriptors,
     * split: buffers). */
    uint32_t (*publish)(void *ring);
    /* Published since the last needs_notify decision (in publish's unit). */
    uint32_t (*unnotified)(const void *ring);
    bool (*needs_notify)(void *ring);
    uint32_t (*notify_data)(const void *ring, uint16_t vq_index);
    bool (*has_used)(const void *ring);
    enum drv_status (*get_used)(void *ring, struct drv_used *u);
    void (*set_driver_events)(void *ring, enum drv_events ev);
    /* Ask for a used buffer notification `ahead` units past the next one; the unit is
     * what event_span counts (packed: ring slots; split: used entries, one per buffer). */
    void (*enable_driver_events_after)(void *ring, uint16_t ahead);
    /* viosim extension: write the suppression fields by MMIO through w (NULL: back to
     * guest memory). */
    void (*set_event_mmio)(void *ring, const struct drv_event_mmio *w);
    uint16_t (*event_span)(const void *ring);
    /* Buffers not free (added or published, not yet reaped). */
    uint16_t (*in_flight)(const void *ring);
    /* Descriptors not free (ring slots for packed, table entries for split). */
    uint16_t (*descs_in_flight)(const void *ring);
    enum drv_broken (*broken)(const void *ring);
};

/* Define `const struct drv_ring_ops P##_ring_ops` over a format's typed functions (P##_init,
 * P##_can_add, P##_add, ..., each on `struct P *`, with the three areas in init's
 * order): the one place where the table's `void *ring` becomes the format's state.
 * event_span and descs_in_flight are named, as they count different things per format;
 * both states have the fields `unnotified` and `broken`. For drv_packed.c and
 * drv_split.c only. */
#define DRV_RING_OPS_DEFINE(P, NAME, EVENT_SPAN, DESCS_IN_FLIGHT)                             \
    static void P##_ring_init(void *ring, uint8_t *area[DRV_RING_AREAS], uint16_t size,       \
                              bool event_idx, bool in_order)                                 \
    {                                                                                        \
        P##_init(ring, area[0], area[1], area[2], size, event_idx, in_order);                \
    }                                                                                        \
    static bool P##_ring_can_add(const void *ring, uint32_t ndescs, uint16_t *id)            \
    {                                                                                        \
        return P##_can_add(ring, ndescs, id);                                                \
    }                                                                                        \
    static enum drv_status P##_ring_add(void *ring, const struct drv_seg *segs,              \
                                        uint16_t nsegs, uint16_t *id)                        \
    {                                                                                        \
        return P##_add(ring, segs, nsegs, id);                                               \
    }                                                                                        \
    static enum drv_status P##_ring_add_indirect(void *ring, uint8_t *table,                 \
                                                 uint64_t table_addr,                        \
                                                 const struct drv_seg *segs, uint16_t nsegs, \
                                                 uint16_t *id)                               \
    {                                                                                        \
        return P##_add_indirect(ring, table, table_addr, segs, nsegs, id);                   \
    }                                                                                        \
    static uint32_t P##_ring_publish(void *ring) { return P##_publish(ring); }               \
    static uint32_t P##_ring_unnotified(const void *ring)                                    \
    {                                                                                        \
        return ((const struct P *)ring)->unnotified;                                         \
    }                                                                                        \
    static bool P##_ring_needs_notify(void *ring) { return P##_needs_notify(ring); }         \
    static uint32_t P##_ring_notify_data(const void *ring, uint16_t vq_index)                \
    {                                                                                        \
        return P##_notify_data(ring, vq_index);                                              \
    }                                                                                        \
    static bool P##_ring_has_used(const void *ring) { return P##_has_used(ring); }           \
    static enum drv_status P##_ring_get_used(void *ring, struct drv_used *u)                 \
    {                                                                                        \
        return P##_get_used(ring, u);                                                        \
    }                                                                                        \
    static void P##_ring_set_driver_events(void *ring, enum drv_events ev)                   \
    {                                                                                        \
        P##_set_driver_events(ring, ev);                                                     \
    }                                                                                        \
    static void P##_ring_enable_driver_events_after(void *ring, uint16_t ahead)              \
    {                                                                                        \
        P##_enable_driver_events_after(ring, ahead);                                         \
    }                                                                                        \
    static void P##_ring_set_event_mmio(void *ring, const struct drv_event_mmio *w)          \
    {                                                                                        \
        P##_set_event_mmio(ring, w);                                                         \
    }                                                                                        \
    static uint16_t P##_ring_event_span(const void *ring) { return EVENT_SPAN(ring); }       \
    static uint16_t P##_ring_in_flight(const void *ring) { return P##_in_flight(ring); }     \
    static uint16_t P##_ring_descs_in_flight(const void *ring)                               \
    {                                                                                        \
        return DESCS_IN_FLIGHT(ring);                                                        \
    }                                                                                        \
    static enum drv_broken P##_ring_broken(const void *ring)                                 \
    {                                                                                        \
        return ((const struct P *)ring)->broken;                                             \
    }                                                                                        \
    const struct drv_ring_ops P##_ring_ops = {                                               \
        .name = NAME,                                                                        \
        .state_bytes = sizeof(struct P),                                                     \
        .fit_size = P##_fit_size,                                                            \
        .area_bytes = P##_area_bytes,                                                        \
        .init = P##_ring_init,                                                               \
        .can_add = P##_ring_can_add,                                                         \
        .add = P##_ring_add,                                                                 \
        .add_indirect = P##_ring_add_indirect,                                               \
        .publish = P##_ring_publish,                                                         \
        .unnotified = P##_ring_unnotified,                                                   \
        .needs_notify = P##_ring_needs_notify,                                               \
        .notify_data = P##_ring_notify_data,                                                 \
        .has_used = P##_ring_has_used,                                                       \
        .get_used = P##_ring_get_used,                                                       \
        .set_driver_events = P##_ring_set_driver_events,                                     \
        .enable_driver_events_after = P##_ring_enable_driver_events_after,                   \
        .set_event_mmio = P##_ring_set_event_mmio,                                           \
        .event_span = P##_ring_event_span,                                                   \
        .in_flight = P##_ring_in_flight,                                                     \
        .descs_in_flight = P##_ring_descs_in_flight,                                         \
        .broken = P##_ring_broken,                                                           \
    }

#endif
