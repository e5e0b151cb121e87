/* drv_split.c -- driver side of a split virtqueue ("Split Virtqueues").
 *
 * Ordering: the platform runs the driver and the device in one thread, so the barriers
 * below order nothing at run time; they are written where the spec asks for one (and
 * where a real driver needs one) so the code reads as the protocol:
 *   - release before avail->idx: "The driver MUST perform a suitable memory barrier
 *     before the idx update, to ensure the device sees the most up-to-date copy";
 *   - full barrier before reading used->flags or avail_event: "The driver MUST perform
 *     a suitable memory barrier before reading flags or avail_event, to avoid missing a
 *     notification";
 *   - acquire after reading used->idx, before the used entries it covers;
 *   - full barrier after writing avail->flags or used_event, before the caller re-checks
 *     used->idx.
 */
#include "drv_split.h"

#include <assert.h>
#include <stddef.h>
#include <string.h>

/* Largest power of two not above v (v >= 1). */
static uint32_t pow2_floor(uint32_t v)
{
    uint32_t p = 1;

    while (p <= v / 2u)
        p *= 2u;
    return p;
}

uint16_t dsq_fit_size(uint32_t want, uint32_t max)
{
    uint32_t n = want < max ? want : max;

    if (n > SVIRTQ_SIZE_MAX)
        n = SVIRTQ_SIZE_MAX;
    return n == 0 ? 0 : (uint16_t)pow2_floor(n);
}

void dsq_area_bytes(uint16_t size, uint64_t bytes[DRV_RING_AREAS])
{
    bytes[0] = SVIRTQ_DESC_TABLE_BYTES(size);
    bytes[1] = SVIRTQ_AVAIL_RING_BYTES(size);
    bytes[2] = SVIRTQ_USED_RING_BYTES(size);
}

/* Ring positions: sizes are powers of two, so a free-running 16-bit index reduces with
 * a mask (and 65536 is a multiple of every size: the index wraps with the ring). */
static uint16_t ring_pos(const struct dsq *q, uint16_t idx)
{
    return (uint16_t)(idx & (q->size - 1u));
}

static uint8_t *desc_at(const struct dsq *q, uint16_t i)
{
    return q->desc + (size_t)i * SVIRTQ_DESC_BYTES;
}

static void write_desc(uint8_t *d, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
    vs_put_le64(d + SVIRTQ_DESC_OFF_ADDR, addr);
    vs_put_le32(d + SVIRTQ_DESC_OFF_LEN, len);
    vs_put_le16(d + SVIRTQ_DESC_OFF_FLAGS, flags);
    vs_put_le16(d + SVIRTQ_DESC_OFF_NEXT, next);
}

void dsq_init(struct dsq *q, uint8_t *desc, uint8_t *avail, uint8_t *used, uint16_t size,
              bool event_idx, bool in_order)
{
    assert(size >= 1 && size <= SVIRTQ_SIZE_MAX && (size & (size - 1u)) == 0);
    size = size == 0 ? 1 : (uint16_t)pow2_floor(size);

    /* Zero the queue's state, but of the per-descriptor and per-head tables (last in the
     * struct) only the `size` entries this ring uses (see dpq_init). */
    memset(q, 0, offsetof(struct dsq, desc_next));
    memset(q->desc_next, 0, size * sizeof q->desc_next[0]);
    memset(q->id_descs, 0, size * sizeof q->id_descs[0]);
    memset(q->id_last, 0, size * sizeof q->id_last[0]);
    memset(q->id_wlen, 0, size * sizeof q->id_wlen[0]);
    memset(q->id_owned, 0, size * sizeof q->id_owned[0]);
    memset(q->avail_head, 0, size * sizeof q->avail_head[0]);
    q->desc = desc;
    q->avail = avail;
    q->used = used;
    q->size = size;
    q->event_idx = event_idx;
    q->in_order = in_order;
    q->broken = DRV_HEALTHY;
    q->events_enabled = true; /* what a zeroed available ring says */

    /* Every descriptor free, listed in table order (IN_ORDER: "starting from offset 0
     * in the table, and wrapping around at the end of the table"). */
    for (uint32_t i = 0; i < size; i++)
        q->desc_next[i] = (uint16_t)(i + 1u < size ? i + 1u : 0u);
    q->free_head = 0;
    q->free_tail = (uint16_t)(size - 1u);
    q->free_descs = size;

    vs_put_le16(avail + SVIRTQ_AVAIL_OFF_FLAGS, 0);
    vs_put_le16(avail + SVIRTQ_AVAIL_OFF_IDX, 0);
    vs_put_le16(used + SVIRTQ_USED_OFF_FLAGS, 0);
}

