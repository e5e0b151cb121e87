/* split_vq.c -- device side of a split virtqueue ("Split Virtqueues").
 *
 * Positions are the spec's free-running 16-bit indices (avail->idx, used->idx and
 * the device's own copies); the ring entry of an index is idx % size. The queue size
 * is a power of two, so 65536 is a multiple of it and the entry sequence carries on
 * unbroken when an index wraps from 65535 to 0.
 *
 * Reads of the available ring (idx and entries) use the kind VS_DMA_DESC_READ: they
 * are part of fetching the driver's descriptors, and guest_ops.h has no separate
 * kind for them. They are not counted in stats.descs_read, which counts descriptor
 * table and indirect table entries only (as in packed_vq.c).
 *
 * Every guest access goes through guest_read()/guest_write(), which turn a DMA
 * failure into a sticky break. Every public entry point that touches memory first
 * checks q->broken, so a broken queue never issues another access.
 */
#include "split_vq.h"

#include <assert.h>
#include <stddef.h>
#include <string.h>

#include "virtio_wire.h"

/* Indirect table entries fetched per DMA read (a stack buffer: no heap here). */
#define SVQ_INDIRECT_BURST 32u

/* Elements published since the last interrupt decision saturate here: after 2^16 of
 * them, every 16-bit used_event value has been passed. */
#define SVQ_UNSIGNALLED_CAP 65536u

/* ------------------------------------------------------------------------------
 * Small pure helpers
 * ------------------------------------------------------------------------------ */

static bool size_is_usable(uint16_t size)
{
    return size != 0 && size <= SVIRTQ_SIZE_MAX && (size & (size - 1u)) == 0;
}

/* Ring entry of a free-running index. */
static uint16_t ring_entry(const struct svq *q, uint16_t idx)
{
    return (uint16_t)(idx & (q->cfg.size - 1u));
}

/* "Used Buffer Notification Suppression" with EVENT_IDX: the driver wants a
 * notification once the device has written the used element with index used_event,
 * i.e. when used->idx moved from old past used_event to new_idx. Written as a
 * distance: used_event lies in [old, new_idx) exactly when the distance from it to
 * new_idx - 1 is below the number of elements published, new_idx - old. Counting
 * that number ourselves (not as a 16-bit difference) keeps 65536 or more published
 * elements from reading as none. */
static bool used_event_passed(uint16_t used_event, uint16_t new_idx, uint32_t published)
{
    uint16_t behind = (uint16_t)(new_idx - used_event - 1u);
    return (uint32_t)behind < published;
}

/* ------------------------------------------------------------------------------
 * Breakage and guest access
 * ------------------------------------------------------------------------------ */

static enum vq_status svq_break(struct svq *q, enum vs_reason why)
{
    if (q->broken == VS_REASON_NONE)
        q->broken = why;
    return VQ_BROKEN;
}

/* An access whose last byte would lie beyond 2^64 - 1 is not backed by memory;
 * catching it here keeps a wrapped address from reaching the ops. */
static bool guest_read(struct svq *q, const struct vs_guest_ops *ops, uint64_t addr,
                       void *dst, uint32_t len, enum vs_dma_kind kind)
{
    if (vq_range_wraps(addr, len)) {
        svq_break(q, VS_REASON_DMA_OUT_OF_RANGE);
        return false;
    }
    enum vs_dma_status s = ops->read(ops->ctx, addr, dst, len, kind);
    if (s != VS_DMA_OK) {
        svq_break(q, vs_dma_status_reason((int)s));
        return false;
    }
    return true;
}

static bool guest_write(struct svq *q, const struct vs_guest_ops *ops, uint64_t addr,
                        const void *src, uint32_t len, enum vs_dma_kind kind)
{
    if (vq_range_wraps(addr, len)) {
        svq_break(q, VS_REASON_DMA_OUT_OF_RANGE);
        return false;
    }
    enum vs_dma_status s = ops->write(ops->ctx, addr, src, len, kind);
    if (s != VS_DMA_OK) {
        svq_break(q, vs_dma_status_reason((int)s));
        return false;
    }
    return true;
}

/* base + off as a guest address, or false (queue broken) if it would pass 2^64. */
static bool area_addr(struct svq *q, uint64_t base, uint64_t off, uint64_t *addr)
{
    if (base > UINT64_MAX - off) {
        svq_break(q, VS_REASON_DMA_OUT_OF_RANGE);
        return false;
    }
    *addr = base + off;
    return true;
}

static bool read_le16(struct svq *q, const struct vs_guest_ops *ops, uint64_t base,
                      uint64_t off, enum vs_dma_kind kind, uint16_t *v)
{
    uint64_t addr;
    uint8_t raw[2];
    if (!area_addr(q, base, off, &addr) || !guest_read(q, ops, addr, raw, sizeof raw, kind))
        return false;
    *v = vs_le16(raw);
    return true;
}

