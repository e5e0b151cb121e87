/* test_traffic.c -- the pure parts of the traffic generators: the seeded generator,
 * arrival processes and frame-size mixes (workloads/traffic.h). Statistical checks use
 * a fixed seed, so they are deterministic; their tolerances are several standard errors
 * wide. Test frames, plain and flow. */
#include <criterion/criterion.h>
#include <math.h> /* fabs, isfinite: builtins, no libm */
#include <stdint.h>
#include <string.h>

#include "net_wire.h"
#include "rss.h"
#include "traffic.h"

#define SAMPLES 100000u

Test(traffic_rng, same_seed_same_stream_other_stream_differs)
{
    struct traffic_rng a, b, c;

    traffic_rng_seed(&a, 42, 1);
    traffic_rng_seed(&b, 42, 1);
    traffic_rng_seed(&c, 42, 2);
    int differ = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = traffic_rng_next(&a);
        cr_assert_eq(x, traffic_rng_next(&b));
        differ += x != traffic_rng_next(&c);
    }
    cr_expect_gt(differ, 990);
}

Test(traffic_rng, unit_in_range_with_mean_one_half)
{
    struct traffic_rng r;
    double sum = 0.0;

    traffic_rng_seed(&r, 7, 0);
    for (unsigned i = 0; i < SAMPLES; i++) {
        double u = traffic_rng_unit(&r);
        cr_assert(u >= 0.0 && u < 1.0);
        sum += u;
    }
    /* standard error 0.289 / sqrt(1e5) ~ 0.0009 */
    cr_expect_lt(fabs(sum / SAMPLES - 0.5), 0.005);
}

Test(traffic_rng, below_is_uniform)
{
    struct traffic_rng r;
    unsigned hist[5] = { 0 };

    traffic_rng_seed(&r, 3, 0);
    for (unsigned i = 0; i < SAMPLES; i++) {
        uint32_t k = traffic_rng_below(&r, 5);
        cr_assert_lt(k, 5u);
        hist[k]++;
    }
    for (int k = 0; k < 5; k++)
        cr_expect_lt(fabs((double)hist[k] - SAMPLES / 5.0), 0.02 * SAMPLES, "bucket %d: %u", k, hist[k]);
    cr_expect_eq(traffic_rng_below(&r, 0), 0u);
}

/* Exponential samples: mean and standard deviation both equal the requested mean. */
Test(traffic_rng, exponential_mean_and_spread)
{
    struct traffic_rng r;
    double sum = 0.0, sq = 0.0;

    traffic_rng_seed(&r, 11, 0);
    for (unsigned i = 0; i < SAMPLES; i++) {
        double x = traffic_rng_exp(&r, 250.0);
        cr_assert(x >= 0.0 && isfinite(x));
        sum += x;
        sq += x * x;
    }
    double mean = sum / SAMPLES;
    double var = sq / SAMPLES - mean * mean;
    cr_expect_lt(fabs(mean - 250.0) / 250.0, 0.02, "mean %f", mean);
    cr_expect_lt(fabs(var - 250.0 * 250.0) / (250.0 * 250.0), 0.06, "variance %f", var);
}

/* The distribution function of the exponential (the libm-free logarithm behind it):
 * P(X > ln 2) = 1/2, P(X > 1) = 1/e, P(X > 3) = e^-3, at mean 1. */
Test(traffic_rng, exponential_tail_probabilities)
{
    struct traffic_rng r;
    unsigned above_ln2 = 0, above_1 = 0, above_3 = 0;

    traffic_rng_seed(&r, 5, 9);
    for (unsigned i = 0; i < SAMPLES; i++) {
        double x = traffic_rng_exp(&r, 1.0);
        above_ln2 += x > 0.69314718055994531;
        above_1 += x > 1.0;
        above_3 += x > 3.0;
    }
    cr_expect_lt(fabs(above_ln2 / (double)SAMPLES - 0.5), 0.006);
    cr_expect_lt(fabs(above_1 / (double)SAMPLES - 0.36787944117144233), 0.006);
    cr_expect_lt(fabs(above_3 / (double)SAMPLES - 0.049787068367863944), 0.003);
}

