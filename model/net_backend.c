#include "net_backend.h"

#include <stdlib.h>
#include <string.h>

#include "virtio_wire.h"

enum vs_reason net_tx_buffer_check(uint32_t readable, uint32_t writable, uint32_t max_frame_bytes)
{
    if (writable != 0)
        return VS_REASON_TX_HAS_WRITABLE;
    if (readable < sizeof(struct virtio_net_hdr))
        return VS_REASON_TX_FRAME_TOO_SHORT;
    if (readable - sizeof(struct virtio_net_hdr) > max_frame_bytes)
        return VS_REASON_TX_FRAME_TOO_LONG;
    return VS_REASON_NONE;
}

enum vs_reason net_rx_buffer_check(uint32_t readable, uint32_t writable)
{
    if (readable != 0)
        return VS_REASON_RX_HAS_READABLE;
    if (writable < sizeof(struct virtio_net_hdr))
        return VS_REASON_RX_BUFFER_TOO_SMALL;
    return VS_REASON_NONE;
}

bool net_fifo_init(struct net_fifo *f, uint32_t capacity, uint32_t max_frame_bytes)
{
    memset(f, 0, sizeof *f);
    if (capacity == 0 || max_frame_bytes == 0)
        return false;
    f->capacity = capacity;
    f->max_frame = max_frame_bytes;
    f->bytes = ((size_t)capacity + 1u) * max_frame_bytes;
    /* calloc: pages a run never reaches are never touched. */
    f->data = calloc(f->bytes, 1);
    f->frames = calloc(capacity, sizeof *f->frames);
    if (f->data == NULL || f->frames == NULL) {
        net_fifo_fini(f);
        return false;
    }
    return true;
}

void net_fifo_fini(struct net_fifo *f)
{
    free(f->data);
    free(f->frames);
    memset(f, 0, sizeof *f);
}

void net_fifo_clear(struct net_fifo *f) { f->head = f->count = 0; }

const struct net_frame *net_fifo_head(const struct net_fifo *f, const uint8_t **bytes)
{
    if (f->count == 0)
        return NULL;
    const struct net_frame *fr = &f->frames[f->head];
    *bytes = f->data + fr->off;
    return fr;
}

void net_fifo_pop(struct net_fifo *f)
{
    if (f->count == 0)
        return;
    f->head = (f->head + 1u) % f->capacity;
    f->count--;
}

/* Where a frame of len (<= max_frame) bytes goes in the byte ring: right after the
 * newest frame, or at the start when it would run past the end (the rest of the ring is
 * left unused until the reader passes it). Called only with fewer than n = capacity
 * frames queued, so it never lands on a queued frame: those hold at most (n - 1) * max
 * bytes, a wrap leaves less than max unused at the end, and the ring is (n + 1) * max
 * bytes, so more than max bytes are free past the newest frame (or from the start up to
 * the oldest one, when the newest does not fit before the end). */
static size_t fifo_room(const struct net_fifo *f, uint32_t len)
{
    if (f->count == 0)
        return 0;
    const struct net_frame *newest = &f->frames[(f->head + f->count - 1u) % f->capacity];
    size_t end = (size_t)newest->off + newest->len;
    return end + len > f->bytes ? 0 : end;
}

static void fifo_commit(struct net_fifo *f, size_t off, uint32_t len)
{
    f->frames[(f->head + f->count) % f->capacity] = (struct net_frame){off, len, f->seq++};
    f->count++;
}

/* The backend's part of one transmitted frame (len <= max_frame), loopback or
 * responder: loopback receives it back whole (its bytes copied to out); the responder
 * writes its answer to out, if any (only when max(len, NET_ANSWER_MIN_FRAME) is within
 * max_frame). out has room for max_frame bytes. Counts what the responder did; returns
 * the bytes of the frame received (0: none). */
static uint32_t backend_frame(enum vdev_backend b, const struct net_peer *peer,
                              const uint8_t *frame, uint32_t len, uint32_t max_frame,
                              uint8_t *out, struct net_backend_counts *c)
{
    if (b == VDEV_BACKEND_LOOPBACK) {
        memcpy(out, frame, len);
        return len;
    }
    /* Responder: a reply is no longer than the request or the 60-byte minimum; room for
     * that much (when it is within max_frame) is room for the reply. */
    const uint32_t room = len > NET_ANSWER_MIN_FRAME ? len : NET_ANSWER_MIN_FRAME;
    size_t n = 0;
    enum net_answer_kind k = NET_ANSWER_NONE;
    if (room <= max_frame)
        k = net_answer(peer, frame, len, out, room, &n);
    switch (k) {
    case NET_ANSWER_ARP:
        c->responder_arp++;
        break;
    case NET_ANSWER_ICMP_ECHO:
        c->responder_echo++;
        break;
    case NET_ANSWER_NONE:
        c->sink_frames++;
        break;
    }
    return (uint32_t)n;
}

bool net_backend_transmit(enum vdev_backend b, const struct net_peer *peer, struct net_fifo *f,
                          const uint8_t *frame, uint32_t len, struct net_backend_counts *c)
{
    if (b == VDEV_BACKEND_SINK) {
        c->sink_frames++;
        return false;
    }
    /* No place, or a frame longer than a place: dropped as the sink would (callers keep
     * both from happening; this keeps a mistake from writing out of bounds). */
    if (net_fifo_full(f) || len > f->max_frame) {
        c->sink_frames++;
        return false;
    }
    /* The frame (or the answer) is built in its place, with room for as many bytes as
     * backend_frame may write (capped at max_frame: a responder with less room answers
     * nothing). */
    const uint32_t room = b == VDEV_BACKEND_LOOPBACK || len >= NET_ANSWER_MIN_FRAME
                              ? len
                          : NET_ANSWER_MIN_FRAME <= f->max_frame ? NET_ANSWER_MIN_FRAME
                                                                 : len;
    const size_t off = fifo_room(f, room);
    const uint32_t n = backend_frame(b, peer, frame, len, f->max_frame, f->data + off, c);
    if (n != 0)
        fifo_commit(f, off, n);
    return n != 0;
}

uint32_t net_backend_receive(enum vdev_backend b, const struct net_peer *peer,
                             const uint8_t *frame, uint32_t len, uint32_t max_frame,
                             uint8_t *out, struct net_backend_counts *c)
{
    if (b == VDEV_BACKEND_SINK || len > max_frame) {
        c->sink_frames++;
        return 0;
    }
    return backend_frame(b, peer, frame, len, max_frame, out, c);
}

bool net_fifo_push(struct net_fifo *f, const uint8_t *bytes, uint32_t len)
{
    if (net_fifo_full(f) || len == 0 || len > f->max_frame)
        return false;
    const size_t off = fifo_room(f, len);
    memcpy(f->data + off, bytes, len);
    fifo_commit(f, off, len);
    return true;
}
