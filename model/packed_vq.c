/* packed_vq.c -- device side of a packed virtqueue ("Packed Virtqueues").
 *
 * Positions in the ring are a (slot, wrap counter) pair. Where two positions must be
 * compared (event suppression, notification hints) they are mapped onto one counter
 * modulo 2 * size: slot + (wrap ? 0 : size). Both wrap counters start at 1, so the
 * initial position (0, 1) is 0 and the counter grows by one per slot.
 *
 * Every guest access goes through guest_read()/guest_write(), which turn a DMA
 * failure into a sticky break. Every public entry point that touches memory first
 * checks q->broken, so a broken queue never issues another access.
 */
#include "packed_vq.h"

#include <assert.h>
#include <stddef.h>
#include <string.h>

#include "virtio_wire.h"

/* Indirect table entries fetched per DMA read. A device reads the table in bursts;
 * the kernel has no heap, so the burst is bounded by a stack buffer. */
#define PVQ_INDIRECT_BURST 32u

/* ------------------------------------------------------------------------------
 * Small pure helpers
 * ------------------------------------------------------------------------------ */

static uint16_t le16_at(const uint8_t *d, size_t off) { return vs_le16(d + off); }

/* "Driver and Device Ring Wrap Counters": a descriptor is available when its AVAIL
 * bit matches the wrap counter and its USED bit does not. */
static bool desc_is_avail(uint16_t flags, bool wrap)
{
    bool avail = (flags & VIRTQ_DESC_F_AVAIL_MASK) != 0;
    bool used = (flags & VIRTQ_DESC_F_USED_MASK) != 0;
    return avail == wrap && used != wrap;
}

/* Flags of a used descriptor: AVAIL and USED both equal to the Device Ring Wrap
 * Counter; WRITE says whether the device wrote any data ("Write Flag"). NEXT is
 * reserved in used descriptors and left clear. */
static uint16_t used_flags(bool wrap, uint32_t written_len)
{
    uint16_t f = wrap ? (uint16_t)(VIRTQ_DESC_F_AVAIL_MASK | VIRTQ_DESC_F_USED_MASK) : 0;
    if (written_len > 0)
        f |= VIRTQ_DESC_F_WRITE_MASK;
    return f;
}

/* Advance (pos, wrap) by n slots, flipping the wrap counter each time the position
 * passes the last slot of the ring. Works for any n, so a bad caller value cannot
 * leave pos outside the ring. */
static void ring_advance(uint16_t size, uint16_t *pos, bool *wrap, uint32_t n)
{
    uint32_t laps = n / size;
    uint32_t p = (uint32_t)*pos + n % size;
    if (p >= size) {
        p -= size;
        laps++;
    }
    *pos = (uint16_t)p;
    if (laps & 1u)
        *wrap = !*wrap;
}

/* The position as one counter modulo 2 * size (see the file comment). off < size. */
static uint32_t ring_lin(uint16_t size, uint16_t off, bool wrap)
{
    return (uint32_t)off + (wrap ? 0u : size);
}

/* Distance from a to b going forward, both as ring_lin() values. */
static uint32_t ring_lin_dist(uint16_t size, uint32_t a, uint32_t b)
{
    uint32_t span = 2u * size;
    return (b + span - a) % span;
}

/* ------------------------------------------------------------------------------
 * Breakage and guest access
 * ------------------------------------------------------------------------------ */

static enum vq_status pvq_break(struct pvq *q, enum vs_reason why)
{
    if (q->broken == VS_REASON_NONE)
        q->broken = why;
    return VQ_BROKEN;
}

static enum vs_reason dma_reason(enum vs_dma_status s)
{
    return vs_dma_status_reason(s);
}

/* An access whose last byte would lie beyond 2^64 - 1 is not backed by memory;
 * catching it here keeps a wrapped address from reaching the ops. */
static bool guest_read(struct pvq *q, const struct vs_guest_ops *ops, uint64_t addr,
                       void *dst, uint32_t len, enum vs_dma_kind kind)
{
    if (vq_range_wraps(addr, len)) {
        pvq_break(q, VS_REASON_DMA_OUT_OF_RANGE);
        return false;
    }
    enum vs_dma_status s = ops->read(ops->ctx, addr, dst, len, kind);
    if (s != VS_DMA_OK) {
        pvq_break(q, dma_reason(s));
        return false;
    }
    return true;
}

static bool guest_write(struct pvq *q, const struct vs_guest_ops *ops, uint64_t addr,
                        const void *src, uint32_t len, enum vs_dma_kind kind)
{
    if (vq_range_wraps(addr, len)) {
        pvq_break(q, VS_REASON_DMA_OUT_OF_RANGE);
        return false;
    }
    enum vs_dma_status s = ops->write(ops->ctx, addr, src, len, kind);
    if (s != VS_DMA_OK) {
        pvq_break(q, dma_reason(s));
        return false;
    }
    return true;
}

/* Guest address of ring slot idx (idx < size), or false (queue broken) if the
 * Descriptor Area would run past the top of the address space. */
static bool slot_addr(struct pvq *q, uint16_t idx, uint64_t *addr)
{
    uint64_t off = (uint64_t)idx * sizeof(struct pvirtq_desc);
    if (q->cfg.desc_addr > UINT64_MAX - off) {
        pvq_break(q, VS_REASON_DMA_OUT_OF_RANGE);
        return false;
    }
    *addr = q->cfg.desc_addr + off;
    return true;
}

