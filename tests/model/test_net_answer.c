/* test_net_answer.c -- the responder peer (model/net_answer.h): ARP replies (RFC 826),
 * ICMP echo replies (RFC 792) with IPv4 and ICMP checksums (RFC 791, RFC 1071), and
 * silence for everything else, however malformed. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "net_answer.h"

static const struct net_peer peer = {{0x02, 0, 0, 0, 0, 0x02}, {10, 0, 0, 2}};
static const uint8_t host_mac[6] = {0x52, 0x54, 0, 0x12, 0x34, 0x56};
static const uint8_t host_ip[4] = {10, 0, 0, 1};

/* The header checksum field's value: the one's complement of the sum (net_wire.h). */
static uint16_t checksum(const uint8_t *p, size_t len) { return (uint16_t)~inet_sum(p, len); }

/* RFC 1071's worked example ("Numerical Examples"): the bytes 00 01 f2 03 f4 f5 f6 f7
 * sum to ddf2 (one's complement, carries folded); an odd length pads with a zero byte. */
Test(inet_sum, rfc1071_example_and_odd_length)
{
    static const uint8_t b[8] = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
    cr_expect_eq(inet_sum(b, 8), 0xddf2);
    cr_expect_eq(inet_sum(b, 7), (uint16_t)(0xddf2 - 0xf7), "odd: last byte as the high half");
    cr_expect_eq(inet_sum(b, 0), 0);
}

static size_t arp_request(uint8_t *f, const uint8_t *dst_mac, const uint8_t target_ip[4])
{
    memset(f, 0, 60);
    memcpy(f, dst_mac, 6);
    memcpy(f + 6, host_mac, 6);
    f[12] = 0x08, f[13] = 0x06;
    uint8_t *a = f + 14;
    a[1] = 1;            /* Ethernet */
    a[2] = 0x08;         /* IPv4 */
    a[4] = 6, a[5] = 4;
    a[7] = 1;            /* request */
    memcpy(a + 8, host_mac, 6);
    memcpy(a + 14, host_ip, 4);
    memcpy(a + 24, target_ip, 4);
    return 60;
}

/* An echo request of `data` payload bytes: Ethernet, 20-byte IPv4 header, ICMP. */
static size_t echo_request(uint8_t *f, size_t data)
{
    memcpy(f, peer.mac, 6);
    memcpy(f + 6, host_mac, 6);
    f[12] = 0x08, f[13] = 0x00;
    uint8_t *ip = f + 14;
    memset(ip, 0, 20);
    ip[0] = 0x45;
    size_t total = 20 + 8 + data;
    ip[2] = (uint8_t)(total >> 8), ip[3] = (uint8_t)total;
    ip[4] = 0x12, ip[5] = 0x34;
    ip[6] = 0x40;        /* don't fragment */
    ip[8] = 7;           /* TTL */
    ip[9] = 1;           /* ICMP */
    memcpy(ip + 12, host_ip, 4);
    memcpy(ip + 16, peer.ipv4, 4);
    uint16_t c = checksum(ip, 20);
    ip[10] = (uint8_t)(c >> 8), ip[11] = (uint8_t)c;
    uint8_t *icmp = ip + 20;
    memset(icmp, 0, 8);
    icmp[0] = 8;
    icmp[4] = 0xab, icmp[5] = 0xcd; /* identifier */
    icmp[6] = 0, icmp[7] = 42;      /* sequence */
    for (size_t i = 0; i < data; i++)
        icmp[8 + i] = (uint8_t)(i * 13 + 5);
    c = checksum(icmp, 8 + data);
    icmp[2] = (uint8_t)(c >> 8), icmp[3] = (uint8_t)c;
    return 14 + total;
}

static uint8_t out[2048];

/* RFC 826 "Packet Reception": a request for our protocol address gets a reply with our
 * hardware address, sent back to the requester. */
