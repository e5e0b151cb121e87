/* traffic.c -- test frames the receiver can verify on its own (layout in traffic.h). */
#include "traffic.h"

#include <string.h>

#include "net_wire.h"
#include "virtio_wire.h"

#define OFF_SEQ    14u
#define OFF_LEN    22u
#define OFF_TIME   26u
#define OFF_CHECK  34u

_Static_assert(OFF_CHECK + 4u == TRAFFIC_HDR_BYTES, "test header layout");

/* A flow frame's headers (traffic.h). */
#define FLOW_OFF_IP     ETH_HDR_BYTES
#define FLOW_OFF_UDP    (FLOW_OFF_IP + IPV4_MIN_BYTES)
#define FLOW_OFF_SEQ    (FLOW_OFF_UDP + UDP_BYTES)
#define FLOW_OFF_TIME   (FLOW_OFF_SEQ + 6u)
#define FLOW_OFF_CHECK  (FLOW_OFF_TIME + 8u)
#define FLOW_IP_TTL     64u
#define FLOW_DST_PORT   9u     /* discard */
#define FLOW_SRC_PORT0  49152u /* the dynamic port range, 49152..65535 */

_Static_assert(FLOW_OFF_CHECK + 4u == TRAFFIC_FLOW_HDR_BYTES, "flow header layout");

/* SplitMix64: a small, well-mixed 64-bit generator; one step per 8 pattern bytes. */
static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

#define GOLDEN_GAMMA 0x9e3779b97f4a7c15ull

static uint64_t stream_start(uint64_t seed, uint64_t seq)
{
    return mix64(seed ^ mix64(seq + GOLDEN_GAMMA));
}

static uint32_t check_word(uint64_t seed, uint64_t seq, uint32_t len, uint64_t t)
{
    uint64_t h = mix64(seed ^ 0x5f1e5f1eull);
    h = mix64(h ^ seq);
    h = mix64(h ^ len);
    h = mix64(h ^ t);
    return (uint32_t)(h ^ (h >> 32));
}

/* Pattern bytes [off, len) (off: the end of the frame's headers): produce or compare.
 * Returns 0 on a mismatch. */
static int pattern(uint8_t *out, const uint8_t *in, uint32_t off, uint32_t len, uint64_t seed,
                   uint64_t seq)
{
    uint64_t state = stream_start(seed, seq);

    /* Whole words as one load or store each (a frame's pattern is most of what the
     * driver's CPU time costs the simulator), then the tail of a word. The word count is
     * taken first and producing and comparing get a loop each, so that a word costs its
     * mix and its store or compare and little else. */
    const uint32_t words = len > off ? (len - off) / 8u : 0u;
    if (out != NULL) {
        for (uint32_t i = 0; i < words; i++, off += 8u) {
            state += GOLDEN_GAMMA;
            vs_put_le64(out + off, mix64(state));
        }
    } else {
        for (uint32_t i = 0; i < words; i++, off += 8u) {
            state += GOLDEN_GAMMA;
            if (vs_le64(in + off) != mix64(state))
                return 0;
        }
    }
    if (off < len) {
        uint8_t word[8];
        state += GOLDEN_GAMMA;
        vs_put_le64(word, mix64(state));
        if (out != NULL)
            memcpy(out + off, word, len - off);
        else if (memcmp(in + off, word, len - off) != 0)
            return 0;
    }
    return 1;
}

uint32_t traffic_frame_len(uint32_t requested)
{
    if (requested < TRAFFIC_HDR_BYTES)
        return TRAFFIC_HDR_BYTES;
    if (requested > TRAFFIC_MAX_FRAME_BYTES)
        return TRAFFIC_MAX_FRAME_BYTES;
    return requested;
}

void traffic_build(uint8_t *frame, uint32_t len, const uint8_t mac[6], uint64_t seed,
                   uint64_t seq, uint64_t tx_time_ps)
{
    if (len < TRAFFIC_HDR_BYTES)
        return;
    memcpy(frame + ETH_OFF_DST, mac, 6);
    memcpy(frame + ETH_OFF_SRC, mac, 6);
    vs_put_be16(frame + ETH_OFF_TYPE, TRAFFIC_ETHERTYPE);
    vs_put_le64(frame + OFF_SEQ, seq);
    vs_put_le32(frame + OFF_LEN, len);
    vs_put_le64(frame + OFF_TIME, tx_time_ps);
    vs_put_le32(frame + OFF_CHECK, check_word(seed, seq, len, tx_time_ps));
    pattern(frame, NULL, TRAFFIC_HDR_BYTES, len, seed, seq);
}

