/* drv_packed.c -- driver side of a packed virtqueue ("Packed Virtqueues").
 *
 * Ordering: the platform runs the driver and the device in one thread, so the barriers
 * below order nothing at run time; they are written where the spec asks for one (and
 * where a real driver needs one) so the code reads as the protocol:
 *   - release before a head's flags: "The driver MUST perform a suitable memory barrier
 *     before the flags update, to ensure the device sees the most up-to-date copy";
 *   - full barrier before reading the device event suppression structure: "The driver
 *     MUST perform a suitable memory barrier before reading the Event Suppression
 *     structure occupying the Device Area";
 *   - acquire after seeing a used descriptor's flags, before its id and length.
 */
#include "drv_packed.h"

#include <assert.h>
#include <stddef.h>
#include <string.h>

static uint8_t *desc_at(const struct dpq *q, uint16_t slot)
{
    return q->desc + (size_t)slot * sizeof(struct pvirtq_desc);
}

/* AVAIL matches the Driver Ring Wrap Counter, USED is its inverse ("Driver and Device
 * Ring Wrap Counters"). */
static uint16_t avail_bits(bool wrap)
{
    return (uint16_t)(wrap ? VIRTQ_DESC_F_AVAIL_MASK : VIRTQ_DESC_F_USED_MASK);
}

/* A descriptor is used when AVAIL and USED both equal the used wrap counter the driver
 * expects at that slot. */
static bool flags_used(uint16_t flags, bool used_wrap)
{
    bool avail = (flags >> VIRTQ_DESC_F_AVAIL_BIT) & 1u;
    bool used = (flags >> VIRTQ_DESC_F_USED_BIT) & 1u;
    return avail == used_wrap && used == used_wrap;
}

static void write_desc(uint8_t *d, uint64_t addr, uint32_t len, uint16_t id)
{
    vs_put_le64(d, addr);
    vs_put_le32(d + PVIRTQ_DESC_OFF_LEN, len);
    vs_put_le16(d + PVIRTQ_DESC_OFF_ID, id);
}

/* The one store that hands a descriptor (and everything written before it) to the
 * device. */
static void release_flags(uint8_t *d, uint16_t flags)
{
    __atomic_thread_fence(__ATOMIC_RELEASE);
    vs_put_le16(d + PVIRTQ_DESC_OFF_FLAGS, flags);
}

uint16_t dpq_fit_size(uint32_t want, uint32_t max)
{
    uint32_t n = want < max ? want : max;

    return (uint16_t)(n > PVIRTQ_SIZE_MAX ? PVIRTQ_SIZE_MAX : n);
}

void dpq_area_bytes(uint16_t size, uint64_t bytes[DRV_RING_AREAS])
{
    bytes[0] = (uint64_t)size * sizeof(struct pvirtq_desc);
    bytes[1] = sizeof(struct pvirtq_event_suppress);
    bytes[2] = sizeof(struct pvirtq_event_suppress);
}

void dpq_init(struct dpq *q, uint8_t *desc, uint8_t *driver_event, const uint8_t *device_event,
              uint16_t size, bool event_idx, bool in_order)
{
    assert(size >= 1 && size <= PVIRTQ_SIZE_MAX);
    if (size < 1)
        size = 1;
    if (size > PVIRTQ_SIZE_MAX)
        size = PVIRTQ_SIZE_MAX;

    /* Zero the queue's state, but of the per-id and per-slot tables (last in the struct)
     * only the `size` entries this ring uses: a 256-entry ring then writes 3 KiB of the
     * 352 KiB, which matters to a sweep that starts a process per point. */
    memset(q, 0, offsetof(struct dpq, id_slots));
    memset(q->id_slots, 0, size * sizeof q->id_slots[0]);
    memset(q->id_wlen, 0, size * sizeof q->id_wlen[0]);
    memset(q->id_next_free, 0, size * sizeof q->id_next_free[0]);
    memset(q->id_owned, 0, size * sizeof q->id_owned[0]);
    memset(q->slot_id, 0, size * sizeof q->slot_id[0]);
    q->desc = desc;
    q->driver_event = driver_event;
    q->device_event = device_event;
    q->size = size;
    q->event_idx = event_idx;
    q->in_order = in_order;

    q->next_avail = 0;
    q->avail_wrap = true;
    q->next_used = 0;
    q->used_wrap = true;
    q->free_slots = size;
    q->free_ids = size;
    q->broken = DRV_HEALTHY;

    for (uint32_t i = 0; i < size; i++)
        q->id_next_free[i] = (uint16_t)(i + 1u < size ? i + 1u : DRV_NO_ID);
    q->free_head = 0;
}

