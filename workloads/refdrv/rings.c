#include "refdrv_int.h"

/* ---- ring formats ---- */

/* Packed ("Packed Virtqueues"): workloads/drv_packed.h. */

static enum ring_status from_dpq(enum dpq_status st)
{
    switch (st) {
    case DPQ_OK: return RING_OK;
    case DPQ_FULL: return RING_FULL;
    case DPQ_EMPTY: return RING_EMPTY;
    case DPQ_INVALID: return RING_INVALID;
    case DPQ_BROKEN: return RING_BROKEN;
    }
    return RING_BROKEN;
}

/* Elements in the format's own type; false if there are more than this driver uses. */
static bool to_dpq_segs(const struct ring_seg *segs, uint16_t nsegs, struct dpq_seg *out)
{
    if (nsegs > RING_SEGS_MAX)
        return false;
    for (uint16_t i = 0; i < nsegs; i++)
        out[i] = (struct dpq_seg){ segs[i].addr, segs[i].len, segs[i].device_writable };
    return true;
}

static uint16_t packed_fit_size(uint32_t want, uint32_t max)
{
    uint32_t n = want < max ? want : max;
    return (uint16_t)(n > PVIRTQ_SIZE_MAX ? PVIRTQ_SIZE_MAX : n);
}

static void packed_area_bytes(uint16_t size, uint64_t bytes[RING_AREAS])
{
    bytes[0] = (uint64_t)size * sizeof(struct pvirtq_desc);
    bytes[1] = sizeof(struct pvirtq_event_suppress);
    bytes[2] = sizeof(struct pvirtq_event_suppress);
}

static void packed_init(void *ring, uint8_t *area[RING_AREAS], uint16_t size, bool event_idx,
                        bool in_order)
{
    dpq_init(ring, area[0], area[1], area[2], size, event_idx, in_order);
}

static bool packed_can_add(const void *ring, uint32_t descs, uint16_t *id)
{
    return dpq_can_add(ring, descs, id);
}

static enum ring_status packed_add(void *ring, const struct ring_seg *segs, uint16_t nsegs)
{
    struct dpq_seg s[RING_SEGS_MAX];
    if (!to_dpq_segs(segs, nsegs, s))
        return RING_INVALID;
    return from_dpq(dpq_add(ring, s, nsegs, NULL));
}

static enum ring_status packed_add_indirect(void *ring, uint8_t *table, uint64_t table_addr,
                                            const struct ring_seg *segs, uint16_t nsegs)
{
    struct dpq_seg s[RING_SEGS_MAX];
    if (!to_dpq_segs(segs, nsegs, s))
        return RING_INVALID;
    return from_dpq(dpq_add_indirect(ring, table, table_addr, s, nsegs, NULL));
}

static void packed_publish(void *ring)
{
    dpq_publish(ring);
}

static uint32_t packed_unnotified(const void *ring)
{
    return ((const struct dpq *)ring)->unnotified;
}

static bool packed_needs_notify(void *ring)
{
    return dpq_needs_notify(ring);
}

static uint32_t packed_notify_data(const void *ring, uint16_t vq_index)
{
    return dpq_notify_data(ring, vq_index);
}

static bool packed_has_used(const void *ring)
{
    return dpq_has_used(ring);
}

static enum ring_status packed_get_used(void *ring, struct ring_used *u)
{
    struct dpq_used x;
    enum dpq_status st = dpq_get_used(ring, &x);

    if (st == DPQ_OK)
        *u = (struct ring_used){ x.id, x.len, x.written, x.skipped };
    return from_dpq(st);
}

static void packed_events_off(void *ring)
{
    dpq_set_driver_events(ring, DPQ_EVENTS_DISABLE);
}

static void packed_events_after(void *ring, uint16_t ahead)
{
    dpq_enable_driver_events_after(ring, ahead);
}

static void packed_set_event_mmio(void *ring,
                                  void (*write)(void *ctx, uint32_t off, unsigned size, uint32_t value),
                                  void *ctx)
{
    struct dpq_event_mmio w = { write, ctx };
    dpq_set_event_mmio(ring, &w);
}

static uint16_t packed_slots_in_flight(const void *ring)
{
    return dpq_slots_in_flight(ring);
}

const struct ring_ops rd_packed_ring_ops = {
    .name = "packed",
    .fit_size = packed_fit_size,
    .area_bytes = packed_area_bytes,
    .init = packed_init,
    .can_add = packed_can_add,
    .add = packed_add,
    .add_indirect = packed_add_indirect,
    .publish = packed_publish,
    .unnotified = packed_unnotified,
    .needs_notify = packed_needs_notify,
    .notify_data = packed_notify_data,
    .has_used = packed_has_used,
    .get_used = packed_get_used,
    .events_off = packed_events_off,
    .events_after = packed_events_after,
    .set_event_mmio = packed_set_event_mmio,
    .event_span = packed_slots_in_flight, /* driver event offsets count ring slots */
    .descs_in_flight = packed_slots_in_flight,
};

