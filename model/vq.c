/* vq.c -- rules every ring format applies to a buffer's element list (vq.h). */
#include "vq.h"

#include <stddef.h>
#include <string.h>

static const size_t vq_stats_counters[] = {
    offsetof(struct vq_stats, buffers_popped),       offsetof(struct vq_stats, descs_read),
    offsetof(struct vq_stats, indirect_tables),      offsetof(struct vq_stats, used_pushed),
    offsetof(struct vq_stats, flushes),              offsetof(struct vq_stats, event_reads),
    offsetof(struct vq_stats, event_reads_local),    offsetof(struct vq_stats, event_writes),
    offsetof(struct vq_stats, interrupts_suppressed),
    offsetof(struct vq_stats, interrupts_rechecked), offsetof(struct vq_stats, fetch_reads),
    offsetof(struct vq_stats, fetch_entries),        offsetof(struct vq_stats, fetch_wasted),
    offsetof(struct vq_stats, fetch_wasted_bytes),   offsetof(struct vq_stats, fetch_hint_reads),
};
#define VQ_STATS_COUNTERS (sizeof vq_stats_counters / sizeof vq_stats_counters[0])
_Static_assert(VQ_STATS_COUNTERS * sizeof(uint64_t) == sizeof(struct vq_stats),
               "a vq_stats counter is missing from vq_stats_counters");

void vq_stats_add(struct vq_stats *to, const struct vq_stats *s)
{
    for (size_t i = 0; i < VQ_STATS_COUNTERS; i++) {
        uint64_t a, b;
        memcpy(&a, (const char *)to + vq_stats_counters[i], sizeof a);
        memcpy(&b, (const char *)s + vq_stats_counters[i], sizeof b);
        a += b;
        memcpy((char *)to + vq_stats_counters[i], &a, sizeof a);
    }
}

enum vs_reason vq_seg_add(struct vq_seg_walk *w, uint64_t addr, uint32_t len, bool writable)
{
    if (len == 0)
        return VS_REASON_DESC_ZERO_LENGTH;
    if (!writable && w->seen_writable)
        return VS_REASON_READ_AFTER_WRITE;
    w->total += len;
    if (w->total > UINT32_MAX)
        return VS_REASON_DESC_LENGTH_OVERFLOW;
    /* Callers check the limit before fetching more; this keeps the caller's array
     * safe even for a limit of 0 (every buffer is then too long). */
    if (w->nsegs >= w->limit)
        return VS_REASON_CHAIN_TOO_LONG;
    w->segs[w->nsegs++] = (struct vq_seg){.addr = addr, .len = len, .device_writable = writable};
    if (writable) {
        w->seen_writable = true;
        w->writable += len;
    } else {
        w->readable += len;
    }
    return VS_REASON_NONE;
}
