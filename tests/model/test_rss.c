/* test_rss.c -- the receive-side scaling kernel (model/rss.h) against virtio-net's
 * "Hash calculation for incoming packets" (and its subparagraphs "Supported/enabled hash
 * types", "IPv4 packets", "IPv6 packets without extension header", "IPv6 packets with
 * extension header"), "Hash reporting for incoming packets", "Receive-side scaling
 * (RSS)" / "Setting RSS parameters" and "RSS processing", and "Device configuration
 * layout" (device-types/net/description.tex of ../shared/reference/virtio-spec/).
 *
 * Known answers: the RSS verification suite Microsoft publishes for the Toeplitz hash,
 * "Verifying the RSS Hash Calculation"
 * (https://learn.microsoft.com/windows-hardware/drivers/network/verifying-the-rss-hash-calculation),
 * with the hash input laid out as "RSS Hashing Functions"
 * (https://learn.microsoft.com/windows-hardware/drivers/network/rss-hashing-functions)
 * says: source address, destination address, source port, destination port, as in the
 * packet. The same tables are reproduced in Intel's 82599 datasheet (7.1.2.8.3, "RSS
 * Verification Suite"). The 40-byte key is the one those pages use.
 *
 * Hostile input: every malformed configuration, every truncation of a configuration
 * buffer and of a frame, random bytes. Under the sanitizer build (scripts/test) frames
 * and buffers are copied to heap blocks of exactly their length so any over-read traps. */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "common/rss_vectors.h"
#include "rss.h"

#define NV4 (sizeof ms_v4 / sizeof ms_v4[0])
#define NV6 (sizeof ms_v6 / sizeof ms_v6[0])
#define ALL_TYPES RSS_HASH_TYPES_IMPLEMENTED
#define PROTO_TCP 6u
#define PROTO_UDP 17u
#define FRAME_MAX 256u

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

/* The Ethernet header (addresses, `tags` VLAN tags) and EtherType; returns its length. */
static size_t eth(uint8_t *f, unsigned tags, uint16_t type)
{
    memset(f, 0, 12);
    f[0] = 0x52, f[6] = 0x54;
    size_t off = 12;
    for (unsigned t = 0; t < tags; t++) {
        put16(f + off, t == 0 && tags > 1 ? 0x88a8u : 0x8100u);
        put16(f + off + 2, (uint16_t)(100 + t)); /* VLAN id */
        off += 4;
    }
    put16(f + off, type);
    return off + 2;
}

/* The transport header: TCP (20 bytes) or UDP (8) with the ports; returns its length. */
static size_t l4(uint8_t *f, uint8_t proto, uint16_t sport, uint16_t dport)
{
    const size_t n = proto == PROTO_TCP ? 20u : 8u;
    memset(f, 0, n);
    put16(f, sport);
    put16(f + 2, dport);
    if (proto == PROTO_TCP)
        f[12] = 0x50; /* data offset: 5 words */
    else
        put16(f + 4, 8);
    return n;
}

/* An IPv4 frame of row i; frag: the flags/fragment-offset field. Returns its length. */
static size_t frame4(uint8_t *f, unsigned i, uint8_t proto, unsigned tags, uint16_t frag)
{
    size_t off = eth(f, tags, 0x0800);
    uint8_t *ip = f + off;
    memset(ip, 0, 20);
    ip[0] = 0x45;
    const size_t n4 = l4(ip + 20, proto, ms_v4[i].sport, ms_v4[i].dport);
    put16(ip + 2, (uint16_t)(20 + n4));
    put16(ip + 6, frag);
    ip[8] = 64;
    ip[9] = proto;
    memcpy(ip + 12, ms_v4[i].src, 4);
    memcpy(ip + 16, ms_v4[i].dst, 4);
    return off + 20 + n4;
}

/* An IPv6 frame of row i with extension headers `ext` (each an 8-byte header with its
 * own next-header byte filled in here) before the transport header. */
static size_t frame6(uint8_t *f, unsigned i, uint8_t proto, const uint8_t *ext, unsigned next_ext,
                     const uint8_t *frag_hdr)
{
    size_t off = eth(f, 0, 0x86dd);
    uint8_t *ip = f + off;
    memset(ip, 0, 40);
    ip[0] = 0x60;
    ip[7] = 64;
    memcpy(ip + 8, ms_v6[i].src, 16);
    memcpy(ip + 24, ms_v6[i].dst, 16);
    size_t at = 40;
    uint8_t *next = ip + 6;
    for (unsigned k = 0; k < next_ext; k++) {
        *next = ext[k];
        memset(ip + at, 0, 8);
        if (ext[k] == 44 && frag_hdr)
            memcpy(ip + at, frag_hdr, 8);
        next = ip + at;
        at += 8; /* hdr ext len 0: 8 bytes (and a fragment header is 8 bytes) */
    }
    *next = proto;
    at += l4(ip + at, proto, ms_v6[i].sport, ms_v6[i].dport);
    put16(ip + 4, (uint16_t)(at - 40));
    return off + at;
}

/* A struct virtio_net_rss_config. */
struct cfg {
    uint32_t types;
    uint16_t mask;
    uint16_t unclassified;
    const uint16_t *table; /* mask + 1 entries; NULL: entry i is i % pairs */
    uint16_t pairs;
    uint16_t max_tx_vq;
    uint8_t key_len;
    const uint8_t *key; /* NULL: bytes of the MS key, repeated */
};

static uint8_t cfg_buf[8 + 2 * 65536 + 3 + 255];

static size_t build(const struct cfg *c)
{
    uint8_t *b = cfg_buf;
    vs_put_le32(b, c->types);
    vs_put_le16(b + 4, c->mask);
    vs_put_le16(b + 6, c->unclassified);
    const uint32_t n = (uint32_t)c->mask + 1u;
    for (uint32_t i = 0; i < n; i++)
        vs_put_le16(b + 8 + 2 * i, c->table ? c->table[i] : (uint16_t)(i % (c->pairs ? c->pairs : 1)));
    const size_t t = 8 + 2 * (size_t)n;
    vs_put_le16(b + t, c->max_tx_vq);
    b[t + 2] = c->key_len;
    for (unsigned k = 0; k < c->key_len; k++)
        b[t + 3 + k] = c->key ? c->key[k] : ms_key[k % sizeof ms_key];
    return t + 3 + c->key_len;
}

static struct rss_state st; /* 64 KiB: static */
static struct rss_state saved;

/* Apply a well-formed configuration: all types, MS key, `pairs` pairs, a table of
 * mask + 1 entries. */
static void configure(uint32_t types, uint16_t mask, const uint16_t *table, uint16_t pairs,
                      uint16_t unclassified)
{
    const struct cfg c = {types, mask, unclassified, table, pairs, pairs, 40, ms_key};
    const size_t n = build(&c);
    const struct rss_limits lim = rss_limits_default();
    rss_reset(&st);
    cr_assert_eq(rss_config_set(&st, &lim, true, pairs, cfg_buf, n, NULL), RSS_ERR_OK);
}

