/* iommu.c -- IOVA translation: the IOTLB, page walks, faults. See iommu.h. */
#include "iommu.h"

#include <assert.h>
#include <string.h>

/* ======================================================================
 * IOTLB
 * ====================================================================== */

#define IOTLB_DEFAULT_SEED 0x9e3779b97f4a7c15ull

static bool is_pow2(uint32_t v)
{
    return v != 0 && (v & (v - 1u)) == 0;
}

const char *iotlb_check_config(const struct iotlb_config *cfg)
{
    if (cfg->entries > IOTLB_ENTRIES_MAX)
        return "IOTLB entries exceed the model's maximum of 4096";
    if (cfg->policy != IOTLB_LRU && cfg->policy != IOTLB_RANDOM)
        return "IOTLB replacement policy is neither LRU nor random";
    if (cfg->entries == 0)
        return NULL; /* no caching: ways do not matter */
    if (cfg->ways == 0 || cfg->ways > cfg->entries)
        return "IOTLB ways must be between 1 and the number of entries";
    if (cfg->entries % cfg->ways != 0)
        return "IOTLB entries must be a multiple of the ways";
    if (!is_pow2(cfg->entries / cfg->ways))
        return "IOTLB sets (entries / ways) must be a power of two";
    return NULL;
}

void iotlb_init(struct iotlb *t, const struct iotlb_config *cfg)
{
    assert(iotlb_check_config(cfg) == NULL);
    memset(t, 0, sizeof *t);
    t->cfg = *cfg;
    t->sets = cfg->entries ? cfg->entries / cfg->ways : 0;
    for (uint32_t s = t->sets; s > 1u; s >>= 1)
        t->index_bits++;
    t->rng = cfg->seed ? cfg->seed : IOTLB_DEFAULT_SEED;
}

/* The PASID's contribution to the set index: its bits reversed within the index
 * width, so that small PASIDs, which differ in their low bits, land in sets far
 * apart (address spaces with the same small layout then use disjoint sets). Bits of
 * the PASID above the width are folded in first, so every bit counts. */
static inline uint32_t pasid_spread(uint32_t pasid, unsigned bits)
{
    if (pasid == 0 || bits == 0)
        return 0;
    const uint32_t mask = (1u << bits) - 1u;
    uint32_t folded = 0;
    for (uint32_t p = pasid; p != 0; p >>= bits)
        folded ^= p & mask;
    uint32_t reversed = 0;
    for (unsigned i = 0; folded != 0; i++, folded >>= 1) {
        if (folded & 1u)
            reversed |= 1u << (bits - 1u - i);
    }
    return reversed;
}

/* Set of vpn in a cache with sets (> 0). */
static inline uint32_t set_of(const struct iotlb *t, uint32_t pasid, uint64_t vpn)
{
    return ((uint32_t)vpn ^ pasid_spread(pasid, t->index_bits)) & (t->sets - 1u);
}

uint32_t iotlb_set_index(const struct iotlb *t, uint32_t pasid, uint64_t vpn)
{
    return t->sets ? set_of(t, pasid, vpn) : 0;
}

/* The ways of vpn's set; the cache must have sets. */
static struct iotlb_entry *set_ways(struct iotlb *t, uint32_t pasid, uint64_t vpn)
{
    return &t->e[(size_t)set_of(t, pasid, vpn) * t->cfg.ways];
}

static bool entry_matches(const struct iotlb_entry *e, uint32_t pasid, uint64_t vpn,
                          unsigned page_shift)
{
    return e->valid && e->pasid == pasid && e->page_shift == page_shift && e->vpn == vpn;
}

/* Find the entry tagged (pasid, iova's page number, page_shift) or NULL. */
static struct iotlb_entry *find(struct iotlb *t, uint32_t pasid, uint64_t iova,
                                unsigned page_shift)
{
    const uint64_t vpn = iova >> page_shift;
    struct iotlb_entry *ways = set_ways(t, pasid, vpn);
    for (uint32_t w = 0; w < t->cfg.ways; w++) {
        if (entry_matches(&ways[w], pasid, vpn, page_shift))
            return &ways[w];
    }
    return NULL;
}

