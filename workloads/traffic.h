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

#endif