/* Steer a frame held in a heap block of exactly its length. */
static struct rss_steering steer(const uint8_t *f, size_t len)
{
    uint8_t *copy = malloc(len ? len : 1);
    cr_assert_not_null(copy);
    memcpy(copy, f, len);
    struct rss_steering s;
    rss_steer(&st, copy, len, &s);
    free(copy);
    return s;
}

/* ---- The hash against the verification suite ---- */

/* One row: the hash over the addresses (n = 2 * addr_bytes) and with the ports too. */
static void known_answer(const uint8_t *src, const uint8_t *dst, size_t addr_bytes, uint16_t sport,
                         uint16_t dport, uint32_t ip, uint32_t tcp, unsigned row)
{
    uint8_t in[RSS_INPUT_BYTES_MAX];
    memcpy(in, src, addr_bytes);
    memcpy(in + addr_bytes, dst, addr_bytes);
    put16(in + 2 * addr_bytes, sport);
    put16(in + 2 * addr_bytes + 2, dport);
    cr_expect_eq(rss_toeplitz(ms_key, sizeof ms_key, in, 2 * addr_bytes), ip,
                 "row %u, %zu-byte addresses", row, addr_bytes);
    cr_expect_eq(rss_toeplitz(ms_key, sizeof ms_key, in, 2 * addr_bytes + 4), tcp,
                 "row %u, %zu-byte addresses and ports", row, addr_bytes);
}

Test(rss, toeplitz_known_answers)
{
    for (unsigned i = 0; i < NV4; i++)
        known_answer(ms_v4[i].src, ms_v4[i].dst, 4, ms_v4[i].sport, ms_v4[i].dport, ms_v4[i].ip, ms_v4[i].tcp, i);
    for (unsigned i = 0; i < NV6; i++)
        known_answer(ms_v6[i].src, ms_v6[i].dst, 16, ms_v6[i].sport, ms_v6[i].dport, ms_v6[i].ip, ms_v6[i].tcp, i);
}

/* Key bits past the key count as 0: a key of 4 bytes hashes one input byte with only the
 * first window's shifts; an empty key hashes everything to 0; a longer key than the
 * input needs does not change the hash. */
Test(rss, toeplitz_short_and_long_keys)
{
    const uint8_t one = 0x80; /* only the first bit: the first 32 key bits */
    cr_expect_eq(rss_toeplitz(ms_key, 4, &one, 1), 0x6d5a56dau);
    const uint8_t last = 0x01; /* the eighth bit: key bits 7..38 */
    cr_expect_eq(rss_toeplitz(ms_key, 4, &last, 1), 0x6d5a56dau << 7);
    cr_expect_eq(rss_toeplitz(ms_key, 0, &one, 1), 0u);
    uint8_t big[255];
    for (unsigned k = 0; k < sizeof big; k++)
        big[k] = ms_key[k % sizeof ms_key];
    uint8_t in[12] = {66, 9, 149, 187, 161, 142, 100, 80, 0x0a, 0xea, 0x06, 0xe6};
    cr_expect_eq(rss_toeplitz(big, sizeof big, in, 12), 0x51ccc178u);
    cr_expect_eq(rss_toeplitz(ms_key, sizeof ms_key, in, 0), 0u);
}

/* "Hash calculation for incoming packets" on whole frames: the frames of the suite's rows
 * reach the same figures through the parser, TCPv4 for a TCP packet, the same hash over
 * UDP (the ports are the same bytes) with UDPv4, and IPv4 over the addresses. */
Test(rss, frames_hash_to_the_known_answers)
{
    uint8_t f[FRAME_MAX];
    configure(ALL_TYPES, 0, (const uint16_t[]){0}, 1, 0);
    for (unsigned i = 0; i < NV4; i++) {
        struct rss_steering s = steer(f, frame4(f, i, PROTO_TCP, 0, 0));
        cr_expect_eq(s.report, VIRTIO_NET_HASH_REPORT_TCPV4);
        cr_expect_eq(s.hash, ms_v4[i].tcp, "row %u", i);
        s = steer(f, frame4(f, i, PROTO_UDP, 0, 0));
        cr_expect_eq(s.report, VIRTIO_NET_HASH_REPORT_UDPV4);
        cr_expect_eq(s.hash, ms_v4[i].tcp, "row %u", i);
    }
    for (unsigned i = 0; i < NV6; i++) {
        struct rss_steering s = steer(f, frame6(f, i, PROTO_TCP, NULL, 0, NULL));
        cr_expect_eq(s.report, VIRTIO_NET_HASH_REPORT_TCPV6);
        cr_expect_eq(s.hash, ms_v6[i].tcp, "row %u", i);
        s = steer(f, frame6(f, i, PROTO_UDP, NULL, 0, NULL));
        cr_expect_eq(s.report, VIRTIO_NET_HASH_REPORT_UDPV6);
        cr_expect_eq(s.hash, ms_v6[i].tcp, "row %u", i);
    }
    configure(VIRTIO_NET_HASH_TYPE_IPV4_MASK | VIRTIO_NET_HASH_TYPE_IPV6_MASK, 0,
              (const uint16_t[]){0}, 1, 0);
    for (unsigned i = 0; i < NV4; i++) {
        const struct rss_steering s = steer(f, frame4(f, i, PROTO_TCP, 0, 0));
        cr_expect_eq(s.report, VIRTIO_NET_HASH_REPORT_IPV4);
        cr_expect_eq(s.hash, ms_v4[i].ip, "row %u", i);
    }
    for (unsigned i = 0; i < NV6; i++) {
        const struct rss_steering s = steer(f, frame6(f, i, PROTO_UDP, NULL, 0, NULL));
        cr_expect_eq(s.report, VIRTIO_NET_HASH_REPORT_IPV6);
        cr_expect_eq(s.hash, ms_v6[i].ip, "row %u", i);
    }
}

/* "IPv4 packets": TCPv4 if set and the packet has a TCP header; else UDPv4 if set and a
 * UDP header; else IPv4 if set; "Else the device does not calculate the hash". */
Test(rss, ipv4_hash_type_order)
{
    uint8_t f[FRAME_MAX];
    const size_t tcp = frame4(f, 0, PROTO_TCP, 0, 0);
    configure(VIRTIO_NET_HASH_TYPE_UDPV4_MASK | VIRTIO_NET_HASH_TYPE_IPV4_MASK, 0,
              (const uint16_t[]){0}, 1, 0);
    struct rss_steering s = steer(f, tcp);
    cr_expect_eq(s.report, VIRTIO_NET_HASH_REPORT_IPV4, "TCP packet without TCPv4: addresses");
    cr_expect_eq(s.hash, ms_v4[0].ip);
    configure(VIRTIO_NET_HASH_TYPE_TCPV4_MASK, 0, (const uint16_t[]){0}, 1, 0);
    const size_t udp = frame4(f, 0, PROTO_UDP, 0, 0);
    s = steer(f, udp);
    cr_expect_eq(s.report, VIRTIO_NET_HASH_REPORT_NONE, "UDP packet, only TCPv4: no hash");
    cr_expect_eq(s.hash, 0u);
    configure(VIRTIO_NET_HASH_TYPE_IPV6_MASK | VIRTIO_NET_HASH_TYPE_TCPV6_MASK, 0,
              (const uint16_t[]){0}, 1, 0);
    s = steer(f, frame4(f, 0, PROTO_TCP, 0, 0));
    cr_expect_eq(s.report, VIRTIO_NET_HASH_REPORT_NONE, "IPv6 types do not hash IPv4");
}

