/* rss.c -- receive-side scaling: Toeplitz hash, frame classification, the RSS_CONFIG
 * command and steering (rss.h; docs/rss.md). */
#include "rss.h"

#include <string.h>

#include "net_wire.h"

/* ---- Names ---- */

static const struct {
    const char *name, *section, *text;
} errors[RSS_ERR_COUNT] = {
#define RSS_ERROR_ROW(name, section, text) {#name, section, text},
    RSS_ERRORS(RSS_ERROR_ROW)
#undef RSS_ERROR_ROW
};

const char *rss_error_name(enum rss_error e)
{
    return (unsigned)e < RSS_ERR_COUNT ? errors[e].name : "UNKNOWN";
}

const char *rss_error_section(enum rss_error e)
{
    return (unsigned)e < RSS_ERR_COUNT ? errors[e].section : "";
}

const char *rss_error_text(enum rss_error e)
{
    return (unsigned)e < RSS_ERR_COUNT ? errors[e].text : "unknown error";
}

/* ---- Limits ---- */

struct rss_limits rss_limits_default(void)
{
    const struct rss_limits l = {
        .max_key_bytes = RSS_SPEC_MIN_KEY_BYTES,
        .max_table_len = RSS_SPEC_MIN_TABLE_LEN,
        .supported_hash_types = RSS_HASH_TYPES_IMPLEMENTED,
    };
    return l;
}

const char *rss_limits_problem(const struct rss_limits *l)
{
    /* "The device MUST set rss_max_key_size to at least 40, if it offers
     * VIRTIO_NET_F_RSS or VIRTIO_NET_F_HASH_REPORT"; "... rss_max_indirection_table_length
     * to at least 128, if it offers VIRTIO_NET_F_RSS" ("Device configuration layout"). */
    if (l->max_key_bytes < RSS_SPEC_MIN_KEY_BYTES)
        return "rss_max_key_size must be at least 40 bytes";
    if (l->max_table_len < RSS_SPEC_MIN_TABLE_LEN)
        return "rss_max_indirection_table_length must be at least 128 entries";
    if (l->supported_hash_types & ~(uint32_t)RSS_HASH_TYPES_IMPLEMENTED)
        return "supported_hash_types names a hash type viosim does not compute "
               "(only IPv4, TCPv4, UDPv4, IPv6, TCPv6 and UDPv6)";
    return NULL;
}

/* ---- Configuration ---- */

void rss_reset(struct rss_state *s)
{
    memset(s, 0, sizeof *s);
}

static enum rss_error fault(struct rss_fault *f, enum rss_error e, uint32_t seen,
                            uint32_t expected)
{
    if (f) {
        f->error = e;
        f->seen = seen;
        f->expected = expected;
    }
    return e;
}

/* A receive queue id ("struct rss_rq_id"): the reserved bit must be clear and the
 * queue one the driver enabled. */
static enum rss_error check_rq_id(uint16_t id, uint16_t queue_pairs, enum rss_error invalid,
                                  struct rss_fault *f)
{
    if (id >> VIRTIO_NET_RSS_RQ_ID_RESERVED_BIT)
        return fault(f, RSS_ERR_RQ_ID_RESERVED_BIT, id, id & VIRTIO_NET_RSS_RQ_ID_QUEUE_MASK);
    if (id >= queue_pairs)
        return fault(f, invalid, id, queue_pairs);
    return RSS_ERR_OK;
}

enum rss_error rss_config_check(const struct rss_limits *lim, bool rss_negotiated,
                                uint16_t queue_pairs, const uint8_t *data, size_t len,
                                struct rss_fault *f)
{
    fault(f, RSS_ERR_OK, 0, 0);
    /* "A driver MUST NOT send the VIRTIO_NET_CTRL_MQ_RSS_CONFIG command if the feature
     * VIRTIO_NET_F_RSS has not been negotiated." */
    if (!rss_negotiated)
        return fault(f, RSS_ERR_NOT_NEGOTIATED, VIRTIO_NET_CTRL_MQ_RSS_CONFIG,
                     VIRTIO_NET_F_RSS_BIT);
    const size_t head = sizeof(struct virtio_net_rss_config_head);
    if (len < head)
        return fault(f, RSS_ERR_TRUNCATED, (uint32_t)len, (uint32_t)head);