/* Constant arrivals keep the schedule start + n * interval exactly. */
Test(traffic_arrival, constant_is_exact)
{
    struct traffic_arrival a;

    traffic_arrival_init(&a, TRAFFIC_ARRIVAL_CONSTANT, 1500.0, TRAFFIC_PERIOD_FIXED, 0, 0, 1, 1e6);
    for (int n = 0; n < 100; n++) {
        cr_assert_eq(traffic_arrival_due(&a), 1e6 + n * 1500.0);
        traffic_arrival_advance(&a);
    }
    traffic_arrival_init(&a, TRAFFIC_ARRIVAL_CONSTANT, 0.0, TRAFFIC_PERIOD_FIXED, 0, 0, 1, 1e6);
    cr_expect_eq(traffic_arrival_due(&a), 0.0, "no rate: always due");
    /* Closed loop has no schedule at all, whatever interval it is given: the sender's
     * window of outstanding requests is the only limit. */
    traffic_arrival_init(&a, TRAFFIC_ARRIVAL_CLOSED, 1500.0, TRAFFIC_PERIOD_FIXED, 0, 0, 1, 1e6);
    for (int n = 0; n < 10; n++) {
        cr_assert_eq(traffic_arrival_due(&a), 0.0);
        traffic_arrival_advance(&a);
    }
}

/* Poisson: gaps are exponential, so the mean gap is the interval and the count of
 * arrivals in a window has variance equal to its mean; departure times never go back. */
Test(traffic_arrival, poisson_mean_gap_and_dispersion)
{
    struct traffic_arrival a;
    double prev = 1000.0, last = 0.0;
    double sum = 0.0, sq = 0.0;
    unsigned windows = 0, in_window = 0;
    const double window = 10 * 2000.0; /* mean 10 arrivals per window */
    double window_end = 1000.0 + window;

    traffic_arrival_init(&a, TRAFFIC_ARRIVAL_POISSON, 2000.0, TRAFFIC_PERIOD_FIXED, 0, 0, 99, 1000.0);
    for (unsigned i = 0; i < SAMPLES; i++) {
        double t = traffic_arrival_due(&a);
        cr_assert_geq(t, prev);
        while (t >= window_end) {
            sum += in_window;
            sq += (double)in_window * in_window;
            windows++;
            in_window = 0;
            window_end += window;
        }
        in_window++;
        prev = last = t;
        traffic_arrival_advance(&a);
    }
    double mean_gap = (last - 1000.0) / (SAMPLES - 1);
    cr_expect_lt(fabs(mean_gap - 2000.0) / 2000.0, 0.02, "mean gap %f", mean_gap);
    double m = sum / windows, var = sq / windows - m * m;
    cr_expect_lt(fabs(var / m - 1.0), 0.1, "index of dispersion %f", var / m);
}

Test(traffic_arrival, poisson_same_seed_same_schedule)
{
    struct traffic_arrival a, b, c;

    traffic_arrival_init(&a, TRAFFIC_ARRIVAL_POISSON, 700.0, TRAFFIC_PERIOD_FIXED, 0, 0, 5, 0);
    traffic_arrival_init(&b, TRAFFIC_ARRIVAL_POISSON, 700.0, TRAFFIC_PERIOD_FIXED, 0, 0, 5, 0);
    traffic_arrival_init(&c, TRAFFIC_ARRIVAL_POISSON, 700.0, TRAFFIC_PERIOD_FIXED, 0, 0, 6, 0);
    int differ = 0;
    for (int i = 0; i < 1000; i++) {
        cr_assert_eq(traffic_arrival_due(&a), traffic_arrival_due(&b));
        differ += traffic_arrival_due(&a) != traffic_arrival_due(&c);
        traffic_arrival_advance(&a);
        traffic_arrival_advance(&b);
        traffic_arrival_advance(&c);
    }
    cr_expect_gt(differ, 990);
}

/* Fixed on/off: on 10 us at one frame per 1 us, off 30 us: frames at 0..9 us, 40..49 us,
 * 80..89 us, ... exactly. */