void traffic_flow_of(uint32_t index, struct traffic_flow *f)
{
    index %= TRAFFIC_FLOWS_MAX;
    const uint8_t src[4] = {10, 1, (uint8_t)(index >> 8), (uint8_t)index};
    const uint8_t dst[4] = {10, 2, 0, 1};
    memcpy(f->src_ip, src, 4);
    memcpy(f->dst_ip, dst, 4);
    f->src_port = (uint16_t)(FLOW_SRC_PORT0 + index % (65536u - FLOW_SRC_PORT0));
    f->dst_port = FLOW_DST_PORT;
}

uint32_t traffic_flow_frame_len(uint32_t requested)
{
    return requested < TRAFFIC_FLOW_HDR_BYTES ? TRAFFIC_FLOW_HDR_BYTES : traffic_frame_len(requested);
}

/* The IPv4 and UDP headers of a flow frame of len bytes (checksum filled in). */
static void flow_headers(uint8_t *h, uint32_t len, uint64_t seq, const struct traffic_flow *f)
{
    uint8_t *ip = h + FLOW_OFF_IP, *udp = h + FLOW_OFF_UDP;
    memset(ip, 0, IPV4_MIN_BYTES);
    ip[0] = 0x45; /* version 4, 5 words */
    vs_put_be16(ip + IPV4_OFF_TOTAL_LEN, (uint16_t)(len - ETH_HDR_BYTES));
    vs_put_be16(ip + IPV4_OFF_ID, (uint16_t)seq);
    vs_put_be16(ip + IPV4_OFF_FRAG, IPV4_FRAG_DF_MASK);
    ip[IPV4_OFF_TTL] = FLOW_IP_TTL;
    ip[IPV4_OFF_PROTO] = IPPROTO_UDP_;
    memcpy(ip + IPV4_OFF_SRC, f->src_ip, 4);
    memcpy(ip + IPV4_OFF_DST, f->dst_ip, 4);
    vs_put_be16(ip + IPV4_OFF_CHECKSUM, (uint16_t)~inet_sum(ip, IPV4_MIN_BYTES));
    vs_put_be16(udp + UDP_OFF_SRC_PORT, f->src_port);
    vs_put_be16(udp + UDP_OFF_DST_PORT, f->dst_port);
    vs_put_be16(udp + UDP_OFF_LEN, (uint16_t)(len - FLOW_OFF_UDP));
    vs_put_be16(udp + UDP_OFF_CHECKSUM, 0);
}

/* A flow frame's check word also covers its tuple (UDP carries no checksum here). */
static uint32_t flow_check_word(uint64_t seed, uint64_t seq, uint32_t len, uint64_t t,
                                const struct traffic_flow *f)
{
    uint64_t tuple = (uint64_t)vs_be32(f->src_ip) << 32 | vs_be32(f->dst_ip);
    tuple = mix64(tuple ^ ((uint64_t)f->src_port << 16 | f->dst_port));
    return check_word(seed ^ tuple, seq, len, t);
}

static void put_le48(uint8_t *p, uint64_t v)
{
    uint8_t w[8];
    vs_put_le64(w, v);
    memcpy(p, w, 6);
}

static uint64_t le48(const uint8_t *p)
{
    uint8_t w[8] = {0};
    memcpy(w, p, 6);
    return vs_le64(w);
}

void traffic_build_flow(uint8_t *frame, uint32_t len, const uint8_t mac[6], uint64_t seed,
                        uint64_t seq, uint64_t tx_time_ps, const struct traffic_flow *flow)
{
    if (len < TRAFFIC_FLOW_HDR_BYTES || len > TRAFFIC_MAX_FRAME_BYTES)
        return;
    seq &= TRAFFIC_FLOW_SEQ_MASK;
    memcpy(frame + ETH_OFF_DST, mac, 6);
    memcpy(frame + ETH_OFF_SRC, mac, 6);
    vs_put_be16(frame + ETH_OFF_TYPE, ETHERTYPE_IPV4);
    flow_headers(frame, len, seq, flow);
    put_le48(frame + FLOW_OFF_SEQ, seq);
    vs_put_le64(frame + FLOW_OFF_TIME, tx_time_ps);
    vs_put_le32(frame + FLOW_OFF_CHECK, flow_check_word(seed, seq, len, tx_time_ps, flow));
    pattern(frame, NULL, TRAFFIC_FLOW_HDR_BYTES, len, seed, seq);
}

/* A flow frame's headers: its fields, then whether its IPv4 and UDP headers are the
 * ones traffic_build_flow writes for that length, sequence and tuple. */
