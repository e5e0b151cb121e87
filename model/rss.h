/* rss.h -- virtio-net receive-side scaling as a kernel of its own: the Toeplitz hash,
 * the classification of a received frame, the RSS configuration a driver sets with
 * VIRTIO_NET_CTRL_MQ_RSS_CONFIG, the steering of a frame to a receive queue, and the
 * hash-report parameters of VIRTIO_NET_CTRL_MQ_HASH_CONFIG (HASH_REPORT without RSS).
 *
 * Spec sections (device-types/net/description.tex): "Hash calculation for incoming
 * packets" and its subparagraphs "Supported/enabled hash types", "IPv4 packets", "IPv6
 * packets without extension header", "IPv6 packets with extension header"; "Hash
 * reporting for incoming packets"; "Receive-side scaling (RSS)" with "Setting RSS
 * parameters" and the device's "RSS processing"; "Device configuration layout" for the
 * device's limits. docs/rss.md says what is computed and what is refused.
 *
 * Hash types implemented: IPv4, TCPv4, UDPv4, IPv6, TCPv6, UDPv6 (RSS_HASH_TYPES_IMPLEMENTED).
 * The _EX types (IPv6 home address option and type-2 routing header) are not: a device
 * built on this kernel does not offer them in supported_hash_types, so a configuration
 * enabling them is refused (RSS_ERR_HASH_TYPE_UNSUPPORTED). IPv6 packets with extension
 * headers are hashed as the spec says for that case: the extension headers are skipped
 * and the packet is hashed as one without them.
 *
 * Untimed C11, no globals, no I/O, no heap. Receive queues are numbered from 0 here, as
 * struct rss_rq_id numbers them: queue n is receiveq(n+1), virtqueue 2n.
 */
#ifndef VIOSIM_RSS_H
#define VIOSIM_RSS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "virtio_wire.h"

/* The hash types this kernel computes; a device offers a subset of them. */
#define RSS_HASH_TYPES_IMPLEMENTED                                                          \
    (VIRTIO_NET_HASH_TYPE_IPV4_MASK | VIRTIO_NET_HASH_TYPE_TCPV4_MASK |                     \
     VIRTIO_NET_HASH_TYPE_UDPV4_MASK | VIRTIO_NET_HASH_TYPE_IPV6_MASK |                     \
     VIRTIO_NET_HASH_TYPE_TCPV6_MASK | VIRTIO_NET_HASH_TYPE_UDPV6_MASK)

/* hash_key_length is a u8. */
#define RSS_KEY_BYTES_MAX 255u
/* rss_max_indirection_table_length is a le16 and the table's length a power of two,
 * so no table is longer than 2^15 entries. */
#define RSS_TABLE_LEN_MAX 32768u
/* The spec's floors for a device offering VIRTIO_NET_F_RSS ("Device configuration
 * layout", device normative): rss_max_key_size >= 40, rss_max_indirection_table_length
 * >= 128. */
#define RSS_SPEC_MIN_KEY_BYTES 40u
#define RSS_SPEC_MIN_TABLE_LEN 128u
/* The longest hash input: two IPv6 addresses and two ports. */
#define RSS_INPUT_BYTES_MAX 36u

/* What the device offers, as its configuration space says. */
struct rss_limits {
    uint8_t max_key_bytes;         /* rss_max_key_size */
    uint16_t max_table_len;        /* rss_max_indirection_table_length */
    uint32_t supported_hash_types; /* supported_hash_types: VIRTIO_NET_HASH_TYPE_*_MASK */
};

/* The spec's floors (40-byte key, 128 entries) and every implemented hash type. */
struct rss_limits rss_limits_default(void);
/* NULL when the limits are ones a device may offer; otherwise a sentence saying which
 * rule they break (a key under 40 bytes, a table under 128 entries, a hash type this
 * kernel does not implement). For the platform's configuration check. */
const char *rss_limits_problem(const struct rss_limits *l);

/* Why an RSS_CONFIG command is refused: X(name, spec section, what was wrong). Every
 * one is answered VIRTIO_NET_ERR and leaves the configuration in force unchanged. */