bool dsq_can_add(const struct dsq *q, uint32_t ndescs, uint16_t *id)
{
    if (q->broken != DRV_HEALTHY || ndescs == 0 || ndescs > q->free_descs)
        return false;
    if (id != NULL)
        *id = q->free_head;
    return true;
}

/* Validate elements; returns the device-writable byte count through *wlen. */
static enum drv_status check_segs(const struct dsq *q, const struct drv_seg *segs, uint16_t nsegs,
                                  uint32_t *wlen)
{
    uint64_t total = 0, writable = 0;
    bool seen_writable = false;

    if (segs == NULL || nsegs == 0 || nsegs > q->size)
        return DRV_INVALID;
    for (uint16_t i = 0; i < nsegs; i++) {
        if (segs[i].len == 0)
            return DRV_INVALID;
        total += segs[i].len;
        if (segs[i].device_writable) {
            seen_writable = true;
            writable += segs[i].len;
        } else if (seen_writable) {
            return DRV_INVALID;
        }
    }
    /* "Drivers MUST NOT add a descriptor chain longer than 2^32 bytes in total". */
    if (total > (1ull << 32) || writable > UINT32_MAX)
        return DRV_INVALID;
    *wlen = (uint32_t)writable;
    return DRV_OK;
}

/* Take ndescs descriptors from the front of the free list: they are already linked in
 * list order, which becomes the chain's order. Returns the head; *last is the chain's
 * last descriptor. */
static uint16_t take_descs(struct dsq *q, uint16_t ndescs, uint16_t *last)
{
    uint16_t head = q->free_head, d = head;

    assert(ndescs >= 1 && ndescs <= q->free_descs);
    for (uint16_t i = 1; i < ndescs; i++)
        d = q->desc_next[d];
    *last = d;
    q->free_descs = (uint16_t)(q->free_descs - ndescs);
    q->free_head = q->free_descs > 0 ? q->desc_next[d] : (uint16_t)DRV_NO_ID;
    return head;
}

/* Book the buffer and write its head into the next available ring entry: not visible
 * to the device until avail->idx covers it ("Updating The Available Ring": entries are
 * written at avail->idx + added). */
static void place_head(struct dsq *q, uint16_t head, uint16_t last, uint16_t ndescs, uint32_t wlen)
{
    uint16_t pos = ring_pos(q, (uint16_t)(q->avail_idx + q->added));

    q->id_descs[head] = ndescs;
    q->id_last[head] = last;
    q->id_wlen[head] = wlen;
    q->id_owned[head] = false;
    q->avail_head[pos] = head;
    vs_put_le16(q->avail + SVIRTQ_AVAIL_OFF_RING + (size_t)pos * SVIRTQ_AVAIL_ENTRY_BYTES, head);
    q->added++;
}

enum drv_status dsq_add(struct dsq *q, const struct drv_seg *segs, uint16_t nsegs, uint16_t *id)
{
    uint32_t wlen;
    enum drv_status st;
    uint16_t head, last, d;

    if (q->broken != DRV_HEALTHY)
        return DRV_BROKEN;
    st = check_segs(q, segs, nsegs, &wlen);
    if (st != DRV_OK)
        return st;
    if (!dsq_can_add(q, nsegs, NULL))
        return DRV_FULL;

    head = take_descs(q, nsegs, &last);
    /* "Placing Buffers Into The Descriptor Table": WRITE for device-writable elements;
     * NEXT and `next` when another element follows. */
    d = head;
    for (uint16_t i = 0; i < nsegs; i++) {
        bool more = i + 1u < nsegs;
        uint16_t flags = (uint16_t)(segs[i].device_writable ? VIRTQ_DESC_F_WRITE_MASK : 0u);

        if (more)
            flags |= VIRTQ_DESC_F_NEXT_MASK;
        write_desc(desc_at(q, d), segs[i].addr, segs[i].len, flags, more ? q->desc_next[d] : 0);
        if (more)
            d = q->desc_next[d];
    }
    assert(d == last);
    place_head(q, head, last, nsegs, wlen);
    if (id != NULL)
        *id = head;
    return DRV_OK;
}