Test(rss, ipv6_hash_type_order)
{
    uint8_t f[FRAME_MAX];
    configure(VIRTIO_NET_HASH_TYPE_UDPV6_MASK | VIRTIO_NET_HASH_TYPE_IPV6_MASK, 0,
              (const uint16_t[]){0}, 1, 0);
    struct rss_steering s = steer(f, frame6(f, 1, PROTO_TCP, NULL, 0, NULL));
    cr_expect_eq(s.report, VIRTIO_NET_HASH_REPORT_IPV6);
    cr_expect_eq(s.hash, ms_v6[1].ip);
    configure(VIRTIO_NET_HASH_TYPE_TCPV6_MASK | ALL_TYPES, 0, (const uint16_t[]){0}, 1, 0);
    s = steer(f, frame6(f, 1, PROTO_TCP, NULL, 0, NULL));
    cr_expect_eq(s.report, VIRTIO_NET_HASH_REPORT_TCPV6);
    configure(VIRTIO_NET_HASH_TYPE_IPV4_MASK | VIRTIO_NET_HASH_TYPE_TCPV4_MASK, 0,
              (const uint16_t[]){0}, 1, 0);
    s = steer(f, frame6(f, 1, PROTO_TCP, NULL, 0, NULL));
    cr_expect_eq(s.report, VIRTIO_NET_HASH_REPORT_NONE, "IPv4 types do not hash IPv6");
}

/* "IPv6 packets with extension header": the _EX types are not offered, so the device
 * "skip[s] IPv6 extension headers and calculate[s] the hash as defined for an IPv6
 * packet without extension headers". */
Test(rss, ipv6_extension_headers_are_skipped)
{
    uint8_t f[FRAME_MAX];
    configure(ALL_TYPES, 0, (const uint16_t[]){0}, 1, 0);
    const uint8_t ext[] = {0 /* hop-by-hop */, 60 /* destination options */, 43 /* routing */};
    for (unsigned n = 1; n <= 3; n++) {
        const size_t len = frame6(f, 0, PROTO_TCP, ext, n, NULL);
        struct rss_packet p;
        rss_parse(f, len, &p);
        cr_expect(p.ipv6_ext);
        cr_expect_eq(p.l4, RSS_L4_TCP);
        const struct rss_steering s = steer(f, len);
        cr_expect_eq(s.report, VIRTIO_NET_HASH_REPORT_TCPV6, "%u extension headers", n);
        cr_expect_eq(s.hash, ms_v6[0].tcp);
    }
    /* A first fragment (M set) and a later one: no transport header to hash. */
    const uint8_t first[8] = {0, 0, 0x00, 0x01, 0, 0, 0, 1};
    const uint8_t later[8] = {0, 0, 0x00, 0x08, 0, 0, 0, 1};
    const uint8_t frag[] = {44};
    struct rss_steering s = steer(f, frame6(f, 0, PROTO_TCP, frag, 1, first));
    cr_expect_eq(s.report, VIRTIO_NET_HASH_REPORT_IPV6);
    cr_expect_eq(s.hash, ms_v6[0].ip);
    s = steer(f, frame6(f, 0, PROTO_TCP, frag, 1, later));
    cr_expect_eq(s.report, VIRTIO_NET_HASH_REPORT_IPV6);
    /* An unfragmented packet with a fragment header (offset 0, M clear) has its ports. */
    const uint8_t whole[8] = {0};
    s = steer(f, frame6(f, 0, PROTO_TCP, frag, 1, whole));
    cr_expect_eq(s.report, VIRTIO_NET_HASH_REPORT_TCPV6);
    /* ESP (50) hides the rest: addresses only. */
    const uint8_t esp[] = {50};
    s = steer(f, frame6(f, 0, PROTO_TCP, esp, 1, NULL));
    cr_expect_eq(s.report, VIRTIO_NET_HASH_REPORT_IPV6);
    /* More than 8 extension headers: the walk gives up, addresses only. */
    uint8_t many[9];
    memset(many, 60, sizeof many);
    s = steer(f, frame6(f, 0, PROTO_TCP, many, 9, NULL));
    cr_expect_eq(s.report, VIRTIO_NET_HASH_REPORT_IPV6);
    s = steer(f, frame6(f, 0, PROTO_TCP, many, 8, NULL));
    cr_expect_eq(s.report, VIRTIO_NET_HASH_REPORT_TCPV6);
}

/* IPv4 fragments (MF set or an offset) are hashed over the addresses only. */
Test(rss, ipv4_fragments_hash_addresses_only)
{
    uint8_t f[FRAME_MAX];
    configure(ALL_TYPES, 0, (const uint16_t[]){0}, 1, 0);
    const uint16_t frags[] = {0x2000 /* MF */, 0x0001 /* offset 8 */, 0x2100};
    for (unsigned k = 0; k < 3; k++) {
        const struct rss_steering s = steer(f, frame4(f, 2, PROTO_TCP, 0, frags[k]));
        cr_expect_eq(s.report, VIRTIO_NET_HASH_REPORT_IPV4);
        cr_expect_eq(s.hash, ms_v4[2].ip);
    }
    const struct rss_steering s = steer(f, frame4(f, 2, PROTO_TCP, 0, 0x4000 /* DF */));
    cr_expect_eq(s.report, VIRTIO_NET_HASH_REPORT_TCPV4, "DF alone is not a fragment");
}

/* One or two VLAN tags (802.1Q, 802.1ad outer) do not change the hash; a third is not
 * looked through. */
Test(rss, vlan_tags_are_looked_through)
{
    uint8_t f[FRAME_MAX];
    configure(ALL_TYPES, 0, (const uint16_t[]){0}, 1, 0);
    for (unsigned tags = 0; tags <= 2; tags++) {
        const struct rss_steering s = steer(f, frame4(f, 3, PROTO_UDP, tags, 0));
        cr_expect_eq(s.report, VIRTIO_NET_HASH_REPORT_UDPV4, "%u tags", tags);
        cr_expect_eq(s.hash, ms_v4[3].tcp);
    }
    const struct rss_steering s = steer(f, frame4(f, 3, PROTO_UDP, 3, 0));
    cr_expect_eq(s.report, VIRTIO_NET_HASH_REPORT_NONE);
}

