/* vq.c -- rules every ring format applies to a buffer's element list (vq.h). */
#include "vq.h"

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