Test(traffic_arrival, onoff_fixed_exact_schedule)
{
    struct traffic_arrival a;

    traffic_arrival_init(&a, TRAFFIC_ARRIVAL_ONOFF, 1e6, TRAFFIC_PERIOD_FIXED, 10e6, 30e6, 1, 0);
    for (int n = 0; n < 100; n++) {
        double want = (n / 10) * 40e6 + (n % 10) * 1e6;
        cr_assert_eq(traffic_arrival_due(&a), want, "frame %d", n);
        traffic_arrival_advance(&a);
    }
}

/* Exponential on/off periods: an on period of length L carries ceil(L / interval) frames,
 * E = 1 / (1 - e^(-interval/on)) for exponential L, so the long-run rate is that over
 * (on + off). Here interval = on / 5: 5.51666 frames per 20 ns cycle. */
Test(traffic_arrival, onoff_exponential_mean_rate)
{
    struct traffic_arrival a;
    const double interval = 1000.0, on = 5000.0, off = 15000.0;
    double prev = 0.0;

    traffic_arrival_init(&a, TRAFFIC_ARRIVAL_ONOFF, interval, TRAFFIC_PERIOD_EXPONENTIAL, on, off, 3, 0);
    for (unsigned i = 0; i < SAMPLES; i++) {
        cr_assert_geq(traffic_arrival_due(&a), prev);
        prev = traffic_arrival_due(&a);
        traffic_arrival_advance(&a);
    }
    double rate = SAMPLES / traffic_arrival_due(&a);
    double want = 5.516655566 / (on + off);
    cr_expect_lt(fabs(rate - want) / want, 0.03, "rate %g want %g", rate, want);
}

/* Simple IMIX: exactly 7:4:1 over every 12 consecutive frames, wherever they start. */
Test(traffic_imix, proportions_exact_over_every_cycle)
{
    for (uint64_t start = 0; start < 2 * TRAFFIC_IMIX_CYCLE; start++) {
        unsigned s = 0, m = 0, l = 0;
        for (uint64_t i = start; i < start + TRAFFIC_IMIX_CYCLE; i++) {
            uint32_t len = traffic_imix_len(i);
            s += len == TRAFFIC_IMIX_SMALL_BYTES;
            m += len == TRAFFIC_IMIX_MEDIUM_BYTES;
            l += len == TRAFFIC_IMIX_LARGE_BYTES;
        }
        cr_expect_eq(s, 7u);
        cr_expect_eq(m, 4u);
        cr_expect_eq(l, 1u);
    }
    /* 64, 570 and 1518 bytes on the wire once the 4-byte FCS is added. */
    cr_expect_eq(TRAFFIC_IMIX_SMALL_BYTES + 4u, 64u);
    cr_expect_eq(TRAFFIC_IMIX_MEDIUM_BYTES + 4u, 570u);
    cr_expect_eq(TRAFFIC_IMIX_LARGE_BYTES + 4u, 1518u);
    cr_expect_geq(TRAFFIC_IMIX_SMALL_BYTES, TRAFFIC_HDR_BYTES);
}

/* Test frames: a built frame checks good at every length around the pattern's 8-byte
 * words (the header is 38 bytes, so words end at 46, 54, ...), and one flipped pattern
 * byte anywhere, in a whole word or in the last partial one, is a bad payload. The
 * pattern is a function of (seed, sequence) alone: two builds give the same bytes. */