static bool write_le16(struct svq *q, const struct vs_guest_ops *ops, uint64_t base,
                       uint64_t off, enum vs_dma_kind kind, uint16_t v)
{
    uint64_t addr;
    uint8_t raw[2];
    vs_put_le16(raw, v);
    return area_addr(q, base, off, &addr) && guest_write(q, ops, addr, raw, sizeof raw, kind);
}

/* Fetch the 16-byte descriptor table entry idx (idx < size), from the descriptor run
 * cache when it is the run's next entry. Otherwise one read: with IN_ORDER and a batch
 * above one, of the run from idx up to the last head known available ("In-order use of
 * descriptors": the driver uses table entries in ring order, so the descriptors of the
 * buffers whose heads are cached follow one another), not past the table's end;
 * without IN_ORDER, of idx alone (where the next descriptor is is unknown). */
static bool read_table_desc(struct svq *q, const struct vs_guest_ops *ops, uint16_t idx,
                            uint8_t raw[sizeof(struct svirtq_desc)])
{
    if (q->desc_count > 0 && q->desc_at == idx) {
        memcpy(raw, q->desc_cache[q->desc_first], sizeof(struct svirtq_desc));
        q->desc_first++;
        q->desc_count--;
        q->desc_at = (uint16_t)((idx + 1u) & (q->cfg.size - 1u));
        return true;
    }
    q->desc_count = 0;
    uint32_t n = 1;
    if (q->cfg.in_order && vq_fetch_batch(&q->cfg) > 1 && q->head_count > 0) {
        uint16_t last = q->head_cache[q->head_first + q->head_count - 1u];
        n = (uint32_t)((last - idx) & (q->cfg.size - 1u)) + 1u;
        if (n > vq_fetch_batch(&q->cfg))
            n = vq_fetch_batch(&q->cfg);
        if (n > (uint32_t)q->cfg.size - idx)
            n = (uint32_t)q->cfg.size - idx;
    }
    uint64_t addr;
    if (!area_addr(q, q->cfg.desc_addr, (uint64_t)idx * sizeof(struct svirtq_desc), &addr) ||
        !guest_read(q, ops, addr, n == 1 ? (void *)raw : (void *)q->desc_cache[0],
                    n * (uint32_t)sizeof(struct svirtq_desc), VS_DMA_DESC_READ))
        return false;
    q->stats.descs_read += n;
    if (n > 1) {
        memcpy(raw, q->desc_cache[0], sizeof(struct svirtq_desc));
        q->desc_first = 1;
        q->desc_count = (uint16_t)(n - 1u);
        q->desc_at = (uint16_t)((idx + 1u) & (q->cfg.size - 1u));
    }
    return true;
}


/* ------------------------------------------------------------------------------
 * Configuration
 * ------------------------------------------------------------------------------ */

void svq_init(struct svq *q, const struct vq_config *cfg)
{
    memset(q, 0, sizeof *q);
    q->cfg = *cfg;
    q->broken = VS_REASON_NONE;
    /* Not validation (svq_check_config does that) but a guard: ring entries are
     * idx % size, which needs a power of two no larger than 32768 to stay
     * continuous across the 16-bit wrap. */
    if (!size_is_usable(cfg->size))
        q->broken = VS_REASON_QUEUE_SIZE_INVALID;
}

enum vs_reason svq_check_config(const struct vq_config *cfg, uint16_t size_max)
{
    uint32_t limit = size_max < SVIRTQ_SIZE_MAX ? size_max : SVIRTQ_SIZE_MAX;
    /* "Split Virtqueues": "Queue Size value is always a power of 2. The maximum Queue
     * Size value is 32768." (and for PCI, "Common configuration structure layout":
     * without RING_PACKED the driver MUST NOT write a queue_size that is not a power
     * of 2). */
    if (!size_is_usable(cfg->size) || cfg->size > limit)
        return VS_REASON_QUEUE_SIZE_INVALID;
    /* "Split Virtqueues" (driver normative "Virtqueues"): each part's first byte a
     * multiple of its alignment: descriptor table 16, available ring 2, used ring 4. */
    if (cfg->desc_addr % SVIRTQ_DESC_ALIGN != 0 || cfg->driver_addr % SVIRTQ_AVAIL_ALIGN != 0 ||
        cfg->device_addr % SVIRTQ_USED_ALIGN != 0)
        return VS_REASON_RING_MISALIGNED;
    /* A part that runs past the top of the address space cannot be backed. The
     * sizes include the EVENT_IDX fields, as the spec's size table does. */
    if (vq_range_wraps(cfg->desc_addr, SVIRTQ_DESC_TABLE_BYTES(cfg->size)) ||
        vq_range_wraps(cfg->driver_addr, SVIRTQ_AVAIL_RING_BYTES(cfg->size)) ||
        vq_range_wraps(cfg->device_addr, SVIRTQ_USED_RING_BYTES(cfg->size)))
        return VS_REASON_DMA_OUT_OF_RANGE;
    return VS_REASON_NONE;
}