    const uint32_t hash_types = vs_le32(data + offsetof(struct virtio_net_rss_config_head, hash_types));
    const uint16_t mask = vs_le16(data + offsetof(struct virtio_net_rss_config_head,
                                                  indirection_table_mask));
    const uint16_t unclassified = vs_le16(data + offsetof(struct virtio_net_rss_config_head,
                                                          unclassified_queue));
    /* "A driver MUST NOT set any VIRTIO_NET_HASH_TYPE_ flags that are not supported by
     * a device." */
    if (hash_types & ~lim->supported_hash_types)
        return fault(f, RSS_ERR_HASH_TYPE_UNSUPPORTED, hash_types, lim->supported_hash_types);
    /* "The number of entries in indirection_table (indirection_table_mask + 1) MUST be a
     * power of two"; "A driver MUST use indirection_table_mask values that are less than
     * rss_max_indirection_table_length reported by a device." */
    const uint32_t entries = (uint32_t)mask + 1u;
    if (entries & mask)
        return fault(f, RSS_ERR_TABLE_NOT_POWER_OF_2, entries, 0);
    if (mask >= lim->max_table_len)
        return fault(f, RSS_ERR_TABLE_TOO_LONG, mask, lim->max_table_len);
    /* unclassified_queue "specifies the receive virtqueue id in which to place
     * unclassified packets": one that exists and is enabled. */
    enum rss_error e = check_rq_id(unclassified, queue_pairs, RSS_ERR_UNCLASSIFIED_QUEUE_INVALID, f);
    if (e != RSS_ERR_OK)
        return e;
    const size_t table_end = head + 2u * (size_t)entries;
    if (len < table_end)
        return fault(f, RSS_ERR_TRUNCATED, (uint32_t)len, (uint32_t)table_end);
    /* "A driver MUST fill the indirection_table array only with enabled receive
     * virtqueues ids." */
    for (uint32_t i = 0; i < entries; i++) {
        e = check_rq_id(vs_le16(data + head + 2u * i), queue_pairs, RSS_ERR_TABLE_QUEUE_INVALID, f);
        if (e != RSS_ERR_OK)
            return e;
    }
    const size_t tail_end = table_end + VIRTIO_NET_RSS_CONFIG_TAIL_BYTES;
    if (len < tail_end)
        return fault(f, RSS_ERR_TRUNCATED, (uint32_t)len, (uint32_t)tail_end);
    /* "A driver sets max_tx_vq to inform a device how many transmit virtqueues it may
     * use (transmitq1 ... transmitq max_tx_vq)": at least one, and only enabled ones. */
    const uint16_t max_tx_vq = vs_le16(data + table_end);
    if (max_tx_vq == 0 || max_tx_vq > queue_pairs)
        return fault(f, RSS_ERR_MAX_TX_VQ_INVALID, max_tx_vq, queue_pairs);
    /* rss_max_key_size "specifies the maximum supported length of RSS key in bytes". */
    const uint8_t key_len = data[table_end + 2u];
    if (key_len > lim->max_key_bytes)
        return fault(f, RSS_ERR_KEY_TOO_LONG, key_len, lim->max_key_bytes);
    const size_t key_end = tail_end + key_len;
    if (len < key_end)
        return fault(f, RSS_ERR_TRUNCATED, (uint32_t)len, (uint32_t)key_end);
    /* The spec does not forbid an empty key, but hashing with one gives 0 for every
     * packet: a configuration that enables hashing without a key is a driver bug worth
     * naming. With no hash type enabled no key is needed. */
    if (key_len == 0 && hash_types != 0)
        return fault(f, RSS_ERR_KEY_EMPTY, 0, 1);
    return RSS_ERR_OK;
}

enum rss_error rss_config_set(struct rss_state *s, const struct rss_limits *lim,
                              bool rss_negotiated, uint16_t queue_pairs, const uint8_t *data,
                              size_t len, struct rss_fault *f)
{
    const enum rss_error e = rss_config_check(lim, rss_negotiated, queue_pairs, data, len, f);
    if (e != RSS_ERR_OK)
        return e;
    const size_t head = sizeof(struct virtio_net_rss_config_head);
    const uint32_t entries =
        (uint32_t)vs_le16(data + offsetof(struct virtio_net_rss_config_head, indirection_table_mask)) + 1u;
    const size_t table_end = head + 2u * (size_t)entries;
    rss_reset(s);
    s->configured = true;
    s->hash_types = vs_le32(data + offsetof(struct virtio_net_rss_config_head, hash_types));
    s->unclassified_queue = vs_le16(data + offsetof(struct virtio_net_rss_config_head,
                                                    unclassified_queue));
    s->table_len = entries;
    for (uint32_t i = 0; i < entries; i++)
        s->table[i] = vs_le16(data + head + 2u * i);
    s->max_tx_vq = vs_le16(data + table_end);
    s->key_len = data[table_end + 2u];
    memcpy(s->key, data + table_end + VIRTIO_NET_RSS_CONFIG_TAIL_BYTES, s->key_len);
    return RSS_ERR_OK;
}