Test(traffic_frame, built_frames_check_and_every_flipped_byte_is_caught)
{
    static const uint8_t mac[6] = {2, 0, 0, 0, 0, 1};
    static const uint32_t lens[] = {TRAFFIC_HDR_BYTES, TRAFFIC_HDR_BYTES + 1, 45, 46, 47, 53, 54, 64, 1514};
    uint8_t frame[1514], again[1514];
    for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
        const uint32_t len = lens[k];
        struct traffic_info info;
        traffic_build(frame, len, mac, 7, 1000 + k, 5555);
        traffic_build(again, len, mac, 7, 1000 + k, 5555);
        cr_assert_eq(memcmp(frame, again, len), 0, "len %u: deterministic", len);
        cr_assert_eq(traffic_check(frame, len, 1, mac, 7, &info), TRAFFIC_GOOD, "len %u", len);
        cr_expect_eq(info.seq, 1000 + k);
        cr_expect_eq(info.len, len);
        for (uint32_t off = TRAFFIC_HDR_BYTES; off < len; off++) {
            frame[off] ^= 0x10;
            cr_expect_eq(traffic_check(frame, len, 1, mac, 7, &info), TRAFFIC_BAD_PAYLOAD,
                         "len %u, byte %u flipped", len, off);
            frame[off] ^= 0x10;
        }
        cr_expect_eq(traffic_check(frame, len, 1, mac, 8, &info), TRAFFIC_BAD_HEADER, "other seed");
    }
}

/* Flow frames (traffic.h): IPv4 + UDP around the test header. A built frame checks good
 * at every length around the pattern's words and the 60-byte minimum, carries a valid
 * IPv4 header checksum (RFC 791: the header sums to 0xffff) and the lengths RFC 791 and
 * RFC 768 define, and hands its tuple back to the checker. */
Test(traffic_flow, built_frames_check_with_valid_ipv4_and_udp_headers)
{
    static const uint8_t mac[6] = {2, 0, 0, 0, 0, 1};
    static const uint32_t lens[] = {TRAFFIC_FLOW_HDR_BYTES, 61, 67, 68, 69, 128, 1514, 9014};
    static uint8_t frame[9014], again[9014];
    struct traffic_flow f;
    traffic_flow_of(300, &f);
    for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
        const uint32_t len = lens[k];
        struct traffic_info info;
        traffic_build_flow(frame, len, mac, 7, 5000 + k, 99, &f);
        traffic_build_flow(again, len, mac, 7, 5000 + k, 99, &f);
        cr_assert_eq(memcmp(frame, again, len), 0, "len %u: deterministic", len);
        cr_assert_eq(traffic_check(frame, len, 1, mac, 7, &info), TRAFFIC_GOOD, "len %u", len);
        cr_expect(info.is_flow);
        cr_expect_eq(info.seq, 5000 + k);
        cr_expect_eq(info.len, len);
        cr_expect_eq(info.tx_time_ps, 99u);
        cr_expect_eq(memcmp(&info.flow, &f, sizeof(f)), 0, "the tuple comes back");
        cr_expect_eq(inet_sum(frame + ETH_HDR_BYTES, IPV4_MIN_BYTES), 0xffffu, "IPv4 checksum");
        cr_expect_eq(vs_be16(frame + ETH_OFF_TYPE), ETHERTYPE_IPV4);
        cr_expect_eq(vs_be16(frame + ETH_HDR_BYTES + IPV4_OFF_TOTAL_LEN), len - ETH_HDR_BYTES);
        cr_expect_eq(frame[ETH_HDR_BYTES + IPV4_OFF_PROTO], IPPROTO_UDP_);
        cr_expect_eq(vs_be16(frame + ETH_HDR_BYTES + IPV4_MIN_BYTES + UDP_OFF_LEN),
                     len - ETH_HDR_BYTES - IPV4_MIN_BYTES);
        for (uint32_t off = TRAFFIC_FLOW_HDR_BYTES; off < len; off += 7) {
            frame[off] ^= 0x10;
            cr_expect_eq(traffic_check(frame, len, 1, mac, 7, &info), TRAFFIC_BAD_PAYLOAD,
                         "len %u, byte %u flipped", len, off);
            frame[off] ^= 0x10;
        }
        cr_expect_eq(traffic_check(frame, len, 1, mac, 8, &info), TRAFFIC_BAD_HEADER, "other seed");
    }
    cr_expect_eq(traffic_flow_frame_len(0), TRAFFIC_FLOW_HDR_BYTES);
    cr_expect_eq(traffic_flow_frame_len(64), 64u);
    cr_expect_eq(traffic_flow_frame_len(1u << 20), TRAFFIC_MAX_FRAME_BYTES);
}