/* ------------------------------------------------------------------------------
 * Available side
 * ------------------------------------------------------------------------------ */

/* Read avail->idx into the cache and check it. "The Virtqueue Available Ring"
 * (driver normative): the driver MUST NOT decrement idx; and since the ring has
 * size entries, it can never be more than size ahead of the device. Either
 * violation shows as a forward distance above size. When the device had gone beyond
 * the idx it last read on the word of a NOTIFICATION_DATA hint and the idx now read is
 * not behind that earlier read, the hint named entries the driver had not made
 * available: the notification lied ("Driver Notifications": next_off and next_wrap are
 * where the driver writes its next entry, and the driver updates idx before it
 * notifies), not the idx. */
static bool refresh_avail_idx(struct svq *q, const struct vs_guest_ops *ops)
{
    uint16_t idx;
    if (!read_le16(q, ops, q->cfg.driver_addr, SVIRTQ_AVAIL_OFF_IDX, VS_DMA_DESC_READ, &idx))
        return false;
    if ((uint16_t)(idx - q->last_avail_idx) > q->cfg.size) {
        const uint16_t beyond_read = (uint16_t)(q->last_avail_idx - q->read_avail_idx);
        const bool hint_lied = beyond_read != 0 && (uint16_t)(idx - q->read_avail_idx) < beyond_read;
        svq_break(q, hint_lied ? VS_REASON_NOTIFY_DATA_AHEAD : VS_REASON_AVAIL_IDX_JUMP);
        return false;
    }
    q->shadow_avail_idx = idx;
    q->read_avail_idx = idx;
    return true;
}

/* NOTIFICATION_DATA ("Driver Notifications"): a notification carries the driver's
 * available idx as it was when the driver notified, and the driver wrote idx (and the
 * entries below it) before notifying ("Updating idx", "Notifying The Device"). So a hint ahead of what the device knows is a
 * value of avail->idx the device may use without reading it: the entries below it are
 * available. Which hints are kept is svq_set_avail_hint's business; one that names
 * entries the driver had not made available is caught at the next read of avail->idx
 * (refresh_avail_idx). */
static void take_hint(struct svq *q)
{
    if (svq_hint_count(q) > (uint16_t)(q->shadow_avail_idx - q->last_avail_idx))
        q->shadow_avail_idx = q->hint_avail_idx;
}

enum vq_status svq_peek(struct svq *q, const struct vs_guest_ops *ops, bool *available)
{
    *available = false;
    if (q->broken != VS_REASON_NONE)
        return VQ_BROKEN;
    /* After enabling notifications the device re-checks before it sleeps ("Available
     * Buffer Notification Suppression"). The driver exposes idx before it looks whether
     * notifications are wanted ("Notifying The Device"), so either this read sees the
     * driver's new idx or the driver sees notifications enabled and notifies: no
     * buffer is left unnoticed. A hint ahead of the device is as good as a read that
     * finds buffers; without one, avail->idx is read, since the driver may have added
     * buffers without notifying while notifications were off. */
    take_hint(q);
    if (q->shadow_avail_idx == q->last_avail_idx && !refresh_avail_idx(q, ops))
        return VQ_BROKEN;
    *available = q->shadow_avail_idx != q->last_avail_idx;
    return VQ_OK;
}

/* Accumulates the segments of one buffer and checks the rules that apply to every
 * element, whether it came from the descriptor table or from an indirect table. */
static enum vq_status seg_add(struct svq *q, struct vq_seg_walk *w, const uint8_t *d)
{
    bool writable = (vs_le16(d + SVIRTQ_DESC_OFF_FLAGS) & VIRTQ_DESC_F_WRITE_MASK) != 0;
    enum vs_reason why = vq_seg_add(w, vs_le64(d), vs_le32(d + SVIRTQ_DESC_OFF_LEN), writable);
    return why == VS_REASON_NONE ? VQ_OK : svq_break(q, why);
}

/* "Indirect Descriptors": the table at `table` holds len / 16 descriptors; the list
 * starts at entry 0 and continues through each entry's `next` while NEXT is set.
 * INDIRECT inside the table is forbidden (one table per buffer). The walk adds one
 * element per entry visited, so the segment limit bounds it and catches a loop.
 *
 * Entries are fetched in bursts starting at the entry needed, never past the table
 * nor past as many entries as the buffer may still hold: a table laid out in order
 * (what drivers do) costs one read per SVQ_INDIRECT_BURST entries; a list that jumps
 * around costs at most one read per element. */
static enum vq_status walk_indirect(struct svq *q, const struct vs_guest_ops *ops,
                                    struct vq_seg_walk *w, uint64_t table, uint32_t len)
{
    if (len == 0 || len % sizeof(struct svirtq_desc) != 0)
        return svq_break(q, VS_REASON_INDIRECT_LEN_NOT_MULTIPLE);
    if (vq_range_wraps(table, len))
        return svq_break(q, VS_REASON_DMA_OUT_OF_RANGE);
    const uint32_t count = len / (uint32_t)sizeof(struct svirtq_desc);