bool dpq_can_add(const struct dpq *q, uint32_t nslots, uint16_t *id)
{
    if (q->broken != DRV_HEALTHY || nslots == 0 || nslots > q->free_slots || q->free_ids == 0)
        return false;
    if (id != NULL)
        *id = q->free_head;
    return true;
}

/* Validate elements; returns the device-writable byte count through *wlen. */
static enum drv_status check_segs(const struct dpq *q, const struct drv_seg *segs, uint16_t nsegs,
                                  uint32_t *wlen)
{
    uint64_t writable = 0;
    bool seen_writable = false;

    if (segs == NULL || nsegs == 0 || nsegs > q->size)
        return DRV_INVALID;
    for (uint16_t i = 0; i < nsegs; i++) {
        if (segs[i].len == 0)
            return DRV_INVALID;
        if (segs[i].device_writable) {
            seen_writable = true;
            writable += segs[i].len;
        } else if (seen_writable) {
            return DRV_INVALID;
        }
    }
    if (writable > UINT32_MAX)
        return DRV_INVALID;
    *wlen = (uint32_t)writable;
    return DRV_OK;
}

static uint16_t take_id(struct dpq *q)
{
    uint16_t id = q->free_head;

    assert(id != DRV_NO_ID && q->free_ids > 0);
    q->free_head = q->id_next_free[id];
    q->free_ids--;
    return id;
}

static void advance_avail(struct dpq *q)
{
    if (++q->next_avail == q->size) {
        q->next_avail = 0;
        q->avail_wrap = !q->avail_wrap;
    }
}

/* Book the buffer and expose its head: deferred if it opens the batch (dpq_publish
 * writes it), right away otherwise -- the batch's own head still hides it, since the
 * device takes descriptors strictly in ring order. */
static void place_head(struct dpq *q, uint16_t id, uint16_t head, uint16_t head_flags,
                       uint16_t nslots, uint32_t wlen)
{
    q->slot_id[head] = id;
    q->id_slots[id] = nslots;
    q->id_wlen[id] = wlen;
    q->id_owned[id] = false;
    q->free_slots = (uint16_t)(q->free_slots - nslots);

    if (!q->batch_open) {
        q->batch_open = true;
        q->batch_head = head;
        q->batch_head_flags = head_flags;
    } else {
        release_flags(desc_at(q, head), head_flags);
    }
    q->batch_slots += nslots;
}

enum drv_status dpq_add(struct dpq *q, const struct drv_seg *segs, uint16_t nsegs, uint16_t *id)
{
    uint32_t wlen;
    enum drv_status st;
    uint16_t buf_id, head, head_flags = 0;

    if (q->broken != DRV_HEALTHY)
        return DRV_BROKEN;
    st = check_segs(q, segs, nsegs, &wlen);
    if (st != DRV_OK)
        return st;
    if (!dpq_can_add(q, nsegs, NULL))
        return DRV_FULL;

    buf_id = take_id(q);
    head = q->next_avail;
    for (uint16_t i = 0; i < nsegs; i++) {
        uint8_t *d = desc_at(q, q->next_avail);
        /* Flags are computed per descriptor: a chain that crosses the end of the ring
         * carries the toggled wrap counter in its later descriptors. */
        uint16_t flags = avail_bits(q->avail_wrap);

        if (segs[i].device_writable)
            flags |= VIRTQ_DESC_F_WRITE_MASK;
        if (i + 1u < nsegs)
            flags |= VIRTQ_DESC_F_NEXT_MASK;
        write_desc(d, segs[i].addr, segs[i].len, buf_id);
        if (i == 0)
            head_flags = flags;    /* written last, below */
        else
            vs_put_le16(d + PVIRTQ_DESC_OFF_FLAGS, flags); /* head still hides it */
        advance_avail(q);
    }
    place_head(q, buf_id, head, head_flags, nsegs, wlen);
    if (id != NULL)
        *id = buf_id;
    return DRV_OK;
}