void rss_hash_config_reset(struct rss_hash_config *h)
{
    memset(h, 0, sizeof *h);
}

enum rss_error rss_hash_config_check(const struct rss_limits *lim, bool hash_report_negotiated,
                                     const uint8_t *data, size_t len, struct rss_fault *f)
{
    fault(f, RSS_ERR_OK, 0, 0);
    /* The command configures "reported hash parameters": without VIRTIO_NET_F_HASH_REPORT
     * there is nothing it could configure. */
    if (!hash_report_negotiated)
        return fault(f, RSS_ERR_HASH_REPORT_NOT_NEGOTIATED, VIRTIO_NET_CTRL_MQ_HASH_CONFIG,
                     VIRTIO_NET_F_HASH_REPORT_BIT);
    const size_t head = VIRTIO_NET_HASH_CONFIG_OFF_KEY;
    if (len < head)
        return fault(f, RSS_ERR_TRUNCATED, (uint32_t)len, (uint32_t)head);
    const uint32_t hash_types = vs_le32(data);
    if (hash_types & ~lim->supported_hash_types)
        return fault(f, RSS_ERR_HASH_TYPE_UNSUPPORTED, hash_types, lim->supported_hash_types);
    /* "Field reserved MUST contain zeroes." */
    for (unsigned k = 0; k < VIRTIO_NET_HASH_CONFIG_RESERVED_BYTES; k++)
        if (data[VIRTIO_NET_HASH_CONFIG_OFF_RESERVED + k] != 0)
            return fault(f, RSS_ERR_RESERVED_NOT_ZERO, k, 0);
    const uint8_t key_len = data[VIRTIO_NET_HASH_CONFIG_OFF_KEY_LENGTH];
    if (key_len > lim->max_key_bytes)
        return fault(f, RSS_ERR_KEY_TOO_LONG, key_len, lim->max_key_bytes);
    if (len < head + key_len)
        return fault(f, RSS_ERR_TRUNCATED, (uint32_t)len, (uint32_t)(head + key_len));
    if (key_len == 0 && hash_types != 0)
        return fault(f, RSS_ERR_KEY_EMPTY, 0, 1);
    return RSS_ERR_OK;
}

enum rss_error rss_hash_config_set(struct rss_hash_config *h, const struct rss_limits *lim,
                                   bool hash_report_negotiated, const uint8_t *data, size_t len,
                                   struct rss_fault *f)
{
    const enum rss_error e = rss_hash_config_check(lim, hash_report_negotiated, data, len, f);
    if (e != RSS_ERR_OK)
        return e;
    rss_hash_config_reset(h);
    h->hash_types = vs_le32(data);
    h->key_len = data[VIRTIO_NET_HASH_CONFIG_OFF_KEY_LENGTH];
    memcpy(h->key, data + VIRTIO_NET_HASH_CONFIG_OFF_KEY, h->key_len);
    return RSS_ERR_OK;
}

/* ---- The hash ---- */

uint32_t rss_toeplitz(const uint8_t *key, size_t key_len, const uint8_t *in, size_t n)
{
    /* `window` holds the 32 key bits that start at the input bit being looked at; after
     * each input bit it moves on by one, taking in the key bit 32 places further. */
    uint32_t window = 0;
    for (size_t i = 0; i < 4; i++)
        window = (window << 8) | (i < key_len ? key[i] : 0u);
    uint32_t hash = 0;
    for (size_t i = 0; i < n; i++) {
        const uint8_t next = i + 4 < key_len ? key[i + 4] : 0u;
        for (int b = 7; b >= 0; b--) {
            if ((in[i] >> b) & 1u)
                hash ^= window;
            window = (window << 1) | ((next >> b) & 1u);
        }
    }
    return hash;
}

/* ---- Parsing a received frame ---- */

#define VLAN_TAGS_MAX   2u
#define IPV6_EXT_MAX    8u  /* extension headers walked before giving up on L4 */

/* The transport header at [off, end) of a packet whose addresses are in p->tuple: is it
 * a whole TCP or UDP header? If so its ports join the tuple. */