/* ------------------------------------------------------------------------------
 * Fetch unit: the descriptor cache
 * ------------------------------------------------------------------------------ */

static uint32_t hint_count_from(const struct pvq *q, uint16_t pos, bool wrap);

/* Read ring slots [pos, pos + n) into cache[at ..], one DMA read (the caller splits at
 * the ring's end). */
static bool fetch_range(struct pvq *q, const struct vs_guest_ops *ops, uint16_t pos, uint32_t n,
                        uint32_t at)
{
    uint64_t addr;
    if (!slot_addr(q, pos, &addr))
        return false;
    if (!guest_read(q, ops, addr, q->cache[at], n * (uint32_t)sizeof(struct pvirtq_desc),
                    VS_DMA_DESC_READ))
        return false;
    q->stats.fetch_reads++;
    q->stats.fetch_entries += n;
    q->stats.descs_read += n;
    return true;
}

/* Fill the (empty) cache from ring position (pos, wrap): how many descriptors depends
 * on the fetch source (vq.h). Never more than one lap, so no slot is read twice. */
static bool fetch(struct pvq *q, const struct vs_guest_ops *ops, uint16_t pos, bool wrap)
{
    assert(q->cache_count == 0);
    const uint16_t size = q->cfg.size;
    uint32_t n = 1;
    bool hinted = false;
    if (q->cfg.fetch_source == VQ_FETCH_HINT) {
        uint32_t h = hint_count_from(q, pos, wrap);
        if (h > 0) {
            n = h < vq_fetch_batch(&q->cfg) ? h : vq_fetch_batch(&q->cfg);
            hinted = true;
        }
    } else if (q->cfg.fetch_source == VQ_FETCH_READ_AHEAD) {
        /* Speculation sized by what the device knows: where it last found the driver's
         * end of the ring and no hint says more is there, the ring was empty a moment
         * ago, and a whole batch would most likely come back unavailable; one
         * descriptor (or what a NOTIFICATION_DATA hint promises) is read instead. Past
         * that point the ring was busy when last seen: the whole batch. */
        n = vq_fetch_batch(&q->cfg);
        if (q->end_seen && q->end_pos == pos && q->end_wrap == wrap) {
            uint32_t h = hint_count_from(q, pos, wrap);
            n = h == 0 ? 1u : h < n ? h : n;
        }
    }
    if (n > size)
        n = size;
    uint32_t first = n < (uint32_t)(size - pos) ? n : (uint32_t)(size - pos);
    uint64_t reads_before = q->stats.fetch_reads;
    if (!fetch_range(q, ops, pos, first, 0))
        return false;
    if (n > first && !fetch_range(q, ops, 0, n - first, first))
        return false;
    if (hinted)
        q->stats.fetch_hint_reads += q->stats.fetch_reads - reads_before;
    q->cache_first = 0;
    q->cache_count = (uint16_t)n;
    return true;
}

/* The descriptor at the cache front, which is ring position (pos, wrap); fetched first
 * if the cache is empty. The caller consumes it with cache_take or drops the cache. */
static bool cached_desc(struct pvq *q, const struct vs_guest_ops *ops, uint16_t pos, bool wrap,
                        uint8_t d[sizeof(struct pvirtq_desc)])
{
    if (q->cache_count == 0 && !fetch(q, ops, pos, wrap))
        return false;
    memcpy(d, q->cache[q->cache_first], sizeof(struct pvirtq_desc));
    return true;
}

static void cache_take(struct pvq *q)
{
    assert(q->cache_count > 0);
    q->cache_first++;
    if (--q->cache_count == 0)
        q->cache_first = 0;
}

/* The device found the descriptor at its read position not available: the driver's
 * end of the ring was there when it looked (see fetch). */
static void note_driver_end(struct pvq *q)
{
    q->end_seen = true;
    q->end_pos = q->next_avail;
    q->end_wrap = q->avail_wrap;
}

/* The front entry is not available: it and everything after it were read before the
 * driver made them available, so their contents are stale and must be read again
 * ("The Virtqueue Descriptor Table": a descriptor is used only once its flags say so).
 * The front one is the look every fetch makes at the device's position; the rest were
 * read ahead in vain. */
static void cache_drop_unavailable(struct pvq *q)
{
    note_driver_end(q);
    if (q->cache_count > 1) {
        q->stats.fetch_wasted += q->cache_count - 1u;
        q->stats.fetch_wasted_bytes += (uint64_t)(q->cache_count - 1u) * sizeof(struct pvirtq_desc);
    }
    q->cache_first = 0;
    q->cache_count = 0;
}

/* ------------------------------------------------------------------------------
 * Configuration
 * ------------------------------------------------------------------------------ */

