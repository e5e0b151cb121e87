/* hist.c -- the streaming histogram's queries (hist.h). */
#include "hist.h"

#include <stdlib.h>
#include <string.h>

struct hist *hist_new(void)
{
    return calloc(1, sizeof(struct hist));
}

void hist_free(struct hist *h)
{
    free(h);
}

void hist_clear(struct hist *h)
{
    memset(h, 0, sizeof(*h));
}

/* The lowest value of bucket i. */
static uint64_t bucket_low(uint32_t i)
{
    if (i < HIST_SUB_COUNT)
        return i;
    const uint32_t shift = i / HIST_SUB_COUNT - 1u;
    return (uint64_t)(HIST_SUB_COUNT + i % HIST_SUB_COUNT) << shift;
}

uint64_t hist_lowest_equivalent(uint64_t v)
{
    return bucket_low(hist_index(v));
}

uint64_t hist_highest_equivalent(uint64_t v)
{
    const uint32_t i = hist_index(v);
    if (i < HIST_SUB_COUNT)
        return v;
    /* low + width - 1: the last bucket ends at UINT64_MAX without overflowing. */
    return bucket_low(i) + ((uint64_t)1 << (i / HIST_SUB_COUNT - 1u)) - 1u;
}

bool hist_is_boundary(uint64_t v)
{
    return hist_lowest_equivalent(v) == v;
}

uint64_t hist_percentile(const struct hist *h, double q)
{
    if (h->count == 0)
        return 0;
    /* Nearest rank: the smallest sample with at least q of the samples at or below it
     * (the 0.999999 guards against q * count landing a hair above an integer). */
    uint64_t rank = (uint64_t)(q * (double)h->count + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank >= h->count)
        return h->max;
    uint64_t seen = 0;
    for (uint32_t i = hist_index(h->min); i < HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            const uint64_t low = bucket_low(i);
            return low < h->min ? h->min : low;
        }
    }
    return h->max; /* not reached: the buckets hold every sample */
}

double hist_mean(const struct hist *h)
{
    if (h->count == 0)
        return 0.0;
    const double sum = (double)h->sum_hi * 18446744073709551616.0 + (double)h->sum_lo;
    return sum / (double)h->count;
}

uint64_t hist_count_below(const struct hist *h, uint64_t bound)
{
    if (h->count == 0 || bound <= h->min)
        return 0;
    if (bound > h->max)
        return h->count;
    uint64_t n = 0;
    const uint32_t end = hist_index(bound);
    for (uint32_t i = hist_index(h->min); i < end; i++)
        n += h->buckets[i];
    return n;
}
