/* test_net_backend.c -- where transmitted frames go (model/net_backend.h): the receive
 * FIFO's byte ring, the backends' counts, the defensive drops, and the virtio-net buffer
 * rules ("Transmitting Packets", "Receiving Packets"). The FIFO's packing through
 * many wraps is also exercised through the device (test_vdev.c,
 * loopback_fifo_packs_and_wraps). */
#include <criterion/criterion.h>
#include <string.h>

#include "net_backend.h"
#include "virtio_wire.h"

static const struct net_peer peer = {{0x02, 0, 0, 0, 0, 0x02}, {10, 0, 0, 2}};

static void fill(uint8_t *f, uint32_t len, uint8_t seed)
{
    for (uint32_t i = 0; i < len; i++)
        f[i] = (uint8_t)(seed + i * 3u);
}

/* A broadcast ARP request for the peer's address (60 bytes). */
static void arp_request(uint8_t *arp)
{
    memset(arp, 0, 60);
    memset(arp, 0xff, 6);
    arp[12] = 0x08, arp[13] = 0x06, arp[15] = 1, arp[16] = 0x08, arp[18] = 6, arp[19] = 4,
    arp[21] = 1;
    memcpy(arp + 38, peer.ipv4, 4);
}

/* Loopback: frames come out whole and in order; a full FIFO or a frame longer than a
 * place is dropped and counted (callers prevent both; this keeps memory safe). */
Test(net_backend, loopback_order_and_defensive_drops)
{
    struct net_fifo f;
    struct net_backend_counts c = {0};
    cr_assert(net_fifo_init(&f, 2, 100));
    cr_expect_eq(f.bytes, 300u, "(capacity + 1) * max_frame");
    uint8_t a[100], b[40];
    fill(a, sizeof a, 1);
    fill(b, sizeof b, 9);
    cr_expect(net_backend_transmit(VDEV_BACKEND_LOOPBACK, &peer, &f, a, sizeof a, &c));
    cr_expect(net_backend_transmit(VDEV_BACKEND_LOOPBACK, &peer, &f, b, sizeof b, &c));
    cr_expect(net_fifo_full(&f));
    cr_expect_not(net_backend_transmit(VDEV_BACKEND_LOOPBACK, &peer, &f, b, sizeof b, &c));
    cr_expect_eq(c.sink_frames, 1, "full: dropped and counted");
    const uint8_t *bytes;
    const struct net_frame *fr = net_fifo_head(&f, &bytes);
    cr_assert_not_null(fr);
    cr_expect_eq(fr->len, 100);
    cr_expect_arr_eq(bytes, a, 100);
    net_fifo_pop(&f);
    fr = net_fifo_head(&f, &bytes);
    cr_assert_not_null(fr);
    cr_expect_arr_eq(bytes, b, 40);
    net_fifo_pop(&f);
    cr_expect_null(net_fifo_head(&f, &bytes));
    net_fifo_pop(&f); /* popping an empty FIFO changes nothing */
    cr_expect_eq(f.count, 0);
    uint8_t big[101] = {0};
    cr_expect_not(net_backend_transmit(VDEV_BACKEND_LOOPBACK, &peer, &f, big, sizeof big, &c));
    cr_expect_eq(c.sink_frames, 2, "longer than a place: dropped and counted");
    net_fifo_fini(&f);
}

/* An empty FIFO starts again at the beginning of its ring, so a run that keeps it
 * nearly empty touches only the first bytes of it. */
Test(net_backend, empty_fifo_restarts_at_the_start)
{
    struct net_fifo f;
    struct net_backend_counts c = {0};
    cr_assert(net_fifo_init(&f, 4, 1514));
    uint8_t fr[60] = {0};
    const uint8_t *bytes;
    for (int k = 0; k < 10; k++) {
        cr_assert(net_backend_transmit(VDEV_BACKEND_LOOPBACK, &peer, &f, fr, sizeof fr, &c));
        cr_expect_eq(net_fifo_head(&f, &bytes)->off, 0u);
        net_fifo_pop(&f);
    }
    net_fifo_fini(&f);
}

/* Sink drops everything; the responder queues only answers and counts the rest as
 * dropped; with places of fewer than 60 bytes it cannot answer at all. */