enum drv_status dsq_add_indirect(struct dsq *q, uint8_t *table, uint64_t table_addr,
                                 const struct drv_seg *segs, uint16_t nsegs, uint16_t *id)
{
    uint32_t wlen;
    enum drv_status st;
    uint16_t head, last;

    if (q->broken != DRV_HEALTHY)
        return DRV_BROKEN;
    if (table == NULL)
        return DRV_INVALID;
    st = check_segs(q, segs, nsegs, &wlen);
    if (st != DRV_OK)
        return st;
    if (!dsq_can_add(q, 1, NULL))
        return DRV_FULL;

    /* The table is complete before the ring descriptor that points to it. Entries are
     * chained in table order, next = i + 1 ("indirect descriptors MUST appear
     * sequentially"); never INDIRECT inside ("only one table per descriptor"). */
    for (uint16_t i = 0; i < nsegs; i++) {
        bool more = i + 1u < nsegs;
        uint16_t flags = (uint16_t)(segs[i].device_writable ? VIRTQ_DESC_F_WRITE_MASK : 0u);

        if (more)
            flags |= VIRTQ_DESC_F_NEXT_MASK;
        write_desc(table + (size_t)i * SVIRTQ_DESC_BYTES, segs[i].addr, segs[i].len, flags,
                   more ? (uint16_t)(i + 1u) : 0);
    }

    head = take_descs(q, 1, &last);
    /* INDIRECT alone: not with NEXT (forbidden), not with WRITE (the device ignores it). */
    write_desc(desc_at(q, head), table_addr, (uint32_t)nsegs * SVIRTQ_DESC_BYTES,
               VIRTQ_DESC_F_INDIRECT_MASK, 0);
    place_head(q, head, last, 1, wlen);
    if (id != NULL)
        *id = head;
    return DRV_OK;
}

uint32_t dsq_publish(struct dsq *q)
{
    uint16_t n = q->added;

    if (n == 0)
        return 0;

    /* From here on the device may use these buffers: they are the ids a used entry may
     * name. */
    for (uint16_t i = 0; i < n; i++)
        q->id_owned[q->avail_head[ring_pos(q, (uint16_t)(q->avail_idx + i))]] = true;
    q->owned = (uint16_t)(q->owned + n);

    /* Descriptors and ring entries first, then the index that exposes them. */
    __atomic_thread_fence(__ATOMIC_RELEASE);
    q->avail_idx = (uint16_t)(q->avail_idx + n);
    vs_put_le16(q->avail + SVIRTQ_AVAIL_OFF_IDX, q->avail_idx);
    q->added = 0;
    q->unnotified += n;
    return n;
}

bool dsq_need_event(uint16_t event, uint16_t new_idx, uint16_t old_idx)
{
    /* Distances back from new_idx: the entries just written are 1..(new - old) back;
     * the event is among them iff it is at most that far back (and not 0 back). */
    return (uint16_t)(new_idx - event - 1u) < (uint16_t)(new_idx - old_idx);
}

bool dsq_needs_notify(struct dsq *q)
{
    uint32_t count = q->unnotified;
    uint16_t event;

    q->unnotified = 0;
    if (count == 0)
        return false;

    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (!q->event_idx) {
        /* "If flags is 1, the driver SHOULD NOT send a notification. If flags is 0, the
         * driver MUST send a notification." Other bits are not the device's to set;
         * only NO_NOTIFY suppresses. */
        return (vs_le16(q->used + SVIRTQ_USED_OFF_FLAGS) & VIRTQ_USED_F_NO_NOTIFY_MASK) == 0;
    }
    /* "The driver MUST ignore the lower bit of flags"; notify iff an entry was written
     * at index avail_event. A whole 16-bit lap since the last decision passed it. */
    if (count > UINT16_MAX)
        return true;
    event = vs_le16(q->used + SVIRTQ_AVAIL_EVENT_OFF(q->size));
    return dsq_need_event(event, q->avail_idx, (uint16_t)(q->avail_idx - count));
}

uint32_t dsq_notify_data(const struct dsq *q, uint16_t vq_index)
{
    uint32_t v = vq_index & VIRTIO_NOTIFY_DATA_VQN_MASK;

    v |= ((uint32_t)q->avail_idx & VIRTIO_NOTIFY_DATA_OFF_MASK) << VIRTIO_NOTIFY_DATA_OFF_SHIFT;
    if (q->avail_idx & 0x8000u)
        v |= 1u << VIRTIO_NOTIFY_DATA_WRAP_BIT;
    return v;
}