Test(net_answer, arp_request_broadcast_is_answered)
{
    uint8_t f[60];
    size_t n, len = arp_request(f, (const uint8_t[6]){0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, peer.ipv4);
    cr_assert_eq(net_answer(&peer, f, len, out, sizeof out, &n), NET_ANSWER_ARP);
    cr_expect_eq(n, NET_ANSWER_MIN_FRAME);
    cr_expect_arr_eq(out, host_mac, 6);
    cr_expect_arr_eq(out + 6, peer.mac, 6);
    cr_expect_eq(vs_be16(out + 12), 0x0806);
    const uint8_t *a = out + 14;
    cr_expect_eq(vs_be16(a), 1);
    cr_expect_eq(vs_be16(a + 2), 0x0800);
    cr_expect_eq(vs_be16(a + 6), 2, "opcode reply");
    cr_expect_arr_eq(a + 8, peer.mac, 6);
    cr_expect_arr_eq(a + 14, peer.ipv4, 4);
    cr_expect_arr_eq(a + 18, host_mac, 6);
    cr_expect_arr_eq(a + 24, host_ip, 4);
}

Test(net_answer, arp_for_another_address_or_not_a_request_is_ignored)
{
    uint8_t f[60];
    size_t n;
    arp_request(f, peer.mac, (const uint8_t[4]){10, 0, 0, 3});
    cr_expect_eq(net_answer(&peer, f, 60, out, sizeof out, &n), NET_ANSWER_NONE);
    cr_expect_eq(n, 0);
    arp_request(f, peer.mac, peer.ipv4);
    f[14 + 7] = 2; /* a reply, not a request */
    cr_expect_eq(net_answer(&peer, f, 60, out, sizeof out, &n), NET_ANSWER_NONE);
    arp_request(f, host_mac, peer.ipv4); /* unicast to someone else */
    cr_expect_eq(net_answer(&peer, f, 60, out, sizeof out, &n), NET_ANSWER_NONE);
    arp_request(f, peer.mac, peer.ipv4);
    cr_expect_eq(net_answer(&peer, f, 14 + 27, out, sizeof out, &n), NET_ANSWER_NONE, "truncated");
}

/* RFC 792 "Echo or Echo Reply Message": addresses reversed, type 0, identifier,
 * sequence and data unchanged, checksums recomputed and valid. */
Test(net_answer, echo_request_is_answered)
{
    uint8_t f[1514];
    size_t n, len = echo_request(f, 56);
    cr_assert_eq(net_answer(&peer, f, len, out, sizeof out, &n), NET_ANSWER_ICMP_ECHO);
    cr_expect_eq(n, len);
    cr_expect_arr_eq(out, host_mac, 6);
    cr_expect_arr_eq(out + 6, peer.mac, 6);
    const uint8_t *ip = out + 14;
    cr_expect_arr_eq(ip + 12, peer.ipv4, 4);
    cr_expect_arr_eq(ip + 16, host_ip, 4);
    cr_expect_eq(checksum(ip, 20), 0, "IPv4 header checksum");
    const uint8_t *icmp = ip + 20;
    cr_expect_eq(icmp[0], 0);
    cr_expect_eq(checksum(icmp, 8 + 56), 0, "ICMP checksum");
    cr_expect_arr_eq(icmp + 4, f + 14 + 20 + 4, 4 + 56, "identifier, sequence and data");
}

/* A short echo's reply is padded to the Ethernet minimum; one at MTU size is answered
 * whole, and only if the output can hold it. */
Test(net_answer, reply_sizes)
{
    uint8_t f[1514];
    size_t n, len = echo_request(f, 0);
    cr_assert_eq(net_answer(&peer, f, len, out, sizeof out, &n), NET_ANSWER_ICMP_ECHO);
    cr_expect_eq(n, NET_ANSWER_MIN_FRAME);
    len = echo_request(f, 1472);
    cr_expect_eq(len, 1514);
    cr_expect_eq(net_answer(&peer, f, len, out, sizeof out, &n), NET_ANSWER_ICMP_ECHO);
    cr_expect_eq(net_answer(&peer, f, len, out, 1513, &n), NET_ANSWER_NONE);
    cr_expect_eq(n, 0);
}

Test(net_answer, malformed_echo_is_ignored)
{
    uint8_t f[1514];
    size_t n, len;
    len = echo_request(f, 8);
    f[14 + 24] ^= 1; /* IPv4 header checksum now wrong (source address) */
    cr_expect_eq(net_answer(&peer, f, len, out, sizeof out, &n), NET_ANSWER_NONE, "IP checksum");
    len = echo_request(f, 8);
    f[len - 1] ^= 1;
    cr_expect_eq(net_answer(&peer, f, len, out, sizeof out, &n), NET_ANSWER_NONE, "ICMP checksum");
    len = echo_request(f, 8);
    cr_expect_eq(net_answer(&peer, f, len - 1, out, sizeof out, &n), NET_ANSWER_NONE,
                 "total length beyond the frame");
    len = echo_request(f, 8);
    f[14 + 6] = 0x20; /* more fragments (checksum no longer matters: checked after) */
    cr_expect_eq(net_answer(&peer, f, len, out, sizeof out, &n), NET_ANSWER_NONE, "fragment");
    len = echo_request(f, 8);
    memcpy(f, host_mac, 6);
    cr_expect_eq(net_answer(&peer, f, len, out, sizeof out, &n), NET_ANSWER_NONE, "other MAC");
    len = echo_request(f, 8);
    f[14] = 0x44; /* IHL 4 */
    cr_expect_eq(net_answer(&peer, f, len, out, sizeof out, &n), NET_ANSWER_NONE, "IHL");
    cr_expect_eq(net_answer(&peer, f, 13, out, sizeof out, &n), NET_ANSWER_NONE, "runt");
    cr_expect_eq(net_answer(&peer, NULL, 60, out, sizeof out, &n), NET_ANSWER_NONE);
}

/* Hostile input: random frames of every length up to 1600 bytes, most of them with a
 * valid-looking Ethernet and IPv4 start, never make it read or write out of bounds
 * (checked under ASan) and any reply fits the output. */
Test(net_answer, random_frames_stay_in_bounds)
{
    srand(7);
    for (int k = 0; k < 20000; k++) {
        size_t len = (size_t)rand() % 1600;
        uint8_t *f = malloc(len ? len : 1);
        for (size_t i = 0; i < len; i++)
            f[i] = (uint8_t)rand();
        if (len >= 34 && (k & 1)) {
            memcpy(f, peer.mac, 6);
            f[12] = 0x08, f[13] = (k & 2) ? 0x06 : 0x00;
            f[14] = 0x45;
            memcpy(f + 30, peer.ipv4, 4);
        }
        size_t n = 0, cap = (size_t)rand() % 1600;
        uint8_t *o = malloc(cap ? cap : 1);
        net_answer(&peer, f, len, o, cap, &n);
        cr_assert_leq(n, cap);
        free(f);
        free(o);
    }
}
