#include "net_answer.h"

#include <stdbool.h>
#include <string.h>

#include "net_wire.h"

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
    vs_put_be16(out + 12, type);
    *out_len = total;
    return true;
}

static enum net_answer_kind answer_arp(const struct net_peer *peer, const uint8_t *frame,
                                       size_t len, uint8_t *out, size_t out_cap, size_t *out_len)
{
    const uint8_t *a = frame + ETH_HDR_BYTES;
    if (len < ETH_HDR_BYTES + ARP_IPV4_BYTES || vs_be16(a) != 1u || vs_be16(a + 2) != ETHERTYPE_IPV4 ||
        a[4] != 6u || a[5] != 4u || vs_be16(a + 6) != 1u /* request */ ||
        memcmp(a + 24, peer->ipv4, 4) != 0)
        return NET_ANSWER_NONE;
    if (!start_reply(peer, frame, ETHERTYPE_ARP, out, out_cap, ETH_HDR_BYTES + ARP_IPV4_BYTES, out_len))
        return NET_ANSWER_NONE;
    uint8_t *r = out + ETH_HDR_BYTES;
    memcpy(r, a, 6);        /* hardware and protocol types and lengths */
    vs_put_be16(r + 6, 2u);    /* reply */
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
    const uint8_t *ip = frame + ETH_HDR_BYTES;
    if (len < ETH_HDR_BYTES + IPV4_MIN_BYTES || ip[0] >> 4 != 4u)
        return NET_ANSWER_NONE;
    const size_t ihl = (size_t)(ip[0] & 0x0fu) * 4u;
    const size_t total = vs_be16(ip + IPV4_OFF_TOTAL_LEN);
    if (ihl < 20u || total < ihl + 8u || total > len - ETH_HDR_BYTES || ip[9] != IPPROTO_ICMP_ ||
        (vs_be16(ip + 6) & 0x3fffu) != 0 /* MF set or a fragment offset */ ||
        memcmp(ip + 16, peer->ipv4, 4) != 0 || inet_sum(ip, ihl) != 0xffffu)
        return NET_ANSWER_NONE;
    const uint8_t *icmp = ip + ihl;
    const size_t icmp_len = total - ihl;
    if (icmp[0] != ICMP_ECHO_REQUEST || icmp[1] != 0 || inet_sum(icmp, icmp_len) != 0xffffu)
        return NET_ANSWER_NONE;
    if (!start_reply(peer, frame, ETHERTYPE_IPV4, out, out_cap, ETH_HDR_BYTES + total, out_len))
        return NET_ANSWER_NONE;
    uint8_t *rip = out + ETH_HDR_BYTES;
    memcpy(rip, ip, total);
    memcpy(rip + 12, ip + 16, 4); /* from the peer ... */
    memcpy(rip + 16, ip + 12, 4); /* ... to the sender */
    rip[8] = 64;                  /* a fresh TTL */
    vs_put_be16(rip + 10, 0);
    vs_put_be16(rip + 10, (uint16_t)~inet_sum(rip, ihl));
    uint8_t *ricmp = rip + ihl;
    ricmp[0] = ICMP_ECHO_REPLY;
    vs_put_be16(ricmp + 2, 0);
    vs_put_be16(ricmp + 2, (uint16_t)~inet_sum(ricmp, icmp_len));
    return NET_ANSWER_ICMP_ECHO;
}

enum net_answer_kind net_answer(const struct net_peer *peer, const uint8_t *frame, size_t len,
                                uint8_t *out, size_t out_cap, size_t *out_len)
{
    *out_len = 0;
    if (peer == NULL || frame == NULL || out == NULL || len < ETH_HDR_BYTES)
        return NET_ANSWER_NONE;
    const bool to_peer = memcmp(frame, peer->mac, 6) == 0;
    switch (vs_be16(frame + 12)) {
    case ETHERTYPE_ARP:
        if (to_peer || memcmp(frame, broadcast, 6) == 0)
            return answer_arp(peer, frame, len, out, out_cap, out_len);
        return NET_ANSWER_NONE;
    case ETHERTYPE_IPV4:
        return to_peer ? answer_icmp(peer, frame, len, out, out_cap, out_len) : NET_ANSWER_NONE;
    default:
        return NET_ANSWER_NONE;
    }
}