enum drv_status dpq_add_indirect(struct dpq *q, uint8_t *table, uint64_t table_addr,
                                 const struct drv_seg *segs, uint16_t nsegs, uint16_t *id)
{
    uint32_t wlen;
    enum drv_status st;
    uint16_t buf_id, head, flags;

    if (q->broken != DRV_HEALTHY)
        return DRV_BROKEN;
    if (table == NULL)
        return DRV_INVALID;
    st = check_segs(q, segs, nsegs, &wlen);
    if (st != DRV_OK)
        return st;
    if (!dpq_can_add(q, 1, NULL))
        return DRV_FULL;

    /* The table is complete before the ring descriptor that points to it. Its entries
     * carry only VIRTQ_DESC_F_WRITE; their ids are reserved (written as 0). */
    for (uint16_t i = 0; i < nsegs; i++) {
        uint8_t *t = table + (size_t)i * sizeof(struct pvirtq_desc);
        write_desc(t, segs[i].addr, segs[i].len, 0);
        vs_put_le16(t + PVIRTQ_DESC_OFF_FLAGS,
                    (uint16_t)(segs[i].device_writable ? VIRTQ_DESC_F_WRITE_MASK : 0u));
    }

    buf_id = take_id(q);
    head = q->next_avail;
    /* WRITE is reserved in a descriptor with INDIRECT set. */
    flags = (uint16_t)(avail_bits(q->avail_wrap) | VIRTQ_DESC_F_INDIRECT_MASK);
    write_desc(desc_at(q, head), table_addr, (uint32_t)nsegs * (uint32_t)sizeof(struct pvirtq_desc),
               buf_id);
    advance_avail(q);
    place_head(q, buf_id, head, flags, 1, wlen);
    if (id != NULL)
        *id = buf_id;
    return DRV_OK;
}

uint32_t dpq_publish(struct dpq *q)
{
    uint32_t n;
    uint16_t slot;
    uint32_t left;

    if (!q->batch_open)
        return 0;

    /* From here on the device may use these buffers: they are the ids a used
     * descriptor may name. Walk the batch head by head (it is contiguous in the ring). */
    slot = q->batch_head;
    left = q->batch_slots;
    while (left > 0) {
        uint16_t id = q->slot_id[slot];
        uint16_t n_id = q->id_slots[id];
        assert(n_id >= 1 && n_id <= left);
        q->id_owned[id] = true;
        left -= n_id;
        slot = (uint16_t)(((uint32_t)slot + n_id) % q->size);
    }

    release_flags(desc_at(q, q->batch_head), q->batch_head_flags);
    n = q->batch_slots;
    q->batch_open = false;
    q->batch_slots = 0;
    q->unnotified += n;
    return n;
}

/* The first descriptor not yet made available: the open batch's head if there is one
 * (its flags are not written), else the next free slot. */
static void avail_end(const struct dpq *q, uint16_t *off, bool *wrap)
{
    if (q->batch_open) {
        *off = q->batch_head;
        *wrap = (q->batch_head_flags & VIRTQ_DESC_F_AVAIL_MASK) != 0;
    } else {
        *off = q->next_avail;
        *wrap = q->avail_wrap;
    }
}

bool dpq_event_hit(uint16_t size, uint16_t event_off_wrap, uint16_t new_off, bool new_wrap,
                   uint32_t count)
{
    int32_t ev_off = (int32_t)(event_off_wrap & RING_EVENT_OFF_WRAP_OFF_MASK);
    bool ev_wrap = (event_off_wrap >> RING_EVENT_OFF_WRAP_WRAP_BIT) & 1u;
    int32_t ev_pos, old_pos;

    if (ev_off >= (int32_t)size || count >= size)
        return true;
    /* Place the event on a line where new_off is the current lap: the same wrap value
     * means this lap, the other value means the previous one. The descriptors just
     * published occupy [new_off - count, new_off) on that line. */
    ev_pos = ev_wrap == new_wrap ? ev_off : ev_off - (int32_t)size;
    old_pos = (int32_t)new_off - (int32_t)count;
    return old_pos <= ev_pos && ev_pos < (int32_t)new_off;
}