/* Frames that are not IPv4 or IPv6, or whose IP header is malformed, get no hash and go
 * to the unclassified queue ("RSS processing": "If the device did not calculate the hash
 * for the specific packet, the device directs the packet to the receiveq specified by
 * unclassified_queue"). */
Test(rss, unclassified_frames_go_to_the_unclassified_queue)
{
    uint8_t f[FRAME_MAX];
    configure(ALL_TYPES, 3, (const uint16_t[]){0, 1, 2, 3}, 4, 2);
    uint8_t arp[60];
    memset(arp, 0, sizeof arp);
    eth(arp, 0, 0x0806);
    struct rss_steering s = steer(arp, sizeof arp);
    cr_expect_eq(s.report, VIRTIO_NET_HASH_REPORT_NONE);
    cr_expect_eq(s.rx_queue, 2);
    cr_expect_eq(s.hash, 0u);
    const size_t len = frame4(f, 0, PROTO_TCP, 0, 0);
    struct {
        size_t at;
        uint8_t value;
        const char *what;
    } bad[] = {
        {14, 0x55, "version 5"}, {14, 0x44, "IHL 4"}, {14, 0x4f, "IHL past the frame"},
        {16, 0x00, "total length below the header"}, {12, 0x86, "EtherType 0x8600"},
    };
    for (unsigned k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        frame4(f, 0, PROTO_TCP, 0, 0);
        f[bad[k].at] = bad[k].value;
        if (bad[k].at == 16)
            f[17] = 19;
        s = steer(f, len);
        cr_expect_eq(s.report, VIRTIO_NET_HASH_REPORT_NONE, "%s", bad[k].what);
        cr_expect_eq(s.rx_queue, 2, "%s", bad[k].what);
    }
    /* An IPv6 EtherType over an IPv4 header: version 4 is not 6. */
    frame4(f, 0, PROTO_TCP, 0, 0);
    put16(f + 12, 0x86dd);
    s = steer(f, len);
    cr_expect_eq(s.report, VIRTIO_NET_HASH_REPORT_NONE);
    /* A TCP header cut by the IP total length: addresses only. */
    frame4(f, 0, PROTO_TCP, 0, 0);
    put16(f + 16, 20 + 19);
    s = steer(f, len);
    cr_expect_eq(s.report, VIRTIO_NET_HASH_REPORT_IPV4);
    /* Ethernet padding past the total length is not read as the packet. */
    uint8_t padded[FRAME_MAX];
    const size_t n = frame4(padded, 0, PROTO_UDP, 0, 0);
    memset(padded + n, 0xee, 20);
    s = steer(padded, n + 20);
    cr_expect_eq(s.report, VIRTIO_NET_HASH_REPORT_UDPV4);
    cr_expect_eq(s.hash, ms_v4[0].tcp);
}

/* "Apply indirection_table_mask to the calculated hash and use the result as the index
 * in the indirection table to get the destination receive virtqueue id." */
Test(rss, steering_indexes_the_table_with_the_masked_hash)
{
    uint8_t f[FRAME_MAX];
    uint16_t table[128];
    for (unsigned k = 0; k < 128; k++)
        table[k] = (uint16_t)((k * 7u) % 5u);
    configure(ALL_TYPES, 127, table, 5, 4);
    for (unsigned i = 0; i < NV4; i++) {
        const struct rss_steering s = steer(f, frame4(f, i, PROTO_TCP, 0, 0));
        cr_expect_eq(s.rx_queue, table[ms_v4[i].tcp & 127u], "row %u", i);
    }
    for (unsigned i = 0; i < NV6; i++) {
        const struct rss_steering s = steer(f, frame6(f, i, PROTO_TCP, NULL, 0, NULL));
        cr_expect_eq(s.rx_queue, table[ms_v6[i].tcp & 127u], "row %u", i);
    }
    /* A table of one entry: everything hashed goes there. */
    configure(ALL_TYPES, 0, (const uint16_t[]){3}, 5, 1);
    for (unsigned i = 0; i < NV4; i++)
        cr_expect_eq(steer(f, frame4(f, i, PROTO_UDP, 0, 0)).rx_queue, 3);
}

/* "After initialization of reset, the device MUST queue packets only on receiveq1", and
 * hash types start disabled ("Initially the device has all hash types disabled and
 * reports only VIRTIO_NET_HASH_REPORT_NONE"). */
Test(rss, before_any_configuration_and_after_reset_queue_0_no_hash)
{
    uint8_t f[FRAME_MAX];
    rss_reset(&st);
    struct rss_steering s = steer(f, frame4(f, 0, PROTO_TCP, 0, 0));
    cr_expect_eq(s.rx_queue, 0);
    cr_expect_eq(s.report, VIRTIO_NET_HASH_REPORT_NONE);
    configure(ALL_TYPES, 0, (const uint16_t[]){1}, 2, 1);
    cr_expect_eq(steer(f, frame4(f, 0, PROTO_TCP, 0, 0)).rx_queue, 1);
    rss_reset(&st);
    s = steer(f, frame4(f, 0, PROTO_TCP, 0, 0));
    cr_expect_eq(s.rx_queue, 0);
    cr_expect_eq(s.report, VIRTIO_NET_HASH_REPORT_NONE);
    cr_expect_not(st.configured);
}

/* "Hash reporting for incoming packets": VIRTIO_NET_HASH_TYPE_XXX = 1 << (REPORT_XXX - 1). */
Test(rss, report_values_match_the_hash_type_bits)
{
    const struct {
        uint32_t mask;
        unsigned report;
    } pairs[] = {
        {VIRTIO_NET_HASH_TYPE_IPV4_MASK, VIRTIO_NET_HASH_REPORT_IPV4},
        {VIRTIO_NET_HASH_TYPE_TCPV4_MASK, VIRTIO_NET_HASH_REPORT_TCPV4},
        {VIRTIO_NET_HASH_TYPE_UDPV4_MASK, VIRTIO_NET_HASH_REPORT_UDPV4},
        {VIRTIO_NET_HASH_TYPE_IPV6_MASK, VIRTIO_NET_HASH_REPORT_IPV6},
        {VIRTIO_NET_HASH_TYPE_TCPV6_MASK, VIRTIO_NET_HASH_REPORT_TCPV6},
        {VIRTIO_NET_HASH_TYPE_UDPV6_MASK, VIRTIO_NET_HASH_REPORT_UDPV6},
        {VIRTIO_NET_HASH_TYPE_IP_EX_MASK, VIRTIO_NET_HASH_REPORT_IPV6_EX},
        {VIRTIO_NET_HASH_TYPE_TCP_EX_MASK, VIRTIO_NET_HASH_REPORT_TCPV6_EX},
        {VIRTIO_NET_HASH_TYPE_UDP_EX_MASK, VIRTIO_NET_HASH_REPORT_UDPV6_EX},
    };
    for (unsigned k = 0; k < sizeof pairs / sizeof pairs[0]; k++)
        cr_expect_eq(pairs[k].mask, 1u << (pairs[k].report - 1u));
}

