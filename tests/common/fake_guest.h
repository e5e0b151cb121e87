/* fake_guest.h -- a fake guest memory for kernel tests (header-only).
 *
 * A contiguous byte array that appears at guest address `base` and implements
 * struct vs_guest_ops strictly:
 *   - an access is served only if [addr, addr + len) lies wholly inside
 *     [base, base + size); anything else returns VS_DMA_OUT_OF_RANGE and leaves
 *     memory (or the destination) untouched;
 *   - `bus_master_off` makes every access return VS_DMA_BUS_MASTER_OFF, as a device
 *     sees it when the PCI command register has bus-master enable clear;
 *   - `fail_kinds` (a mask of 1u << enum vs_dma_kind) makes accesses of those kinds
 *     fail with `fail_status`, to inject an error at one step of a flow;
 *   - every call is counted per kind (attempts, including failed ones), served bytes
 *     are summed per kind, and the last FAKE_GUEST_LOG_LEN accesses are logged in
 *     order, so tests can assert "no access at all" or "this write came last".
 *
 * Usage:
 *     struct fake_guest g;
 *     fake_guest_init(&g, 0x10000, 64 * 1024);       // calloc'ed, zeroed
 *     struct vs_guest_ops ops = fake_guest_ops(&g);
 *     fake_guest_put16(&g, 0x10000 + 14, flags);     // test-side setup, bounds-checked
 *     ...
 *     uint64_t n = fake_guest_accesses(&g);          // total attempted accesses
 *     fake_guest_free(&g);
 *
 * The test-side helpers (fake_guest_ptr, _put*, _get*) are not DMA: they are not
 * counted or logged and abort() on an out-of-range address (even under NDEBUG),
 * because that is a bug in the test, not in the kernel.
 */
#ifndef VIOSIM_TESTS_FAKE_GUEST_H
#define VIOSIM_TESTS_FAKE_GUEST_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guest_ops.h"

#define FAKE_GUEST_LOG_LEN 256u

struct fake_guest_access {
    uint64_t addr;
    uint32_t len;
    enum vs_dma_kind kind;
    bool write;
    enum vs_dma_status status;
};

struct fake_guest {
    uint8_t *mem;
    uint64_t base;
    uint64_t size;
    bool owns_mem;

    /* Fault injection. */
    bool bus_master_off;
    uint32_t fail_kinds;               /* mask of 1u << kind */
    enum vs_dma_status fail_status;    /* returned for fail_kinds (default OUT_OF_RANGE) */

    /* Counters, indexed by enum vs_dma_kind. reads/writes count every call. */
    uint64_t reads[VS_DMA_KIND_COUNT];
    uint64_t writes[VS_DMA_KIND_COUNT];
    uint64_t read_bytes[VS_DMA_KIND_COUNT];
    uint64_t write_bytes[VS_DMA_KIND_COUNT];
    uint64_t faults; /* calls that returned anything but VS_DMA_OK */

    /* Ring log of the last FAKE_GUEST_LOG_LEN calls; entry i of `log_total` calls is
     * log[i % FAKE_GUEST_LOG_LEN]. */
    struct fake_guest_access log[FAKE_GUEST_LOG_LEN];
    uint64_t log_total;
};

/* Use caller-provided storage (not freed by fake_guest_free). */
static inline void fake_guest_init_with(struct fake_guest *g, void *mem, uint64_t base,
                                        uint64_t size)
{
    memset(g, 0, sizeof *g);
    g->mem = (uint8_t *)mem;
    g->base = base;
    g->size = size;
    g->fail_status = VS_DMA_OUT_OF_RANGE;
}

/* Allocate size zeroed bytes at guest address base. */
static inline void fake_guest_init(struct fake_guest *g, uint64_t base, uint64_t size)
{
    void *mem = calloc(1, size ? (size_t)size : 1u);
    if (mem == NULL) {
        fprintf(stderr, "fake_guest: cannot allocate %llu bytes\n", (unsigned long long)size);
        abort();
    }
    fake_guest_init_with(g, mem, base, size);
    g->owns_mem = true;
}

static inline void fake_guest_free(struct fake_guest *g)
{
    if (g->owns_mem)
        free(g->mem);
    g->mem = NULL;
    g->owns_mem = false;
}

/* Zero all counters and the log (memory and injection settings are kept). */
static inline void fake_guest_reset_counters(struct fake_guest *g)
{
    memset(g->reads, 0, sizeof g->reads);
    memset(g->writes, 0, sizeof g->writes);
    memset(g->read_bytes, 0, sizeof g->read_bytes);
    memset(g->write_bytes, 0, sizeof g->write_bytes);
    g->faults = 0;
    g->log_total = 0;
}

/* Is [addr, addr + len) wholly inside guest memory? Overflow-safe. A zero-length
 * range is inside if addr is within [base, base + size]. */