bool dpq_needs_notify(struct dpq *q)
{
    uint32_t count = q->unnotified;
    uint16_t off_wrap, flags, end_off;
    bool end_wrap;

    q->unnotified = 0;
    if (count == 0)
        return false;

    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    off_wrap = vs_le16(q->device_event);
    flags = (uint16_t)(vs_le16(q->device_event + 2) & 0x3u);

    switch (flags) {
    case RING_EVENT_FLAGS_DISABLE:
        return false;
    case RING_EVENT_FLAGS_DESC:
        if (!q->event_idx)
            return true; /* only valid with EVENT_IDX: treat as ENABLE */
        avail_end(q, &end_off, &end_wrap);
        return dpq_event_hit(q->size, off_wrap, end_off, end_wrap, count);
    case RING_EVENT_FLAGS_ENABLE:
    default:                     /* 0x3 is reserved: notify rather than stall */
        return true;
    }
}

uint32_t dpq_notify_data(const struct dpq *q, uint16_t vq_index)
{
    uint32_t v = vq_index & VIRTIO_NOTIFY_DATA_VQN_MASK;
    uint16_t off;
    bool wrap;

    avail_end(q, &off, &wrap);
    v |= ((uint32_t)off & VIRTIO_NOTIFY_DATA_OFF_MASK) << VIRTIO_NOTIFY_DATA_OFF_SHIFT;
    if (wrap)
        v |= 1u << VIRTIO_NOTIFY_DATA_WRAP_BIT;
    return v;
}

bool dpq_has_used(const struct dpq *q)
{
    if (q->broken != DRV_HEALTHY)
        return false;
    if (q->inorder_batch)
        return true;
    return flags_used(vs_le16(desc_at(q, q->next_used) + PVIRTQ_DESC_OFF_FLAGS), q->used_wrap);
}

/* Give the buffer's slots and id back and move to where the next used descriptor goes
 * ("skip forward in the ring the number of the remaining descriptors in the group"). */
static void release_buffer(struct dpq *q, uint16_t id)
{
    uint32_t n = q->id_slots[id];
    uint32_t pos = (uint32_t)q->next_used + n;

    if (pos >= q->size) {
        pos -= q->size;
        q->used_wrap = !q->used_wrap;
    }
    q->next_used = (uint16_t)pos;
    q->free_slots = (uint16_t)(q->free_slots + n);
    q->id_slots[id] = 0;
    q->id_owned[id] = false;
    q->id_next_free[id] = q->free_head;
    q->free_head = id;
    q->free_ids++;
}

static enum drv_status set_broken(struct dpq *q, enum drv_broken why)
{
    q->broken = why;
    return DRV_BROKEN;
}

/* IN_ORDER: the buffer at next_used is the oldest the device owns; hand it out, as the
 * batch's end (with the used descriptor's length) or as a skipped member. */
static enum drv_status take_inorder(struct dpq *q, struct drv_used *u)
{
    uint16_t b = q->slot_id[q->next_used];

    if (b >= q->size || !q->id_owned[b])
        return set_broken(q, DRV_BROKEN_ID_NOT_OWNED);
    u->id = b;
    if (b == q->inorder_last_id) {
        u->len = q->inorder_written ? q->inorder_len : 0;
        u->written = q->inorder_written;
        u->skipped = false;
        q->inorder_batch = false;
    } else {
        u->len = q->id_wlen[b];
        u->written = q->id_wlen[b] > 0;
        u->skipped = true;
    }
    release_buffer(q, b);
    return DRV_OK;
}

enum drv_status dpq_get_used(struct dpq *q, struct drv_used *u)
{
    const uint8_t *d;
    uint16_t flags, id;
    uint32_t len;

    if (q->broken != DRV_HEALTHY)
        return DRV_BROKEN;
    if (q->inorder_batch)
        return take_inorder(q, u);