#define RSS_ERRORS(X) \
    X(OK, "", "no error") \
    X(NOT_NEGOTIATED, "Device Types / Network Device / Device Operation / Control Virtqueue / Receive-side scaling (RSS) / Setting RSS parameters", \
      "VIRTIO_NET_CTRL_MQ_RSS_CONFIG sent without VIRTIO_NET_F_RSS negotiated") \
    X(TRUNCATED, "Device Types / Network Device / Device Operation / Control Virtqueue / Receive-side scaling (RSS) / Setting RSS parameters", \
      "command-specific data shorter than the struct virtio_net_rss_config its own table mask and key length describe") \
    X(HASH_TYPE_UNSUPPORTED, "Device Types / Network Device / Device Operation / Control Virtqueue / Receive-side scaling (RSS) / Setting RSS parameters", \
      "hash_types enables a hash type the device does not offer in supported_hash_types") \
    X(TABLE_NOT_POWER_OF_2, "Device Types / Network Device / Device Operation / Control Virtqueue / Receive-side scaling (RSS) / Setting RSS parameters", \
      "indirection_table_mask + 1 (the number of table entries) is not a power of two") \
    X(TABLE_TOO_LONG, "Device Types / Network Device / Device Operation / Control Virtqueue / Receive-side scaling (RSS) / Setting RSS parameters", \
      "indirection_table_mask is not less than rss_max_indirection_table_length") \
    X(RQ_ID_RESERVED_BIT, "Device Types / Network Device / Device Operation / Control Virtqueue / Receive-side scaling (RSS) / Setting RSS parameters", \
      "a receive queue id (unclassified_queue or a table entry) has its reserved bit 15 set") \
    X(UNCLASSIFIED_QUEUE_INVALID, "Device Types / Network Device / Device Operation / Control Virtqueue / Receive-side scaling (RSS) / Setting RSS parameters", \
      "unclassified_queue names a receive queue that is not enabled") \
    X(TABLE_QUEUE_INVALID, "Device Types / Network Device / Device Operation / Control Virtqueue / Receive-side scaling (RSS) / Setting RSS parameters", \
      "an indirection_table entry names a receive queue that is not enabled") \
    X(MAX_TX_VQ_INVALID, "Device Types / Network Device / Device Operation / Control Virtqueue / Receive-side scaling (RSS) / Setting RSS parameters", \
      "max_tx_vq is 0 or more than the transmit queues enabled") \
    X(KEY_TOO_LONG, "Device Types / Network Device / Device configuration layout", \
      "hash_key_length is more than the device's rss_max_key_size") \
    X(KEY_EMPTY, "Device Types / Network Device / Device Operation / Control Virtqueue / Receive-side scaling (RSS) / Setting RSS parameters", \
      "hash_key_length is 0 while hash types are enabled (no key to hash with; viosim refuses it)") \
    X(HASH_REPORT_NOT_NEGOTIATED, "Device Types / Network Device / Device Operation / Control Virtqueue / Automatic receive steering in multiqueue mode / Hash calculation", \
      "VIRTIO_NET_CTRL_MQ_HASH_CONFIG sent without VIRTIO_NET_F_HASH_REPORT negotiated (there is no hash to report)") \
    X(RESERVED_NOT_ZERO, "Device Types / Network Device / Device Operation / Control Virtqueue / Automatic receive steering in multiqueue mode / Hash calculation", \
      "struct virtio_net_hash_config's reserved field is not zero")

enum rss_error {
#define RSS_ERROR_ENUM(name, section, text) RSS_ERR_##name,
    RSS_ERRORS(RSS_ERROR_ENUM)
#undef RSS_ERROR_ENUM
    RSS_ERR_COUNT
};

/* Short identifier ("TABLE_QUEUE_INVALID"), the spec section the rule comes from, and
 * one sentence for users. */
const char *rss_error_name(enum rss_error e);
const char *rss_error_section(enum rss_error e);
const char *rss_error_text(enum rss_error e);

/* What was wrong, with the values a conformance record carries. */
struct rss_fault {
    enum rss_error error;
    uint32_t seen;     /* the offending value (a length, a mask, a queue, hash types) */
    uint32_t expected; /* the bound or value allowed instead (rule-specific) */
};

/* The RSS configuration in force. */
struct rss_state {
    bool configured;             /* an RSS_CONFIG was applied since the last reset */
    uint32_t hash_types;         /* enabled hash types */
    uint32_t table_len;          /* indirection_table_mask + 1 */
    uint16_t unclassified_queue; /* receive queue for packets the device did not hash */
    uint16_t max_tx_vq;          /* transmit queues the driver may use (transmitq1 ..) */
    uint8_t key_len;
    uint8_t key[RSS_KEY_BYTES_MAX];
    uint16_t table[RSS_TABLE_LEN_MAX]; /* receive queue numbers, table_len of them */
};

/* Device reset: nothing configured. Until a configuration is applied every frame goes
 * to receive queue 0 without a hash ("After initialization of reset, the device MUST
 * queue packets only on receiveq1"; hash types start disabled). */
void rss_reset(struct rss_state *s);

/* Check the command-specific data of VIRTIO_NET_CTRL_MQ_RSS_CONFIG (`len` bytes after
 * the class and command; bytes past the structure are ignored). `rss_negotiated`:
 * VIRTIO_NET_F_RSS was negotiated. `queue_pairs`: the queue pairs the driver has enabled
 * (receive queues 0 .. queue_pairs-1 and as many transmit queues), which table entries,
 * unclassified_queue and max_tx_vq must stay within. The fields are checked in the
 * order they lie in the buffer and the first broken rule is returned (with *f filled
 * when f is not NULL); RSS_ERR_OK when the configuration can be applied. */
enum rss_error rss_config_check(const struct rss_limits *lim, bool rss_negotiated,
                                uint16_t queue_pairs, const uint8_t *data, size_t len,
                                struct rss_fault *f);
/* rss_config_check, and when it says OK put the configuration in force. On an error
 * *s is left exactly as it was. */