bool iotlb_lookup(struct iotlb *t, uint32_t pasid, uint64_t iova, bool write,
                  struct iotlb_entry *out)
{
    t->stats.lookups++;
    if (t->sets != 0) {
        static const unsigned shifts[] = {IOMMU_PAGE_SHIFT_4K, IOMMU_PAGE_SHIFT_2M};
        for (unsigned i = 0; i < sizeof shifts / sizeof shifts[0]; i++) {
            struct iotlb_entry *e = find(t, pasid, iova, shifts[i]);
            if (e == NULL || (write && !e->writable))
                continue;
            e->stamp = ++t->clock;
            t->stats.hits++;
            if (out)
                *out = *e;
            return true;
        }
    }
    t->stats.misses++;
    return false;
}

static uint64_t xorshift64(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    return x;
}

/* Way of a full set to replace. */
static uint32_t pick_victim(struct iotlb *t, const struct iotlb_entry *ways)
{
    if (t->cfg.policy == IOTLB_RANDOM)
        return (uint32_t)(xorshift64(&t->rng) % t->cfg.ways);
    uint32_t victim = 0;
    for (uint32_t w = 1; w < t->cfg.ways; w++) {
        if (ways[w].stamp < ways[victim].stamp)
            victim = w;
    }
    return victim;
}

void iotlb_insert(struct iotlb *t, uint32_t pasid, uint64_t iova, unsigned page_shift,
                  uint64_t pa_base, bool writable)
{
    assert(page_shift == IOMMU_PAGE_SHIFT_4K || page_shift == IOMMU_PAGE_SHIFT_2M);
    if (t->sets == 0)
        return;
    const uint64_t vpn = iova >> page_shift;
    struct iotlb_entry *ways = set_ways(t, pasid, vpn);
    struct iotlb_entry *slot = find(t, pasid, iova, page_shift);
    if (slot == NULL) {
        for (uint32_t w = 0; w < t->cfg.ways && slot == NULL; w++) {
            if (!ways[w].valid)
                slot = &ways[w];
        }
        if (slot == NULL) {
            slot = &ways[pick_victim(t, ways)];
            t->stats.evictions++;
        }
        t->stats.inserts++;
    }
    *slot = (struct iotlb_entry){
        .vpn = vpn,
        .pa_base = pa_base,
        .stamp = ++t->clock,
        .pasid = pasid,
        .page_shift = (uint8_t)page_shift,
        .writable = writable,
        .valid = true,
    };
}

/* Drop the valid entries for which keep() says no. Invalidation is rare next to
 * lookups, so a scan of the whole cache is fine. */
enum inval_scope { INVAL_ALL, INVAL_PASID, INVAL_RANGE };

static uint32_t invalidate(struct iotlb *t, enum inval_scope scope, uint32_t pasid,
                           uint64_t first, uint64_t last)
{
    uint32_t dropped = 0;
    t->stats.invalidations++;
    for (uint32_t i = 0; i < t->cfg.entries; i++) {
        struct iotlb_entry *e = &t->e[i];
        if (!e->valid)
            continue;
        if (scope != INVAL_ALL && e->pasid != pasid)
            continue;
        if (scope == INVAL_RANGE) {
            const uint64_t page_first = e->vpn << e->page_shift;
            const uint64_t page_last = page_first + ((1ull << e->page_shift) - 1u);
            if (page_last < first || page_first > last)
                continue;
        }
        e->valid = false;
        dropped++;
    }
    t->stats.entries_invalidated += dropped;
    return dropped;
}

/* Last byte of [iova, iova + len), len > 0, clipped at 2^64 - 1. */
static uint64_t range_last(uint64_t iova, uint64_t len)
{
    return len - 1u > UINT64_MAX - iova ? UINT64_MAX : iova + (len - 1u);
}