static enum traffic_verdict check_flow_header(const uint8_t *frame, uint32_t len,
                                              struct traffic_info *info)
{
    if (len < TRAFFIC_FLOW_HDR_BYTES)
        return TRAFFIC_TOO_SHORT;
    const uint8_t *ip = frame + FLOW_OFF_IP, *udp = frame + FLOW_OFF_UDP;
    info->is_flow = 1;
    info->seq = le48(frame + FLOW_OFF_SEQ);
    info->len = (uint32_t)vs_be16(ip + IPV4_OFF_TOTAL_LEN) + ETH_HDR_BYTES;
    info->tx_time_ps = vs_le64(frame + FLOW_OFF_TIME);
    memcpy(info->flow.src_ip, ip + IPV4_OFF_SRC, 4);
    memcpy(info->flow.dst_ip, ip + IPV4_OFF_DST, 4);
    info->flow.src_port = vs_be16(udp + UDP_OFF_SRC_PORT);
    info->flow.dst_port = vs_be16(udp + UDP_OFF_DST_PORT);
    if (info->len < TRAFFIC_FLOW_HDR_BYTES)
        return TRAFFIC_BAD_HEADER;
    uint8_t want[TRAFFIC_FLOW_HDR_BYTES];
    flow_headers(want, info->len, info->seq, &info->flow);
    if (memcmp(want + FLOW_OFF_IP, ip, FLOW_OFF_SEQ - FLOW_OFF_IP) != 0)
        return TRAFFIC_BAD_HEADER;
    return TRAFFIC_GOOD;
}

enum traffic_verdict traffic_check(const uint8_t *frame, uint32_t len, int exact_len,
                                   const uint8_t mac[6], uint64_t seed, struct traffic_info *info)
{
    if (len < TRAFFIC_HDR_BYTES)
        return TRAFFIC_TOO_SHORT;
    const uint16_t type = vs_be16(frame + ETH_OFF_TYPE);
    uint32_t hdr_bytes = TRAFFIC_HDR_BYTES;
    uint32_t check, want;
    memset(info, 0, sizeof(*info));
    if (type == ETHERTYPE_IPV4) {
        const enum traffic_verdict v = check_flow_header(frame, len, info);
        if (v == TRAFFIC_TOO_SHORT)
            return v;
        hdr_bytes = TRAFFIC_FLOW_HDR_BYTES;
        check = vs_le32(frame + FLOW_OFF_CHECK);
        if (memcmp(frame + ETH_OFF_DST, mac, 6) != 0 || memcmp(frame + ETH_OFF_SRC, mac, 6) != 0)
            return TRAFFIC_BAD_ETHERNET;
        if (v != TRAFFIC_GOOD)
            return v;
        want = flow_check_word(seed, info->seq, info->len, info->tx_time_ps, &info->flow);
    } else {
        info->seq = vs_le64(frame + OFF_SEQ);
        info->len = vs_le32(frame + OFF_LEN);
        info->tx_time_ps = vs_le64(frame + OFF_TIME);
        check = vs_le32(frame + OFF_CHECK);
        if (memcmp(frame + ETH_OFF_DST, mac, 6) != 0 || memcmp(frame + ETH_OFF_SRC, mac, 6) != 0 ||
            type != TRAFFIC_ETHERTYPE)
            return TRAFFIC_BAD_ETHERNET;
        want = check_word(seed, info->seq, info->len, info->tx_time_ps);
    }
    if (check != want)
        return TRAFFIC_BAD_HEADER;
    if (exact_len ? info->len != len : (info->len > len || info->len < hdr_bytes))
        return TRAFFIC_BAD_LENGTH;
    if (!pattern(NULL, frame, hdr_bytes, info->len, seed, info->seq))
        return TRAFFIC_BAD_PAYLOAD;
    return TRAFFIC_GOOD;
}

/* ---- seeded randomness ---- */

void traffic_rng_seed(struct traffic_rng *r, uint64_t seed, uint64_t stream)
{
    r->state = mix64(seed ^ mix64(stream ^ 0xa5a5a5a5a5a5a5a5ull));
}

uint64_t traffic_rng_next(struct traffic_rng *r)
{
    r->state += GOLDEN_GAMMA;
    return mix64(r->state);
}