    uint8_t burst[SVQ_INDIRECT_BURST * sizeof(struct svirtq_desc)];
    uint32_t first = 0, cached = 0; /* burst holds entries [first, first + cached) */
    uint32_t i = 0;
    for (;;) {
        if (w->nsegs >= w->limit)
            return svq_break(q, VS_REASON_CHAIN_TOO_LONG);
        if (i < first || i - first >= cached) {
            uint32_t n = count - i;
            if (n > SVQ_INDIRECT_BURST)
                n = SVQ_INDIRECT_BURST;
            if (n > w->limit - w->nsegs)
                n = w->limit - w->nsegs;
            uint64_t addr = table + (uint64_t)i * sizeof(struct svirtq_desc);
            if (!guest_read(q, ops, addr, burst, n * (uint32_t)sizeof(struct svirtq_desc),
                            VS_DMA_DESC_READ))
                return VQ_BROKEN;
            q->stats.descs_read += n;
            first = i;
            cached = n;
        }
        const uint8_t *d = burst + (size_t)(i - first) * sizeof(struct svirtq_desc);
        uint16_t flags = vs_le16(d + SVIRTQ_DESC_OFF_FLAGS);
        if (flags & VIRTQ_DESC_F_INDIRECT_MASK)
            return svq_break(q, VS_REASON_INDIRECT_NESTED);
        enum vq_status s = seg_add(q, w, d);
        if (s != VQ_OK)
            return s;
        if (!(flags & VIRTQ_DESC_F_NEXT_MASK))
            return VQ_OK;
        uint16_t next = vs_le16(d + SVIRTQ_DESC_OFF_NEXT);
        if (next >= count)
            return svq_break(q, VS_REASON_DESC_NEXT_OUT_OF_RANGE);
        i = next;
    }
}

/* Read available ring entries [at, at + n) (as ring entries, no wrap inside) into
 * head_cache[into ..]. */
static bool fetch_head_range(struct svq *q, const struct vs_guest_ops *ops, uint16_t at,
                             uint32_t n, uint32_t into)
{
    uint8_t raw[VQ_FETCH_BATCH_MAX * SVIRTQ_AVAIL_ENTRY_BYTES];
    uint64_t addr;
    if (!area_addr(q, q->cfg.driver_addr,
                   SVIRTQ_AVAIL_OFF_RING + (uint64_t)at * SVIRTQ_AVAIL_ENTRY_BYTES, &addr) ||
        !guest_read(q, ops, addr, raw, n * SVIRTQ_AVAIL_ENTRY_BYTES, VS_DMA_DESC_READ))
        return false;
    for (uint32_t i = 0; i < n; i++)
        q->head_cache[into + i] = vs_le16(raw + i * SVIRTQ_AVAIL_ENTRY_BYTES);
    q->stats.fetch_reads++;
    q->stats.fetch_entries += n;
    return true;
}

/* Fill the (empty) head cache from last_avail_idx; at least one entry is available
 * (shadow_avail_idx is ahead, from a read of avail->idx or a NOTIFICATION_DATA hint).
 * How many entries to read depends on the fetch source (vq.h): HINT, what the hint
 * gave (at most the batch; one without a hint); READ_AHEAD, every entry known to be
 * available (at most the batch). Entries at or beyond avail->idx as known are never
 * read: they could not be used ("Updating idx": an entry read before idx covered it may
 * be stale), so reading them would only be waste. Cached descriptors are dropped, so
 * none predates this idx. */
static bool fetch_heads(struct svq *q, const struct vs_guest_ops *ops)
{
    const uint32_t batch = vq_fetch_batch(&q->cfg);
    const uint32_t avail = (uint16_t)(q->shadow_avail_idx - q->last_avail_idx);
    uint32_t n = 1;
    bool hinted = false;
    if (q->cfg.fetch_source == VQ_FETCH_HINT && svq_hint_count(q) > 0) {
        n = svq_hint_count(q);
        hinted = true;
    } else if (q->cfg.fetch_source == VQ_FETCH_READ_AHEAD) {
        n = avail;
    }
    if (n > batch)
        n = batch;
    if (n > avail)
        n = avail;
    const uint16_t at = ring_entry(q, q->last_avail_idx);
    uint32_t first = n < (uint32_t)(q->cfg.size - at) ? n : (uint32_t)(q->cfg.size - at);
    uint64_t reads_before = q->stats.fetch_reads;
    if (!fetch_head_range(q, ops, at, first, 0))
        return false;
    if (n > first && !fetch_head_range(q, ops, 0, n - first, first))
        return false;
    if (hinted)
        q->stats.fetch_hint_reads += q->stats.fetch_reads - reads_before;
    q->head_first = 0;
    q->head_count = (uint16_t)n;
    q->desc_count = 0;
    return true;
}