uint32_t iotlb_invalidate_all(struct iotlb *t)
{
    return invalidate(t, INVAL_ALL, 0, 0, 0);
}

uint32_t iotlb_invalidate_pasid(struct iotlb *t, uint32_t pasid)
{
    return invalidate(t, INVAL_PASID, pasid, 0, 0);
}

uint32_t iotlb_invalidate_range(struct iotlb *t, uint32_t pasid, uint64_t iova, uint64_t len)
{
    if (len == 0) {
        t->stats.invalidations++;
        return 0;
    }
    return invalidate(t, INVAL_RANGE, pasid, iova, range_last(iova, len));
}

/* ======================================================================
 * IOMMU
 * ====================================================================== */

const char *iommu_check_config(const struct iommu_config *cfg)
{
    for (unsigned i = 0; i < IOMMU_PSC_LEVELS; i++) {
        if (cfg->psc_entries[i] > IOMMU_PSC_ENTRIES_MAX)
            return "paging-structure cache entries exceed the model's maximum of 256";
    }
    return iotlb_check_config(&cfg->iotlb);
}

void iommu_init(struct iommu *m, const struct iommu_config *cfg)
{
    assert(iommu_check_config(cfg) == NULL);
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    iotlb_init(&m->tlb, &cfg->iotlb);
    for (unsigned i = 0; i < IOMMU_PSC_LEVELS; i++) {
        m->psc[i].entries = cfg->psc_entries[i];
        m->psc_any = m->psc_any || cfg->psc_entries[i] != 0;
    }
}

/* ---- paging-structure caches ---- */

/* The valid entry of level's cache tagged (pasid, iova's bits above the level), or
 * NULL. */
static struct iommu_psc_entry *psc_find(struct iommu *m, unsigned level, uint32_t pasid,
                                        uint64_t iova)
{
    struct iommu_psc *c = &m->psc[iommu_psc_slot(level)];
    const uint64_t tag = iova >> iommu_level_shift(level);
    for (uint32_t i = 0; i < c->entries; i++) {
        struct iommu_psc_entry *e = &c->e[i];
        if (e->valid && e->pasid == pasid && e->tag == tag)
            return e;
    }
    return NULL;
}

/* Where iova's walk can start: probe the caches from level 2 up, stopping at the
 * first usable entry (a write needs a writable one). On a hit, *level is the first
 * level still to read, *table its table and *writable the permission so far. */
static void psc_start(struct iommu *m, uint32_t pasid, uint64_t iova, bool write,
                      unsigned *level, uint64_t *table, bool *writable, struct iommu_result *r)
{
    for (unsigned l = IOMMU_PSC_LOWEST_LEVEL; l <= IOMMU_LEVELS; l++) {
        const unsigned slot = iommu_psc_slot(l);
        if (m->psc[slot].entries == 0)
            continue;
        struct iommu_psc_entry *e = psc_find(m, l, pasid, iova);
        if (e == NULL || (write && !e->writable)) {
            m->stats.psc[slot].misses++;
            continue;
        }
        m->stats.psc[slot].hits++;
        e->stamp = ++m->psc_clock;
        *level = l - 1u;
        *table = e->table;
        *writable = e->writable;
        r->psc_hit_level = (uint8_t)l;
        return;
    }
}

