/* iopt.c -- building I/O page tables in guest memory. See iopt.h and, for the
 * format, iommu.h. */
#include "iopt.h"

#include <string.h>

#define IOVA_LIMIT (1ull << IOMMU_IOVA_BITS)
#define PA_LIMIT   (1ull << IOMMU_PA_BITS)

/* Entry bits of a pointer to a next-level table: present and writable, so a leaf's
 * own writable bit decides (permissions are the AND along the walk). */
#define TABLE_PTE_FLAGS (IOMMU_PTE_PRESENT_MASK | IOMMU_PTE_WRITABLE_MASK)

const char *iopt_status_name(enum iopt_status s)
{
    switch (s) {
    case IOPT_OK: return "ok";
    case IOPT_NO_MEMORY: return "no_memory";
    case IOPT_INVALID: return "invalid";
    case IOPT_BUSY: return "busy";
    case IOPT_CORRUPT: return "corrupt";
    }
    return "unknown";
}

/* ---- guest memory as the CPU sees it ---- */

static bool in_mem(const struct iopt *pt, uint64_t pa, uint64_t len)
{
    if (pa < pt->mem_base)
        return false;
    const uint64_t off = pa - pt->mem_base;
    return off <= pt->mem_size && len <= pt->mem_size - off;
}

/* Table at guest-physical `table` (checked by the caller with in_mem). */
static uint64_t load_pte(const struct iopt *pt, uint64_t table, unsigned index)
{
    const uint8_t *p = pt->mem + (table - pt->mem_base) + (uint64_t)index * IOMMU_PTE_SIZE;
    uint64_t v = 0;
    for (unsigned i = IOMMU_PTE_SIZE; i-- > 0;)
        v = (v << 8) | p[i];
    return v;
}

static void store_pte(struct iopt *pt, uint64_t table, unsigned index, uint64_t pte)
{
    uint8_t raw[IOMMU_PTE_SIZE];
    for (unsigned i = 0; i < IOMMU_PTE_SIZE; i++)
        raw[i] = (uint8_t)(pte >> (8 * i));
    /* One 8-byte store: a concurrent walk sees the old or the new entry. */
    memcpy(pt->mem + (table - pt->mem_base) + (uint64_t)index * IOMMU_PTE_SIZE, raw, sizeof raw);
}

/* ---- table pool ---- */

void iopt_pool_init(struct iopt_pool *pool, uint64_t base, uint64_t size)
{
    const uint64_t mask = IOMMU_TABLE_SIZE - 1u;
    const uint64_t end = size > UINT64_MAX - base ? UINT64_MAX : base + size;
    pool->next = base > UINT64_MAX - mask ? UINT64_MAX & ~mask : (base + mask) & ~mask;
    pool->end = end & ~mask;
    if (pool->end < pool->next)
        pool->end = pool->next;
}

uint64_t iopt_pool_pages_left(const struct iopt_pool *pool)
{
    return (pool->end - pool->next) / IOMMU_TABLE_SIZE;
}

/* Take one zeroed table page; 0 if the pool is empty or not guest memory. */
static uint64_t alloc_table(struct iopt *pt)
{
    struct iopt_pool *pool = pt->pool;
    if (pool->end - pool->next < IOMMU_TABLE_SIZE || !in_mem(pt, pool->next, IOMMU_TABLE_SIZE))
        return 0;
    const uint64_t table = pool->next;
    pool->next += IOMMU_TABLE_SIZE;
    memset(pt->mem + (table - pt->mem_base), 0, IOMMU_TABLE_SIZE);
    pt->tables++;
    return table;
}

enum iopt_status iopt_init(struct iopt *pt, uint8_t *mem, uint64_t mem_base, uint64_t mem_size,
                           struct iopt_pool *pool)
{
    memset(pt, 0, sizeof *pt);
    pt->mem = mem;
    pt->mem_base = mem_base;
    pt->mem_size = mem_size;
    pt->pool = pool;
    if (pool->next != pool->end && !in_mem(pt, pool->next, pool->end - pool->next))
        return IOPT_INVALID;
    if (pool->end >= PA_LIMIT)
        return IOPT_INVALID;
    pt->root = alloc_table(pt);
    return pt->root ? IOPT_OK : IOPT_NO_MEMORY;
}