/* Split ("Split Virtqueues"): workloads/drv_split.h. */

static enum ring_status from_dsq(enum dsq_status st)
{
    switch (st) {
    case DSQ_OK: return RING_OK;
    case DSQ_FULL: return RING_FULL;
    case DSQ_EMPTY: return RING_EMPTY;
    case DSQ_INVALID: return RING_INVALID;
    case DSQ_BROKEN: return RING_BROKEN;
    }
    return RING_BROKEN;
}

static bool to_dsq_segs(const struct ring_seg *segs, uint16_t nsegs, struct dsq_seg *out)
{
    if (nsegs > RING_SEGS_MAX)
        return false;
    for (uint16_t i = 0; i < nsegs; i++)
        out[i] = (struct dsq_seg){ segs[i].addr, segs[i].len, segs[i].device_writable };
    return true;
}

static void split_area_bytes(uint16_t size, uint64_t bytes[RING_AREAS])
{
    bytes[0] = dsq_desc_bytes(size);
    bytes[1] = dsq_avail_bytes(size);
    bytes[2] = dsq_used_bytes(size);
}

static void split_init(void *ring, uint8_t *area[RING_AREAS], uint16_t size, bool event_idx,
                       bool in_order)
{
    dsq_init(ring, area[0], area[1], area[2], size, event_idx, in_order);
}

static bool split_can_add(const void *ring, uint32_t descs, uint16_t *id)
{
    return dsq_can_add(ring, descs, id);
}

static enum ring_status split_add(void *ring, const struct ring_seg *segs, uint16_t nsegs)
{
    struct dsq_seg s[RING_SEGS_MAX];
    if (!to_dsq_segs(segs, nsegs, s))
        return RING_INVALID;
    return from_dsq(dsq_add(ring, s, nsegs, NULL));
}

static enum ring_status split_add_indirect(void *ring, uint8_t *table, uint64_t table_addr,
                                           const struct ring_seg *segs, uint16_t nsegs)
{
    struct dsq_seg s[RING_SEGS_MAX];
    if (!to_dsq_segs(segs, nsegs, s))
        return RING_INVALID;
    return from_dsq(dsq_add_indirect(ring, table, table_addr, s, nsegs, NULL));
}

static void split_publish(void *ring)
{
    dsq_publish(ring);
}

static uint32_t split_unnotified(const void *ring)
{
    return ((const struct dsq *)ring)->unnotified;
}

static bool split_needs_notify(void *ring)
{
    return dsq_needs_notify(ring);
}

static uint32_t split_notify_data(const void *ring, uint16_t vq_index)
{
    return dsq_notify_data(ring, vq_index);
}

static bool split_has_used(const void *ring)
{
    return dsq_has_used(ring);
}

static enum ring_status split_get_used(void *ring, struct ring_used *u)
{
    struct dsq_used x;
    enum dsq_status st = dsq_get_used(ring, &x);

    if (st == DSQ_OK)
        *u = (struct ring_used){ x.id, x.len, x.written, x.skipped };
    return from_dsq(st);
}

static void split_events_off(void *ring)
{
    dsq_set_driver_events(ring, DSQ_EVENTS_DISABLE);
}

static void split_events_after(void *ring, uint16_t ahead)
{
    dsq_enable_driver_events_after(ring, ahead);
}

static void split_set_event_mmio(void *ring,
                                 void (*write)(void *ctx, uint32_t off, unsigned size, uint32_t value),
                                 void *ctx)
{
    struct dsq_event_mmio w = { write, ctx };
    dsq_set_event_mmio(ring, &w);
}

static uint16_t split_in_flight(const void *ring)
{
    return dsq_in_flight(ring);
}

static uint16_t split_descs_in_flight(const void *ring)
{
    return dsq_descs_in_flight(ring);
}

const struct ring_ops rd_split_ring_ops = {
    .name = "split",
    .fit_size = dsq_fit_size,
    .area_bytes = split_area_bytes,
    .init = split_init,
    .can_add = split_can_add,
    .add = split_add,
    .add_indirect = split_add_indirect,
    .publish = split_publish,
    .unnotified = split_unnotified,
    .needs_notify = split_needs_notify,
    .notify_data = split_notify_data,
    .has_used = split_has_used,
    .get_used = split_get_used,
    .events_off = split_events_off,
    .events_after = split_events_after,
    .set_event_mmio = split_set_event_mmio,
    .event_span = split_in_flight, /* used_event counts used entries: one per buffer */
    .descs_in_flight = split_descs_in_flight,
};
