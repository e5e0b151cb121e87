/* traffic.h -- test frames the receiver can verify on its own.
 *
 * A frame is an Ethernet II frame (without FCS) carrying a test header and a payload
 * that is a pure function of (seed, sequence number), so a receiver that knows the seed
 * checks every byte without any shared state with the sender:
 *
 *   0..5    destination MAC
 *   6..11   source MAC
 *   12..13  EtherType 0x88B5 (IEEE 802 local experimental), big-endian
 *   14..21  sequence number (le64)
 *   22..25  frame length in bytes (le32)
 *   26..33  time the sender posted the frame, picoseconds (le64)
 *   34..37  check word over seed, sequence, length and time (le32)
 *   38..    pattern bytes from a generator seeded with (seed, sequence)
 */
#ifndef VIOSIM_TRAFFIC_H
#define VIOSIM_TRAFFIC_H

#include <stdint.h>

#define TRAFFIC_HDR_BYTES   38u   /* smallest frame: everything up to the pattern */
#define TRAFFIC_MAX_FRAME_BYTES 65535u
#define TRAFFIC_ETHERTYPE   0x88b5u

/* ---- Flow frames: the same test frame carried in IPv4 and UDP ----
 * Receive-side scaling steers by the addresses and ports of IP packets, so traffic
 * meant to spread over queue pairs is sent as flows, each its own UDP 4-tuple:
 *
 *   0..13   Ethernet: destination MAC, source MAC, EtherType 0x0800 (IPv4)
 *   14..33  IPv4: version 4, IHL 5, total length len - 14, identification = low 16 bits
 *           of the sequence, DF, TTL 64, protocol UDP, header checksum, the flow's
 *           source and destination addresses
 *   34..41  UDP: the flow's ports, length len - 34, checksum 0 (none, allowed over IPv4)
 *   42..47  sequence number, low 48 bits (le48)
 *   48..55  time the sender posted the frame, picoseconds (le64)
 *   56..59  check word over seed, sequence (48 bits), length, time and the 4-tuple (le32)
 *   60..    pattern bytes, as in a plain frame
 *
 * The frame's length is the IPv4 total length plus 14; the smallest flow frame is the
 * 60-byte Ethernet minimum (64 bytes on the wire with the FCS). */
#define TRAFFIC_FLOW_HDR_BYTES 60u
#define TRAFFIC_FLOWS_MAX      65536u
#define TRAFFIC_FLOW_SEQ_MASK  0xffffffffffffull

/* One flow's UDP 4-tuple; addresses as on the wire, ports in host order. */
struct traffic_flow {
    uint8_t src_ip[4], dst_ip[4];
    uint16_t src_port, dst_port;
};

/* Flow `index` (below TRAFFIC_FLOWS_MAX; others wrap): source 10.1.hi.lo (the index's
 * two bytes), source port 49152 + index mod 16384 (the dynamic range), destination
 * 10.2.0.1 port 9 (discard). Distinct indices give distinct tuples; the same index the
 * same tuple, whatever the seed. */
void traffic_flow_of(uint32_t index, struct traffic_flow *f);

/* Frame length used for a requested size in a flow: at least TRAFFIC_FLOW_HDR_BYTES, at
 * most TRAFFIC_MAX_FRAME_BYTES. */
uint32_t traffic_flow_frame_len(uint32_t requested);

/* Write a flow frame of len bytes (len >= TRAFFIC_FLOW_HDR_BYTES) at frame, from mac to
 * mac as traffic_build does. */
void traffic_build_flow(uint8_t *frame, uint32_t len, const uint8_t mac[6], uint64_t seed,
                        uint64_t seq, uint64_t tx_time_ps, const struct traffic_flow *flow);

struct traffic_info {
    uint64_t seq;          /* a flow frame's: its low 48 bits */
    uint32_t len;
    uint64_t tx_time_ps;
    int is_flow;           /* an IPv4/UDP flow frame; then flow holds its tuple */
    struct traffic_flow flow;
};

enum traffic_verdict {
    TRAFFIC_GOOD = 0,
    TRAFFIC_TOO_SHORT,     /* fewer bytes than the test header */
    TRAFFIC_BAD_ETHERNET,  /* addresses or EtherType differ from what was sent */
    TRAFFIC_BAD_HEADER,    /* check word does not match, or (flow) the IPv4 or UDP header is
                              not the one sent: header corrupted */
    TRAFFIC_BAD_LENGTH,    /* length field disagrees with the received length */
    TRAFFIC_BAD_PAYLOAD,   /* a pattern byte differs */
};

