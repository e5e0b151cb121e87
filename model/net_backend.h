/* net_backend.h -- where a virtio-net device's transmitted frames go (device.backend),
 * and the FIFO of frames waiting for receive buffers. One implementation for the
 * simulated device (virtio_net.c) and for viosim serve (platform/vhost_user.cpp).
 *
 * The FIFO keeps frames whole, packed end to end in a byte ring of
 * (capacity + 1) * max_frame_bytes: a short frame costs its length, not a
 * maximum-size slot, and a frame always fits while fewer than `capacity` are queued
 * (see fifo_room in net_backend.c). Pure C: no I/O, no globals. */
#ifndef VIOSIM_NET_BACKEND_H
#define VIOSIM_NET_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net_answer.h"
#include "vs_reason.h"

enum vdev_backend {
    VDEV_BACKEND_LOOPBACK,  /* every transmitted frame is received back */
    VDEV_BACKEND_SINK,      /* transmitted frames are counted and dropped */
    VDEV_BACKEND_RESPONDER, /* a peer answers ARP and ICMP echo requests (net_answer.h)
                             * into the receive side; other frames are dropped */
};

struct net_frame {
    uint64_t off;            /* where its bytes start in the FIFO's data */
    uint32_t len;
    uint64_t seq;            /* order of queueing, for tracing */
};

struct net_fifo {
    uint8_t *data;
    size_t bytes;            /* (capacity + 1) * max_frame */
    struct net_frame *frames; /* capacity entries, a ring from head */
    uint32_t capacity, max_frame, head, count;
    uint64_t seq;
};

/* Allocates room for `capacity` (>= 1) frames of up to max_frame_bytes (>= 1). False
 * (and nothing allocated) when memory runs out. */
bool net_fifo_init(struct net_fifo *f, uint32_t capacity, uint32_t max_frame_bytes);
void net_fifo_fini(struct net_fifo *f);
/* Empties it (a device reset, a front end gone). */
void net_fifo_clear(struct net_fifo *f);
static inline bool net_fifo_full(const struct net_fifo *f) { return f->count == f->capacity; }
/* The oldest frame and its bytes; NULL when empty. */
const struct net_frame *net_fifo_head(const struct net_fifo *f, const uint8_t **bytes);
void net_fifo_pop(struct net_fifo *f);

/* The virtio-net buffer rules a device enforces, from a buffer's device-readable and
 * device-writable byte counts: VS_REASON_NONE, or why the device refuses it (the
 * simulated device goes to NEEDS_RESET; viosim serve stops the ring).
 * Transmit ("Transmitting Packets"): all device-readable, a virtio-net header and a
 * frame of at most max_frame_bytes. Receive ("Receiving Packets"): all device-writable,
 * room for at least the header. */
enum vs_reason net_tx_buffer_check(uint32_t readable, uint32_t writable, uint32_t max_frame_bytes);
enum vs_reason net_rx_buffer_check(uint32_t readable, uint32_t writable);

/* What the backends did, cumulative. */
struct net_backend_counts {
    uint64_t sink_frames;    /* dropped by the sink, or left unanswered by the responder */
    uint64_t responder_arp;  /* ARP requests the responder answered */
    uint64_t responder_echo; /* ICMP echo requests the responder answered */
};

/* Hands one transmitted frame (len <= the FIFO's max_frame, Ethernet header first) to
 * backend b. Loopback queues it; the responder queues its answer, if any; the sink
 * drops it. Loopback and responder need a free place (!net_fifo_full): the caller holds
 * one (the simulated device reserves it when it takes the buffer) or drops the frame
 * itself. Returns true when a frame was queued for the receive side. */
bool net_backend_transmit(enum vdev_backend b, const struct net_peer *peer, struct net_fifo *f,
                          const uint8_t *frame, uint32_t len, struct net_backend_counts *c);

/* The frame the device receives for one transmitted frame (len bytes, Ethernet header
 * first) under backend b, for a device that steers it to one of several FIFOs itself:
 * loopback, the frame; responder, its answer, if any; sink, none. Writes it to out
 * (max_frame_bytes of room: nothing longer is written) and returns its length, 0 when
 * there is none. Counts as net_backend_transmit does (a frame longer than
 * max_frame_bytes is dropped as the sink would). */
uint32_t net_backend_receive(enum vdev_backend b, const struct net_peer *peer,
                             const uint8_t *frame, uint32_t len, uint32_t max_frame_bytes,
                             uint8_t *out, struct net_backend_counts *c);
/* Queue a frame of len (1 .. max_frame) bytes; false (nothing queued) when full or
 * the length is out of range. */
bool net_fifo_push(struct net_fifo *f, const uint8_t *bytes, uint32_t len);

#endif