static void parse_l4(const uint8_t *frame, size_t off, size_t end, uint8_t proto,
                     struct rss_packet *p)
{
    const size_t need = proto == IPPROTO_TCP_ ? TCP_MIN_BYTES
                        : proto == IPPROTO_UDP_ ? UDP_BYTES
                                                : 0;
    if (need == 0 || off > end || end - off < need)
        return;
    p->l4 = proto == IPPROTO_TCP_ ? RSS_L4_TCP : RSS_L4_UDP;
    memcpy(p->tuple + 2u * p->addr_bytes, frame + off, 4); /* source port, destination port */
}

static void parse_ipv4(const uint8_t *frame, size_t off, size_t len, struct rss_packet *p)
{
    if (len - off < IPV4_MIN_BYTES)
        return;
    const uint8_t *ip = frame + off;
    const size_t ihl = (size_t)(ip[0] & 0x0fu) * 4u;
    const size_t total = vs_be16(ip + IPV4_OFF_TOTAL_LEN);
    if ((ip[0] >> 4) != 4u || ihl < IPV4_MIN_BYTES || ihl > len - off || total < ihl)
        return;
    p->l3 = RSS_L3_IPV4;
    p->addr_bytes = 4;
    memcpy(p->tuple, ip + IPV4_OFF_SRC, 8); /* source, destination */
    /* The packet ends at its total length, or earlier if the frame was cut short
     * (Ethernet padding past total length is not the packet's). */
    const size_t end = off + (total < len - off ? total : len - off);
    /* Only the first fragment carries the transport header; hashing its ports would
     * put the fragments of one datagram on different queues, so a fragment (first or
     * not) is hashed as an IP packet without a TCP or UDP header. */
    const uint16_t frag = vs_be16(ip + IPV4_OFF_FRAG);
    if (frag & (IPV4_FRAG_MF_MASK | IPV4_FRAG_OFF_MASK))
        return;
    parse_l4(frame, off + ihl, end, ip[IPV4_OFF_PROTO], p);
}

static void parse_ipv6(const uint8_t *frame, size_t off, size_t len, struct rss_packet *p)
{
    if (len - off < IPV6_HDR_BYTES)
        return;
    const uint8_t *ip = frame + off;
    if ((ip[0] >> 4) != 6u)
        return;
    p->l3 = RSS_L3_IPV6;
    p->addr_bytes = 16;
    memcpy(p->tuple, ip + IPV6_OFF_SRC, 32); /* source, destination */
    const size_t payload = vs_be16(ip + IPV6_OFF_PAYLOAD);
    const size_t end = off + IPV6_HDR_BYTES + (payload < len - off - IPV6_HDR_BYTES
                                                   ? payload
                                                   : len - off - IPV6_HDR_BYTES);
    uint8_t next = ip[IPV6_OFF_NEXT];
    size_t at = off + IPV6_HDR_BYTES;
    /* "IPv6 packets with extension header": without the _EX types (not implemented),
     * "skip IPv6 extension headers and calculate the hash as defined for an IPv6 packet
     * without extension headers". A header that cannot be skipped (ESP, No Next Header,
     * an unknown one, one running past the packet) leaves the packet without L4. */
    for (unsigned n = 0; n <= IPV6_EXT_MAX; n++) {
        if (next == IPPROTO_TCP_ || next == IPPROTO_UDP_) {
            parse_l4(frame, at, end, next, p);
            return;
        }
        if (n == IPV6_EXT_MAX || end - at < 2u)
            return;
        size_t hdr;
        switch (next) {
        case IPPROTO_HOPOPTS_:
        case IPPROTO_ROUTING_:
        case IPPROTO_DSTOPTS_:
            hdr = ((size_t)frame[at + 1] + 1u) * 8u;
            break;
        case IPPROTO_AH_:
            hdr = ((size_t)frame[at + 1] + 2u) * 4u;
            break;
        case IPPROTO_FRAGMENT_:
            hdr = IPV6_FRAG_BYTES;
            if (end - at < hdr)
                return;
            /* A fragment: no transport header to hash (as for IPv4 above). */
            p->ipv6_ext = true;
            if (vs_be16(frame + at + 2) & (IPV6_FRAG_OFF_MASK | IPV6_FRAG_M_MASK))
                return;
            break;
        default:
            return;
        }
        p->ipv6_ext = true;
        if (end - at < hdr)
            return;
        next = frame[at];
        at += hdr;
    }
}