enum vq_status svq_pop(struct svq *q, const struct vs_guest_ops *ops, struct vq_elem *elem,
                       struct vq_seg *segs, uint32_t max_segs)
{
    if (q->broken != VS_REASON_NONE)
        return VQ_BROKEN;
    /* "Updating idx": entries become available when avail->idx moves past them; a
     * NOTIFICATION_DATA hint says how far it moved without a read (take_hint). Once
     * the device has used every entry it knows of, it reads avail->idx: while it works
     * notifications are off, so the driver may have added entries without a hint. */
    take_hint(q);
    if (q->shadow_avail_idx == q->last_avail_idx) {
        if (!refresh_avail_idx(q, ops))
            return VQ_BROKEN;
        if (q->shadow_avail_idx == q->last_avail_idx)
            return VQ_EMPTY;
    }

    /* "Updating The Available Ring": the entry at last_avail_idx % size holds the
     * index of the chain's head in the descriptor table. */
    if (q->head_count == 0 && !fetch_heads(q, ops))
        return VQ_BROKEN;
    uint16_t head = q->head_cache[q->head_first];
    q->head_first++;
    q->head_count--;
    if (head >= q->cfg.size)
        return svq_break(q, VS_REASON_DESC_ID_OUT_OF_RANGE);

    struct vq_seg_walk w = {
        .segs = segs,
        .limit = max_segs < q->cfg.size ? max_segs : q->cfg.size,
    };
    memset(elem, 0, sizeof *elem);
    uint8_t d[sizeof(struct svirtq_desc)];
    uint16_t idx = head;
    /* "The Virtqueue Descriptor Table": the chain follows `next` while NEXT is set.
     * Each descriptor visited adds one element, and the walk stops at the segment
     * limit (at most the queue size: "A driver MUST NOT create a descriptor chain
     * longer than the Queue Size"), so a loop ends as CHAIN_TOO_LONG. */
    for (;;) {
        if (!read_table_desc(q, ops, idx, d))
            return VQ_BROKEN;
        uint16_t flags = vs_le16(d + SVIRTQ_DESC_OFF_FLAGS);
        if (flags & VIRTQ_DESC_F_INDIRECT_MASK) {
            /* "Indirect Descriptors" (driver normative): not without the feature, and
             * never together with NEXT. The device MUST handle zero or more chained
             * descriptors followed by a single indirect one, so this ends the chain.
             * Its WRITE flag is ignored (device normative). */
            if (!q->cfg.indirect_desc)
                return svq_break(q, VS_REASON_INDIRECT_NOT_NEGOTIATED);
            if (flags & VIRTQ_DESC_F_NEXT_MASK)
                return svq_break(q, VS_REASON_INDIRECT_WITH_NEXT);
            enum vq_status s = walk_indirect(q, ops, &w, vs_le64(d),
                                             vs_le32(d + SVIRTQ_DESC_OFF_LEN));
            if (s != VQ_OK)
                return s;
            q->stats.indirect_tables++;
            elem->indirect = true;
            break;
        }
        enum vq_status s = seg_add(q, &w, d);
        if (s != VQ_OK)
            return s;
        if (!(flags & VIRTQ_DESC_F_NEXT_MASK))
            break;
        if (w.nsegs >= w.limit)
            return svq_break(q, VS_REASON_CHAIN_TOO_LONG);
        idx = vs_le16(d + SVIRTQ_DESC_OFF_NEXT);
        if (idx >= q->cfg.size)
            return svq_break(q, VS_REASON_DESC_NEXT_OUT_OF_RANGE);
    }

    /* "The Virtqueue Used Ring": the used element names the chain by its head. A
     * split buffer takes one available ring entry, whatever its length: slots = 1. */
    elem->id = head;
    elem->head = head;
    elem->slots = 1;
    elem->nsegs = w.nsegs;
    elem->readable_bytes = (uint32_t)w.readable;
    elem->writable_bytes = (uint32_t)w.writable;
    q->last_avail_idx++;
    /* A hint the device has reached says nothing more (svq_set_avail_hint). */
    if (q->hint_valid && q->hint_avail_idx == q->last_avail_idx)
        q->hint_valid = false;
    q->stats.buffers_popped++;
    return VQ_OK;
}

/* ------------------------------------------------------------------------------
 * Used side
 * ------------------------------------------------------------------------------ */

/* Write the held used elements (used_buf) to their ring entries: one DMA write of
 * the contiguous range, two when it passes the ring's end. "The Virtqueue Used Ring":
 * the device fills entries from used->idx on and only then moves idx, so the entries
 * may go out in any grouping as long as every one is written before svq_flush's idx
 * write (posted writes stay in order on the link). */