Test(net_backend, sink_and_responder_counts)
{
    struct net_fifo f;
    struct net_backend_counts c = {0};
    cr_assert(net_fifo_init(&f, 4, 1514));
    uint8_t arp[60];
    arp_request(arp);
    cr_expect_not(net_backend_transmit(VDEV_BACKEND_SINK, &peer, &f, arp, sizeof arp, &c));
    cr_expect_eq(c.sink_frames, 1);
    cr_expect_eq(f.count, 0);
    cr_expect(net_backend_transmit(VDEV_BACKEND_RESPONDER, &peer, &f, arp, sizeof arp, &c));
    cr_expect_eq(c.responder_arp, 1);
    arp[13] = 0x00; /* now an IPv4 frame that is no echo request */
    cr_expect_not(net_backend_transmit(VDEV_BACKEND_RESPONDER, &peer, &f, arp, sizeof arp, &c));
    cr_expect_eq(c.sink_frames, 2);
    cr_expect_eq(f.count, 1);
    net_fifo_fini(&f);

    cr_assert(net_fifo_init(&f, 4, 59));
    arp[13] = 0x06;
    cr_expect_not(net_backend_transmit(VDEV_BACKEND_RESPONDER, &peer, &f, arp, 59, &c));
    cr_expect_eq(c.responder_arp, 1, "no room for a 60-byte reply");
    net_fifo_fini(&f);
}

/* The steering device's path: net_backend_receive gives the frame the device receives
 * (loopback: the frame itself; responder: its answer; sink: none) with the same counts
 * as net_backend_transmit, and net_fifo_push queues it where the caller steered it,
 * refusing a full FIFO or a length out of range. */
Test(net_backend, receive_then_push)
{
    struct net_backend_counts c = {0};
    uint8_t out[1514], fr[80];
    fill(fr, sizeof fr, 5);
    cr_expect_eq(net_backend_receive(VDEV_BACKEND_LOOPBACK, &peer, fr, sizeof fr, 1514, out, &c), 80u);
    cr_expect_arr_eq(out, fr, sizeof fr);
    cr_expect_eq(net_backend_receive(VDEV_BACKEND_SINK, &peer, fr, sizeof fr, 1514, out, &c), 0u);
    cr_expect_eq(c.sink_frames, 1);
    cr_expect_eq(net_backend_receive(VDEV_BACKEND_LOOPBACK, &peer, fr, sizeof fr, 79, out, &c), 0u,
                 "longer than max_frame_bytes");
    cr_expect_eq(c.sink_frames, 2);
    uint8_t arp[60];
    arp_request(arp);
    cr_expect_eq(net_backend_receive(VDEV_BACKEND_RESPONDER, &peer, arp, sizeof arp, 1514, out, &c), 60u);
    cr_expect_eq(c.responder_arp, 1);
    cr_expect_eq(out[21], 2, "an ARP reply");

    struct net_fifo f;
    cr_assert(net_fifo_init(&f, 2, 100));
    cr_expect(net_fifo_push(&f, fr, 80));
    cr_expect_not(net_fifo_push(&f, fr, 0), "empty");
    cr_expect_not(net_fifo_push(&f, out, 101), "longer than a place");
    cr_expect(net_fifo_push(&f, out, 60));
    cr_expect_not(net_fifo_push(&f, fr, 10), "full");
    const uint8_t *bytes;
    cr_expect_eq(net_fifo_head(&f, &bytes)->len, 80u);
    cr_expect_arr_eq(bytes, fr, 80);
    net_fifo_pop(&f);
    cr_expect_eq(net_fifo_head(&f, &bytes)->len, 60u);
    cr_expect_arr_eq(bytes, out, 60);
    net_fifo_fini(&f);
}

/* "Transmitting Packets": a transmit buffer is device-readable only, holds the header,
 * and a frame of at most max_frame_bytes. "Receiving Packets": a receive buffer is
 * device-writable only and holds at least the header. */
Test(net_backend, buffer_rules)
{
    const uint32_t hdr = sizeof(struct virtio_net_hdr);
    cr_expect_eq(net_tx_buffer_check(hdr + 60, 0, 1514), VS_REASON_NONE);
    cr_expect_eq(net_tx_buffer_check(hdr + 1514, 0, 1514), VS_REASON_NONE);
    cr_expect_eq(net_tx_buffer_check(hdr + 1515, 0, 1514), VS_REASON_TX_FRAME_TOO_LONG);
    cr_expect_eq(net_tx_buffer_check(hdr - 1, 0, 1514), VS_REASON_TX_FRAME_TOO_SHORT);
    cr_expect_eq(net_tx_buffer_check(hdr + 60, 1, 1514), VS_REASON_TX_HAS_WRITABLE);
    cr_expect_eq(net_rx_buffer_check(0, hdr), VS_REASON_NONE);
    cr_expect_eq(net_rx_buffer_check(0, hdr - 1), VS_REASON_RX_BUFFER_TOO_SMALL);
    cr_expect_eq(net_rx_buffer_check(1, 2048), VS_REASON_RX_HAS_READABLE);
}

Test(net_backend, init_refuses_zero_sizes)
{
    struct net_fifo f;
    cr_expect_not(net_fifo_init(&f, 0, 1514));
    cr_expect_null(f.data);
    cr_expect_not(net_fifo_init(&f, 4, 0));
    net_fifo_fini(&f); /* after a refused init, fini is harmless */
}