enum rss_error rss_config_set(struct rss_state *s, const struct rss_limits *lim,
                              bool rss_negotiated, uint16_t queue_pairs, const uint8_t *data,
                              size_t len, struct rss_fault *f);

/* The hash reported without RSS: VIRTIO_NET_F_HASH_REPORT negotiated, VIRTIO_NET_F_RSS
 * not ("Hash calculation for incoming packets": then the device uses hash_types and the
 * key of struct virtio_net_hash_config). Reset: every type disabled, so only
 * VIRTIO_NET_HASH_REPORT_NONE is reported ("Initially the device has all hash types
 * disabled"). */
struct rss_hash_config {
    uint32_t hash_types;
    uint8_t key_len;
    uint8_t key[RSS_KEY_BYTES_MAX];
};

void rss_hash_config_reset(struct rss_hash_config *h);
/* Check the command-specific data of VIRTIO_NET_CTRL_MQ_HASH_CONFIG as rss_config_check
 * does its command's: HASH_REPORT_NOT_NEGOTIATED, TRUNCATED, HASH_TYPE_UNSUPPORTED,
 * RESERVED_NOT_ZERO ("Field reserved MUST contain zeroes"), KEY_TOO_LONG, KEY_EMPTY, in
 * the buffer's order. */
enum rss_error rss_hash_config_check(const struct rss_limits *lim, bool hash_report_negotiated,
                                     const uint8_t *data, size_t len, struct rss_fault *f);
/* Check, and when OK put in force; on an error *h is left as it was. */
enum rss_error rss_hash_config_set(struct rss_hash_config *h, const struct rss_limits *lim,
                                   bool hash_report_negotiated, const uint8_t *data, size_t len,
                                   struct rss_fault *f);
/* The hash of a received frame under these parameters: the report type
 * (VIRTIO_NET_HASH_REPORT_*, NONE with *hash 0 when no enabled type applies). */
uint8_t rss_hash_report(const struct rss_hash_config *h, const uint8_t *frame, size_t len,
                        uint32_t *hash);

/* The Toeplitz hash of n input bytes under a key of key_len bytes: for every set bit of
 * the input, from the first byte's most significant bit on, the 32 key bits starting at
 * that bit's position are XORed into the result. Key bits past key_len count as 0 (a
 * key shorter than the input + 4 bytes only shortens the windows; 40 bytes cover the
 * longest input). */
uint32_t rss_toeplitz(const uint8_t *key, size_t key_len, const uint8_t *in, size_t n);

/* What the parser found in a received frame. */
enum rss_l3 { RSS_L3_NONE, RSS_L3_IPV4, RSS_L3_IPV6 };
enum rss_l4 { RSS_L4_NONE, RSS_L4_TCP, RSS_L4_UDP };
struct rss_packet {
    enum rss_l3 l3;
    enum rss_l4 l4;       /* a complete TCP or UDP header of an unfragmented packet */
    bool ipv6_ext;        /* IPv6 with extension headers before the payload */
    uint8_t addr_bytes;   /* 4 or 16 */
    /* The hash input in the spec's order, bytes as on the wire: source address,
     * destination address, then (l4 != NONE) source port, destination port. */
    uint8_t tuple[RSS_INPUT_BYTES_MAX];
};

/* Parse an Ethernet frame (from the destination MAC; no virtio-net header) of any
 * length and content: up to two 802.1Q / 802.1ad tags, then IPv4 or IPv6 (extension
 * headers skipped, at most 8), then TCP or UDP. Anything short, malformed or of another
 * protocol leaves l3 (or l4) NONE; the walk never reads past len. */
void rss_parse(const uint8_t *frame, size_t len, struct rss_packet *p);

/* The hash of a parsed packet under enabled hash types and a key, as "Hash calculation
 * for incoming packets" picks the fields: TCP before UDP before addresses only, for the
 * packet's IP version. Returns the report type (VIRTIO_NET_HASH_REPORT_*), NONE when no
 * enabled type applies (then *hash is 0). Hash types this kernel does not implement are
 * ignored. */
uint8_t rss_hash_packet(const struct rss_packet *p, uint32_t hash_types, const uint8_t *key,
                        size_t key_len, uint32_t *hash);

/* Where a received frame goes ("RSS processing", device normative). */
struct rss_steering {
    uint32_t hash;     /* the hash computed; 0 when report is NONE */
    uint8_t report;    /* VIRTIO_NET_HASH_REPORT_* (for VIRTIO_NET_F_HASH_REPORT) */
    uint16_t rx_queue; /* receive queue number: table[hash & mask], or unclassified_queue */
};
/* Hash the frame under the configuration in force and pick its receive queue: with no
 * hash, unclassified_queue; otherwise the table entry at hash & (table_len - 1). Before
 * any configuration: queue 0, no hash. If the queue chosen is being reset the device
 * must drop the frame ("RSS processing"): that is the caller's, which knows the queues. */
void rss_steer(const struct rss_state *s, const uint8_t *frame, size_t len,
               struct rss_steering *out);

#endif
