/* net_answer.h -- a peer on the wire that answers ARP requests and ICMP echo requests
 * (device.backend = responder): the smallest conversation a driver's stack can have
 * with the device's far side without a loopback (a ping, and the ARP that precedes it).
 *
 * Pure function over a frame: no state, no allocation. The peer has one MAC and one
 * IPv4 address. It answers
 *  - an ARP request (RFC 826: Ethernet hardware, IPv4 protocol) whose target protocol
 *    address is the peer's, sent to the broadcast address or to the peer's MAC, with an
 *    ARP reply giving the peer's MAC;
 *  - an ICMP echo request (RFC 792, type 8 code 0) in an unfragmented IPv4 packet
 *    (RFC 791) to the peer's MAC and address, with correct IPv4 header and ICMP
 *    checksums, with an echo reply carrying the same identifier, sequence and data.
 * Every other frame goes unanswered. Replies are padded to the 60-byte Ethernet
 * minimum, as a frame received from a wire would be. */
#ifndef VIOSIM_NET_ANSWER_H
#define VIOSIM_NET_ANSWER_H

#include <stddef.h>
#include <stdint.h>

#include "net_wire.h"

#define NET_ANSWER_MIN_FRAME ETH_MIN_FRAME_BYTES

struct net_peer {
    uint8_t mac[6];
    uint8_t ipv4[4];
};

/* What kind of frame was answered. */
enum net_answer_kind {
    NET_ANSWER_NONE = 0, /* not for the peer, or malformed: no reply */
    NET_ANSWER_ARP,
    NET_ANSWER_ICMP_ECHO,
};

/* The peer's reply to frame[0 .. len) (Ethernet header first, no virtio-net header) in
 * out[0 .. out_cap). Returns the kind answered and sets *out_len, or NET_ANSWER_NONE
 * (*out_len 0) when there is no reply or it would not fit in out_cap. */
enum net_answer_kind net_answer(const struct net_peer *peer, const uint8_t *frame, size_t len,
                                uint8_t *out, size_t out_cap, size_t *out_len);

#endif