    d = desc_at(q, q->next_used);
    flags = vs_le16(d + PVIRTQ_DESC_OFF_FLAGS);
    if (!flags_used(flags, q->used_wrap))
        return DRV_EMPTY;
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    id = vs_le16(d + PVIRTQ_DESC_OFF_ID);
    len = vs_le32(d + PVIRTQ_DESC_OFF_LEN);

    if (id >= q->size)
        return set_broken(q, DRV_BROKEN_ID_RANGE);
    if (!q->id_owned[id])
        return set_broken(q, DRV_BROKEN_ID_NOT_OWNED);

    if (q->in_order) {
        /* One used descriptor may stand for every buffer up to and including id
         * ("In-order use of descriptors"). */
        q->inorder_batch = true;
        q->inorder_last_id = id;
        q->inorder_len = len;
        q->inorder_written = (flags & VIRTQ_DESC_F_WRITE_MASK) != 0;
        return take_inorder(q, u);
    }

    u->id = id;
    u->written = (flags & VIRTQ_DESC_F_WRITE_MASK) != 0;
    u->len = u->written ? len : 0;
    u->skipped = false;
    release_buffer(q, id);
    return DRV_OK;
}

/* off_wrap first, then the flags that may name it; then a full barrier so the caller's
 * re-check of the ring is not ordered before this write. */
static void write_driver_event(struct dpq *q, uint16_t flags, bool with_off, uint16_t off, bool wrap)
{
    if (q->event_mmio.write) {
        /* viosim extension: the structure is a device-memory slot (dpq_set_event_mmio). */
        if (with_off) {
            uint32_t off_wrap = off & RING_EVENT_OFF_WRAP_OFF_MASK;
            if (wrap)
                off_wrap |= 1u << RING_EVENT_OFF_WRAP_WRAP_BIT;
            q->event_mmio.write(q->event_mmio.ctx, 0, 4, off_wrap | (uint32_t)flags << 16);
        } else {
            q->event_mmio.write(q->event_mmio.ctx, 2, 2, flags);
        }
        return;
    }
    if (with_off) {
        uint16_t off_wrap = (uint16_t)(off & RING_EVENT_OFF_WRAP_OFF_MASK);
        if (wrap)
            off_wrap |= (uint16_t)(1u << RING_EVENT_OFF_WRAP_WRAP_BIT);
        vs_put_le16(q->driver_event, off_wrap);
        __atomic_thread_fence(__ATOMIC_RELEASE);
    }
    vs_put_le16(q->driver_event + 2, flags);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

void dpq_set_event_mmio(struct dpq *q, const struct drv_event_mmio *w)
{
    if (w)
        q->event_mmio = *w;
    else
        memset(&q->event_mmio, 0, sizeof q->event_mmio);
}

void dpq_set_driver_events(struct dpq *q, enum drv_events ev)
{
    if (ev == DRV_EVENTS_ENABLE)
        dpq_enable_driver_events_after(q, 0);
    else
        write_driver_event(q, RING_EVENT_FLAGS_DISABLE, false, 0, false);
}

void dpq_enable_driver_events_after(struct dpq *q, uint16_t slots_ahead)
{
    uint32_t pos;
    bool wrap = q->used_wrap;

    if (!q->event_idx) {
        write_driver_event(q, RING_EVENT_FLAGS_ENABLE, false, 0, false);
        return;
    }
    if (slots_ahead >= q->size)
        slots_ahead = (uint16_t)(q->size - 1u);
    pos = (uint32_t)q->next_used + slots_ahead;
    if (pos >= q->size) {
        pos -= q->size;
        wrap = !wrap;
    }
    write_driver_event(q, RING_EVENT_FLAGS_DESC, true, (uint16_t)pos, wrap);
}

uint16_t dpq_in_flight(const struct dpq *q)
{
    return (uint16_t)(q->size - q->free_ids);
}

uint16_t dpq_slots_in_flight(const struct dpq *q)
{
    return (uint16_t)(q->size - q->free_slots);
}

/* ---- the format-neutral table (drv_ring.h) ---- */

/* Driver event offsets count ring slots; so do the descriptors in flight. */
DRV_RING_OPS_DEFINE(dpq, "packed", dpq_slots_in_flight, dpq_slots_in_flight);