void pvq_init(struct pvq *q, const struct vq_config *cfg)
{
    memset(q, 0, sizeof *q);
    q->cfg = *cfg;
    /* "Driver and Device Ring Wrap Counters": each side's counter starts at 1. */
    q->avail_wrap = true;
    q->used_wrap = true;
    q->signalled_wrap = true;
    q->notified_wrap = true;
    q->broken = VS_REASON_NONE;
    /* Not validation (pvq_check_config does that) but a guard: every ring
     * computation divides by the size, so an impossible size leaves the queue
     * broken instead of undefined. */
    if (cfg->size == 0 || cfg->size > PVIRTQ_SIZE_MAX)
        q->broken = VS_REASON_QUEUE_SIZE_INVALID;
}

enum vs_reason pvq_check_config(const struct vq_config *cfg, uint16_t size_max)
{
    uint32_t limit = size_max < PVIRTQ_SIZE_MAX ? size_max : PVIRTQ_SIZE_MAX;
    if (cfg->size == 0 || cfg->size > limit)
        return VS_REASON_QUEUE_SIZE_INVALID;
    /* "Structure Size and Alignment": Descriptor Ring 16, both event suppression
     * structures 4 (driver normative: the driver MUST align each part). */
    if (cfg->desc_addr % PVIRTQ_DESC_ALIGN != 0 || cfg->driver_addr % PVIRTQ_EVENT_ALIGN != 0 ||
        cfg->device_addr % PVIRTQ_EVENT_ALIGN != 0)
        return VS_REASON_RING_MISALIGNED;
    /* An area that runs past the top of the address space cannot be backed. */
    if (vq_range_wraps(cfg->desc_addr, (uint32_t)cfg->size * (uint32_t)sizeof(struct pvirtq_desc)) ||
        vq_range_wraps(cfg->driver_addr, sizeof(struct pvirtq_event_suppress)) ||
        vq_range_wraps(cfg->device_addr, sizeof(struct pvirtq_event_suppress)))
        return VS_REASON_DMA_OUT_OF_RANGE;
    return VS_REASON_NONE;
}

/* ------------------------------------------------------------------------------
 * Available side
 * ------------------------------------------------------------------------------ */

enum vq_status pvq_peek(struct pvq *q, const struct vs_guest_ops *ops, bool *available)
{
    *available = false;
    if (q->broken != VS_REASON_NONE)
        return VQ_BROKEN;
    if (q->cache_count > 0) {
        if (desc_is_avail(le16_at(q->cache[q->cache_first], PVIRTQ_DESC_OFF_FLAGS),
                          q->avail_wrap)) {
            *available = true;
            return VQ_OK;
        }
        cache_drop_unavailable(q);
    }
    uint64_t addr;
    uint8_t raw[2];
    if (!slot_addr(q, q->next_avail, &addr) ||
        !guest_read(q, ops, addr + PVIRTQ_DESC_OFF_FLAGS, raw, sizeof raw, VS_DMA_DESC_READ))
        return VQ_BROKEN;
    *available = desc_is_avail(vs_le16(raw), q->avail_wrap);
    if (!*available)
        note_driver_end(q);
    return VQ_OK;
}

/* Accumulates the segments of one buffer and checks the rules that apply to every
 * element, whether it came from the ring or from an indirect table. */
static enum vq_status seg_add(struct pvq *q, struct vq_seg_walk *w, uint64_t addr, uint32_t len,
                               bool writable)
{
    enum vs_reason why = vq_seg_add(w, addr, len, writable);
    return why == VS_REASON_NONE ? VQ_OK : pvq_break(q, why);
}

/* "Indirect Flag: Scatter-Gather Support". The ring descriptor names a table of
 * len / 16 descriptors that follow one another in order. In the table only WRITE
 * is valid; the device ignores the other flags (so NEXT does not end or extend the
 * list: every entry is an element) and the ids. The one exception is INDIRECT:
 * the driver MUST NOT set it in a table and a nested table is never followed, so
 * it breaks the queue. Called once VIRTIO_F_INDIRECT_DESC is known negotiated. */
static enum vq_status walk_indirect(struct pvq *q, const struct vs_guest_ops *ops,
                                     struct vq_seg_walk *w, uint64_t table, uint32_t len)
{
    if (len == 0 || len % sizeof(struct pvirtq_desc) != 0)
        return pvq_break(q, VS_REASON_INDIRECT_LEN_NOT_MULTIPLE);
    uint32_t count = len / (uint32_t)sizeof(struct pvirtq_desc);
    if (count > w->limit)
        return pvq_break(q, VS_REASON_CHAIN_TOO_LONG);
    if (vq_range_wraps(table, len))
        return pvq_break(q, VS_REASON_DMA_OUT_OF_RANGE);

    uint8_t burst[PVQ_INDIRECT_BURST * sizeof(struct pvirtq_desc)];
    for (uint32_t done = 0; done < count;) {
        uint32_t n = count - done < PVQ_INDIRECT_BURST ? count - done : PVQ_INDIRECT_BURST;
        uint64_t addr = table + (uint64_t)done * sizeof(struct pvirtq_desc);
        if (!guest_read(q, ops, addr, burst, n * (uint32_t)sizeof(struct pvirtq_desc),
                        VS_DMA_DESC_READ))
            return VQ_BROKEN;
        q->stats.descs_read += n;
        for (uint32_t i = 0; i < n; i++) {
            const uint8_t *d = burst + (size_t)i * sizeof(struct pvirtq_desc);
            uint16_t flags = le16_at(d, PVIRTQ_DESC_OFF_FLAGS);
            if (flags & VIRTQ_DESC_F_INDIRECT_MASK)
                return pvq_break(q, VS_REASON_INDIRECT_NESTED);
            enum vq_status s = seg_add(q, w, vs_le64(d), vs_le32(d + PVIRTQ_DESC_OFF_LEN),
                                        (flags & VIRTQ_DESC_F_WRITE_MASK) != 0);
            if (s != VQ_OK)
                return s;
        }
        done += n;
    }
    return VQ_OK;
}