static bool write_used_buf(struct svq *q, const struct vs_guest_ops *ops)
{
    const uint32_t n = q->used_buf_count;
    if (n == 0)
        return true;
    const uint16_t at = ring_entry(q, (uint16_t)(q->used_idx - n));
    const uint32_t first = n < (uint32_t)(q->cfg.size - at) ? n : (uint32_t)(q->cfg.size - at);
    const uint32_t elem = sizeof(struct svirtq_used_elem);
    uint64_t addr;
    if (!area_addr(q, q->cfg.device_addr, SVIRTQ_USED_OFF_RING + (uint64_t)at * elem, &addr) ||
        !guest_write(q, ops, addr, q->used_buf[0], first * elem, VS_DMA_USED_WRITE))
        return false;
    if (n > first &&
        (!area_addr(q, q->cfg.device_addr, SVIRTQ_USED_OFF_RING, &addr) ||
         !guest_write(q, ops, addr, q->used_buf[first], (n - first) * elem, VS_DMA_USED_WRITE)))
        return false;
    q->used_buf_count = 0;
    return true;
}

enum vq_status svq_push(struct svq *q, const struct vs_guest_ops *ops,
                        const struct vq_elem *elem, uint32_t written_len)
{
    if (q->broken != VS_REASON_NONE)
        return VQ_BROKEN;
    assert(elem->id < q->cfg.size);

    /* A full buffer is written out first; at most a queue's worth is held, so the held
     * range never covers an entry twice and is at most two writes. */
    const uint32_t cap = q->cfg.size < SVQ_USED_BUF_ELEMS ? q->cfg.size : SVQ_USED_BUF_ELEMS;
    if (q->used_buf_count >= cap && !write_used_buf(q, ops))
        return VQ_BROKEN;
    uint8_t *raw = q->used_buf[q->used_buf_count];
    vs_put_le32(raw + offsetof(struct svirtq_used_elem, id), elem->id);
    vs_put_le32(raw + offsetof(struct svirtq_used_elem, len), written_len);
    q->used_buf_count++;
    q->used_idx++;
    q->pending++;
    q->stats.used_pushed++;
    return VQ_OK;
}

enum vq_status svq_flush(struct svq *q, const struct vs_guest_ops *ops)
{
    if (q->broken != VS_REASON_NONE)
        return VQ_BROKEN;
    if (q->pending == 0)
        return VQ_OK;
    /* "The Virtqueue Used Ring" (device normative): len is set prior to updating
     * used idx. The elements go out first (write_used_buf); this 2-byte write comes
     * after them and publishes the whole batch (the platform orders posted writes,
     * which is the write barrier). */
    if (!write_used_buf(q, ops))
        return VQ_BROKEN;
    if (!write_le16(q, ops, q->cfg.device_addr, SVIRTQ_USED_OFF_IDX, VS_DMA_USED_WRITE,
                    q->used_idx))
        return VQ_BROKEN;
    q->published_used_idx = q->used_idx;
    uint32_t n = q->unsignalled + q->pending;
    q->unsignalled = n < SVQ_UNSIGNALLED_CAP ? n : SVQ_UNSIGNALLED_CAP;
    n = q->unnotified + q->pending;
    q->unnotified = n < SVQ_UNSIGNALLED_CAP ? n : SVQ_UNSIGNALLED_CAP;
    q->pending = 0;
    q->stats.flushes++;
    return VQ_OK;
}

/* ------------------------------------------------------------------------------
 * Notification suppression
 * ------------------------------------------------------------------------------ */

/* Decision for what was published since the last call ("Used Buffer Notification
 * Suppression", device normative):
 *  - nothing published since the last decision: no interrupt, and no read;
 *  - without EVENT_IDX: avail->flags bit 0 (NO_INTERRUPT) set means SHOULD NOT
 *    notify, clear means MUST notify; used_event is ignored;
 *  - with EVENT_IDX: the low bit of flags is ignored (flags is not even read); notify
 *    if an element published since the last decision had index used_event. */
enum vq_status svq_should_interrupt(struct svq *q, const struct vs_guest_ops *ops,
                                    bool *interrupt)
{
    *interrupt = false;
    if (q->broken != VS_REASON_NONE)
        return VQ_BROKEN;
    if (q->unsignalled == 0)
        return VQ_OK;

    bool want;
    const uint8_t *local = q->cfg.driver_event_local;
    if (q->cfg.event_idx) {
        uint16_t used_event;
        if (local) {
            /* viosim extension (VIOSIM_NET_F_DEVMEM_EVENT): used_event from the
             * device's own copy, which the driver writes by MMIO; no DMA. */
            used_event = vs_le16(local + VIOSIM_DEVMEM_SPLIT_OFF_USED_EVENT);
        } else if (!read_le16(q, ops, q->cfg.driver_addr, SVIRTQ_USED_EVENT_OFF(q->cfg.size), VS_DMA_EVENT_READ,
                              &used_event)) {
            return VQ_BROKEN;
        }
        want = used_event_passed(used_event, q->published_used_idx, q->unsignalled);
    } else {
        uint16_t flags;
        if (local) {
            flags = vs_le16(local + VIOSIM_DEVMEM_SPLIT_OFF_FLAGS);
        } else if (!read_le16(q, ops, q->cfg.driver_addr, SVIRTQ_AVAIL_OFF_FLAGS,
                              VS_DMA_EVENT_READ, &flags)) {
            return VQ_BROKEN;
        }
        want = (flags & VIRTQ_AVAIL_F_NO_INTERRUPT_MASK) == 0;
    }
    if (local)
        q->stats.event_reads_local++;
    else
        q->stats.event_reads++;

    q->signalled_used_idx = q->published_used_idx;
    q->unsignalled = 0;
    if (want) {
        q->notified_used_idx = q->published_used_idx;
        q->unnotified = 0;
    } else {
        q->stats.interrupts_suppressed++;
    }
    *interrupt = want;
    return VQ_OK;
}