double traffic_rng_unit(struct traffic_rng *r)
{
    return (double)(traffic_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

uint32_t traffic_rng_below(struct traffic_rng *r, uint32_t n)
{
    /* Multiply-shift: the bias is below n / 2^32, far under anything a run can see. */
    return (uint32_t)(((traffic_rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

/* Natural logarithm of x in (0, 1], without libm (so every platform gives the same bits
 * and the kernels link alone): x = m * 2^e with m in [1, 2), ln m = 2 atanh(s) with
 * s = (m - 1) / (m + 1) <= 1/3, a series that reaches double precision in 20 terms. */
static double ln_unit(double x)
{
    uint64_t bits;
    int e;
    double m, s, s2, term, sum = 0.0;

    memcpy(&bits, &x, sizeof(bits));
    e = (int)((bits >> 52) & 0x7ffu) - 1023;
    bits = (bits & 0x000fffffffffffffull) | 0x3ff0000000000000ull;
    memcpy(&m, &bits, sizeof(m));
    s = (m - 1.0) / (m + 1.0);
    s2 = s * s;
    term = s;
    for (int k = 1; k < 40; k += 2) {
        sum += term / k;
        term *= s2;
    }
    return (double)e * 0.69314718055994530942 + 2.0 * sum;
}

double traffic_rng_exp(struct traffic_rng *r, double mean)
{
    /* Inverse transform; 1 - u is in [2^-53, 1], normal, so the log is finite. */
    return -mean * ln_unit(1.0 - traffic_rng_unit(r));
}

/* ---- arrival processes ---- */

/* Length of an on or off period: never zero, so an on period always carries a frame and
 * the schedule always moves forward. */
static double period_ps(struct traffic_arrival *a, double mean)
{
    double t = a->periods == TRAFFIC_PERIOD_EXPONENTIAL ? traffic_rng_exp(&a->rng, mean) : mean;
    return t < 1.0 ? 1.0 : t;
}

void traffic_arrival_init(struct traffic_arrival *a, enum traffic_arrival_kind kind,
                          double interval_ps, enum traffic_period_kind periods, double on_ps,
                          double off_ps, uint64_t seed, double start_ps)
{
    memset(a, 0, sizeof(*a));
    a->kind = kind;
    a->periods = periods;
    a->interval_ps = interval_ps > 0.0 ? interval_ps : 0.0;
    a->on_ps = on_ps;
    a->off_ps = off_ps > 0.0 ? off_ps : 0.0;
    a->start_ps = start_ps;
    traffic_rng_seed(&a->rng, seed, 0x61727276ull /* "arrv" */);
    switch (kind) {
    case TRAFFIC_ARRIVAL_POISSON:
        a->next_ps = start_ps + traffic_rng_exp(&a->rng, a->interval_ps);
        break;
    case TRAFFIC_ARRIVAL_ONOFF:
        a->next_ps = start_ps;
        a->on_end_ps = start_ps + period_ps(a, on_ps);
        break;
    default:
        a->next_ps = start_ps;
        break;
    }
}

double traffic_arrival_due(const struct traffic_arrival *a)
{
    if (a->kind == TRAFFIC_ARRIVAL_CLOSED)
        return 0.0;
    if (a->kind == TRAFFIC_ARRIVAL_CONSTANT)
        return a->interval_ps > 0.0 ? a->start_ps + (double)a->count * a->interval_ps : 0.0;
    return a->next_ps;
}

void traffic_arrival_advance(struct traffic_arrival *a)
{
    a->count++;
    switch (a->kind) {
    case TRAFFIC_ARRIVAL_POISSON:
        a->next_ps += traffic_rng_exp(&a->rng, a->interval_ps);
        break;
    case TRAFFIC_ARRIVAL_ONOFF:
        /* Frames leave at the rate from the start of each on period; the first frame that
         * would leave at or after its end waits for the next on period, after an off. */
        a->next_ps += a->interval_ps;
        if (a->next_ps >= a->on_end_ps) {
            a->next_ps = a->on_end_ps + period_ps(a, a->off_ps);
            a->on_end_ps = a->next_ps + period_ps(a, a->on_ps);
        }
        break;
    default:
        break;
    }
}

/* ---- frame-size mixes ---- */

uint32_t traffic_imix_len(uint64_t index)
{
    /* S M S S M S L S M S S M: 7 small, 4 medium, 1 large. */
    static const uint32_t pattern[TRAFFIC_IMIX_CYCLE] = {
        TRAFFIC_IMIX_SMALL_BYTES, TRAFFIC_IMIX_MEDIUM_BYTES, TRAFFIC_IMIX_SMALL_BYTES,
        TRAFFIC_IMIX_SMALL_BYTES, TRAFFIC_IMIX_MEDIUM_BYTES, TRAFFIC_IMIX_SMALL_BYTES,
        TRAFFIC_IMIX_LARGE_BYTES, TRAFFIC_IMIX_SMALL_BYTES, TRAFFIC_IMIX_MEDIUM_BYTES,
        TRAFFIC_IMIX_SMALL_BYTES, TRAFFIC_IMIX_SMALL_BYTES, TRAFFIC_IMIX_MEDIUM_BYTES,
    };
    return pattern[index % TRAFFIC_IMIX_CYCLE];
}