enum vq_status pvq_pop(struct pvq *q, const struct vs_guest_ops *ops, struct vq_elem *elem,
                        struct vq_seg *segs, uint32_t max_segs)
{
    if (q->broken != VS_REASON_NONE)
        return VQ_BROKEN;

    uint8_t d[sizeof(struct pvirtq_desc)];
    uint16_t pos = q->next_avail;
    bool wrap = q->avail_wrap;
    if (!cached_desc(q, ops, pos, wrap, d))
        return VQ_BROKEN;
    uint16_t flags = le16_at(d, PVIRTQ_DESC_OFF_FLAGS);
    /* "The Virtqueue Descriptor Table" (device normative): use a descriptor only once
     * its AVAIL bit has changed to the expected wrap counter. A cached copy read before
     * that is stale: drop it and what follows. */
    if (!desc_is_avail(flags, wrap)) {
        cache_drop_unavailable(q);
        return VQ_EMPTY;
    }
    cache_take(q);

    struct vq_seg_walk w = {
        .segs = segs,
        .limit = max_segs < q->cfg.size ? max_segs : q->cfg.size,
    };
    memset(elem, 0, sizeof *elem);
    elem->head = pos;
    uint16_t id;
    uint16_t slots;

    if (flags & VIRTQ_DESC_F_INDIRECT_MASK) {
        if (!q->cfg.indirect_desc)
            return pvq_break(q, VS_REASON_INDIRECT_NOT_NEGOTIATED);
        /* "Indirect Descriptors" (driver normative): no INDIRECT in a list linked
         * by NEXT. The WRITE flag of this descriptor is reserved and ignored. */
        if (flags & VIRTQ_DESC_F_NEXT_MASK)
            return pvq_break(q, VS_REASON_INDIRECT_WITH_NEXT);
        id = le16_at(d, PVIRTQ_DESC_OFF_ID);
        if (id >= q->cfg.size)
            return pvq_break(q, VS_REASON_DESC_ID_OUT_OF_RANGE);
        enum vq_status s = walk_indirect(q, ops, &w, vs_le64(d), vs_le32(d + PVIRTQ_DESC_OFF_LEN));
        if (s != VQ_OK)
            return s;
        q->stats.indirect_tables++;
        elem->indirect = true;
        slots = 1;
    } else {
        /* "Next Flag: Descriptor Chaining": the list continues in the following ring
         * slots while NEXT is set; the driver made the head available last, so every
         * following descriptor must already be available for its own wrap counter. */
        for (;;) {
            enum vq_status s = seg_add(q, &w, vs_le64(d), vs_le32(d + PVIRTQ_DESC_OFF_LEN),
                                        (flags & VIRTQ_DESC_F_WRITE_MASK) != 0);
            if (s != VQ_OK)
                return s;
            if (!(flags & VIRTQ_DESC_F_NEXT_MASK))
                break;
            /* Bounded walk: at most min(max_segs, size) slots, so no slot is read
             * twice and the caller's array is never overrun. */
            if (w.nsegs >= w.limit)
                return pvq_break(q, VS_REASON_CHAIN_TOO_LONG);
            ring_advance(q->cfg.size, &pos, &wrap, 1);
            if (!cached_desc(q, ops, pos, wrap, d))
                return VQ_BROKEN;
            cache_take(q);
            flags = le16_at(d, PVIRTQ_DESC_OFF_FLAGS);
            if (!desc_is_avail(flags, wrap))
                return pvq_break(q, VS_REASON_CHAIN_DESC_NOT_AVAIL);
            if (flags & VIRTQ_DESC_F_INDIRECT_MASK)
                return pvq_break(q, q->cfg.indirect_desc ? VS_REASON_INDIRECT_WITH_NEXT
                                                         : VS_REASON_INDIRECT_NOT_NEGOTIATED);
        }
        /* "Buffer ID is included in the last descriptor in the list." */
        id = le16_at(d, PVIRTQ_DESC_OFF_ID);
        if (id >= q->cfg.size)
            return pvq_break(q, VS_REASON_DESC_ID_OUT_OF_RANGE);
        slots = (uint16_t)w.nsegs;
    }

    elem->id = id;
    elem->slots = slots;
    elem->nsegs = w.nsegs;
    elem->readable_bytes = (uint32_t)w.readable;
    elem->writable_bytes = (uint32_t)w.writable;
    /* The device skips forward by the number of ring slots the list occupied, past
     * any end of the ring it saw before. */
    ring_advance(q->cfg.size, &q->next_avail, &q->avail_wrap, slots);
    q->end_seen = false;
    /* A hint the device has reached says nothing more; kept, it would read as a full
     * ring once the device is a lap further on (equal offsets, opposite wrap). */
    if (q->hint_valid && q->next_avail == q->hint_next_off && q->avail_wrap == q->hint_next_wrap)
        q->hint_valid = false;
    q->stats.buffers_popped++;
    return VQ_OK;
}

