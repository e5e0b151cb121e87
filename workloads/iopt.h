/* iopt.h -- driver side of the IOMMU: building I/O page tables in guest memory.
 *
 * The driver is the CPU: it writes page tables with plain stores into its view of
 * guest memory (mem[0 .. mem_size) is guest-physical mem_base ..), in the format
 * iommu.h documents, so a device behind the IOMMU can reach rings and buffers at
 * IOVAs that differ from their physical addresses. One struct iopt is one address
 * space (one PASID); table pages come from a bump pool the caller provides, which
 * several address spaces may share. Tables are never freed (unmap leaves empty tables
 * in place).
 *
 * Ordering: a new table is zeroed before the entry pointing to it is written, and a
 * leaf is written in one 8-byte store, so an IOMMU walking concurrently sees either
 * the old or the new state of an entry, never a half-built table.
 *
 * After iopt_unmap, or after iopt_map over IOVAs that were unmapped, the driver must
 * invalidate the IOMMU's cached translations (iommu_invalidate_range); this module
 * does not talk to the device.
 *
 * Guest memory is shared with a device that may be buggy: every table pointer this
 * module reads back is checked to lie inside guest memory (IOPT_CORRUPT otherwise).
 */
#ifndef VIOSIM_IOPT_H
#define VIOSIM_IOPT_H

#include <stdbool.h>
#include <stdint.h>

#include "iommu.h"

enum iopt_status {
    IOPT_OK = 0,
    IOPT_NO_MEMORY, /* the table pool is exhausted (nothing mapped by this call) */
    IOPT_INVALID,   /* bad arguments: alignment, page size, zero length, beyond 48/52
                     * bits, or an unmap that would cut a 2 MiB page */
    IOPT_BUSY,      /* iopt_map: part of the range is already mapped (nothing changed) */
    IOPT_CORRUPT,   /* a table entry in guest memory points outside guest memory */
};

/* Guest-physical range [next, end) handed out in 4 KiB table pages. */
struct iopt_pool {
    uint64_t next;
    uint64_t end;
};

struct iopt {
    uint8_t *mem;
    uint64_t mem_base;
    uint64_t mem_size;
    struct iopt_pool *pool;
    uint64_t root;    /* guest-physical address of the level-4 table (for iommu_set_root) */
    uint32_t tables;  /* table pages this address space took from the pool, root included */
};

/* Pool over guest-physical [base, base + size), rounded inward to 4 KiB pages. */
void iopt_pool_init(struct iopt_pool *pool, uint64_t base, uint64_t size);

/* Pages left in the pool. */
uint64_t iopt_pool_pages_left(const struct iopt_pool *pool);

/* Start an empty address space: allocate and zero its root table. The pool's range
 * must lie inside guest memory (IOPT_INVALID otherwise). */
enum iopt_status iopt_init(struct iopt *pt, uint8_t *mem, uint64_t mem_base, uint64_t mem_size,
                           struct iopt_pool *pool);

/* Map [iova, iova + len) to [pa, pa + len) with pages of page_size (4 KiB or 2 MiB):
 * iova, pa and len must be multiples of it, len > 0, the IOVA range inside 48 bits and
 * the physical range inside 52 bits. pa need not be guest memory (the device may be
 * given MMIO). Fails with IOPT_BUSY, changing nothing, if any page of the range is
 * already mapped; on IOPT_NO_MEMORY what this call mapped is unmapped again. */
enum iopt_status iopt_map(struct iopt *pt, uint64_t iova, uint64_t pa, uint64_t len,
                          uint64_t page_size, bool writable);

/* Unmap every page in [iova, iova + len) (4 KiB aligned, len > 0); pages that are not
 * mapped are skipped. A 2 MiB page only partly inside the range is IOPT_INVALID and
 * nothing is changed. */
enum iopt_status iopt_unmap(struct iopt *pt, uint64_t iova, uint64_t len);

/* The driver's own walk of its table (not DMA): the translation of iova, or false if
 * it is not mapped. Any out-pointer may be NULL. */
bool iopt_resolve(const struct iopt *pt, uint64_t iova, uint64_t *pa, uint64_t *page_size,
                  bool *writable);

const char *iopt_status_name(enum iopt_status s);

#endif