bool dsq_has_used(const struct dsq *q)
{
    if (q->broken != DRV_HEALTHY)
        return false;
    if (q->inorder_batch || q->last_used != q->used_idx_seen)
        return true;
    return vs_le16(q->used + SVIRTQ_USED_OFF_IDX) != q->last_used;
}

static enum drv_status set_broken(struct dsq *q, enum drv_broken why)
{
    q->broken = why;
    return DRV_BROKEN;
}

/* With EVENT_IDX and notifications off, keep used_event out of the device's reach: it
 * can write entries up to size - 1 past the driver's position, so used_event is moved
 * once it comes closer than that. */
static void keep_events_off(struct dsq *q)
{
    if (q->events_enabled || !q->event_idx)
        return;
    if ((uint16_t)(q->used_event - q->last_used) >= q->size)
        return;
    q->used_event = (uint16_t)(q->last_used - 1u);
    if (q->event_mmio.write)
        q->event_mmio.write(q->event_mmio.ctx, VIOSIM_DEVMEM_SPLIT_OFF_USED_EVENT, 2, q->used_event);
    else
        vs_put_le16(q->avail + SVIRTQ_USED_EVENT_OFF(q->size), q->used_event);
}

/* Give the buffer's descriptors back (appended to the free list, so IN_ORDER keeps
 * table order) and move past its used entry. */
static void release_buffer(struct dsq *q, uint16_t id)
{
    uint16_t n = q->id_descs[id];

    assert(n >= 1 && q->id_owned[id] && q->owned > 0);
    if (q->free_descs == 0)
        q->free_head = id;
    else
        q->desc_next[q->free_tail] = id;
    q->free_tail = q->id_last[id];
    q->free_descs = (uint16_t)(q->free_descs + n);
    q->id_descs[id] = 0;
    q->id_owned[id] = false;
    q->owned--;
    q->last_used++;
    keep_events_off(q);
}

/* IN_ORDER: the buffer made available at last_used is the oldest the device owns; hand
 * it out as a skipped batch member or as the batch's end (with the entry's length). */
static enum drv_status take_inorder(struct dsq *q, struct drv_used *u)
{
    uint16_t b = q->avail_head[ring_pos(q, q->last_used)];

    if (b >= q->size || !q->id_owned[b])
        return set_broken(q, DRV_BROKEN_ID_NOT_OWNED); /* not reached: checked when found */
    u->id = b;
    u->written = q->id_wlen[b] > 0;
    if (b == q->inorder_last_id) {
        u->len = u->written ? q->inorder_len : 0;
        u->skipped = false;
        q->inorder_batch = false;
    } else {
        u->len = q->id_wlen[b];
        u->skipped = true;
    }
    release_buffer(q, b);
    return DRV_OK;
}

/* IN_ORDER: the used entry names the last buffer of a batch that starts at the
 * driver's position; it must lie within what used->idx covers. */
static enum drv_status start_inorder_batch(struct dsq *q, uint16_t id, uint32_t len)
{
    uint16_t covered = (uint16_t)(q->used_idx_seen - q->last_used);
    uint16_t k = 0;

    while (k < q->owned && q->avail_head[ring_pos(q, (uint16_t)(q->last_used + k))] != id)
        k++;
    if (k >= q->owned)
        return set_broken(q, DRV_BROKEN_ID_NOT_OWNED); /* owned, yet not in ring order */
    if ((uint32_t)k + 1u > covered)
        return set_broken(q, DRV_BROKEN_BATCH_LONG);
    q->inorder_batch = true;
    q->inorder_last_id = id;
    q->inorder_len = len;
    return DRV_OK;
}

enum drv_status dsq_get_used(struct dsq *q, struct drv_used *u)
{
    const uint8_t *e;
    uint32_t id, len;
    enum drv_status st;

    if (q->broken != DRV_HEALTHY)
        return DRV_BROKEN;
    if (q->inorder_batch)
        return take_inorder(q, u);

    if (q->last_used == q->used_idx_seen) {
        uint16_t idx = vs_le16(q->used + SVIRTQ_USED_OFF_IDX);

        if (idx == q->last_used)
            return DRV_EMPTY;
        /* The device adds one per used buffer (a batch's size with IN_ORDER) and can
         * have used at most what it owns; anything else, backwards included, is a lie. */
        if ((uint16_t)(idx - q->last_used) > q->owned)
            return set_broken(q, DRV_BROKEN_IDX_JUMP);
        q->used_idx_seen = idx;
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
    }