/* ------------------------------------------------------------------------------
 * Used side
 * ------------------------------------------------------------------------------ */

/* Write a used descriptor's len, id and flags (bytes 8..15 of slot pos) in one write.
 * The three fields are one naturally aligned 8-byte block, carried by one posted write
 * and applied whole, so the driver never sees these flags with an older len or id. */
static bool write_used_desc(struct pvq *q, const struct vs_guest_ops *ops, uint16_t pos,
                            uint32_t len, uint16_t id, uint16_t flags)
{
    uint8_t raw[8];
    vs_put_le32(raw, len);
    vs_put_le16(raw + (PVIRTQ_DESC_OFF_ID - PVIRTQ_DESC_OFF_LEN), id);
    vs_put_le16(raw + (PVIRTQ_DESC_OFF_FLAGS - PVIRTQ_DESC_OFF_LEN), flags);
    uint64_t addr;
    return slot_addr(q, pos, &addr) &&
           guest_write(q, ops, addr + PVIRTQ_DESC_OFF_LEN, raw, sizeof raw, VS_DMA_USED_WRITE);
}

enum vq_status pvq_push(struct pvq *q, const struct vs_guest_ops *ops,
                         const struct vq_elem *elem, uint32_t written_len)
{
    if (q->broken != VS_REASON_NONE)
        return VQ_BROKEN;
    assert(elem->slots >= 1 && elem->slots <= q->cfg.size);

    /* "Element Address and Length": addr is unused in a used descriptor; len is the
     * number of bytes written; WRITE says whether any were ("Write Flag"). */
    const uint16_t flags = used_flags(q->used_wrap, written_len);
    if (q->batch_count == 0) {
        /* The first descriptor of a batch is the one the driver polls: it is held back
         * whole until pvq_flush, so the driver sees the batch at once ("Multi-buffer
         * requests", "Receiving Used Buffers From The Device"). */
        q->batch_head = q->next_used;
        q->batch_head_flags = flags;
        q->batch_head_id = elem->id;
        q->batch_head_len = written_len;
        q->batch_slots = 0;
    } else if (q->run_extends) {
        /* "In-order use of descriptors": the open run's one descriptor now names this
         * buffer, the run's last; it stays at the run's first slot (and that slot's
         * wrap counter), so only len, id and WRITE change. */
        const uint16_t keep = (uint16_t)~VIRTQ_DESC_F_WRITE_MASK;
        const uint16_t wr = flags & VIRTQ_DESC_F_WRITE_MASK;
        if (q->run_held) {
            q->run_id = elem->id;
            q->run_len = written_len;
            q->run_flags = (uint16_t)((q->run_flags & keep) | wr);
        } else {
            q->batch_head_id = elem->id;
            q->batch_head_len = written_len;
            q->batch_head_flags = (uint16_t)((q->batch_head_flags & keep) | wr);
        }
    } else if (q->cfg.in_order) {
        /* A new run: the previous one (if not the head) has ended and is written; this
         * one's descriptor waits until it ends too. The driver does not look past the
         * batch head before pvq_flush writes it. */
        if (q->run_held &&
            !write_used_desc(q, ops, q->run_pos, q->run_len, q->run_id, q->run_flags))
            return VQ_BROKEN;
        q->run_held = true;
        q->run_pos = q->next_used;
        q->run_flags = flags;
        q->run_id = elem->id;
        q->run_len = written_len;
    } else if (!write_used_desc(q, ops, q->next_used, written_len, elem->id, flags)) {
        /* Not the head: written complete now; the driver does not look at it before
         * it sees the head. */
        return VQ_BROKEN;
    }
    /* A buffer the device only read was used completely and has no length to report:
     * with IN_ORDER the spec lets it go without a descriptor of its own ("The skipped
     * buffers ... are assumed to have been used (read or written) by the device
     * completely"). A buffer the device wrote keeps its own, so its len reaches the
     * driver (and so drivers that read every receive descriptor, as DPDK's packed
     * receive path does, keep working). */
    q->run_extends = q->cfg.in_order && elem->writable_bytes == 0;
    q->batch_count++;
    q->batch_slots += elem->slots;
    /* "Driver and Device Ring Wrap Counters": the Device Ring Wrap Counter flips
     * after the last slot of the ring is used. */
    ring_advance(q->cfg.size, &q->next_used, &q->used_wrap, elem->slots);
    q->stats.used_pushed++;
    return VQ_OK;
}