/* Frame length actually used for a requested size: at least the test header, at most
 * TRAFFIC_MAX_FRAME_BYTES. */
uint32_t traffic_frame_len(uint32_t requested);

/* Write a frame of len bytes (len >= TRAFFIC_HDR_BYTES) at frame. mac is used as both
 * source and destination (the frame is meant to come back to its sender). */
void traffic_build(uint8_t *frame, uint32_t len, const uint8_t mac[6], uint64_t seed,
                   uint64_t seq, uint64_t tx_time_ps);

/* Check a received frame of len bytes, plain or flow (by its EtherType). *info is filled from the header whenever the
 * verdict is not TRAFFIC_TOO_SHORT. With exact_len 0, the frame may be followed by
 * padding (len is only an upper bound): the header's length is checked to fit. */
enum traffic_verdict traffic_check(const uint8_t *frame, uint32_t len, int exact_len,
                                   const uint8_t mac[6], uint64_t seed, struct traffic_info *info);

/* ---- seeded randomness, arrival processes and frame-size mixes ----
 *
 * Pure functions on explicit state: the driver keeps one struct per stream (arrivals,
 * sizes), seeded from sim.seed, so the same config and seed give the same schedule. */

/* SplitMix64 stream. Different `stream` values give independent sequences. */
struct traffic_rng {
    uint64_t state;
};

void traffic_rng_seed(struct traffic_rng *r, uint64_t seed, uint64_t stream);
uint64_t traffic_rng_next(struct traffic_rng *r);
/* Uniform in [0, 1), 53 bits. */
double traffic_rng_unit(struct traffic_rng *r);
/* Uniform in [0, n); 0 when n is 0. */
uint32_t traffic_rng_below(struct traffic_rng *r, uint32_t n);
/* Exponentially distributed with the given mean (>= 0). */
double traffic_rng_exp(struct traffic_rng *r, double mean);

enum traffic_arrival_kind {
    TRAFFIC_ARRIVAL_CONSTANT = 0, /* one frame every interval */
    TRAFFIC_ARRIVAL_POISSON,      /* exponential gaps with mean interval */
    TRAFFIC_ARRIVAL_ONOFF,        /* constant rate during "on", nothing during "off" */
    TRAFFIC_ARRIVAL_CLOSED,       /* closed loop: no schedule, every frame is due at once;
                                     the sender limits how many requests are outstanding */
};

enum traffic_period_kind {
    TRAFFIC_PERIOD_FIXED = 0,     /* every on (off) period lasts exactly on_ps (off_ps) */
    TRAFFIC_PERIOD_EXPONENTIAL,   /* exponentially distributed with those means */
};

/* The departure schedule of an open-loop sender, in picoseconds of simulated time.
 * interval_ps 0 means "no schedule": every frame is due at once (constant only). */
struct traffic_arrival {
    enum traffic_arrival_kind kind;
    enum traffic_period_kind periods;
    double interval_ps;
    double on_ps, off_ps;
    double start_ps;
    uint64_t count;        /* frames already departed (advance calls) */
    double next_ps;        /* poisson, onoff: departure time of the next frame */
    double on_end_ps;      /* onoff: end of the current on period */
    struct traffic_rng rng;
};

void traffic_arrival_init(struct traffic_arrival *a, enum traffic_arrival_kind kind,
                          double interval_ps, enum traffic_period_kind periods, double on_ps,
                          double off_ps, uint64_t seed, double start_ps);
/* Departure time of the next frame (not before start_ps). */
double traffic_arrival_due(const struct traffic_arrival *a);
/* The next frame departed: move on to the one after it. */
void traffic_arrival_advance(struct traffic_arrival *a);

/* The classic simple IMIX, 7:4:1 by frame count, as frames without FCS (this model's
 * frames carry none): 60, 566 and 1514 bytes are 64, 570 and 1518 bytes on the wire. The
 * twelve-frame pattern interleaves the sizes and repeats, so every 12 consecutive frames
 * hold exactly 7 small, 4 medium and 1 large. */
#define TRAFFIC_IMIX_SMALL_BYTES  60u
#define TRAFFIC_IMIX_MEDIUM_BYTES 566u
#define TRAFFIC_IMIX_LARGE_BYTES  1514u
#define TRAFFIC_IMIX_CYCLE        12u

uint32_t traffic_imix_len(uint64_t index);

#endif
