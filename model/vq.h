/* vq.h -- what every virtqueue format offers the device, and the table of functions
 * a device picks when the driver enables a queue ("Basic Facilities of a Virtio
 * Device / Virtqueues"): the packed format (packed_vq.h) and the split format
 * (split_vq.h) implement the same steps, so the device personality never asks which
 * format a queue uses.
 *
 * Calling pattern, per request: pop -> (the personality moves the data) -> push; then
 * flush publishes the batch and should_interrupt reads the driver's event suppression.
 */
#ifndef VIOSIM_VQ_H
#define VIOSIM_VQ_H

#include <stdbool.h>
#include <stdint.h>

#include "guest_ops.h"
#include "vs_reason.h"

enum vq_status {
    VQ_OK = 0,
    VQ_EMPTY,  /* pop: no available buffer at the device's position */
    VQ_BROKEN, /* guest input violated the spec; the ring's broken reason */
};

/* Where the device's descriptor fetch unit gets the number of descriptors to read in
 * one DMA read (the device's own design choice; the spec leaves it open):
 *  - ONE: one descriptor (split: one available ring entry) per read;
 *  - HINT: as many as the last VIRTIO_F_NOTIFICATION_DATA hint says the driver has
 *    made available beyond the fetch position, at most the batch; one without a
 *    usable hint;
 *  - READ_AHEAD: speculative, sized by what the device knows. Packed: the whole
 *    batch, available yet or not (what is not is discarded, counted as wasted, and
 *    read again later), except where the device last found the driver's end of the
 *    ring: there one descriptor, or what a NOTIFICATION_DATA hint promises. Split:
 *    every entry known available (from avail->idx as read or a hint), at most the
 *    batch; entries beyond idx could never be used, so none is read. */
enum vq_fetch_source {
    VQ_FETCH_ONE = 0,
    VQ_FETCH_HINT,
    VQ_FETCH_READ_AHEAD,
};

/* Largest fetch batch: the per-queue descriptor cache is a fixed array in the ring
 * state (the kernels have no heap). */
#define VQ_FETCH_BATCH_MAX 64u

/* What the queue is told when the driver enables it. */
struct vq_config {
    uint16_t size;             /* queue size: 1..32768, need not be a power of two */
    uint64_t desc_addr;        /* descriptor ring ("Descriptor Area") */
    uint64_t driver_addr;      /* driver event suppression ("Driver Area") */
    uint64_t device_addr;      /* device event suppression ("Device Area") */
    bool indirect_desc;        /* VIRTIO_F_INDIRECT_DESC negotiated */
    bool event_idx;            /* VIRTIO_F_EVENT_IDX negotiated */
    bool in_order;             /* VIRTIO_F_IN_ORDER negotiated */
    /* viosim-specific, NON-STANDARD (VIOSIM_NET_F_DEVMEM_EVENT, virtio_wire.h): the
     * device-local 4-byte copy of the driver's suppression fields, which the driver
     * writes by MMIO. NULL = the spec's placement (read by DMA from the Driver Area).
     * Packed: struct pvirtq_event_suppress; split: le16 flags, le16 used_event. */
    const uint8_t *driver_event_local;
    /* The device's fetch unit (not the driver's): descriptors per read at most
     * (0 counts as 1; above VQ_FETCH_BATCH_MAX counts as the maximum) and where the
     * count comes from. */
    uint16_t fetch_batch;
    enum vq_fetch_source fetch_source;
};

/* One segment of a buffer, in chain order: device-readable ones first. */
struct vq_seg {
    uint64_t addr;
    uint32_t len;
    bool device_writable;
};

/* One available buffer as popped. */
struct vq_elem {
    uint16_t id;             /* buffer id (from the last descriptor of the chain) */
    uint16_t slots;          /* ring slots the buffer occupied (an indirect table counts 1) */
    uint16_t head;           /* ring index of the first descriptor */
    uint32_t nsegs;          /* segments written to the caller's array */
    uint32_t readable_bytes; /* total length of device-readable segments */
    uint32_t writable_bytes; /* total length of device-writable segments */
    bool indirect;           /* buffer was described by an indirect table */
};

/* Work done, for the platform to charge and the stats to report. */
struct vq_stats {
    uint64_t buffers_popped;
    uint64_t descs_read;      /* ring descriptors and indirect entries fetched */
    uint64_t indirect_tables;
    uint64_t used_pushed;
    uint64_t flushes;
    uint64_t event_reads;     /* reads of the driver event suppression structure (DMA) */
    uint64_t event_reads_local; /* the same, from the device-local copy (no DMA) */
    uint64_t event_writes;    /* writes of the device event suppression structure */
    uint64_t interrupts_suppressed;
    uint64_t interrupts_rechecked; /* notifications decided by recheck_driver_event */
    /* Fetch unit: DMA reads of ring descriptors (split: of available ring entries),
     * entries they carried, entries discarded unused because they were not available
     * yet (beyond the one at the device's position, which every fetch looks at), their
     * bytes, and reads whose size a NOTIFICATION_DATA hint decided. */
    uint64_t fetch_reads;
    uint64_t fetch_entries;
    uint64_t fetch_wasted;
    uint64_t fetch_wasted_bytes;
    uint64_t fetch_hint_reads;
};

/* to += s, counter by counter: the one sum of queue counters (a queue's retired rings,
 * serve's rings of one kind). Every field is a uint64_t counter; vq.c asserts that its
 * table of them covers the struct. */
void vq_stats_add(struct vq_stats *to, const struct vq_stats *s);