void rss_parse(const uint8_t *frame, size_t len, struct rss_packet *p)
{
    memset(p, 0, sizeof *p);
    if (len < ETH_HDR_BYTES)
        return;
    size_t off = ETH_OFF_TYPE;
    uint16_t type = vs_be16(frame + off);
    for (unsigned tags = 0; tags < VLAN_TAGS_MAX &&
                            (type == ETHERTYPE_8021Q || type == ETHERTYPE_8021AD); tags++) {
        off += VLAN_TAG_BYTES;
        if (len < off + 2u)
            return;
        type = vs_be16(frame + off);
    }
    off += 2u; /* past the EtherType: the network header */
    if (type == ETHERTYPE_IPV4)
        parse_ipv4(frame, off, len, p);
    else if (type == ETHERTYPE_IPV6)
        parse_ipv6(frame, off, len, p);
}

/* ---- Hash and steering ---- */

uint8_t rss_hash_packet(const struct rss_packet *p, uint32_t hash_types, const uint8_t *key,
                        size_t key_len, uint32_t *hash)
{
    *hash = 0;
    if (p->l3 == RSS_L3_NONE)
        return VIRTIO_NET_HASH_REPORT_NONE;
    /* Per IP version: the TCP, UDP and address-only hash types, most specific first. */
    static const struct {
        uint32_t type;
        uint8_t report;
    } kinds[2][3] = {
        {{VIRTIO_NET_HASH_TYPE_TCPV4_MASK, VIRTIO_NET_HASH_REPORT_TCPV4},
         {VIRTIO_NET_HASH_TYPE_UDPV4_MASK, VIRTIO_NET_HASH_REPORT_UDPV4},
         {VIRTIO_NET_HASH_TYPE_IPV4_MASK, VIRTIO_NET_HASH_REPORT_IPV4}},
        {{VIRTIO_NET_HASH_TYPE_TCPV6_MASK, VIRTIO_NET_HASH_REPORT_TCPV6},
         {VIRTIO_NET_HASH_TYPE_UDPV6_MASK, VIRTIO_NET_HASH_REPORT_UDPV6},
         {VIRTIO_NET_HASH_TYPE_IPV6_MASK, VIRTIO_NET_HASH_REPORT_IPV6}},
    };
    const unsigned v = p->l3 == RSS_L3_IPV6;
    hash_types &= RSS_HASH_TYPES_IMPLEMENTED;
    /* "If VIRTIO_NET_HASH_TYPE_TCPv4 is set and the packet has a TCP header, the hash is
     * calculated over" both addresses and both ports; "Else if ... UDPv4 ..."; "Else if
     * VIRTIO_NET_HASH_TYPE_IPv4 is set", over the two addresses; "Else the device does
     * not calculate the hash" (and the same for IPv6, "IPv6 packets without extension
     * header"). */
    const size_t addrs = 2u * p->addr_bytes;
    uint8_t report;
    size_t n;
    if ((hash_types & kinds[v][0].type) && p->l4 == RSS_L4_TCP) {
        report = kinds[v][0].report;
        n = addrs + 4u;
    } else if ((hash_types & kinds[v][1].type) && p->l4 == RSS_L4_UDP) {
        report = kinds[v][1].report;
        n = addrs + 4u;
    } else if (hash_types & kinds[v][2].type) {
        report = kinds[v][2].report;
        n = addrs;
    } else {
        return VIRTIO_NET_HASH_REPORT_NONE;
    }
    *hash = rss_toeplitz(key, key_len, p->tuple, n);
    return report;
}

uint8_t rss_hash_report(const struct rss_hash_config *h, const uint8_t *frame, size_t len,
                        uint32_t *hash)
{
    struct rss_packet p;
    rss_parse(frame, len, &p);
    return rss_hash_packet(&p, h->hash_types, h->key, h->key_len, hash);
}

void rss_steer(const struct rss_state *s, const uint8_t *frame, size_t len,
               struct rss_steering *out)
{
    memset(out, 0, sizeof *out);
    if (!s->configured)
        return;
    /* "RSS processing": calculate the hash; without one, the unclassified queue;
     * otherwise the indirection table at hash & indirection_table_mask. */
    struct rss_packet p;
    rss_parse(frame, len, &p);
    out->report = rss_hash_packet(&p, s->hash_types, s->key, s->key_len, &out->hash);
    if (out->report == VIRTIO_NET_HASH_REPORT_NONE)
        out->rx_queue = s->unclassified_queue;
    else
        out->rx_queue = s->table[out->hash & (s->table_len - 1u)];
}
