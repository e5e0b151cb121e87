#include "net_answer.h"

#include <stdbool.h>
#include <string.h>

#define ETH_HDR 14u
#define ETH_P_ARP 0x0806u
#define ETH_P_IPV4 0x0800u
#define ARP_LEN 28u
#define IPV4_P_ICMP 1u
#define ICMP_ECHO_REQUEST 8u
#define ICMP_ECHO_REPLY 0u

static uint16_t get_be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

static void put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

/* The Internet checksum's one's-complement sum of p[0 .. len) (RFC 1071), folded. */
static uint16_t inet_sum(const uint8_t *p, size_t len)
{
    uint32_t sum = 0;
    for (size_t i = 0; i + 1 < len; i += 2)
        sum += get_be16(p + i);
    if (len & 1u)
        sum += (uint32_t)p[len - 1] << 8;
    while (sum >> 16)
        sum = (sum & 0xffffu) + (sum >> 16);
    return (uint16_t)sum;
}

static const uint8_t broadcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

/* Ethernet header of a reply from the peer to the frame's sender; the rest zeroed up to
 * the minimum frame size. Returns false when out cannot hold `len` bytes. */
static bool start_reply(const struct net_peer *peer, const uint8_t *frame, uint16_t type,
                        uint8_t *out, size_t out_cap, size_t len, size_t *out_len)
{
    size_t total = len < NET_ANSWER_MIN_FRAME ? NET_ANSWER_MIN_FRAME : len;
    if (total > out_cap)
        return false;
    memset(out, 0, total);
    memcpy(out, frame + 6, 6); /* to the sender */
    memcpy(out + 6, peer->mac, 6);
    put_be16(out + 12, type);
    *out_len = total;
    return true;
}

static enum net_answer_kind answer_arp(const struct net_peer *peer, const uint8_t *frame,
                                       size_t len, uint8_t *out, size_t out_cap, size_t *out_len)
{
    const uint8_t *a = frame + ETH_HDR;
    if (len < ETH_HDR + ARP_LEN || get_be16(a) != 1u || get_be16(a + 2) != ETH_P_IPV4 ||
        a[4] != 6u || a[5] != 4u || get_be16(a + 6) != 1u /* request */ ||
        memcmp(a + 24, peer->ipv4, 4) != 0)
        return NET_ANSWER_NONE;
    if (!start_reply(peer, frame, ETH_P_ARP, out, out_cap, ETH_HDR + ARP_LEN, out_len))
        return NET_ANSWER_NONE;
    uint8_t *r = out + ETH_HDR;
    memcpy(r, a, 6);        /* hardware and protocol types and lengths */
    put_be16(r + 6, 2u);    /* reply */
    memcpy(r + 8, peer->mac, 6);
    memcpy(r + 14, peer->ipv4, 4);
    memcpy(r + 18, a + 8, 6);  /* the requester's hardware address ... */
    memcpy(r + 24, a + 14, 4); /* ... and protocol address */
    return NET_ANSWER_ARP;
}

static enum net_answer_kind answer_icmp(const struct net_peer *peer, const uint8_t *frame,
                                        size_t len, uint8_t *out, size_t out_cap,
                                        size_t *out_len)
{
    const uint8_t *ip = frame + ETH_HDR;
    if (len < ETH_HDR + 20u || ip[0] >> 4 != 4u)
        return NET_ANSWER_NONE;
    const size_t ihl = (size_t)(ip[0] & 0x0fu) * 4u;
    const size_t total = get_be16(ip + 2);
    if (ihl < 20u || total < ihl + 8u || total > len - ETH_HDR || ip[9] != IPV4_P_ICMP ||
        (get_be16(ip + 6) & 0x3fffu) != 0 /* MF set or a fragment offset */ ||
        memcmp(ip + 16, peer->ipv4, 4) != 0 || inet_sum(ip, ihl) != 0xffffu)
        return NET_ANSWER_NONE;
    const uint8_t *icmp = ip + ihl;
    const size_t icmp_len = total - ihl;
    if (icmp[0] != ICMP_ECHO_REQUEST || icmp[1] != 0 || inet_sum(icmp, icmp_len) != 0xffffu)
        return NET_ANSWER_NONE;
    if (!start_reply(peer, frame, ETH_P_IPV4, out, out_cap, ETH_HDR + total, out_len))
        return NET_ANSWER_NONE;
    uint8_t *rip = out + ETH_HDR;
    memcpy(rip, ip, total);
    memcpy(rip + 12, ip + 16, 4); /* from the peer ... */
    memcpy(rip + 16, ip + 12, 4); /* ... to the sender */
    rip[8] = 64;                  /* a fresh TTL */
    put_be16(rip + 10, 0);
    put_be16(rip + 10, (uint16_t)~inet_sum(rip, ihl));
    uint8_t *ricmp = rip + ihl;
    ricmp[0] = ICMP_ECHO_REPLY;
    put_be16(ricmp + 2, 0);
    put_be16(ricmp + 2, (uint16_t)~inet_sum(ricmp, icmp_len));
    return NET_ANSWER_ICMP_ECHO;
}

enum net_answer_kind net_answer(const struct net_peer *peer, const uint8_t *frame, size_t len,
                                uint8_t *out, size_t out_cap, size_t *out_len)
{
    *out_len = 0;
    if (peer == NULL || frame == NULL || out == NULL || len < ETH_HDR)
        return NET_ANSWER_NONE;
    const bool to_peer = memcmp(frame, peer->mac, 6) == 0;
    switch (get_be16(frame + 12)) {
    case ETH_P_ARP:
        if (to_peer || memcmp(frame, broadcast, 6) == 0)
            return answer_arp(peer, frame, len, out, out_cap, out_len);
        return NET_ANSWER_NONE;
    case ETH_P_IPV4:
        return to_peer ? answer_icmp(peer, frame, len, out, out_cap, out_len) : NET_ANSWER_NONE;
    default:
        return NET_ANSWER_NONE;
    }
}
