/* net_wire.h -- the network headers frames carry: Ethernet II, IEEE 802.1Q tags, IPv4,
 * IPv6, TCP and UDP, with their fields' offsets and the Internet checksum. Fields are
 * big-endian ("network byte order"); vs_be* read and write them. One place for every
 * kernel and workload that builds or parses a frame (the responder's answers, RSS
 * steering, the reference driver's flows).
 */
#ifndef VIOSIM_NET_WIRE_H
#define VIOSIM_NET_WIRE_H

#include <stddef.h>
#include <stdint.h>

static inline uint16_t vs_be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t vs_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline void vs_put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static inline void vs_put_be32(uint8_t *p, uint32_t v)
{
    vs_put_be16(p, (uint16_t)(v >> 16));
    vs_put_be16(p + 2, (uint16_t)v);
}

/* Ethernet II (without FCS: this model's frames carry none). */
#define ETH_HDR_BYTES     14u
#define ETH_OFF_DST       0u
#define ETH_OFF_SRC       6u
#define ETH_OFF_TYPE      12u
#define ETH_MIN_FRAME_BYTES 60u /* 64 bytes on the wire with the FCS */
#define ETHERTYPE_IPV4    0x0800u
#define ETHERTYPE_ARP     0x0806u
#define ETHERTYPE_IPV6    0x86ddu
#define ETHERTYPE_8021Q   0x8100u
#define ETHERTYPE_8021AD  0x88a8u
#define VLAN_TAG_BYTES    4u

/* ARP for IPv4 over Ethernet (RFC 826). */
#define ARP_IPV4_BYTES    28u

/* IPv4 (RFC 791). */
#define IPV4_MIN_BYTES     20u
#define IPV4_OFF_TOTAL_LEN 2u
#define IPV4_OFF_ID        4u
#define IPV4_OFF_FRAG      6u  /* flags (3 bits) and fragment offset (13 bits) */
#define IPV4_FRAG_DF_MASK  0x4000u
#define IPV4_FRAG_MF_MASK  0x2000u
#define IPV4_FRAG_OFF_MASK 0x1fffu
#define IPV4_OFF_TTL       8u
#define IPV4_OFF_PROTO     9u
#define IPV4_OFF_CHECKSUM  10u
#define IPV4_OFF_SRC       12u
#define IPV4_OFF_DST       16u

/* IPv6 (RFC 8200). */
#define IPV6_HDR_BYTES     40u
#define IPV6_OFF_PAYLOAD   4u
#define IPV6_OFF_NEXT      6u
#define IPV6_OFF_SRC       8u
#define IPV6_FRAG_BYTES    8u
#define IPV6_FRAG_OFF_MASK 0xfff8u /* fragment offset in 8-byte units, bits 3..15 */
#define IPV6_FRAG_M_MASK   0x0001u

/* IP protocol numbers (a trailing underscore keeps them apart from <netinet/in.h>'s). */
#define IPPROTO_HOPOPTS_   0u
#define IPPROTO_ICMP_      1u
#define IPPROTO_TCP_       6u
#define IPPROTO_UDP_       17u
#define IPPROTO_ROUTING_   43u
#define IPPROTO_FRAGMENT_  44u
#define IPPROTO_AH_        51u
#define IPPROTO_DSTOPTS_   60u

/* ICMP echo (RFC 792). */
#define ICMP_ECHO_REQUEST  8u
#define ICMP_ECHO_REPLY    0u

/* TCP (RFC 9293) and UDP (RFC 768). */
#define TCP_MIN_BYTES      20u
#define UDP_BYTES          8u
#define UDP_OFF_SRC_PORT   0u
#define UDP_OFF_DST_PORT   2u
#define UDP_OFF_LEN        4u
#define UDP_OFF_CHECKSUM   6u

/* The Internet checksum's one's-complement sum of p[0 .. len) (RFC 1071), folded: a
 * header whose checksum field is right sums to 0xffff; the field to write is ~sum of
 * the header with the field zeroed. */
static inline uint16_t inet_sum(const uint8_t *p, size_t len)
{
    uint32_t sum = 0;
    for (size_t i = 0; i + 1 < len; i += 2)
        sum += vs_be16(p + i);
    if (len & 1u)
        sum += (uint32_t)p[len - 1] << 8;
    while (sum >> 16)
        sum = (sum & 0xffffu) + (sum >> 16);
    return (uint16_t)sum;
}

#endif