static inline bool fake_guest_contains(const struct fake_guest *g, uint64_t addr, uint64_t len)
{
    if (addr < g->base)
        return false;
    uint64_t off = addr - g->base;
    return off <= g->size && len <= g->size - off;
}

/* Total attempted accesses of every kind. */
static inline uint64_t fake_guest_accesses(const struct fake_guest *g)
{
    uint64_t n = 0;
    for (unsigned k = 0; k < VS_DMA_KIND_COUNT; k++)
        n += g->reads[k] + g->writes[k];
    return n;
}

/* The i-th most recent access (0 = last), or NULL if not logged. */
static inline const struct fake_guest_access *fake_guest_recent(const struct fake_guest *g,
                                                                uint64_t i)
{
    if (i >= g->log_total || i >= FAKE_GUEST_LOG_LEN)
        return NULL;
    return &g->log[(g->log_total - 1 - i) % FAKE_GUEST_LOG_LEN];
}

static inline enum vs_dma_status fake_guest_access_(struct fake_guest *g, uint64_t addr,
                                                    uint32_t len, enum vs_dma_kind kind,
                                                    bool write)
{
    enum vs_dma_status st = VS_DMA_OK;
    unsigned k = (unsigned)kind;
    if (k >= VS_DMA_KIND_COUNT) {
        st = VS_DMA_OUT_OF_RANGE; /* a kernel bug; counted as a fault, not per kind */
    } else {
        if (write) {
            g->writes[k]++;
        } else {
            g->reads[k]++;
        }
        if (g->bus_master_off)
            st = VS_DMA_BUS_MASTER_OFF;
        else if (g->fail_kinds & (1u << k))
            st = g->fail_status;
        else if (!fake_guest_contains(g, addr, len))
            st = VS_DMA_OUT_OF_RANGE;
        else if (write)
            g->write_bytes[k] += len;
        else
            g->read_bytes[k] += len;
    }
    if (st != VS_DMA_OK)
        g->faults++;
    g->log[g->log_total % FAKE_GUEST_LOG_LEN] =
        (struct fake_guest_access){addr, len, kind, write, st};
    g->log_total++;
    return st;
}

static inline enum vs_dma_status fake_guest_read_op(void *ctx, uint64_t addr, void *dst,
                                                    uint32_t len, enum vs_dma_kind kind)
{
    struct fake_guest *g = (struct fake_guest *)ctx;
    enum vs_dma_status st = fake_guest_access_(g, addr, len, kind, false);
    if (st == VS_DMA_OK && len)
        memcpy(dst, g->mem + (addr - g->base), len);
    return st;
}

static inline enum vs_dma_status fake_guest_write_op(void *ctx, uint64_t addr, const void *src,
                                                     uint32_t len, enum vs_dma_kind kind)
{
    struct fake_guest *g = (struct fake_guest *)ctx;
    enum vs_dma_status st = fake_guest_access_(g, addr, len, kind, true);
    if (st == VS_DMA_OK && len)
        memcpy(g->mem + (addr - g->base), src, len);
    return st;
}

static inline struct vs_guest_ops fake_guest_ops(struct fake_guest *g)
{
    struct vs_guest_ops ops = {fake_guest_read_op, fake_guest_write_op, g};
    return ops;
}

/* ---- test-side access (not DMA: not counted, not logged) ---- */

static inline uint8_t *fake_guest_ptr(struct fake_guest *g, uint64_t addr, uint64_t len)
{
    if (!fake_guest_contains(g, addr, len)) {
        fprintf(stderr, "fake_guest: test access [0x%llx, +%llu) outside guest memory\n",
                (unsigned long long)addr, (unsigned long long)len);
        abort();
    }
    return g->mem + (addr - g->base);
}

static inline void fake_guest_put16(struct fake_guest *g, uint64_t addr, uint16_t v)
{
    memcpy(fake_guest_ptr(g, addr, 2), &v, 2);
}
static inline void fake_guest_put32(struct fake_guest *g, uint64_t addr, uint32_t v)
{
    memcpy(fake_guest_ptr(g, addr, 4), &v, 4);
}
static inline void fake_guest_put64(struct fake_guest *g, uint64_t addr, uint64_t v)
{
    memcpy(fake_guest_ptr(g, addr, 8), &v, 8);
}
static inline uint16_t fake_guest_get16(struct fake_guest *g, uint64_t addr)
{
    uint16_t v;
    memcpy(&v, fake_guest_ptr(g, addr, 2), 2);
    return v;
}
static inline uint32_t fake_guest_get32(struct fake_guest *g, uint64_t addr)
{
    uint32_t v;
    memcpy(&v, fake_guest_ptr(g, addr, 4), 4);
    return v;
}
static inline uint64_t fake_guest_get64(struct fake_guest *g, uint64_t addr)
{
    uint64_t v;
    memcpy(&v, fake_guest_ptr(g, addr, 8), 8);
    return v;
}

#endif