/* ---- walking the driver's own tables ---- */

/* Where a walk for an IOVA stopped. */
struct pte_ref {
    uint64_t table;  /* guest-physical table holding the entry */
    unsigned index;
    unsigned level;  /* 4..1 */
    uint64_t pte;
};

static bool pte_present(uint64_t pte)
{
    return (pte & IOMMU_PTE_PRESENT_MASK) != 0;
}

static bool pte_is_leaf(uint64_t pte, unsigned level)
{
    return level == 1 || (level == 2 && (pte & IOMMU_PTE_LEAF_MASK));
}

/* Walk towards iova's entry at stop_level: stop early at a non-present entry or a
 * leaf. IOPT_CORRUPT if a table pointer leaves guest memory. */
static enum iopt_status find_pte(const struct iopt *pt, uint64_t iova, unsigned stop_level,
                                 struct pte_ref *ref)
{
    uint64_t table = pt->root;
    for (unsigned level = IOMMU_LEVELS; level > 0; level--) {
        if (!in_mem(pt, table, IOMMU_TABLE_SIZE))
            return IOPT_CORRUPT;
        ref->table = table;
        ref->index = iommu_pte_index(iova, level);
        ref->level = level;
        ref->pte = load_pte(pt, table, ref->index);
        if (!pte_present(ref->pte) || level == stop_level || pte_is_leaf(ref->pte, level))
            return IOPT_OK;
        table = ref->pte & IOMMU_PTE_ADDR_MASK;
    }
    return IOPT_OK; /* not reached: level 1 is always a stop */
}

static bool table_empty(const struct iopt *pt, uint64_t table)
{
    for (unsigned i = 0; i < IOMMU_PTES_PER_TABLE; i++) {
        if (pte_present(load_pte(pt, table, i)))
            return false;
    }
    return true;
}

bool iopt_resolve(const struct iopt *pt, uint64_t iova, uint64_t *pa, uint64_t *page_size,
                  bool *writable)
{
    if (iova >= IOVA_LIMIT)
        return false;
    uint64_t table = pt->root;
    bool w = true;
    /* Its own loop rather than find_pte: it ANDs the writable bits along the way. */
    for (unsigned level = IOMMU_LEVELS; level > 0; level--) {
        if (!in_mem(pt, table, IOMMU_TABLE_SIZE))
            return false;
        const uint64_t pte = load_pte(pt, table, iommu_pte_index(iova, level));
        if (!pte_present(pte))
            return false;
        w = w && (pte & IOMMU_PTE_WRITABLE_MASK);
        if (pte_is_leaf(pte, level)) {
            const uint64_t size = 1ull << iommu_level_shift(level);
            if (pa)
                *pa = (pte & IOMMU_PTE_ADDR_MASK) + (iova & (size - 1u));
            if (page_size)
                *page_size = size;
            if (writable)
                *writable = w;
            return true;
        }
        table = pte & IOMMU_PTE_ADDR_MASK;
    }
    return false;
}

/* ---- unmap ---- */

/* One pass over [iova, end): with apply false only check that no 2 MiB page is cut,
 * with apply true clear the leaves. Unmapped stretches are skipped a whole table
 * entry's reach at a time. */
static enum iopt_status unmap_pass(struct iopt *pt, uint64_t iova, uint64_t end, bool apply)
{
    uint64_t a = iova;
    while (a < end) {
        struct pte_ref ref;
        const enum iopt_status st = find_pte(pt, a, 1, &ref);
        if (st != IOPT_OK)
            return st;
        const uint64_t reach = 1ull << iommu_level_shift(ref.level);
        const uint64_t first = a & ~(reach - 1u);
        if (pte_present(ref.pte)) {
            if (first < iova || reach > end - first)
                return IOPT_INVALID; /* a 2 MiB leaf only partly inside the range */
            if (apply)
                store_pte(pt, ref.table, ref.index, 0);
        }
        a = first + reach;
    }
    return IOPT_OK;
}