/* Cache iova's entry of level, which points to the table at `table`. */
static void psc_insert(struct iommu *m, unsigned level, uint32_t pasid, uint64_t iova,
                       uint64_t table, bool writable)
{
    struct iommu_psc *c = &m->psc[iommu_psc_slot(level)];
    struct iommu_psc_counts *st = &m->stats.psc[iommu_psc_slot(level)];
    if (c->entries == 0)
        return;
    struct iommu_psc_entry *slot = psc_find(m, level, pasid, iova);
    if (slot == NULL) {
        for (uint32_t i = 0; i < c->entries && slot == NULL; i++) {
            if (!c->e[i].valid)
                slot = &c->e[i];
        }
        if (slot == NULL) {
            slot = &c->e[0];
            for (uint32_t i = 1; i < c->entries; i++) {
                if (c->e[i].stamp < slot->stamp)
                    slot = &c->e[i];
            }
            st->evictions++;
        }
        st->inserts++;
    }
    *slot = (struct iommu_psc_entry){
        .tag = iova >> iommu_level_shift(level),
        .table = table,
        .stamp = ++m->psc_clock,
        .pasid = pasid,
        .writable = writable,
        .valid = true,
    };
}

/* Drop the entries in scope: all, pasid's, or pasid's whose region (the IOVAs that
 * share the entry's tag) overlaps [first, last]. */
static void psc_invalidate(struct iommu *m, enum inval_scope scope, uint32_t pasid,
                           uint64_t first, uint64_t last)
{
    for (unsigned l = IOMMU_PSC_LOWEST_LEVEL; l <= IOMMU_LEVELS; l++) {
        struct iommu_psc *c = &m->psc[iommu_psc_slot(l)];
        const unsigned shift = iommu_level_shift(l);
        for (uint32_t i = 0; i < c->entries; i++) {
            struct iommu_psc_entry *e = &c->e[i];
            if (!e->valid || (scope != INVAL_ALL && e->pasid != pasid))
                continue;
            if (scope == INVAL_RANGE) {
                const uint64_t region_first = e->tag << shift;
                const uint64_t region_last = region_first + ((1ull << shift) - 1u);
                if (region_last < first || region_first > last)
                    continue;
            }
            e->valid = false;
            m->stats.psc[iommu_psc_slot(l)].entries_invalidated++;
        }
    }
}

void iommu_set_enabled(struct iommu *m, bool enabled)
{
    m->cfg.enabled = enabled;
    iotlb_invalidate_all(&m->tlb);
    psc_invalidate(m, INVAL_ALL, 0, 0, 0);
}

enum vs_reason iommu_set_root(struct iommu *m, uint32_t pasid, uint64_t root)
{
    if (pasid >= IOMMU_PASIDS_MAX)
        return VS_REASON_IOMMU_FAULT_PASID_RANGE;
    if (root & ~IOMMU_PTE_ADDR_MASK)
        return VS_REASON_IOMMU_ROOT_INVALID;
    m->root[pasid] = root;
    iotlb_invalidate_pasid(&m->tlb, pasid);
    psc_invalidate(m, INVAL_PASID, pasid, 0, 0);
    return VS_REASON_NONE;
}

uint32_t iommu_invalidate_all(struct iommu *m)
{
    psc_invalidate(m, INVAL_ALL, 0, 0, 0);
    return iotlb_invalidate_all(&m->tlb);
}

uint32_t iommu_invalidate_pasid(struct iommu *m, uint32_t pasid)
{
    psc_invalidate(m, INVAL_PASID, pasid, 0, 0);
    return iotlb_invalidate_pasid(&m->tlb, pasid);
}

uint32_t iommu_invalidate_range(struct iommu *m, uint32_t pasid, uint64_t iova, uint64_t len)
{
    if (len != 0)
        psc_invalidate(m, INVAL_RANGE, pasid, iova, range_last(iova, len));
    return iotlb_invalidate_range(&m->tlb, pasid, iova, len);
}

void iommu_clear_faults(struct iommu *m)
{
    memset(m->fault_log, 0, sizeof m->fault_log);
    m->fault_logged = 0;
    m->fault_count = 0;
}

static uint64_t le64_decode(const uint8_t b[8])
{
    uint64_t v = 0;
    for (unsigned i = 8; i-- > 0;)
        v = (v << 8) | b[i];
    return v;
}