enum vq_status pvq_flush(struct pvq *q, const struct vs_guest_ops *ops)
{
    if (q->broken != VS_REASON_NONE)
        return VQ_BROKEN;
    if (q->batch_count == 0)
        return VQ_OK;
    /* Every other descriptor of the batch first, the head last ("Multi-buffer
     * requests"): posted writes stay in order, so when the driver sees the head's
     * flags the rest of the batch is in memory. */
    if (q->run_held &&
        !write_used_desc(q, ops, q->run_pos, q->run_len, q->run_id, q->run_flags))
        return VQ_BROKEN;
    if (!write_used_desc(q, ops, q->batch_head, q->batch_head_len, q->batch_head_id,
                         q->batch_head_flags))
        return VQ_BROKEN;
    /* Remember how far the used side moved since the last interrupt decision;
     * saturates at two laps, beyond which every offset has been passed. */
    uint32_t cap = 2u * q->cfg.size;
    uint32_t pending = q->unsignalled_slots + q->batch_slots;
    q->unsignalled_slots = pending < cap ? pending : cap;
    pending = q->unnotified_slots + q->batch_slots;
    q->unnotified_slots = pending < cap ? pending : cap;
    q->batch_count = 0;
    q->batch_slots = 0;
    q->run_held = false;
    q->run_extends = false;
    q->stats.flushes++;
    return VQ_OK;
}

/* ------------------------------------------------------------------------------
 * Event suppression ("Driver and Device Event Suppression")
 * ------------------------------------------------------------------------------ */


/* Does the driver's event suppression structure (raw, 4 bytes) ask for a notification
 * of `slots` used slots published from (from, from_wrap) on ("Driver and Device Event
 * Suppression")? DISABLE: no; DESC (with EVENT_IDX): only if the descriptor at
 * (off, wrap) was used in that range, counted modulo 2 * size so that ranges crossing
 * the end of the ring compare correctly; ENABLE (or DESC without EVENT_IDX): yes. */
static bool driver_wants_event(const struct pvq *q, const uint8_t *raw, uint16_t from,
                               bool from_wrap, uint32_t slots)
{
    const uint16_t off_wrap = vs_le16(raw + offsetof(struct pvirtq_event_suppress, off_wrap));
    const uint16_t ev_flags = vs_le16(raw + offsetof(struct pvirtq_event_suppress, flags)) & 0x3u;
    const uint16_t size = q->cfg.size;
    if (ev_flags == RING_EVENT_FLAGS_DISABLE)
        return false;
    if (ev_flags != RING_EVENT_FLAGS_DESC || !q->cfg.event_idx)
        return true;
    const uint16_t off = off_wrap & RING_EVENT_OFF_WRAP_OFF_MASK;
    const bool wrap = (off_wrap >> RING_EVENT_OFF_WRAP_WRAP_BIT) & 1u;
    if (off >= size)
        return false;
    return slots >= 2u * size ||
           ring_lin_dist(size, ring_lin(size, from, from_wrap), ring_lin(size, off, wrap)) < slots;
}

/* Decision for what was published since the last call. Policy where the spec
 * leaves room:
 *  - nothing published since the last decision: no interrupt, and no read;
 *  - RING_EVENT_FLAGS_DESC without VIRTIO_F_EVENT_IDX ("Only valid if
 *    VIRTIO_F_EVENT_IDX has been negotiated") and the reserved value 0x3 are
 *    treated as ENABLE: a spurious notification is harmless, a lost one is not;
 *  - a DESC offset outside the ring never matches. */
enum vq_status pvq_should_interrupt(struct pvq *q, const struct vs_guest_ops *ops,
                                     bool *interrupt)
{
    *interrupt = false;
    if (q->broken != VS_REASON_NONE)
        return VQ_BROKEN;
    if (q->unsignalled_slots == 0)
        return VQ_OK;

    uint8_t raw[sizeof(struct pvirtq_event_suppress)];
    if (q->cfg.driver_event_local) {
        /* viosim extension (VIOSIM_NET_F_DEVMEM_EVENT): the structure is the device's
         * own copy, which the driver writes by MMIO; reading it crosses no link. */
        memcpy(raw, q->cfg.driver_event_local, sizeof raw);
        q->stats.event_reads_local++;
    } else {
        if (!guest_read(q, ops, q->cfg.driver_addr, raw, sizeof raw, VS_DMA_EVENT_READ))
            return VQ_BROKEN;
        q->stats.event_reads++;
    }
    bool want = driver_wants_event(q, raw, q->signalled_used, q->signalled_wrap,
                                   q->unsignalled_slots);

    /* Next decision starts where the driver can see used descriptors up to: the
     * open batch's head if one is pending, else the device's used position. */
    if (q->batch_count != 0) {
        q->signalled_used = q->batch_head;
        q->signalled_wrap = (q->batch_head_flags & VIRTQ_DESC_F_USED_MASK) != 0;
    } else {
        q->signalled_used = q->next_used;
        q->signalled_wrap = q->used_wrap;
    }
    q->unsignalled_slots = 0;
    if (want) {
        q->notified_used = q->signalled_used;
        q->notified_wrap = q->signalled_wrap;
        q->unnotified_slots = 0;
    } else {
        q->stats.interrupts_suppressed++;
    }
    *interrupt = want;
    return VQ_OK;
}

enum vq_status pvq_recheck_driver_event(struct pvq *q, bool whole_slot, bool *interrupt)
{
    (void)whole_slot;
    *interrupt = false;
    if (q->broken != VS_REASON_NONE)
        return VQ_BROKEN;
    if (!q->cfg.driver_event_local || q->unnotified_slots == 0)
        return VQ_OK;
    /* The same policy as pvq_should_interrupt, over what was published since the last
     * notification instead of since the last decision. */
    const bool want = driver_wants_event(q, q->cfg.driver_event_local, q->notified_used,
                                         q->notified_wrap, q->unnotified_slots);
    if (want) {
        if (q->batch_count != 0) {
            q->notified_used = q->batch_head;
            q->notified_wrap = (q->batch_head_flags & VIRTQ_DESC_F_USED_MASK) != 0;
        } else {
            q->notified_used = q->next_used;
            q->notified_wrap = q->used_wrap;
        }
        q->unnotified_slots = 0;
        q->stats.interrupts_rechecked++;
    }
    *interrupt = want;
    return VQ_OK;
}