/* ---- The device's limits ("Device configuration layout", device normative) ---- */

Test(rss, limits_keep_the_spec_floors)
{
    struct rss_limits l = rss_limits_default();
    cr_expect_null(rss_limits_problem(&l));
    cr_expect_eq(l.max_key_bytes, 40);
    cr_expect_eq(l.max_table_len, 128);
    l.max_key_bytes = 39;
    cr_expect_not_null(rss_limits_problem(&l), "rss_max_key_size at least 40");
    l = rss_limits_default();
    l.max_table_len = 127;
    cr_expect_not_null(rss_limits_problem(&l), "rss_max_indirection_table_length at least 128");
    l = rss_limits_default();
    l.supported_hash_types |= VIRTIO_NET_HASH_TYPE_TCP_EX_MASK;
    cr_expect_not_null(rss_limits_problem(&l), "the _EX types are not implemented");
    l = rss_limits_default();
    l.max_key_bytes = 255;
    l.max_table_len = 65535;
    l.supported_hash_types = VIRTIO_NET_HASH_TYPE_IPV4_MASK;
    cr_expect_null(rss_limits_problem(&l));
}

Test(rss, every_error_is_named_with_its_section)
{
    for (unsigned e = 0; e < RSS_ERR_COUNT; e++) {
        cr_expect_gt(strlen(rss_error_name(e)), 0);
        cr_expect_gt(strlen(rss_error_text(e)), 0);
        if (e != RSS_ERR_OK)
            cr_expect_gt(strlen(rss_error_section(e)), 0, "%s", rss_error_name(e));
        for (unsigned o = 0; o < e; o++)
            cr_expect_str_neq(rss_error_name(e), rss_error_name(o));
    }
    cr_expect_str_eq(rss_error_name(RSS_ERR_COUNT), "UNKNOWN");
}

/* ---- VIRTIO_NET_CTRL_MQ_RSS_CONFIG: every malformed configuration ---- */

/* Check a configuration against the default limits and 4 enabled pairs; on an error the
 * state in force must not move. */
static enum rss_error try_cfg(const struct cfg *c, const struct rss_limits *lim, uint16_t pairs,
                              struct rss_fault *f)
{
    configure(VIRTIO_NET_HASH_TYPE_IPV4_MASK, 1, (const uint16_t[]){1, 0}, 2, 1);
    const size_t n = build(c); /* after configure(), which builds in the same buffer */
    memcpy(&saved, &st, sizeof st);
    const enum rss_error e = rss_config_set(&st, lim, true, pairs, cfg_buf, n, f);
    if (e != RSS_ERR_OK)
        cr_expect_eq(memcmp(&saved, &st, sizeof st), 0, "%s changed the state", rss_error_name(e));
    cr_expect_eq(rss_config_check(lim, true, pairs, cfg_buf, n, NULL), e);
    return e;
}

static struct cfg good(void)
{
    const struct cfg c = {ALL_TYPES, 127, 0, NULL, 4, 4, 40, NULL};
    return c;
}

Test(rss, a_good_configuration_is_applied)
{
    const struct rss_limits lim = rss_limits_default();
    struct cfg c = good();
    c.unclassified = 3;
    c.max_tx_vq = 2;
    struct rss_fault f;
    cr_assert_eq(try_cfg(&c, &lim, 4, &f), RSS_ERR_OK);
    cr_expect_eq(f.error, RSS_ERR_OK);
    cr_expect(st.configured);
    cr_expect_eq(st.hash_types, ALL_TYPES);
    cr_expect_eq(st.table_len, 128);
    cr_expect_eq(st.unclassified_queue, 3);
    cr_expect_eq(st.max_tx_vq, 2);
    cr_expect_eq(st.key_len, 40);
    cr_expect_eq(memcmp(st.key, ms_key, 40), 0);
    for (unsigned k = 0; k < 128; k++)
        cr_expect_eq(st.table[k], k % 4);
}

/* "A driver MUST NOT send the VIRTIO_NET_CTRL_MQ_RSS_CONFIG command if the feature
 * VIRTIO_NET_F_RSS has not been negotiated." */
Test(rss, rss_config_without_the_feature)
{
    const struct rss_limits lim = rss_limits_default();
    const struct cfg c = good();
    const size_t n = build(&c);
    rss_reset(&st);
    struct rss_fault f;
    cr_expect_eq(rss_config_set(&st, &lim, false, 4, cfg_buf, n, &f), RSS_ERR_NOT_NEGOTIATED);
    cr_expect_eq(f.error, RSS_ERR_NOT_NEGOTIATED);
    cr_expect_eq(f.expected, VIRTIO_NET_F_RSS_BIT);
    cr_expect_not(st.configured);
}

/* "A driver MUST NOT set any VIRTIO_NET_HASH_TYPE_ flags that are not supported by a
 * device": the _EX types (never offered) and bits the spec does not define. */
Test(rss, hash_types_not_supported)
{
    struct rss_limits lim = rss_limits_default();
    struct cfg c = good();
    const uint32_t bad[] = {VIRTIO_NET_HASH_TYPE_IP_EX_MASK, VIRTIO_NET_HASH_TYPE_TCP_EX_MASK,
                            VIRTIO_NET_HASH_TYPE_UDP_EX_MASK, 1u << 9, 1u << 31};
    for (unsigned k = 0; k < 5; k++) {
        c.types = VIRTIO_NET_HASH_TYPE_IPV4_MASK | bad[k];
        struct rss_fault f;
        cr_expect_eq(try_cfg(&c, &lim, 4, &f), RSS_ERR_HASH_TYPE_UNSUPPORTED, "0x%x", bad[k]);
        cr_expect_eq(f.seen, c.types);
    }
    lim.supported_hash_types = VIRTIO_NET_HASH_TYPE_IPV4_MASK;
    c.types = VIRTIO_NET_HASH_TYPE_IPV4_MASK | VIRTIO_NET_HASH_TYPE_TCPV4_MASK;
    cr_expect_eq(try_cfg(&c, &lim, 4, NULL), RSS_ERR_HASH_TYPE_UNSUPPORTED, "a device's subset");
    c.types = VIRTIO_NET_HASH_TYPE_IPV4_MASK;
    cr_expect_eq(try_cfg(&c, &lim, 4, NULL), RSS_ERR_OK);
    c.types = 0;
    cr_expect_eq(try_cfg(&c, &lim, 4, NULL), RSS_ERR_OK, "no hashing at all is allowed");
}

/* "The number of entries in indirection_table (indirection_table_mask + 1) MUST be a
 * power of two"; "A driver MUST use indirection_table_mask values that are less than
 * rss_max_indirection_table_length". Boundaries: 1 entry, the maximum, one step over. */