enum vq_status svq_recheck_driver_event(struct svq *q, bool whole_slot, bool *interrupt)
{
    *interrupt = false;
    if (q->broken != VS_REASON_NONE)
        return VQ_BROKEN;
    const uint8_t *local = q->cfg.driver_event_local;
    if (!local || q->unnotified == 0)
        return VQ_OK;
    bool want;
    if (q->cfg.event_idx) {
        /* used_event in [notified, published): the same distance test as
         * used_event_passed, from the last notification. */
        uint16_t used_event = vs_le16(local + VIOSIM_DEVMEM_SPLIT_OFF_USED_EVENT);
        want = whole_slot &&
               used_event_passed(used_event, q->published_used_idx, q->unnotified);
    } else {
        want = (vs_le16(local + VIOSIM_DEVMEM_SPLIT_OFF_FLAGS) & VIRTQ_AVAIL_F_NO_INTERRUPT_MASK) == 0;
    }
    if (want) {
        q->notified_used_idx = q->published_used_idx;
        q->unnotified = 0;
        q->stats.interrupts_rechecked++;
    }
    *interrupt = want;
    return VQ_OK;
}

/* "Available Buffer Notification Suppression" (device normative). Without
 * EVENT_IDX: used->flags is 1 (NO_NOTIFY) to spare notifications, 0 to ask for
 * them. With EVENT_IDX the device MUST keep flags at 0 (the driver initialised it
 * so, and this model never writes it); enabling writes avail_event = the device's
 * next available index, so the driver notifies when it fills that entry. Disabling
 * writes nothing: the old avail_event stays behind the driver, which passes it and
 * does not notify again until its idx comes round to it 65536 entries later. */
enum vq_status svq_set_notifications(struct svq *q, const struct vs_guest_ops *ops,
                                     bool enable)
{
    if (q->broken != VS_REASON_NONE)
        return VQ_BROKEN;
    bool ok;
    if (q->cfg.event_idx) {
        if (!enable)
            return VQ_OK;
        ok = write_le16(q, ops, q->cfg.device_addr, SVIRTQ_AVAIL_EVENT_OFF(q->cfg.size), VS_DMA_EVENT_WRITE,
                        q->last_avail_idx);
    } else {
        ok = write_le16(q, ops, q->cfg.device_addr, SVIRTQ_USED_OFF_FLAGS, VS_DMA_EVENT_WRITE,
                        enable ? 0u : (uint16_t)VIRTQ_USED_F_NO_NOTIFY_MASK);
    }
    if (!ok)
        return VQ_BROKEN;
    q->stats.event_writes++;
    return VQ_OK;
}

/* ------------------------------------------------------------------------------
 * NOTIFICATION_DATA hint
 * ------------------------------------------------------------------------------ */

/* "Driver Notifications": without RING_PACKED, next_off is the 15 low bits of the
 * available idx and next_wrap its bit 15; together they are the whole idx. The hint is
 * kept only while it is ahead of the device by at most the queue size: the driver never
 * has more than size entries out, so a hint further ahead is impossible, and one at or
 * behind the device's position (a repeated or late notification, which the device
 * "MUST handle", "Available Buffer Notification Suppression") says nothing new. Either
 * is ignored: the device reads avail->idx as it would without the feature. Kept
 * longer, an old hint would read as new again 65536 entries later; the device drops it
 * when it reaches it (svq_pop), which it does before that since it moves one entry at a
 * time. */
void svq_set_avail_hint(struct svq *q, uint16_t next_off, bool next_wrap)
{
    q->hint_avail_idx = (uint16_t)((next_off & SVIRTQ_HINT_OFF_MASK) |
                                   (next_wrap ? 1u << SVIRTQ_HINT_WRAP_BIT : 0u));
    const uint16_t dist = (uint16_t)(q->hint_avail_idx - q->last_avail_idx);
    q->hint_valid = size_is_usable(q->cfg.size) && dist != 0 && dist <= q->cfg.size;
}

