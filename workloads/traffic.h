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

struct traffic_info {
    uint64_t seq;
    uint32_t len;
    uint64_t tx_time_ps;
};

enum traffic_verdict {
    TRAFFIC_GOOD = 0,
    TRAFFIC_TOO_SHORT,     /* fewer bytes than the test header */
    TRAFFIC_BAD_ETHERNET,  /* addresses or EtherType differ from what was sent */
    TRAFFIC_BAD_HEADER,    /* check word does not match: header corrupted */
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

/* Check a received frame of len bytes. *info is filled from the header whenever the
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