Test(rss, table_length_boundaries)
{
    struct rss_limits lim = rss_limits_default();
    struct cfg c = good();
    const uint16_t not_pow2[] = {2, 4, 5, 6, 100, 126, 0x7ffe, 0xfffe, 0x8000};
    for (unsigned k = 0; k < sizeof not_pow2 / sizeof not_pow2[0]; k++) {
        c.mask = not_pow2[k];
        struct rss_fault f;
        cr_expect_eq(try_cfg(&c, &lim, 4, &f), RSS_ERR_TABLE_NOT_POWER_OF_2, "mask %u", c.mask);
        cr_expect_eq(f.seen, (uint32_t)c.mask + 1u);
    }
    c.mask = 0;
    cr_expect_eq(try_cfg(&c, &lim, 4, NULL), RSS_ERR_OK, "one entry");
    cr_expect_eq(st.table_len, 1);
    c.mask = 127;
    cr_expect_eq(try_cfg(&c, &lim, 4, NULL), RSS_ERR_OK, "the maximum, 128");
    c.mask = 255;
    struct rss_fault f;
    cr_expect_eq(try_cfg(&c, &lim, 4, &f), RSS_ERR_TABLE_TOO_LONG);
    cr_expect_eq(f.seen, 255);
    cr_expect_eq(f.expected, 128);
    lim.max_table_len = 200; /* not a power of two itself: 128 is the longest table */
    c.mask = 255;
    cr_expect_eq(try_cfg(&c, &lim, 4, NULL), RSS_ERR_TABLE_TOO_LONG);
    c.mask = 127;
    cr_expect_eq(try_cfg(&c, &lim, 4, NULL), RSS_ERR_OK);
    lim.max_table_len = 65535;
    c.mask = 0x7fff;
    cr_expect_eq(try_cfg(&c, &lim, 4, NULL), RSS_ERR_OK, "the largest table, 32768");
    cr_expect_eq(st.table_len, RSS_TABLE_LEN_MAX);
    cr_expect_eq(st.table[RSS_TABLE_LEN_MAX - 1], (RSS_TABLE_LEN_MAX - 1) % 4);
    c.mask = 0xffff;
    cr_expect_eq(try_cfg(&c, &lim, 4, NULL), RSS_ERR_TABLE_TOO_LONG, "65536 entries");
}

/* "A driver MUST fill the indirection_table array only with enabled receive virtqueues
 * ids": an entry naming queue `pairs` or above, in any position, and the reserved bit. */
Test(rss, table_entry_naming_a_queue_that_does_not_exist)
{
    const struct rss_limits lim = rss_limits_default();
    uint16_t table[128];
    struct cfg c = good();
    c.table = table;
    const unsigned positions[] = {0, 1, 64, 127};
    for (unsigned k = 0; k < 4; k++) {
        for (unsigned i = 0; i < 128; i++)
            table[i] = (uint16_t)(i % 4);
        table[positions[k]] = 4;
        struct rss_fault f;
        cr_expect_eq(try_cfg(&c, &lim, 4, &f), RSS_ERR_TABLE_QUEUE_INVALID, "entry %u", positions[k]);
        cr_expect_eq(f.seen, 4);
        cr_expect_eq(f.expected, 4);
        table[positions[k]] = 0x7fff;
        cr_expect_eq(try_cfg(&c, &lim, 4, NULL), RSS_ERR_TABLE_QUEUE_INVALID);
        table[positions[k]] = 0x8001; /* queue 1 with the reserved bit */
        cr_expect_eq(try_cfg(&c, &lim, 4, &f), RSS_ERR_RQ_ID_RESERVED_BIT);
        cr_expect_eq(f.expected, 1);
        table[positions[k]] = 3;
        cr_expect_eq(try_cfg(&c, &lim, 4, NULL), RSS_ERR_OK, "the last enabled queue");
    }
    /* Fewer pairs enabled than the table names. */
    for (unsigned i = 0; i < 128; i++)
        table[i] = (uint16_t)(i % 4);
    c.max_tx_vq = 1;
    cr_expect_eq(try_cfg(&c, &lim, 3, NULL), RSS_ERR_TABLE_QUEUE_INVALID);
    cr_expect_eq(try_cfg(&c, &lim, 0, NULL), RSS_ERR_UNCLASSIFIED_QUEUE_INVALID, "no queue enabled");
}

Test(rss, unclassified_queue_and_max_tx_vq)
{
    const struct rss_limits lim = rss_limits_default();
    struct cfg c = good();
    struct rss_fault f;
    c.unclassified = 4;
    cr_expect_eq(try_cfg(&c, &lim, 4, &f), RSS_ERR_UNCLASSIFIED_QUEUE_INVALID);
    cr_expect_eq(f.seen, 4);
    c.unclassified = 0x8000;
    cr_expect_eq(try_cfg(&c, &lim, 4, NULL), RSS_ERR_RQ_ID_RESERVED_BIT);
    c.unclassified = 3;
    cr_expect_eq(try_cfg(&c, &lim, 4, NULL), RSS_ERR_OK);
    c.max_tx_vq = 0;
    cr_expect_eq(try_cfg(&c, &lim, 4, &f), RSS_ERR_MAX_TX_VQ_INVALID);
    cr_expect_eq(f.seen, 0);
    c.max_tx_vq = 5;
    cr_expect_eq(try_cfg(&c, &lim, 4, &f), RSS_ERR_MAX_TX_VQ_INVALID);
    cr_expect_eq(f.expected, 4);
    c.max_tx_vq = 1;
    cr_expect_eq(try_cfg(&c, &lim, 4, NULL), RSS_ERR_OK);
    c.max_tx_vq = 4;
    cr_expect_eq(try_cfg(&c, &lim, 4, NULL), RSS_ERR_OK);
}

/* Key length 0, the maximum, the maximum + 1 (rss_max_key_size, "Device configuration
 * layout"), for the floor of 40 and the largest a u8 allows. */
Test(rss, key_length_boundaries)
{
    struct rss_limits lim = rss_limits_default();
    struct cfg c = good();
    struct rss_fault f;
    c.key_len = 41;
    cr_expect_eq(try_cfg(&c, &lim, 4, &f), RSS_ERR_KEY_TOO_LONG);
    cr_expect_eq(f.seen, 41);
    cr_expect_eq(f.expected, 40);
    c.key_len = 40;
    cr_expect_eq(try_cfg(&c, &lim, 4, NULL), RSS_ERR_OK);
    c.key_len = 0;
    cr_expect_eq(try_cfg(&c, &lim, 4, NULL), RSS_ERR_KEY_EMPTY);
    c.types = 0;
    cr_expect_eq(try_cfg(&c, &lim, 4, NULL), RSS_ERR_OK, "no key needed without hashing");
    c.types = ALL_TYPES;
    c.key_len = 1;
    cr_expect_eq(try_cfg(&c, &lim, 4, NULL), RSS_ERR_OK, "a short key hashes with zeros past it");
    lim.max_key_bytes = 255;
    c.key_len = 255;
    cr_expect_eq(try_cfg(&c, &lim, 4, NULL), RSS_ERR_OK);
    cr_expect_eq(st.key_len, 255);
    lim.max_key_bytes = 254;
    cr_expect_eq(try_cfg(&c, &lim, 4, NULL), RSS_ERR_KEY_TOO_LONG);
}

