/* test_hist.c -- the streaming histogram (model/hist.h): bucket boundaries, exactness to
 * the stated resolution (1/1024), count/sum/min/max, empty, and values up to 2^64 - 1. */
#include <criterion/criterion.h>

#include <stdlib.h>

#include "hist.h"

static struct hist *new_hist(void)
{
    struct hist *h = hist_new();
    cr_assert_not_null(h);
    return h;
}

/* Exact nearest-rank percentile of sorted v[0..n). */
static uint64_t exact_percentile(const uint64_t *v, uint64_t n, double q)
{
    uint64_t rank = (uint64_t)(q * (double)n + 0.999999);
    rank = rank < 1 ? 1 : rank > n ? n : rank;
    return v[rank - 1];
}

static int cmp_u64(const void *a, const void *b)
{
    const uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

Test(hist, empty_reads_zero)
{
    struct hist *h = new_hist();
    cr_expect_eq(h->count, 0);
    cr_expect_eq(hist_percentile(h, 0.5), 0);
    cr_expect_eq(hist_percentile(h, 0.99), 0);
    cr_expect_eq(hist_mean(h), 0.0);
    cr_expect_eq(hist_count_below(h, 1000), 0);
    hist_free(h);
}

/* Below 2^10 every value is its own bucket; at 2^10 buckets become 2 wide, at 2^11 4
 * wide, and so on: the boundary probed at N-1, N and N+1. */
Test(hist, bucket_boundaries)
{
    for (uint64_t v = 0; v < HIST_SUB_COUNT; v++) {
        cr_expect_eq(hist_index(v), v);
        cr_expect(hist_is_boundary(v));
    }
    /* {value, bucket}: 1024..2047 still one value a bucket; 2048 and 2049 share one. */
    static const uint64_t at[][2] = {{1023, 1023}, {1024, 1024}, {1025, 1025}, {2047, 2047},
                                     {2048, 2048}, {2049, 2048}, {2050, 2049}};
    for (size_t k = 0; k < sizeof(at) / sizeof(at[0]); k++)
        cr_expect_eq(hist_index(at[k][0]), at[k][1], "value %llu", (unsigned long long)at[k][0]);
    cr_expect_eq(hist_lowest_equivalent(2049), 2048);
    cr_expect_eq(hist_highest_equivalent(2048), 2049);
    cr_expect(hist_is_boundary(2050));
    cr_expect(!hist_is_boundary(2051));
    cr_expect_eq(hist_index(4095), 3071);
    cr_expect_eq(hist_index(4096), 3072);
    cr_expect_eq(hist_lowest_equivalent(4099), 4096, "4 wide from 4096");
    cr_expect_eq(hist_highest_equivalent(4096), 4099);
    /* Consecutive buckets tile the line: each one's highest value + 1 is the next one's
     * lowest, and the index grows by one. */
    for (uint64_t v = 1000; v < (1u << 22);) {
        const uint64_t hi = hist_highest_equivalent(v);
        cr_assert_eq(hist_lowest_equivalent(v), v);
        cr_assert_eq(hist_index(hi + 1), hist_index(v) + 1, "at %llu", (unsigned long long)v);
        v = hi + 1;
    }
}

/* The bounds of stats.json's coarse histograms (2^k ns in picoseconds, from 16 ns) are
 * bucket boundaries, so those counts stay exact. */
Test(hist, coarse_bounds_are_boundaries)
{
    for (uint64_t ns = 16; ns <= 65536; ns *= 2)
        cr_expect(hist_is_boundary(ns * 1000), "%llu ns", (unsigned long long)ns);
}

/* No bucket is wider than 1/1024 of the values in it, so a percentile is below the exact
 * order statistic by less than 1/1024 of it, and never above it. */
Test(hist, percentiles_exact_to_the_resolution)
{
    enum { N = 20000 };
    uint64_t *v = malloc(N * sizeof(*v));
    struct hist *h = new_hist();
    uint64_t x = 88172645463325252ull; /* xorshift64 */
    for (int i = 0; i < N; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v[i] = 500000 + x % 5000000; /* 0.5 to 5.5 us in ps */
        if (i % 97 == 0)
            v[i] = x >> (20 + x % 44); /* and a spread of magnitudes, up to 2^44 */
        hist_record(h, v[i]);
    }
    qsort(v, N, sizeof(*v), cmp_u64);
    const double qs[] = {0.001, 0.1, 0.5, 0.9, 0.99, 0.999, 1.0};
    for (size_t k = 0; k < sizeof(qs) / sizeof(qs[0]); k++) {
        const uint64_t exact = exact_percentile(v, N, qs[k]);
        const uint64_t got = hist_percentile(h, qs[k]);
        cr_expect_leq(got, exact, "q %g", qs[k]);
        cr_expect_lt((double)(exact - got), (double)exact / 1024.0 + 1e-9, "q %g: %llu vs %llu", qs[k],
                     (unsigned long long)got, (unsigned long long)exact);
        cr_expect_eq(hist_lowest_equivalent(got), hist_lowest_equivalent(exact), "same bucket");
    }
    cr_expect_eq(hist_percentile(h, 1.0), v[N - 1], "the top percentile is the max");
    cr_expect_eq(h->min, v[0]);
    cr_expect_eq(h->max, v[N - 1]);
    uint64_t sum = 0; /* below 2^53: exact as a double */
    for (int i = 0; i < N; i++)
        sum += v[i];
    cr_expect_eq(hist_mean(h), (double)sum / N);
    /* Counts below a boundary are exact. */
    const uint64_t bound = 2048000; /* 2048 ns */
    cr_assert(hist_is_boundary(bound));
    uint64_t below = 0;
    while (below < N && v[below] < bound)
        below++;
    cr_expect_eq(hist_count_below(h, bound), below);
    free(v);
    hist_free(h);
}

/* Values the histogram holds exactly come back exactly; a single sample is every
 * percentile (clamped to min and max). */
Test(hist, exact_values_and_single_sample)
{
    struct hist *h = new_hist();
    for (uint64_t v = 1; v <= 1000; v++)
        hist_record(h, v);
    cr_expect_eq(hist_percentile(h, 0.5), 500);
    cr_expect_eq(hist_percentile(h, 0.99), 990);
    cr_expect_eq(hist_percentile(h, 0.001), 1);
    cr_expect_eq(hist_mean(h), 500.5);
    hist_clear(h);
    hist_record(h, 550001); /* inside a 512-wide bucket [549888, 550400) */
    cr_expect_eq(hist_lowest_equivalent(550001), 549888);
    cr_expect_eq(hist_highest_equivalent(550001), 550399);
    cr_expect_eq(hist_percentile(h, 0.5), 550001);
    cr_expect_eq(hist_percentile(h, 0.99), 550001);
    cr_expect_eq(hist_count_below(h, 550001), 0);
    cr_expect_eq(hist_count_below(h, 550002), 1);
    /* Two samples in one bucket: the lower percentiles read the smaller (the min), the
     * top one the larger (the max). */
    hist_record(h, 550300);
    cr_expect_eq(hist_percentile(h, 0.5), 550001);
    cr_expect_eq(hist_percentile(h, 1.0), 550300);
    hist_free(h);
}

/* The maximum is exact whatever its bucket's width. */
Test(hist, max_is_exact)
{
    struct hist *h = new_hist();
    hist_record(h, 3);
    hist_record(h, 123456789);
    hist_record(h, 123456790);
    cr_expect_eq(h->max, 123456790);
    cr_expect_eq(hist_percentile(h, 1.0), 123456790);
    cr_expect_eq(hist_percentile(h, 0.5), hist_lowest_equivalent(123456789),
                 "below the max, a percentile is its bucket's lowest value");
    hist_free(h);
}

/* Up to 2^64 - 1: the last bucket, no overflow in its bounds, and the sum carries. */
Test(hist, huge_values)
{
    struct hist *h = new_hist();
    cr_expect_eq(hist_index(UINT64_MAX), HIST_BUCKETS - 1);
    cr_expect_eq(hist_highest_equivalent(UINT64_MAX), UINT64_MAX);
    cr_expect_eq(hist_lowest_equivalent(UINT64_MAX), UINT64_MAX - ((1ull << 53) - 1));
    cr_expect_eq(hist_index(1ull << 63), HIST_BUCKETS - HIST_SUB_COUNT);
    hist_record(h, UINT64_MAX);
    hist_record(h, UINT64_MAX);
    hist_record(h, 1ull << 63);
    cr_expect_eq(h->sum_hi, 2);
    cr_expect_eq(h->sum_lo, (1ull << 63) - 2);
    cr_expect_eq(h->max, UINT64_MAX);
    cr_expect_eq(h->min, 1ull << 63);
    cr_expect_eq(hist_percentile(h, 1.0), UINT64_MAX);
    cr_expect_eq(hist_percentile(h, 0.5), hist_lowest_equivalent(UINT64_MAX));
    cr_expect_eq(hist_percentile(h, 0.1), 1ull << 63);
    cr_expect_eq(hist_mean(h), (2.0 * 18446744073709551615.0 + 9223372036854775808.0) / 3.0);
    cr_expect_eq(hist_count_below(h, UINT64_MAX), 1);
    hist_free(h);
}

/* Memory is fixed: the struct, whatever the number of samples. */
Test(hist, bounded_memory)
{
    cr_expect_eq(HIST_BUCKETS, 55u * 1024u);
    cr_expect_lt(sizeof(struct hist), 512u * 1024u);
}
