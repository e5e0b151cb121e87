/* hist.h -- a streaming histogram of unsigned 64-bit samples (latencies in
 * picoseconds): log-linear buckets in the manner of Gil Tene's HdrHistogram, so memory
 * is fixed whatever the number of samples, and no call allocates.
 *
 * Resolution: values below 2^HIST_SUB_BITS have a bucket each; above, each power of two
 * [2^e, 2^(e+1)) is cut into 2^HIST_SUB_BITS equal buckets of width 2^(e - HIST_SUB_BITS)
 * (still 1 up to 2^(HIST_SUB_BITS+1): values below 2048 are exact), so a bucket is never
 * wider than 1/1024 of any value in it.
 * A percentile is the lowest value of the bucket holding the nearest-rank sample, raised
 * to the minimum if that is higher, and the maximum itself when the rank is the last:
 * never above the exact order statistic and less than 1/1024 of it below. The count,
 * sum (hence the mean), min and max are exact, and so is the number of samples below
 * any bucket boundary (hist_count_below).
 *
 * Debian 12 packages no C implementation of HdrHistogram (only the Java and Go ones),
 * hence this small one. */
#ifndef VIOSIM_HIST_H
#define VIOSIM_HIST_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HIST_SUB_BITS 10u
#define HIST_SUB_COUNT (1u << HIST_SUB_BITS)
/* The linear range [0, 2^B) plus one row of 2^B buckets for each power of two from
 * 2^B to 2^63. */
#define HIST_BUCKETS ((64u - HIST_SUB_BITS + 1u) * HIST_SUB_COUNT)

struct hist {
    uint64_t count;
    uint64_t sum_lo, sum_hi; /* the exact sum of every sample, 128 bits */
    uint64_t min, max;       /* valid when count > 0 */
    uint64_t buckets[HIST_BUCKETS];
};

/* Bucket index of v. */
static inline uint32_t hist_index(uint64_t v)
{
    if (v < HIST_SUB_COUNT)
        return (uint32_t)v;
    const uint32_t shift = 63u - (uint32_t)__builtin_clzll(v) - HIST_SUB_BITS;
    return (shift + 1u) * HIST_SUB_COUNT + (uint32_t)((v >> shift) - HIST_SUB_COUNT);
}

/* Adds one sample: a few arithmetic operations, no allocation. */
static inline void hist_record(struct hist *h, uint64_t v)
{
    if (h->count == 0 || v < h->min)
        h->min = v;
    if (h->count == 0 || v > h->max)
        h->max = v;
    h->count++;
    h->sum_lo += v;
    h->sum_hi += h->sum_lo < v; /* carry */
    h->buckets[hist_index(v)]++;
}

/* A new empty histogram from calloc (its pages are mapped only as buckets are first
 * used), NULL when out of memory; hist_free releases it. */
struct hist *hist_new(void);
void hist_free(struct hist *h);
/* Empties h. */
void hist_clear(struct hist *h);

/* The lowest and the highest value that fall in v's bucket. */
uint64_t hist_lowest_equivalent(uint64_t v);
uint64_t hist_highest_equivalent(uint64_t v);
/* True when v is the lowest value of its bucket: hist_count_below(h, v) is exact. */
bool hist_is_boundary(uint64_t v);

/* Nearest-rank q-quantile (0 < q <= 1) to the resolution above; 0 when empty. */
uint64_t hist_percentile(const struct hist *h, double q);
/* The exact mean (the sum as a double divided by the count); 0 when empty. */
double hist_mean(const struct hist *h);
/* Samples below `bound`; exact when hist_is_boundary(bound), else it counts the whole
 * bucket of `bound` as not below. */
uint64_t hist_count_below(const struct hist *h, uint64_t bound);

#ifdef __cplusplus
}
#endif

#endif