enum vq_status pvq_set_notifications(struct pvq *q, const struct vs_guest_ops *ops,
                                      bool enable)
{
    if (q->broken != VS_REASON_NONE)
        return VQ_BROKEN;
    uint16_t flags;
    uint16_t off_wrap = 0;
    if (!enable) {
        flags = RING_EVENT_FLAGS_DISABLE;
    } else if (q->cfg.event_idx) {
        /* Ask for a notification when the driver makes available the descriptor the
         * device will read next. */
        flags = RING_EVENT_FLAGS_DESC;
        off_wrap = (uint16_t)(q->next_avail |
                              (q->avail_wrap ? 1u << RING_EVENT_OFF_WRAP_WRAP_BIT : 0u));
    } else {
        flags = RING_EVENT_FLAGS_ENABLE;
    }
    /* Both fields in one 4-byte write, so the driver never sees a DESC flag with a
     * stale offset. */
    uint8_t raw[sizeof(struct pvirtq_event_suppress)];
    vs_put_le16(raw + offsetof(struct pvirtq_event_suppress, off_wrap), off_wrap);
    vs_put_le16(raw + offsetof(struct pvirtq_event_suppress, flags), flags);
    if (!guest_write(q, ops, q->cfg.device_addr, raw, sizeof raw, VS_DMA_EVENT_WRITE))
        return VQ_BROKEN;
    q->stats.event_writes++;
    return VQ_OK;
}

/* ------------------------------------------------------------------------------
 * NOTIFICATION_DATA hint
 * ------------------------------------------------------------------------------ */

void pvq_set_avail_hint(struct pvq *q, uint16_t next_off, bool next_wrap)
{
    q->hint_next_off = next_off;
    q->hint_next_wrap = next_wrap;
    q->hint_valid = true;
}

/* The hint is the driver's next not-yet-available position; the count is the
 * forward distance to it from the device's read position, modulo two laps. Equal
 * offsets mean empty (same wrap) or a full ring (opposite wrap). An offset outside
 * the ring, or a stale hint the device has already passed (distance beyond one
 * lap), counts 0. */
static uint32_t hint_count_from(const struct pvq *q, uint16_t pos, bool wrap)
{
    const uint16_t size = q->cfg.size;
    if (!q->hint_valid || size == 0 || size > PVIRTQ_SIZE_MAX || q->hint_next_off >= size)
        return 0;
    uint32_t dist = ring_lin_dist(size, ring_lin(size, pos, wrap),
                                  ring_lin(size, q->hint_next_off, q->hint_next_wrap));
    return dist <= size ? dist : 0;
}

uint32_t pvq_hint_count(const struct pvq *q)
{
    return hint_count_from(q, q->next_avail, q->avail_wrap);
}

/* ---- The packed format's entry in the ring-format table (vq.h) ---- */

static void packed_init(void *q, const struct vq_config *cfg) { pvq_init(q, cfg); }
static enum vq_status packed_peek(void *q, const struct vs_guest_ops *ops, bool *available)
{
    return pvq_peek(q, ops, available);
}
static enum vq_status packed_pop(void *q, const struct vs_guest_ops *ops, struct vq_elem *elem,
                                 struct vq_seg *segs, uint32_t max_segs)
{
    return pvq_pop(q, ops, elem, segs, max_segs);
}
static enum vq_status packed_push(void *q, const struct vs_guest_ops *ops,
                                  const struct vq_elem *elem, uint32_t written_len)
{
    return pvq_push(q, ops, elem, written_len);
}
static enum vq_status packed_flush(void *q, const struct vs_guest_ops *ops)
{
    return pvq_flush(q, ops);
}
static enum vq_status packed_should_interrupt(void *q, const struct vs_guest_ops *ops,
                                              bool *interrupt)
{
    return pvq_should_interrupt(q, ops, interrupt);
}
static enum vq_status packed_recheck_driver_event(void *q, bool whole_slot, bool *interrupt)
{
    return pvq_recheck_driver_event(q, whole_slot, interrupt);
}
static enum vq_status packed_set_notifications(void *q, const struct vs_guest_ops *ops, bool enable)
{
    return pvq_set_notifications(q, ops, enable);
}
static void packed_set_avail_hint(void *q, uint16_t next_off, bool next_wrap)
{
    pvq_set_avail_hint(q, next_off, next_wrap);
}
uint32_t pvq_position(const struct pvq *q)
{
    return (uint32_t)q->next_avail | (uint32_t)q->avail_wrap << 15 |
           (uint32_t)q->next_used << 16 | (uint32_t)q->used_wrap << 31;
}