/* Every truncation of a good configuration's buffer is TRUNCATED (or the rule that can be
 * seen before the cut); the whole buffer, and one with bytes past it, is OK. */
Test(rss, truncated_configuration_buffers)
{
    const struct rss_limits lim = rss_limits_default();
    const struct cfg c = good();
    const size_t n = build(&c);
    cr_assert_eq(n, 8u + 256u + 3u + 40u);
    for (size_t len = 0; len < n; len++) {
        uint8_t *copy = malloc(len ? len : 1);
        cr_assert_not_null(copy);
        memcpy(copy, cfg_buf, len);
        struct rss_fault f;
        cr_expect_eq(rss_config_check(&lim, true, 4, copy, len, &f), RSS_ERR_TRUNCATED, "len %zu", len);
        cr_expect_eq(f.seen, len);
        cr_expect_gt(f.expected, len);
        free(copy);
    }
    cr_expect_eq(rss_config_check(&lim, true, 4, cfg_buf, n, NULL), RSS_ERR_OK);
    cfg_buf[n] = 0xff;
    cr_expect_eq(rss_config_check(&lim, true, 4, cfg_buf, n + 1, NULL), RSS_ERR_OK);
}

/* A frame cut at every byte: nothing but the header bytes present is hashed. An IPv4 TCP
 * frame (14 + 20 + 20 bytes): no hash before the IP header is whole, the addresses until
 * the TCP header is whole, then the ports too. The same for IPv6 (14 + 40 + 20). */
Test(rss, frames_truncated_at_every_byte)
{
    uint8_t f[FRAME_MAX];
    configure(ALL_TYPES, 0, (const uint16_t[]){1}, 2, 0);
    const size_t n4 = frame4(f, 1, PROTO_TCP, 0, 0);
    cr_assert_eq(n4, 54u);
    for (size_t len = 0; len <= n4; len++) {
        const struct rss_steering s = steer(f, len);
        if (len < 34) {
            cr_expect_eq(s.report, VIRTIO_NET_HASH_REPORT_NONE, "len %zu", len);
            cr_expect_eq(s.rx_queue, 0);
        } else if (len < 54) {
            cr_expect_eq(s.report, VIRTIO_NET_HASH_REPORT_IPV4, "len %zu", len);
            cr_expect_eq(s.hash, ms_v4[1].ip);
            cr_expect_eq(s.rx_queue, 1);
        } else {
            cr_expect_eq(s.report, VIRTIO_NET_HASH_REPORT_TCPV4);
            cr_expect_eq(s.hash, ms_v4[1].tcp);
        }
    }
    const size_t n6 = frame6(f, 2, PROTO_TCP, NULL, 0, NULL);
    cr_assert_eq(n6, 74u);
    for (size_t len = 0; len <= n6; len++) {
        const struct rss_steering s = steer(f, len);
        const unsigned want = len < 54   ? VIRTIO_NET_HASH_REPORT_NONE
                              : len < 74 ? VIRTIO_NET_HASH_REPORT_IPV6
                                         : VIRTIO_NET_HASH_REPORT_TCPV6;
        cr_expect_eq(s.report, want, "len %zu", len);
    }
    /* With two extension headers and two VLAN tags, cut everywhere: never a crash, and
     * TCPv6 only for the whole frame. */
    const uint8_t ext[] = {0, 60};
    const size_t n = frame6(f, 0, PROTO_UDP, ext, 2, NULL);
    for (size_t len = 0; len < n; len++)
        cr_expect_neq(steer(f, len).report, VIRTIO_NET_HASH_REPORT_UDPV6, "len %zu", len);
    cr_expect_eq(steer(f, n).report, VIRTIO_NET_HASH_REPORT_UDPV6);
}

/* A small deterministic generator (xorshift32) for the random inputs. */
static uint32_t rnd(uint32_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return *x;
}

/* Random bytes as frames, some starting from a real header: the steering stays within
 * the configuration (a table queue or the unclassified one) and a report names a type
 * that was enabled. */
Test(rss, random_frames)
{
    uint16_t table[8] = {5, 1, 4, 2, 3, 0, 6, 1};
    configure(VIRTIO_NET_HASH_TYPE_TCPV4_MASK | VIRTIO_NET_HASH_TYPE_IPV6_MASK |
                  VIRTIO_NET_HASH_TYPE_UDPV6_MASK, 7, table, 7, 6);
    uint32_t x = 0x9e3779b9u;
    uint8_t f[FRAME_MAX];
    for (unsigned it = 0; it < 50000; it++) {
        const size_t len = rnd(&x) % (FRAME_MAX + 1u);
        for (size_t k = 0; k < len; k++)
            f[k] = (uint8_t)rnd(&x);
        const unsigned shape = rnd(&x) % 4u;
        if (shape == 1 && len >= 14)
            put16(f + 12, 0x0800), f[14 < len ? 14 : 13] = 0x45;
        else if (shape == 2 && len >= 14)
            put16(f + 12, 0x86dd), f[14 < len ? 14 : 13] = 0x60;
        else if (shape == 3 && len >= 18)
            put16(f + 12, 0x8100), put16(f + 16, 0x86dd);
        const struct rss_steering s = steer(f, len);
        switch (s.report) {
        case VIRTIO_NET_HASH_REPORT_NONE:
            cr_assert_eq(s.rx_queue, 6);
            cr_assert_eq(s.hash, 0u);
            break;
        case VIRTIO_NET_HASH_REPORT_TCPV4:
        case VIRTIO_NET_HASH_REPORT_IPV6:
        case VIRTIO_NET_HASH_REPORT_UDPV6:
            cr_assert_eq(s.rx_queue, table[s.hash & 7u]);
            break;
        default:
            cr_assert_fail("report %u of a type not enabled", s.report);
        }
    }
}

/* Random configuration buffers: an answer for each, and an accepted one only names
 * enabled queues. */