/* Bits a present entry of `level` may have set; anything else is reserved. */
static uint64_t pte_allowed_mask(unsigned level)
{
    uint64_t allowed = IOMMU_PTE_PRESENT_MASK | IOMMU_PTE_WRITABLE_MASK | IOMMU_PTE_ADDR_MASK;
    if (level == 2)
        allowed |= IOMMU_PTE_LEAF_MASK;
    return allowed;
}

static enum vs_reason walk_read_reason(enum vs_dma_status st)
{
    return st == VS_DMA_BUS_MASTER_OFF ? VS_REASON_DMA_BUS_MASTER_OFF
                                       : VS_REASON_IOMMU_FAULT_WALK_RANGE;
}

/* What a walk learnt about the table entries it read that point to a table: for each
 * level, the next table and the writable bit so far (what the level's paging-structure
 * cache keeps). */
struct walk_path {
    uint64_t next[IOMMU_LEVELS + 1];
    bool writable[IOMMU_LEVELS + 1];
};

/* Walk iova's table from `top` (IOMMU_LEVELS..1) down, the table of that level at
 * `table` and the permission so far `writable` (the root and true, or what a
 * paging-structure cache gave): at most `top` reads, counted in r->walk_reads. On
 * success fills r->pa, r->page_size, r->writable, *page_shift, *pa_base and the path
 * of the levels read above the leaf; on a fault returns the reason and the level
 * whose entry faulted in *level. The write-permission check is the caller's (it needs
 * the whole walk's writable bit). */
static enum vs_reason walk(const struct vs_guest_ops *ops, unsigned top, uint64_t table,
                           bool writable, uint64_t iova, struct iommu_result *r,
                           unsigned *page_shift, uint64_t *pa_base, unsigned *level_out,
                           struct walk_path *path)
{
    for (unsigned level = top; level > 0; level--) {
        *level_out = level;
        const uint64_t addr = table + (uint64_t)iommu_pte_index(iova, level) * IOMMU_PTE_SIZE;
        uint8_t raw[IOMMU_PTE_SIZE];
        r->walk_reads++;
        const enum vs_dma_status st = ops->read(ops->ctx, addr, raw, sizeof raw, VS_DMA_PT_READ);
        if (st != VS_DMA_OK)
            return walk_read_reason(st);
        const uint64_t pte = le64_decode(raw);
        if (!(pte & IOMMU_PTE_PRESENT_MASK))
            return VS_REASON_IOMMU_FAULT_UNMAPPED;
        if (pte & ~pte_allowed_mask(level))
            return VS_REASON_IOMMU_FAULT_RESERVED_BITS;
        writable = writable && (pte & IOMMU_PTE_WRITABLE_MASK);
        const uint64_t next = pte & IOMMU_PTE_ADDR_MASK;

        unsigned shift = 0;
        if (level == 1)
            shift = IOMMU_PAGE_SHIFT_4K;
        else if (level == 2 && (pte & IOMMU_PTE_LEAF_MASK))
            shift = IOMMU_PAGE_SHIFT_2M;
        if (shift == 0) {
            path->next[level] = next;
            path->writable[level] = writable;
            table = next;
            continue;
        }
        const uint64_t size = 1ull << shift;
        if (next & (size - 1u)) /* frame bits below the page size are reserved */
            return VS_REASON_IOMMU_FAULT_RESERVED_BITS;
        *page_shift = shift;
        *pa_base = next;
        r->pa = next + (iova & (size - 1u));
        r->page_size = size;
        r->writable = writable;
        return VS_REASON_NONE;
    }
    /* Level 1 entries are always leaves, so the loop cannot fall through. */
    assert(0);
    return VS_REASON_IOMMU_FAULT_UNMAPPED;
}