    e = q->used + SVIRTQ_USED_OFF_RING + (size_t)ring_pos(q, q->last_used) * SVIRTQ_USED_ENTRY_BYTES;
    id = vs_le32(e + SVIRTQ_USED_ELEM_OFF_ID);
    len = vs_le32(e + SVIRTQ_USED_ELEM_OFF_LEN);
    if (id >= q->size)
        return set_broken(q, DRV_BROKEN_ID_RANGE);
    if (!q->id_owned[id])
        return set_broken(q, DRV_BROKEN_ID_NOT_OWNED);

    if (q->in_order) {
        st = start_inorder_batch(q, (uint16_t)id, len);
        return st == DRV_OK ? take_inorder(q, u) : st;
    }

    u->id = (uint16_t)id;
    u->written = q->id_wlen[id] > 0;
    u->len = u->written ? len : 0;
    u->skipped = false;
    release_buffer(q, (uint16_t)id);
    return DRV_OK;
}

/* The store, then a full barrier so the caller's re-check of used->idx is not ordered
 * before it. */
static void write_avail_field(struct dsq *q, size_t off, uint16_t v)
{
    if (q->event_mmio.write) {
        /* viosim extension: the field is in the device-memory slot (dsq_set_event_mmio). */
        q->event_mmio.write(q->event_mmio.ctx,
                            off == SVIRTQ_AVAIL_OFF_FLAGS ? VIOSIM_DEVMEM_SPLIT_OFF_FLAGS
                                                       : VIOSIM_DEVMEM_SPLIT_OFF_USED_EVENT,
                            2, v);
        return;
    }
    vs_put_le16(q->avail + off, v);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

void dsq_set_event_mmio(struct dsq *q, const struct drv_event_mmio *w)
{
    if (w)
        q->event_mmio = *w;
    else
        memset(&q->event_mmio, 0, sizeof q->event_mmio);
}

void dsq_set_driver_events(struct dsq *q, enum drv_events ev)
{
    if (ev == DRV_EVENTS_ENABLE) {
        dsq_enable_driver_events_after(q, 0);
        return;
    }
    q->events_enabled = false;
    if (!q->event_idx) {
        write_avail_field(q, SVIRTQ_AVAIL_OFF_FLAGS, VIRTQ_AVAIL_F_NO_INTERRUPT_MASK);
        return;
    }
    /* flags stay 0 ("The driver MUST set flags to 0" with EVENT_IDX): the entry just
     * behind the driver is a whole lap of the index away for the device. */
    q->used_event = (uint16_t)(q->last_used - 1u);
    write_avail_field(q, SVIRTQ_USED_EVENT_OFF(q->size), q->used_event);
}

void dsq_enable_driver_events_after(struct dsq *q, uint16_t ahead)
{
    q->events_enabled = true;
    if (!q->event_idx) {
        write_avail_field(q, SVIRTQ_AVAIL_OFF_FLAGS, 0);
        return;
    }
    if (ahead >= q->size)
        ahead = (uint16_t)(q->size - 1u);
    /* "notifications are unnecessary until the device writes an entry with an index
     * specified by used_event into the used ring". */
    q->used_event = (uint16_t)(q->last_used + ahead);
    if (q->event_mmio.write) {
        /* viosim extension: asking for notifications is a whole-slot write (flags 0 and
         * used_event), which a device that re-checks on slot writes acts on; a used_event
         * moved alone (keep_events_off) does not ask. */
        q->event_mmio.write(q->event_mmio.ctx, 0, 4, (uint32_t)q->used_event << 16);
        return;
    }
    write_avail_field(q, SVIRTQ_USED_EVENT_OFF(q->size), q->used_event);
}

uint16_t dsq_in_flight(const struct dsq *q)
{
    return (uint16_t)(q->owned + q->added);
}

uint16_t dsq_descs_in_flight(const struct dsq *q)
{
    return (uint16_t)(q->size - q->free_descs);
}

/* ---- the format-neutral table (drv_ring.h) ---- */

/* used_event counts used entries: one per buffer. */
DRV_RING_OPS_DEFINE(dsq, "split", dsq_in_flight, dsq_descs_in_flight);