enum iopt_status iopt_unmap(struct iopt *pt, uint64_t iova, uint64_t len)
{
    const uint64_t mask = IOMMU_PAGE_SIZE_4K - 1u;
    if (len == 0 || (iova & mask) || (len & mask) || iova >= IOVA_LIMIT || len > IOVA_LIMIT - iova)
        return IOPT_INVALID;
    const enum iopt_status st = unmap_pass(pt, iova, iova + len, false);
    if (st != IOPT_OK)
        return st;
    return unmap_pass(pt, iova, iova + len, true);
}

/* ---- map ---- */

static unsigned leaf_level(uint64_t page_size)
{
    return page_size == IOMMU_PAGE_SIZE_2M ? 2u : 1u;
}

/* Is the page at iova free for a leaf at `level`? */
static enum iopt_status check_free(const struct iopt *pt, uint64_t iova, unsigned level)
{
    struct pte_ref ref;
    const enum iopt_status st = find_pte(pt, iova, level, &ref);
    if (st != IOPT_OK)
        return st;
    if (!pte_present(ref.pte))
        return IOPT_OK;
    if (pte_is_leaf(ref.pte, ref.level))
        return IOPT_BUSY;
    /* A 2 MiB page over a level-1 table: free only if every 4 KiB entry is clear
     * (the table is left behind, which is the pool's loss, not a correctness issue). */
    const uint64_t table = ref.pte & IOMMU_PTE_ADDR_MASK;
    if (!in_mem(pt, table, IOMMU_TABLE_SIZE))
        return IOPT_CORRUPT;
    return table_empty(pt, table) ? IOPT_OK : IOPT_BUSY;
}

/* Write one leaf; the page was checked free. */
static enum iopt_status map_page(struct iopt *pt, uint64_t iova, uint64_t pa, unsigned leaf,
                                 bool writable)
{
    uint64_t table = pt->root;
    for (unsigned level = IOMMU_LEVELS; level > leaf; level--) {
        const unsigned index = iommu_pte_index(iova, level);
        const uint64_t pte = load_pte(pt, table, index);
        uint64_t next;
        if (pte_present(pte)) {
            next = pte & IOMMU_PTE_ADDR_MASK;
        } else {
            next = alloc_table(pt);
            if (next == 0)
                return IOPT_NO_MEMORY;
            /* The new table is all zeroes before it becomes reachable. */
            store_pte(pt, table, index, next | TABLE_PTE_FLAGS);
        }
        if (!in_mem(pt, next, IOMMU_TABLE_SIZE))
            return IOPT_CORRUPT;
        table = next;
    }
    uint64_t pte = pa | IOMMU_PTE_PRESENT_MASK;
    if (writable)
        pte |= IOMMU_PTE_WRITABLE_MASK;
    if (leaf == 2)
        pte |= IOMMU_PTE_LEAF_MASK;
    store_pte(pt, table, iommu_pte_index(iova, leaf), pte);
    return IOPT_OK;
}

enum iopt_status iopt_map(struct iopt *pt, uint64_t iova, uint64_t pa, uint64_t len,
                          uint64_t page_size, bool writable)
{
    if (page_size != IOMMU_PAGE_SIZE_4K && page_size != IOMMU_PAGE_SIZE_2M)
        return IOPT_INVALID;
    const uint64_t mask = page_size - 1u;
    if (len == 0 || (iova & mask) || (pa & mask) || (len & mask))
        return IOPT_INVALID;
    if (iova >= IOVA_LIMIT || len > IOVA_LIMIT - iova || pa >= PA_LIMIT || len > PA_LIMIT - pa)
        return IOPT_INVALID;
    const unsigned leaf = leaf_level(page_size);

    for (uint64_t off = 0; off < len; off += page_size) {
        const enum iopt_status st = check_free(pt, iova + off, leaf);
        if (st != IOPT_OK)
            return st;
    }
    for (uint64_t off = 0; off < len; off += page_size) {
        const enum iopt_status st = map_page(pt, iova + off, pa + off, leaf, writable);
        if (st != IOPT_OK) {
            if (off)
                (void)unmap_pass(pt, iova, iova + off, true);
            return st;
        }
    }
    return IOPT_OK;
}