/* The batch a configuration asks for, clamped to 1..VQ_FETCH_BATCH_MAX. */
static inline uint32_t vq_fetch_batch(const struct vq_config *cfg)
{
    uint32_t b = cfg->fetch_batch;
    if (b == 0)
        return 1;
    return b < VQ_FETCH_BATCH_MAX ? b : VQ_FETCH_BATCH_MAX;
}

/* Building one buffer's element list, the rules both formats share. */
struct vq_seg_walk {
    struct vq_seg *segs;
    uint32_t limit;  /* min(max_segs, size): the longest list the device accepts */
    uint32_t nsegs;
    uint64_t total;  /* readable + writable bytes, checked against 2^32 - 1 */
    uint64_t readable;
    uint64_t writable;
    bool seen_writable;
};

/* Append one element. Returns VS_REASON_NONE, or why the list is not acceptable:
 * an empty element (the spec has no MUST about it; the model treats it as a driver
 * error, since no device can move data through it), a device-readable element after a
 * device-writable one (driver normative, "Scatter-Gather Support" / "Message
 * Framing"), more than 2^32 - 1 bytes in total, or more elements than `limit`. */
enum vs_reason vq_seg_add(struct vq_seg_walk *w, uint64_t addr, uint32_t len, bool writable);

/* Would [addr, addr + len) run past the top of the 64-bit address space? */
static inline bool vq_range_wraps(uint64_t addr, uint32_t len)
{
    return len != 0 && addr > UINT64_MAX - (len - 1u);
}

/* One ring format: functions on its state (passed as void *, the format's struct). */
struct vq_ops {
    const char *name; /* "packed", "split" */
    /* Validate a configuration before enabling (size, alignment). */
    enum vs_reason (*check_config)(const struct vq_config *cfg, uint16_t size_max);
    /* Reset the ring state and take the configuration. */
    void (*init)(void *q, const struct vq_config *cfg);
    /* Is a buffer available at the device's position? */
    enum vq_status (*peek)(void *q, const struct vs_guest_ops *ops, bool *available);
    /* Take the next available buffer (segments into segs[0..max_segs)). */
    enum vq_status (*pop)(void *q, const struct vs_guest_ops *ops, struct vq_elem *elem,
                          struct vq_seg *segs, uint32_t max_segs);
    /* Queue a used buffer; nothing becomes visible to the driver before flush. */
    enum vq_status (*push)(void *q, const struct vs_guest_ops *ops, const struct vq_elem *elem,
                           uint32_t written_len);
    /* Publish what was pushed. */
    enum vq_status (*flush)(void *q, const struct vs_guest_ops *ops);
    /* Does the driver want a used buffer notification for what was published? */
    enum vq_status (*should_interrupt)(void *q, const struct vs_guest_ops *ops, bool *interrupt);
    /* viosim extension (VIOSIM_NET_F_DEVMEM_EVENT_RECHECK): the driver just wrote the
     * device-local copy of its suppression fields (whole_slot: all four bytes in one
     * write). Would the new fields ask for a notification for a used buffer published
     * since the last notification? No guest memory access; nothing to do without
     * cfg.driver_event_local. */
    enum vq_status (*recheck_driver_event)(void *q, bool whole_slot, bool *interrupt);
    /* Ask the driver for (enable) or spare (disable) available buffer notifications. */
    enum vq_status (*set_notifications)(void *q, const struct vs_guest_ops *ops, bool enable);
    /* NOTIFICATION_DATA: the driver's next position, as the notification carried it. */
    void (*set_avail_hint)(void *q, uint16_t next_off, bool next_wrap);
    /* A look at the driver's side for the conformance checker, not a fetch: nothing in
     * the ring's state changes (no cache, no statistics, no break), so it may run while
     * another operation of the queue is suspended in a DMA. Positions are the available
     * half of `position` (split: an available index; packed: offset | wrap << 15).
     * driver_end: where the driver's available buffers end now, read from guest memory
     * (split: avail->idx, one read; packed: the first slot from `from` on whose
     * descriptor is not available, reading descriptors in bursts, at most up to one
     * lap past the device's position; `from` must be a position the caller knows the
     * driver's buffers reach, at or after the device's). */
    enum vs_dma_status (*driver_end)(const void *q, const struct vs_guest_ops *ops, uint16_t from,
                                     uint16_t *end);
    /* Entries from the device's next available position to `pos`: 0..size when pos is
     * at or ahead of it within one lap, more than size when it is behind. */
    uint32_t (*avail_ahead)(const void *q, uint16_t pos);
    /* The driver's end as the last NOTIFICATION_DATA hint the ring keeps gave it (no
     * DMA); false when no hint is kept. */
    bool (*hinted_end)(const void *q, uint16_t *end);
    /* Buffers pushed but not yet published. */
    uint32_t (*pending)(const void *q);
    /* The device's place in the ring as one number, in vhost-user's format for
     * GET_VRING_BASE and SET_VRING_BASE: split, the next available index (free-running,
     * 16 bits); packed, the next descriptor offset (bits 0-14) and the Driver Ring Wrap
     * Counter (bit 15), then the next used offset (bits 16-30) and the Device Ring Wrap
     * Counter (bit 31). With nothing in flight both halves are the same place. */
    uint32_t (*position)(const void *q);
    /* Right after init: continue from a position (both sides, every suppression
     * decision as if made there). False, and nothing changed, when it is not a place in
     * this ring: packed, an offset at or beyond the size, or a used half that is neither
     * absent (0: front ends that send only the available half) nor the available half
     * (buffers in flight across a stop cannot be resumed). */
    bool (*resume_at)(void *q, uint32_t position);
    /* VS_REASON_NONE while healthy, else why the ring broke (sticky). */
    enum vs_reason (*broken)(const void *q);
    const struct vq_stats *(*stats)(const void *q);
};

#endif