/* Every header byte of a flow frame is checked: a flipped byte in the MACs is a bad
 * Ethernet header, anywhere in IPv4, UDP or the test header a bad header (or, in the
 * total length, a length that no longer fits). Padding after the packet is allowed only
 * when the length is not exact. */
Test(traffic_flow, every_header_byte_is_checked)
{
    static const uint8_t mac[6] = {2, 0, 0, 0, 0, 1};
    uint8_t frame[128];
    struct traffic_flow f;
    struct traffic_info info;
    traffic_flow_of(1, &f);
    traffic_build_flow(frame, 100, mac, 3, 77, 1234, &f);
    for (uint32_t off = 0; off < TRAFFIC_FLOW_HDR_BYTES; off++) {
        frame[off] ^= 0x01;
        const enum traffic_verdict v = traffic_check(frame, 100, 1, mac, 3, &info);
        if (off < ETH_OFF_TYPE)
            cr_expect_eq(v, TRAFFIC_BAD_ETHERNET, "byte %u", off);
        else
            cr_expect(v == TRAFFIC_BAD_HEADER || v == TRAFFIC_BAD_ETHERNET ||
                      v == TRAFFIC_BAD_LENGTH, "byte %u: verdict %d", off, v);
        cr_expect_neq(v, TRAFFIC_GOOD, "byte %u", off);
        frame[off] ^= 0x01;
    }
    cr_expect_eq(traffic_check(frame, 100, 1, mac, 3, &info), TRAFFIC_GOOD);
    cr_expect_eq(traffic_check(frame, 128, 1, mac, 3, &info), TRAFFIC_BAD_LENGTH, "padding, exact");
    cr_expect_eq(traffic_check(frame, 128, 0, mac, 3, &info), TRAFFIC_GOOD, "padding allowed");
    cr_expect_eq(traffic_check(frame, 59, 0, mac, 3, &info), TRAFFIC_TOO_SHORT);
}

/* Flows are distinct 4-tuples (up to TRAFFIC_FLOWS_MAX), in the address and port ranges
 * traffic.h names, and the RSS parser (model/rss.h) reads back the tuple a flow frame
 * carries, as a UDP over IPv4 packet: the hash the device steers by has the flow's
 * addresses and ports as input. */
Test(traffic_flow, tuples_are_distinct_and_parse_as_udp_over_ipv4)
{
    static const uint8_t mac[6] = {2, 0, 0, 0, 0, 1};
    static uint8_t seen[TRAFFIC_FLOWS_MAX / 8];
    memset(seen, 0, sizeof(seen));
    for (uint32_t i = 0; i < TRAFFIC_FLOWS_MAX; i++) {
        struct traffic_flow f;
        traffic_flow_of(i, &f);
        cr_assert_eq(f.src_ip[0], 10);
        cr_assert_geq(f.src_port, 49152u);
        cr_assert_eq(f.dst_port, 9u);
        const uint32_t key = (uint32_t)f.src_ip[2] << 8 | f.src_ip[3];
        cr_assert_eq(seen[key / 8] & (1u << (key % 8)), 0, "flow %u repeats a source", i);
        seen[key / 8] |= (uint8_t)(1u << (key % 8));
    }
    struct traffic_flow f, again;
    traffic_flow_of(TRAFFIC_FLOWS_MAX + 5, &f);
    traffic_flow_of(5, &again);
    cr_expect_eq(memcmp(&f, &again, sizeof(f)), 0, "indices wrap");

    uint8_t frame[64];
    traffic_flow_of(4242, &f);
    traffic_build_flow(frame, 64, mac, 1, 2, 3, &f);
    struct rss_packet p;
    rss_parse(frame, 64, &p);
    cr_assert_eq(p.l3, RSS_L3_IPV4);
    cr_assert_eq(p.l4, RSS_L4_UDP);
    cr_expect_eq(memcmp(p.tuple, f.src_ip, 4), 0);
    cr_expect_eq(memcmp(p.tuple + 4, f.dst_ip, 4), 0);
    cr_expect_eq(vs_be16(p.tuple + 8), f.src_port);
    cr_expect_eq(vs_be16(p.tuple + 10), f.dst_port);
}