static enum iommu_status fault(struct iommu *m, struct iommu_counts *pc, uint32_t pasid,
                               uint64_t iova, bool write, enum vs_reason reason,
                               unsigned level, struct iommu_result *r)
{
    r->fault = reason;
    r->pa = 0;
    r->page_size = 0;
    r->span = 0;
    r->writable = false;
    m->stats.total.faults++;
    if (pc)
        pc->faults++;
    if (m->fault_logged < IOMMU_FAULT_LOG_LEN) {
        m->fault_log[m->fault_logged++] = (struct iommu_fault){
            .iova = iova,
            .pasid = pasid,
            .level = (uint8_t)level,
            .write = write,
            .reason = reason,
        };
    }
    m->fault_count++;
    return IOMMU_FAULT;
}

enum iommu_status iommu_translate(struct iommu *m, const struct vs_guest_ops *walk_ops,
                                  uint32_t pasid, uint64_t iova, bool write,
                                  struct iommu_result *r)
{
    memset(r, 0, sizeof *r);
    r->fault = VS_REASON_NONE;
    m->stats.requests++;

    if (!m->cfg.enabled) {
        /* No ACCESS_PLATFORM: the device uses physical addresses directly. */
        m->stats.bypassed++;
        r->bypass = true;
        r->pa = iova;
        r->writable = true;
        r->span = iova ? 0u - iova : UINT64_MAX; /* 2^64 - iova, saturated */
        return IOMMU_OK;
    }

    if (pasid >= IOMMU_PASIDS_MAX)
        return fault(m, NULL, pasid, iova, write, VS_REASON_IOMMU_FAULT_PASID_RANGE, 0, r);
    struct iommu_counts *pc = &m->stats.pasid[pasid];
    if (iova >> IOMMU_IOVA_BITS)
        return fault(m, pc, pasid, iova, write, VS_REASON_IOMMU_FAULT_IOVA_RANGE, 0, r);
    const uint64_t root = m->root[pasid];
    if (root == 0)
        return fault(m, pc, pasid, iova, write, VS_REASON_IOMMU_FAULT_NO_ROOT, 0, r);

    m->stats.total.lookups++;
    pc->lookups++;
    struct iotlb_entry hit;
    if (iotlb_lookup(&m->tlb, pasid, iova, write, &hit)) {
        m->stats.total.hits++;
        pc->hits++;
        r->tlb_hit = true;
        r->pa = iotlb_entry_pa(&hit, iova);
        r->page_size = 1ull << hit.page_shift;
        r->span = r->page_size - (iova & (r->page_size - 1u));
        r->writable = hit.writable;
        return IOMMU_OK;
    }
    m->stats.total.misses++;
    pc->misses++;

    assert(walk_ops != NULL && walk_ops->read != NULL);
    m->stats.total.walks++;
    pc->walks++;
    unsigned top = IOMMU_LEVELS, page_shift = 0, level = 0;
    uint64_t table = root, pa_base = 0;
    bool writable = true;
    if (m->psc_any)
        psc_start(m, pasid, iova, write, &top, &table, &writable, r);
    struct walk_path path;
    const enum vs_reason why = walk(walk_ops, top, table, writable, iova, r, &page_shift,
                                    &pa_base, &level, &path);
    m->stats.total.walk_reads += r->walk_reads;
    pc->walk_reads += r->walk_reads;
    if (why != VS_REASON_NONE)
        return fault(m, pc, pasid, iova, write, why, level, r);
    if (write && !r->writable)
        return fault(m, pc, pasid, iova, write, VS_REASON_IOMMU_FAULT_READ_ONLY, level, r);

    /* The walk ended in a translation: cache it, and the entries it read above the
     * leaf that point to a table (levels top..leaf + 1, those of 2 and up). */
    iotlb_insert(&m->tlb, pasid, iova, page_shift, pa_base, r->writable);
    const unsigned leaf = page_shift == IOMMU_PAGE_SHIFT_2M ? 2u : 1u;
    for (unsigned l = top; m->psc_any && l > leaf && l >= IOMMU_PSC_LOWEST_LEVEL; l--)
        psc_insert(m, l, pasid, iova, path.next[l], path.writable[l]);
    r->span = r->page_size - (iova & (r->page_size - 1u));
    return IOMMU_OK;
}