bool pvq_resume_at(struct pvq *q, uint32_t position)
{
    const uint16_t avail = (uint16_t)(position & 0xffffu);
    const uint16_t used = (uint16_t)(position >> 16);
    const uint16_t off = (uint16_t)(avail & 0x7fffu);
    const bool wrap = (avail >> 15) & 1u;
    /* An absent used half (0) means "where the available side is"; a different used
     * half would mean buffers taken before the stop and never returned, which a ring
     * restarted from scratch cannot return. */
    if (off >= q->cfg.size || (used != 0 && used != avail))
        return false;
    q->next_avail = q->next_used = q->signalled_used = q->notified_used = off;
    q->avail_wrap = q->used_wrap = q->signalled_wrap = q->notified_wrap = wrap;
    return true;
}

/* ---- The conformance checker's look at the driver's side (vq.h driver_end) ----
 * A packed ring has no index of the driver's: its buffers end at the first slot whose
 * descriptor is not available ("Driver and Device Ring Wrap Counters"). Every slot a
 * buffer covers is made available (the head's flags last, so a buffer still being
 * written ends the run at its head), and a slot the driver has not reached in this lap
 * holds a descriptor of the last lap, which reads as not available. */
#define PVQ_LOOK_BURST 16u /* descriptors per read of the look */

static uint16_t pos_of(uint16_t off, bool wrap)
{
    return (uint16_t)(off | (wrap ? 1u << 15 : 0u));
}

static uint32_t packed_avail_ahead(const void *qv, uint16_t pos)
{
    const struct pvq *q = qv;
    const uint16_t size = q->cfg.size;
    const uint16_t off = pos & 0x7fffu;
    if (size == 0 || size > PVIRTQ_SIZE_MAX || off >= size)
        return UINT32_MAX;
    return ring_lin_dist(size, ring_lin(size, q->next_avail, q->avail_wrap),
                         ring_lin(size, off, (pos >> 15) & 1u));
}

static enum vs_dma_status packed_driver_end(const void *qv, const struct vs_guest_ops *ops,
                                            uint16_t from, uint16_t *end)
{
    const struct pvq *q = qv;
    const uint16_t size = q->cfg.size;
    const uint32_t ahead = packed_avail_ahead(q, from);
    if (ahead > size)
        return VS_DMA_OUT_OF_RANGE;
    uint16_t off = from & 0x7fffu;
    bool wrap = (from >> 15) & 1u;
    uint32_t left = size - ahead; /* slots the driver may still have made available */
    uint8_t raw[PVQ_LOOK_BURST * sizeof(struct pvirtq_desc)];
    while (left > 0) {
        uint32_t n = (uint32_t)(size - off) < left ? (uint32_t)(size - off) : left;
        if (n > PVQ_LOOK_BURST)
            n = PVQ_LOOK_BURST;
        const uint64_t at = (uint64_t)off * sizeof(struct pvirtq_desc);
        const uint32_t bytes = n * (uint32_t)sizeof(struct pvirtq_desc);
        if (q->cfg.desc_addr > UINT64_MAX - at || vq_range_wraps(q->cfg.desc_addr + at, bytes))
            return VS_DMA_OUT_OF_RANGE;
        enum vs_dma_status s = ops->read(ops->ctx, q->cfg.desc_addr + at, raw, bytes, VS_DMA_DESC_READ);
        if (s != VS_DMA_OK)
            return s;
        for (uint32_t i = 0; i < n; i++) {
            if (!desc_is_avail(le16_at(raw + i * sizeof(struct pvirtq_desc), PVIRTQ_DESC_OFF_FLAGS), wrap)) {
                *end = pos_of((uint16_t)(off + i), wrap);
                return VS_DMA_OK;
            }
        }
        left -= n;
        ring_advance(size, &off, &wrap, n);
    }
    *end = pos_of(off, wrap);
    return VS_DMA_OK;
}

static bool packed_hinted_end(const void *qv, uint16_t *end)
{
    const struct pvq *q = qv;
    if (!q->hint_valid || q->hint_next_off >= q->cfg.size)
        return false;
    *end = pos_of(q->hint_next_off, q->hint_next_wrap);
    return true;
}

static uint32_t packed_position(const void *q) { return pvq_position(q); }
static bool packed_resume_at(void *q, uint32_t position) { return pvq_resume_at(q, position); }
static uint32_t packed_pending(const void *q) { return ((const struct pvq *)q)->batch_count; }
static enum vs_reason packed_broken(const void *q) { return ((const struct pvq *)q)->broken; }
static const struct vq_stats *packed_stats(const void *q) { return &((const struct pvq *)q)->stats; }

const struct vq_ops packed_vq_ops = {
    .name = "packed",
    .check_config = pvq_check_config,
    .init = packed_init,
    .peek = packed_peek,
    .pop = packed_pop,
    .push = packed_push,
    .flush = packed_flush,
    .should_interrupt = packed_should_interrupt,
    .recheck_driver_event = packed_recheck_driver_event,
    .set_notifications = packed_set_notifications,
    .set_avail_hint = packed_set_avail_hint,
    .driver_end = packed_driver_end,
    .avail_ahead = packed_avail_ahead,
    .hinted_end = packed_hinted_end,
    .pending = packed_pending,
    .position = packed_position,
    .resume_at = packed_resume_at,
    .broken = packed_broken,
    .stats = packed_stats,
};