/* Forward distance from the device's index to the hinted idx (0 without a kept hint). */
uint32_t svq_hint_count(const struct svq *q)
{
    return q->hint_valid ? (uint16_t)(q->hint_avail_idx - q->last_avail_idx) : 0u;
}

/* ---- The split format's entry in the ring-format table (vq.h) ---- */

static void split_init(void *q, const struct vq_config *cfg) { svq_init(q, cfg); }
static enum vq_status split_peek(void *q, const struct vs_guest_ops *ops, bool *available)
{
    return svq_peek(q, ops, available);
}
static enum vq_status split_pop(void *q, const struct vs_guest_ops *ops, struct vq_elem *elem,
                                struct vq_seg *segs, uint32_t max_segs)
{
    return svq_pop(q, ops, elem, segs, max_segs);
}
static enum vq_status split_push(void *q, const struct vs_guest_ops *ops,
                                 const struct vq_elem *elem, uint32_t written_len)
{
    return svq_push(q, ops, elem, written_len);
}
static enum vq_status split_flush(void *q, const struct vs_guest_ops *ops)
{
    return svq_flush(q, ops);
}
static enum vq_status split_recheck_driver_event(void *q, bool whole_slot, bool *interrupt)
{
    return svq_recheck_driver_event(q, whole_slot, interrupt);
}
static enum vq_status split_should_interrupt(void *q, const struct vs_guest_ops *ops,
                                             bool *interrupt)
{
    return svq_should_interrupt(q, ops, interrupt);
}
static enum vq_status split_set_notifications(void *q, const struct vs_guest_ops *ops, bool enable)
{
    return svq_set_notifications(q, ops, enable);
}
static void split_set_avail_hint(void *q, uint16_t next_off, bool next_wrap)
{
    svq_set_avail_hint(q, next_off, next_wrap);
}
uint32_t svq_position(const struct svq *q) { return q->last_avail_idx; }

bool svq_resume_at(struct svq *q, uint32_t position)
{
    if (position > 0xffffu)
        return false;
    const uint16_t idx = (uint16_t)position;
    q->last_avail_idx = q->shadow_avail_idx = q->read_avail_idx = idx;
    q->hint_valid = false;
    q->used_idx = q->published_used_idx = idx;
    q->signalled_used_idx = q->notified_used_idx = idx;
    return true;
}

/* ---- The conformance checker's look at the driver's side (vq.h driver_end) ----
 * avail->idx is where the driver's available entries end ("The Virtqueue Available
 * Ring": idx is where the driver puts the next entry); one read, nothing kept. */
static enum vs_dma_status split_driver_end(const void *qv, const struct vs_guest_ops *ops,
                                           uint16_t from, uint16_t *end)
{
    (void)from;
    const struct svq *q = qv;
    uint8_t raw[2];
    if (q->cfg.driver_addr > UINT64_MAX - SVIRTQ_AVAIL_OFF_IDX ||
        vq_range_wraps(q->cfg.driver_addr + SVIRTQ_AVAIL_OFF_IDX, sizeof raw))
        return VS_DMA_OUT_OF_RANGE;
    enum vs_dma_status s = ops->read(ops->ctx, q->cfg.driver_addr + SVIRTQ_AVAIL_OFF_IDX, raw,
                                     sizeof raw, VS_DMA_DESC_READ);
    if (s == VS_DMA_OK)
        *end = vs_le16(raw);
    return s;
}

static uint32_t split_avail_ahead(const void *qv, uint16_t pos)
{
    const struct svq *q = qv;
    return (uint16_t)(pos - q->last_avail_idx);
}

static bool split_hinted_end(const void *qv, uint16_t *end)
{
    const struct svq *q = qv;
    if (!q->hint_valid)
        return false;
    *end = q->hint_avail_idx;
    return true;
}

static uint32_t split_position(const void *q) { return svq_position(q); }
static bool split_resume_at(void *q, uint32_t position) { return svq_resume_at(q, position); }
static uint32_t split_pending(const void *q) { return ((const struct svq *)q)->pending; }
static enum vs_reason split_broken(const void *q) { return ((const struct svq *)q)->broken; }
static const struct vq_stats *split_stats(const void *q) { return &((const struct svq *)q)->stats; }

const struct vq_ops split_vq_ops = {
    .name = "split",
    .check_config = svq_check_config,
    .init = split_init,
    .peek = split_peek,
    .pop = split_pop,
    .push = split_push,
    .flush = split_flush,
    .should_interrupt = split_should_interrupt,
    .recheck_driver_event = split_recheck_driver_event,
    .set_notifications = split_set_notifications,
    .set_avail_hint = split_set_avail_hint,
    .driver_end = split_driver_end,
    .avail_ahead = split_avail_ahead,
    .hinted_end = split_hinted_end,
    .pending = split_pending,
    .position = split_position,
    .resume_at = split_resume_at,
    .broken = split_broken,
    .stats = split_stats,
};