Test(rss, random_configuration_buffers)
{
    const struct rss_limits lim = rss_limits_default();
    uint32_t x = 12345u;
    static uint8_t buf[8 + 512 + 3 + 64];
    unsigned ok = 0;
    for (unsigned it = 0; it < 20000; it++) {
        const size_t len = rnd(&x) % (sizeof buf + 1u);
        for (size_t k = 0; k < len; k++)
            buf[k] = (uint8_t)rnd(&x);
        if (len >= 8 && (it & 1u)) { /* a plausible head, so the later fields are reached */
            vs_put_le32(buf, rnd(&x) & ALL_TYPES);
            vs_put_le16(buf + 4, (uint16_t)((1u << (rnd(&x) % 8u)) - 1u));
            vs_put_le16(buf + 6, (uint16_t)(rnd(&x) % 4u));
            const size_t entries = (size_t)vs_le16(buf + 4) + 1u;
            for (size_t k = 0; k < entries && 8 + 2 * k + 2 <= len; k++)
                vs_put_le16(buf + 8 + 2 * k, (uint16_t)(rnd(&x) % 4u));
            const size_t t = 8 + 2 * entries;
            if (t + 3 <= len) {
                vs_put_le16(buf + t, (uint16_t)(1u + rnd(&x) % 4u));
                buf[t + 2] = (uint8_t)(rnd(&x) % 48u);
            }
        }
        const uint16_t pairs = (uint16_t)(1u + rnd(&x) % 4u);
        struct rss_fault f;
        const enum rss_error e = rss_config_set(&st, &lim, true, pairs, buf, len, &f);
        cr_assert_lt((unsigned)e, RSS_ERR_COUNT);
        cr_assert_eq(f.error, e);
        if (e != RSS_ERR_OK)
            continue;
        ok++;
        cr_assert_lt(st.unclassified_queue, pairs);
        cr_assert(st.max_tx_vq >= 1 && st.max_tx_vq <= pairs);
        for (uint32_t k = 0; k < st.table_len; k++)
            cr_assert_lt(st.table[k], pairs);
    }
    cr_expect_gt(ok, 0u, "some random configurations are good ones");
}

/* ---- VIRTIO_NET_CTRL_MQ_HASH_CONFIG: the hash reported without RSS ("Automatic receive
 * steering in multiqueue mode / Hash calculation", "Hash reporting for incoming
 * packets") ---- */

static struct rss_hash_config hc, hc_saved;

/* struct virtio_net_hash_config: hash_types, reserved[4], key length, key. */
static size_t build_hash(uint32_t types, uint8_t key_len)
{
    memset(cfg_buf, 0, VIRTIO_NET_HASH_CONFIG_OFF_KEY);
    vs_put_le32(cfg_buf, types);
    cfg_buf[VIRTIO_NET_HASH_CONFIG_OFF_KEY_LENGTH] = key_len;
    for (unsigned k = 0; k < key_len; k++)
        cfg_buf[VIRTIO_NET_HASH_CONFIG_OFF_KEY + k] = ms_key[k % sizeof ms_key];
    return VIRTIO_NET_HASH_CONFIG_OFF_KEY + key_len;
}

static enum rss_error try_hash(size_t n, const struct rss_limits *lim, bool negotiated,
                               struct rss_fault *f)
{
    rss_hash_config_reset(&hc);
    hc.hash_types = VIRTIO_NET_HASH_TYPE_IPV4_MASK;
    hc.key_len = 1;
    memcpy(&hc_saved, &hc, sizeof hc);
    const enum rss_error e = rss_hash_config_set(&hc, lim, negotiated, cfg_buf, n, f);
    if (e != RSS_ERR_OK)
        cr_expect_eq(memcmp(&hc, &hc_saved, sizeof hc), 0, "%s changed the state", rss_error_name(e));
    return e;
}

Test(rss, hash_config_reports_the_known_answers)
{
    const struct rss_limits lim = rss_limits_default();
    uint8_t f[FRAME_MAX];
    rss_hash_config_reset(&hc);
    uint32_t hash = 1;
    cr_expect_eq(rss_hash_report(&hc, f, frame4(f, 0, PROTO_TCP, 0, 0), &hash),
                 VIRTIO_NET_HASH_REPORT_NONE, "initially every hash type is disabled");
    cr_expect_eq(hash, 0u);
    cr_assert_eq(try_hash(build_hash(ALL_TYPES, 40), &lim, true, NULL), RSS_ERR_OK);
    cr_expect_eq(hc.hash_types, ALL_TYPES);
    for (unsigned i = 0; i < NV4; i++) {
        cr_expect_eq(rss_hash_report(&hc, f, frame4(f, i, PROTO_TCP, 0, 0), &hash),
                     VIRTIO_NET_HASH_REPORT_TCPV4);
        cr_expect_eq(hash, ms_v4[i].tcp, "row %u", i);
    }
    for (unsigned i = 0; i < NV6; i++) {
        cr_expect_eq(rss_hash_report(&hc, f, frame6(f, i, PROTO_UDP, NULL, 0, NULL), &hash),
                     VIRTIO_NET_HASH_REPORT_UDPV6);
        cr_expect_eq(hash, ms_v6[i].tcp, "row %u", i);
    }
}

Test(rss, hash_config_refusals)
{
    struct rss_limits lim = rss_limits_default();
    struct rss_fault f;
    cr_expect_eq(try_hash(build_hash(ALL_TYPES, 40), &lim, false, &f),
                 RSS_ERR_HASH_REPORT_NOT_NEGOTIATED);
    cr_expect_eq(f.expected, VIRTIO_NET_F_HASH_REPORT_BIT);
    cr_expect_eq(try_hash(build_hash(VIRTIO_NET_HASH_TYPE_UDP_EX_MASK, 40), &lim, true, NULL),
                 RSS_ERR_HASH_TYPE_UNSUPPORTED);
    /* "Field reserved MUST contain zeroes": each of its 8 bytes. */
    for (unsigned k = 0; k < VIRTIO_NET_HASH_CONFIG_RESERVED_BYTES; k++) {
        const size_t n = build_hash(ALL_TYPES, 40);
        cfg_buf[VIRTIO_NET_HASH_CONFIG_OFF_RESERVED + k] = 0x01;
        cr_expect_eq(try_hash(n, &lim, true, &f), RSS_ERR_RESERVED_NOT_ZERO, "byte %u", k);
        cr_expect_eq(f.seen, k);
    }
    cr_expect_eq(try_hash(build_hash(ALL_TYPES, 41), &lim, true, NULL), RSS_ERR_KEY_TOO_LONG);
    cr_expect_eq(try_hash(build_hash(ALL_TYPES, 0), &lim, true, NULL), RSS_ERR_KEY_EMPTY);
    cr_expect_eq(try_hash(build_hash(0, 0), &lim, true, NULL), RSS_ERR_OK);
    lim.max_key_bytes = 255;
    cr_expect_eq(try_hash(build_hash(ALL_TYPES, 255), &lim, true, NULL), RSS_ERR_OK);
    lim = rss_limits_default();
    /* Every truncation of a good command's data. */
    const size_t n = build_hash(ALL_TYPES, 40);
    for (size_t len = 0; len < n; len++) {
        uint8_t *copy = malloc(len ? len : 1);
        cr_assert_not_null(copy);
        memcpy(copy, cfg_buf, len);
        cr_expect_eq(rss_hash_config_check(&lim, true, copy, len, &f), RSS_ERR_TRUNCATED, "len %zu", len);
        cr_expect_eq(f.seen, len);
        free(copy);
    }
}
