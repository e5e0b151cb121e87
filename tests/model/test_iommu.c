/* test_iommu.c -- the IOMMU kernel (page walks, IOTLB, PASIDs, faults) against page
 * tables built by the driver-side iopt module in a fake guest memory.
 *
 * The page-table format under test is the one iommu.h documents; hostile cases write
 * raw entries into guest memory directly.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "common/fake_guest.h"
#include "iommu.h"
#include "iopt.h"

/* Guest memory: the first 2 MiB hold page-table pages, the rest data. */
#define G_BASE   0x80000000ull
#define G_SIZE   0x400000ull
#define POOL     G_BASE
#define POOL_SZ  0x200000ull
#define DATA     (G_BASE + 0x200000ull)

#define K4 IOMMU_PAGE_SIZE_4K
#define M2 IOMMU_PAGE_SIZE_2M
/* Flags the driver puts in an entry pointing to a next-level table. */
#define TABLE_FLAGS_FOR_TEST (IOMMU_PTE_PRESENT_MASK | IOMMU_PTE_WRITABLE_MASK)

static struct {
    struct fake_guest g;
    struct vs_guest_ops ops;
    struct iopt_pool pool;
    struct iopt pt[3]; /* address spaces for PASIDs 0, 1, 2 */
    struct iommu m;
    struct iotlb t;    /* a stand-alone cache (the ATS one) */
} E;

/* Paging-structure cache sizes of levels 4, 3, 2 (0 = none). */
struct psc_sizes {
    uint32_t l4, l3, l2;
};

static void env_setup_full(uint32_t entries, uint32_t ways, enum iotlb_policy policy,
                           struct psc_sizes psc)
{
    if (E.g.mem)
        fake_guest_free(&E.g);
    memset(&E, 0, sizeof E);
    fake_guest_init(&E.g, G_BASE, G_SIZE);
    E.ops = fake_guest_ops(&E.g);
    iopt_pool_init(&E.pool, POOL, POOL_SZ);
    for (unsigned i = 0; i < 3; i++)
        cr_assert_eq(iopt_init(&E.pt[i], E.g.mem, G_BASE, G_SIZE, &E.pool), IOPT_OK);
    struct iommu_config cfg = {
        .enabled = true,
        .iotlb = {.entries = entries, .ways = ways, .policy = policy, .seed = 42},
    };
    cfg.psc_entries[iommu_psc_slot(4)] = psc.l4;
    cfg.psc_entries[iommu_psc_slot(3)] = psc.l3;
    cfg.psc_entries[iommu_psc_slot(2)] = psc.l2;
    cr_assert_null(iommu_check_config(&cfg));
    iommu_init(&E.m, &cfg);
    for (unsigned i = 0; i < 3; i++)
        cr_assert_eq(iommu_set_root(&E.m, i, E.pt[i].root), VS_REASON_NONE);
}

static void env_setup_tlb(uint32_t entries, uint32_t ways, enum iotlb_policy policy)
{
    env_setup_full(entries, ways, policy, (struct psc_sizes){0, 0, 0});
}

static void env_setup(void)
{
    env_setup_tlb(64, 4, IOTLB_LRU);
}

static void env_teardown(void)
{
    fake_guest_free(&E.g);
}

TestSuite(iommu, .init = env_setup, .fini = env_teardown);
TestSuite(iotlb, .fini = env_teardown);
TestSuite(iopt, .init = env_setup, .fini = env_teardown);
TestSuite(iommu_psc, .fini = env_teardown);

static enum iommu_status xl(uint32_t pasid, uint64_t iova, bool write, struct iommu_result *r)
{
    return iommu_translate(&E.m, &E.ops, pasid, iova, write, r);
}

/* Translate and require success; returns the physical address. */
static uint64_t xl_ok(uint32_t pasid, uint64_t iova, bool write)
{
    struct iommu_result r;
    enum iommu_status st = xl(pasid, iova, write, &r);
    cr_assert_eq(st, IOMMU_OK, "iova 0x%llx pasid %u: fault %s", (unsigned long long)iova,
                 pasid, vs_reason_name(r.fault));
    cr_assert_eq(r.fault, VS_REASON_NONE);
    return r.pa;
}

/* Translate and require a fault with the given reason, logged last. */
static void xl_fault(uint32_t pasid, uint64_t iova, bool write, enum vs_reason why)
{
    struct iommu_result r;
    uint64_t before = E.m.fault_count;
    cr_assert_eq(xl(pasid, iova, write, &r), IOMMU_FAULT, "iova 0x%llx did not fault",
                 (unsigned long long)iova);
    cr_assert_eq(r.fault, why, "fault %s, expected %s", vs_reason_name(r.fault),
                 vs_reason_name(why));
    cr_assert_eq(E.m.fault_count, before + 1);
    cr_assert_lt(before, IOMMU_FAULT_LOG_LEN, "test assumes the log is not full");
    const struct iommu_fault *f = &E.m.fault_log[E.m.fault_logged - 1];
    cr_assert_eq(f->iova, iova);
    cr_assert_eq(f->pasid, pasid);
    cr_assert_eq(f->write, write);
    cr_assert_eq(f->reason, why);
}

/* Guest-physical address of iova's entry at `level` in address space pt (the tables
 * on the way must exist). */
static uint64_t pte_addr(const struct iopt *pt, uint64_t iova, unsigned level)
{
    uint64_t table = pt->root;
    for (unsigned l = IOMMU_LEVELS; l > level; l--) {
        uint64_t pte = fake_guest_get64(&E.g, table + 8u * iommu_pte_index(iova, l));
        cr_assert(pte & IOMMU_PTE_PRESENT_MASK);
        table = pte & IOMMU_PTE_ADDR_MASK;
    }
    return table + 8u * iommu_pte_index(iova, level);
}

/* ======================================================================
 * Translation through real tables
 * ====================================================================== */

Test(iommu, map_4k_translate_keeps_offsets)
{
    const uint64_t iova = 0x10000000ull, pa = DATA + 0x3000;
    cr_assert_eq(iopt_map(&E.pt[0], iova, pa, 3 * K4, K4, true), IOPT_OK);
    fake_guest_reset_counters(&E.g);

    struct iommu_result r;
    cr_assert_eq(xl(0, iova + 0x123, false, &r), IOMMU_OK);
    cr_expect_eq(r.pa, pa + 0x123);
    cr_expect_eq(r.page_size, K4);
    cr_expect_eq(r.span, K4 - 0x123);
    cr_expect(r.writable);
    cr_expect_not(r.tlb_hit);
    cr_expect_not(r.bypass);
    cr_expect_eq(r.walk_reads, 4);
    /* Each walk read is one 8-byte page-table read, root first. */
    cr_expect_eq(E.g.reads[VS_DMA_PT_READ], 4);
    cr_expect_eq(E.g.read_bytes[VS_DMA_PT_READ], 32);
    cr_expect_eq(fake_guest_accesses(&E.g), 4);
    for (unsigned level = 1; level <= 4; level++) {
        const struct fake_guest_access *a = fake_guest_recent(&E.g, level - 1);
        cr_expect_eq(a->addr, pte_addr(&E.pt[0], iova, level), "level %u", level);
        cr_expect_eq(a->len, 8);
        cr_expect_eq(a->kind, VS_DMA_PT_READ);
        cr_expect_not(a->write);
    }

    cr_expect_eq(xl_ok(0, iova + K4, false), pa + K4);
    cr_expect_eq(xl_ok(0, iova + 2 * K4 + 0xfff, true), pa + 2 * K4 + 0xfff);
    /* The driver's own walk agrees. */
    uint64_t dpa, psz;
    bool w;
    cr_assert(iopt_resolve(&E.pt[0], iova + 0x777, &dpa, &psz, &w));
    cr_expect_eq(dpa, pa + 0x777);
    cr_expect_eq(psz, K4);
    cr_expect(w);
}

Test(iommu, page_boundary_splits_discontiguous_pages)
{
    /* Two adjacent IOVA pages backed by frames far apart, in reverse order. */
    const uint64_t iova = 0x7000000ull;
    cr_assert_eq(iopt_map(&E.pt[0], iova, DATA + 0x50000, K4, K4, true), IOPT_OK);
    cr_assert_eq(iopt_map(&E.pt[0], iova + K4, DATA + 0x10000, K4, K4, true), IOPT_OK);

    struct iommu_result r;
    cr_assert_eq(xl(0, iova + K4 - 1, false, &r), IOMMU_OK);
    cr_expect_eq(r.pa, DATA + 0x50000 + K4 - 1);
    cr_expect_eq(r.span, 1, "the last byte of a page spans 1 byte");
    cr_assert_eq(xl(0, iova + K4, false, &r), IOMMU_OK);
    cr_expect_eq(r.pa, DATA + 0x10000);
    cr_expect_eq(r.span, K4);
    /* Page just past the mapping: unmapped. */
    xl_fault(0, iova + 2 * K4, false, VS_REASON_IOMMU_FAULT_UNMAPPED);
    cr_expect_eq(E.m.fault_log[0].level, 1);
}

Test(iommu, map_2m_translate_one_tlb_entry)
{
    const uint64_t iova = 0x40000000ull, pa = 0x100000000ull; /* pa need not be guest RAM */
    cr_assert_eq(iopt_map(&E.pt[0], iova, pa, 2 * M2, M2, false), IOPT_OK);

    struct iommu_result r;
    cr_assert_eq(xl(0, iova + M2 - 1, false, &r), IOMMU_OK);
    cr_expect_eq(r.pa, pa + M2 - 1);
    cr_expect_eq(r.page_size, M2);
    cr_expect_eq(r.span, 1);
    cr_expect_eq(r.walk_reads, 3, "a 2 MiB leaf ends the walk at level 2");
    cr_expect_not(r.writable);

    /* Anywhere in the same 2 MiB page hits the one entry. */
    cr_assert_eq(xl(0, iova + 5, false, &r), IOMMU_OK);
    cr_expect(r.tlb_hit);
    cr_expect_eq(r.pa, pa + 5);
    cr_expect_eq(r.span, M2 - 5);
    cr_assert_eq(xl(0, iova + 0x12345, false, &r), IOMMU_OK);
    cr_expect(r.tlb_hit);
    cr_expect_eq(E.m.tlb.stats.inserts, 1);

    /* The second 2 MiB page is its own entry. */
    cr_assert_eq(xl(0, iova + M2 + 7, false, &r), IOMMU_OK);
    cr_expect_not(r.tlb_hit);
    cr_expect_eq(r.pa, pa + M2 + 7);
    cr_expect_eq(E.m.tlb.stats.inserts, 2);
}

Test(iommu, tlb_hit_after_miss_no_memory_access)
{
    const uint64_t iova = 0x2000ull;
    cr_assert_eq(iopt_map(&E.pt[1], iova, DATA, K4, K4, true), IOPT_OK);
    fake_guest_reset_counters(&E.g);

    struct iommu_result r;
    cr_assert_eq(xl(1, iova, false, &r), IOMMU_OK);
    cr_expect_not(r.tlb_hit);
    cr_expect_eq(r.walk_reads, 4);
    cr_assert_eq(xl(1, iova + 8, true, &r), IOMMU_OK);
    cr_expect(r.tlb_hit);
    cr_expect_eq(r.walk_reads, 0);
    cr_expect_eq(r.pa, DATA + 8);
    cr_expect_eq(fake_guest_accesses(&E.g), 4, "a hit reads no page table");

    const struct iommu_counts *p = &E.m.stats.pasid[1];
    cr_expect_eq(p->lookups, 2);
    cr_expect_eq(p->hits, 1);
    cr_expect_eq(p->misses, 1);
    cr_expect_eq(p->walks, 1);
    cr_expect_eq(p->walk_reads, 4);
    cr_expect_eq(p->faults, 0);
    cr_expect_eq(E.m.stats.total.walk_reads, 4);
    cr_expect_eq(E.m.stats.requests, 2);
    cr_expect_eq(E.m.stats.pasid[0].lookups, 0);
}

/* ======================================================================
 * IOTLB alone: sets, ways, replacement
 * ====================================================================== */

static void tlb_init(uint32_t entries, uint32_t ways, enum iotlb_policy policy, uint64_t seed)
{
    struct iotlb_config cfg = {.entries = entries, .ways = ways, .policy = policy, .seed = seed};
    cr_assert_null(iotlb_check_config(&cfg));
    iotlb_init(&E.t, &cfg);
}

static void tlb_put(uint64_t vpn)
{
    iotlb_insert(&E.t, 0, vpn * K4, IOMMU_PAGE_SHIFT_4K, 0x900000000ull + vpn * K4, true);
}

static bool tlb_has(uint64_t vpn)
{
    struct iotlb_entry e;
    bool hit = iotlb_lookup(&E.t, 0, vpn * K4 + 1, false, &e);
    if (hit)
        cr_assert_eq(iotlb_entry_pa(&e, vpn * K4 + 1), 0x900000000ull + vpn * K4 + 1);
    return hit;
}

Test(iotlb, config_checks)
{
    struct iotlb_config c = {.entries = 64, .ways = 4};
    cr_expect_null(iotlb_check_config(&c));
    c.ways = 3;
    cr_expect_not_null(iotlb_check_config(&c));  /* not a multiple */
    c = (struct iotlb_config){.entries = 48, .ways = 4};
    cr_expect_not_null(iotlb_check_config(&c));  /* 12 sets */
    c = (struct iotlb_config){.entries = 64, .ways = 0};
    cr_expect_not_null(iotlb_check_config(&c));
    c = (struct iotlb_config){.entries = IOTLB_ENTRIES_MAX * 2, .ways = 1};
    cr_expect_not_null(iotlb_check_config(&c));
    c = (struct iotlb_config){.entries = 0, .ways = 0};
    cr_expect_null(iotlb_check_config(&c));      /* no caching */
    c = (struct iotlb_config){.entries = 8, .ways = 8, .policy = (enum iotlb_policy)7};
    cr_expect_not_null(iotlb_check_config(&c));
}

Test(iotlb, lru_evicts_least_recently_used_of_the_set)
{
    tlb_init(4, 2, IOTLB_LRU, 0); /* 2 sets of 2 ways */
    cr_assert_eq(E.t.sets, 2);
    tlb_put(0);  /* set 0 */
    tlb_put(2);  /* set 0: full */
    tlb_put(1);  /* set 1 */
    cr_assert(tlb_has(0)); /* 0 is now the most recent of set 0; 2 the least */
    tlb_put(4);  /* set 0: evicts 2 */
    cr_expect_eq(E.t.stats.evictions, 1);
    cr_expect(tlb_has(0));
    cr_expect(tlb_has(4));
    cr_expect_not(tlb_has(2), "the least recently used way was evicted");
    cr_expect(tlb_has(1), "the other set is untouched");

    /* Now 0 is older than 4 (4 was looked up after it), so 6 evicts 0. */
    tlb_put(6);
    cr_expect_not(tlb_has(0));
    cr_expect(tlb_has(4));
    cr_expect(tlb_has(6));
    cr_expect_eq(E.t.stats.evictions, 2);
    cr_expect_eq(E.t.stats.inserts, 5);

    /* Re-inserting a present tag updates it in place: no eviction, no insert. */
    tlb_put(6);
    cr_expect_eq(E.t.stats.evictions, 2);
    cr_expect_eq(E.t.stats.inserts, 5);
}

Test(iotlb, set_indexing_by_page_number)
{
    tlb_init(16, 2, IOTLB_LRU, 0); /* 8 sets */
    cr_expect_eq(iotlb_set_index(&E.t, 0, 0), 0);
    cr_expect_eq(iotlb_set_index(&E.t, 0, 7), 7);
    cr_expect_eq(iotlb_set_index(&E.t, 0, 8), 0);
    cr_expect_eq(iotlb_set_index(&E.t, 0, 13), 5);
    /* Fill set 3 beyond its ways with pages 3, 11, 19: only set 3 loses an entry. */
    for (uint64_t v = 0; v < 8; v++)
        tlb_put(v);
    tlb_put(11);
    tlb_put(19);
    cr_expect_eq(E.t.stats.evictions, 1);
    cr_expect_not(tlb_has(3));
    cr_expect(tlb_has(11));
    cr_expect(tlb_has(19));
    for (uint64_t v = 0; v < 8; v++) {
        if (v != 3)
            cr_expect(tlb_has(v), "page %llu", (unsigned long long)v);
    }
    /* The entry sits where the index says: ways of set 3 are e[6], e[7]. */
    cr_expect(E.t.e[6].valid && E.t.e[7].valid);
    cr_expect((E.t.e[6].vpn == 11 && E.t.e[7].vpn == 19) ||
              (E.t.e[6].vpn == 19 && E.t.e[7].vpn == 11));

    /* A 2 MiB entry is indexed by its 2 MiB page number. */
    iotlb_insert(&E.t, 0, 5 * M2, IOMMU_PAGE_SHIFT_2M, 0, false);
    const struct iotlb_entry *w0 = &E.t.e[10], *w1 = &E.t.e[11]; /* set 5 */
    cr_expect(w0->valid && w0->vpn == 5 && w0->page_shift == IOMMU_PAGE_SHIFT_4K);
    cr_expect(w1->valid && w1->vpn == 5 && w1->page_shift == IOMMU_PAGE_SHIFT_2M);
    struct iotlb_entry e;
    cr_expect(iotlb_lookup(&E.t, 0, 5 * M2 + 0x1ff123, false, &e));
    cr_expect_eq(e.page_shift, IOMMU_PAGE_SHIFT_2M);
    cr_expect_not(iotlb_lookup(&E.t, 0, 5 * M2 + 0x1ff123, true, &e), "read-only entry");
}

/* Cycle through ways + 1 pages of one set: LRU always evicts the page needed next. */
static double cyclic_hit_rate(enum iotlb_policy policy)
{
    tlb_init(8, 4, policy, 7); /* 2 sets */
    for (unsigned round = 0; round < 200; round++) {
        for (uint64_t k = 0; k < 5; k++) {
            const uint64_t vpn = 2 * k; /* all in set 0 */
            if (!tlb_has(vpn))
                tlb_put(vpn);
        }
    }
    return (double)E.t.stats.hits / (double)E.t.stats.lookups;
}

Test(iotlb, lru_thrashes_on_a_cycle_random_does_not)
{
    cr_expect_eq(cyclic_hit_rate(IOTLB_LRU), 0.0);
    const double random_rate = cyclic_hit_rate(IOTLB_RANDOM);
    cr_expect_gt(random_rate, 0.2, "random replacement keeps some of the cycle: %f", random_rate);
}

Test(iotlb, random_policy_is_deterministic_per_seed)
{
    uint64_t evicted_a[64], evicted_b[64];
    for (unsigned pass = 0; pass < 2; pass++) {
        uint64_t *out = pass ? evicted_b : evicted_a;
        tlb_init(4, 4, IOTLB_RANDOM, 1234);
        for (uint64_t v = 0; v < 4; v++)
            tlb_put(v);
        for (uint64_t v = 4; v < 68; v++) {
            tlb_put(v);
            /* Which way was replaced: the one now holding v. */
            for (unsigned w = 0; w < 4; w++) {
                if (E.t.e[w].vpn == v)
                    out[v - 4] = w;
            }
        }
    }
    cr_expect_arr_eq(evicted_a, evicted_b, sizeof evicted_a);
    unsigned seen[4] = {0};
    for (unsigned i = 0; i < 64; i++)
        seen[evicted_a[i]]++;
    for (unsigned w = 0; w < 4; w++)
        cr_expect_gt(seen[w], 4, "way %u picked %u times of 64", w, seen[w]);
}

Test(iotlb, zero_entries_caches_nothing)
{
    tlb_init(0, 0, IOTLB_LRU, 0);
    tlb_put(1);
    cr_expect_not(tlb_has(1));
    cr_expect_eq(E.t.stats.misses, 1);
}

Test(iotlb, invalidate_range_by_overlap)
{
    tlb_init(64, 4, IOTLB_LRU, 0);
    for (uint64_t v = 0; v < 8; v++)
        tlb_put(v);
    /* [page 2 + 1, + 8 KiB) touches pages 2, 3 and 4. */
    cr_expect_eq(iotlb_invalidate_range(&E.t, 0, 2 * K4 + 1, 2 * K4), 3);
    for (uint64_t v = 0; v < 8; v++)
        cr_expect_eq(tlb_has(v), v < 2 || v > 4, "page %llu", (unsigned long long)v);
    cr_expect_eq(iotlb_invalidate_range(&E.t, 0, 0, 0), 0, "len 0 drops nothing");
    cr_expect_eq(iotlb_invalidate_range(&E.t, 1, 0, UINT64_MAX), 0, "other PASID");
    cr_expect_eq(iotlb_invalidate_range(&E.t, 0, 7 * K4 + 5, UINT64_MAX), 1, "clipped at 2^64");
    cr_expect_eq(iotlb_invalidate_all(&E.t), 4);
    cr_expect_eq(E.t.stats.entries_invalidated, 8);
}

Test(iotlb, ats_cache_in_front_of_the_iommu)
{
    /* The device's own translation cache, filled from IOMMU translation answers. */
    env_setup();
    tlb_init(8, 2, IOTLB_LRU, 0);
    const uint64_t iova = 0x30000000ull;
    cr_assert_eq(iopt_map(&E.pt[2], iova, DATA, M2, M2, true), IOPT_OK);

    struct iotlb_entry e;
    cr_assert_not(iotlb_lookup(&E.t, 2, iova + 0x4321, false, &e));
    struct iommu_result r;
    cr_assert_eq(xl(2, iova + 0x4321, false, &r), IOMMU_OK);
    const unsigned shift = r.page_size == M2 ? IOMMU_PAGE_SHIFT_2M : IOMMU_PAGE_SHIFT_4K;
    iotlb_insert(&E.t, 2, iova + 0x4321, shift, r.pa - ((iova + 0x4321) & (r.page_size - 1)),
                 r.writable);
    cr_assert(iotlb_lookup(&E.t, 2, iova + 0x100000, true, &e));
    cr_expect_eq(iotlb_entry_pa(&e, iova + 0x100000), DATA + 0x100000);
    cr_expect_eq(E.m.stats.requests, 1, "the ATS hit never reached the IOMMU");
}

/* ======================================================================
 * Translation-level replacement, PASIDs, invalidation
 * ====================================================================== */

Test(iommu, lru_eviction_through_translate)
{
    env_setup_tlb(4, 2, IOTLB_LRU);
    /* Pages 0, 2, 4 of IOVA space share set 0; page 1 is set 1. */
    cr_assert_eq(iopt_map(&E.pt[0], 0, DATA, 8 * K4, K4, true), IOPT_OK);
    struct iommu_result r;
    xl_ok(0, 0 * K4, false);
    xl_ok(0, 2 * K4, false);
    xl_ok(0, 1 * K4, false);
    xl_ok(0, 0 * K4, false); /* hit; page 2 becomes LRU of set 0 */
    xl_ok(0, 4 * K4, false); /* evicts page 2 */
    cr_assert_eq(xl(0, 0 * K4, false, &r), IOMMU_OK);
    cr_expect(r.tlb_hit);
    cr_assert_eq(xl(0, 1 * K4, false, &r), IOMMU_OK);
    cr_expect(r.tlb_hit);
    cr_assert_eq(xl(0, 2 * K4, false, &r), IOMMU_OK);
    cr_expect_not(r.tlb_hit, "page 2 was the LRU victim");
    cr_expect_eq(r.pa, DATA + 2 * K4);
}

Test(iommu, pasid_isolation_and_invalidate_pasid)
{
    const uint64_t iova = 0x5000ull;
    cr_assert_eq(iopt_map(&E.pt[1], iova, DATA + 0x1000, K4, K4, true), IOPT_OK);
    cr_assert_eq(iopt_map(&E.pt[2], iova, DATA + 0x9000, K4, K4, true), IOPT_OK);
    cr_expect_eq(xl_ok(1, iova + 3, false), DATA + 0x1003);
    cr_expect_eq(xl_ok(2, iova + 3, false), DATA + 0x9003);
    /* PASID 0 has a table but not this page; PASID 3 has no table at all. */
    xl_fault(0, iova, false, VS_REASON_IOMMU_FAULT_UNMAPPED);
    xl_fault(3, iova, false, VS_REASON_IOMMU_FAULT_NO_ROOT);
    cr_expect_eq(E.m.fault_log[1].level, 0);

    cr_expect_eq(iommu_invalidate_pasid(&E.m, 1), 1);
    struct iommu_result r;
    cr_assert_eq(xl(2, iova, false, &r), IOMMU_OK);
    cr_expect(r.tlb_hit, "invalidating PASID 1 keeps PASID 2's entry");
    cr_expect_eq(r.pa, DATA + 0x9000);
    cr_assert_eq(xl(1, iova, false, &r), IOMMU_OK);
    cr_expect_not(r.tlb_hit);
    cr_expect_eq(r.pa, DATA + 0x1000);
    cr_expect_eq(E.m.stats.pasid[1].misses, 2);
    cr_expect_eq(E.m.stats.pasid[2].hits, 1);
    cr_expect_eq(E.m.stats.pasid[0].faults, 1);
    cr_expect_eq(E.m.stats.pasid[3].faults, 1);
    cr_expect_eq(E.m.stats.total.faults, 2);

    /* Changing a root drops that PASID's translations. */
    cr_assert_eq(xl(2, iova, false, &r), IOMMU_OK);
    cr_assert(r.tlb_hit);
    cr_assert_eq(iommu_set_root(&E.m, 2, E.pt[1].root), VS_REASON_NONE);
    cr_expect_eq(xl_ok(2, iova, false), DATA + 0x1000);
}

Test(iommu, invalidate_range_and_stale_translations)
{
    const uint64_t iova = 0x600000ull;
    cr_assert_eq(iopt_map(&E.pt[0], iova, DATA, 8 * K4, K4, true), IOPT_OK);
    for (unsigned i = 0; i < 8; i++)
        xl_ok(0, iova + i * K4, false);

    /* The driver unmaps pages 2..4: without invalidation the IOTLB still translates
     * them (as hardware does); after the range invalidation they fault. */
    cr_assert_eq(iopt_unmap(&E.pt[0], iova + 2 * K4, 3 * K4), IOPT_OK);
    struct iommu_result r;
    cr_assert_eq(xl(0, iova + 3 * K4, false, &r), IOMMU_OK);
    cr_expect(r.tlb_hit);
    cr_expect_eq(iommu_invalidate_range(&E.m, 0, iova + 2 * K4, 3 * K4), 3);
    xl_fault(0, iova + 2 * K4, false, VS_REASON_IOMMU_FAULT_UNMAPPED);
    xl_fault(0, iova + 3 * K4 + 9, true, VS_REASON_IOMMU_FAULT_UNMAPPED);
    xl_fault(0, iova + 4 * K4, false, VS_REASON_IOMMU_FAULT_UNMAPPED);
    for (unsigned i = 0; i < 8; i++) {
        if (i >= 2 && i <= 4)
            continue;
        cr_assert_eq(xl(0, iova + i * K4, false, &r), IOMMU_OK);
        cr_expect(r.tlb_hit, "page %u kept", i);
    }
    /* Faults are not cached: mapping the page again needs no invalidation. */
    cr_assert_eq(iopt_map(&E.pt[0], iova + 2 * K4, DATA + 0x40000, K4, K4, true), IOPT_OK);
    cr_expect_eq(xl_ok(0, iova + 2 * K4, false), DATA + 0x40000);

    cr_expect_gt(iommu_invalidate_all(&E.m), 0);
    cr_assert_eq(xl(0, iova, false, &r), IOMMU_OK);
    cr_expect_not(r.tlb_hit);
}

/* ======================================================================
 * Faults
 * ====================================================================== */

Test(iommu, fault_unmapped_at_each_level)
{
    cr_assert_eq(iopt_map(&E.pt[0], 0x40201000ull, DATA, K4, K4, true), IOPT_OK);
    xl_fault(0, 0x8000000000ull, false, VS_REASON_IOMMU_FAULT_UNMAPPED); /* other L4 slot */
    cr_expect_eq(E.m.fault_log[0].level, 4);
    xl_fault(0, 0x00000000ull, false, VS_REASON_IOMMU_FAULT_UNMAPPED);   /* other L3 slot */
    cr_expect_eq(E.m.fault_log[1].level, 3);
    xl_fault(0, 0x40000000ull, true, VS_REASON_IOMMU_FAULT_UNMAPPED);    /* other L2 slot */
    cr_expect_eq(E.m.fault_log[2].level, 2);
    xl_fault(0, 0x40202000ull, false, VS_REASON_IOMMU_FAULT_UNMAPPED);   /* other L1 slot */
    cr_expect_eq(E.m.fault_log[3].level, 1);
    cr_expect_eq(E.m.stats.total.walk_reads, 1 + 2 + 3 + 4);
    cr_expect_eq(E.m.tlb.stats.inserts, 0, "faults are never cached");
}

Test(iommu, fault_write_to_read_only)
{
    const uint64_t iova = 0x9000ull;
    cr_assert_eq(iopt_map(&E.pt[0], iova, DATA, K4, K4, false), IOPT_OK);
    struct iommu_result r;
    cr_assert_eq(xl(0, iova + 1, false, &r), IOMMU_OK);
    cr_expect_not(r.writable);
    /* The cached read-only entry does not serve a write: the IOMMU walks again. */
    xl_fault(0, iova + 2, true, VS_REASON_IOMMU_FAULT_READ_ONLY);
    cr_expect_eq(E.m.fault_log[0].level, 1);
    cr_expect_eq(E.m.stats.pasid[0].walks, 2);
    /* Reads still work from the IOTLB. */
    cr_assert_eq(xl(0, iova + 3, false, &r), IOMMU_OK);
    cr_expect(r.tlb_hit);

    /* A permission upgrade needs no invalidation. */
    const uint64_t a = pte_addr(&E.pt[0], iova, 1);
    fake_guest_put64(&E.g, a, fake_guest_get64(&E.g, a) | IOMMU_PTE_WRITABLE_MASK);
    cr_assert_eq(xl(0, iova + 4, true, &r), IOMMU_OK);
    cr_expect(r.writable);
    cr_expect_not(r.tlb_hit);
    cr_assert_eq(xl(0, iova + 5, true, &r), IOMMU_OK);
    cr_expect(r.tlb_hit);
}

Test(iommu, fault_read_only_table_entry_covers_subtree)
{
    const uint64_t iova = 0x200000000ull;
    cr_assert_eq(iopt_map(&E.pt[0], iova, DATA, K4, K4, true), IOPT_OK);
    const uint64_t a = pte_addr(&E.pt[0], iova, 3);
    fake_guest_put64(&E.g, a, fake_guest_get64(&E.g, a) & ~IOMMU_PTE_WRITABLE_MASK);
    struct iommu_result r;
    cr_assert_eq(xl(0, iova, false, &r), IOMMU_OK);
    cr_expect_not(r.writable);
    xl_fault(0, iova, true, VS_REASON_IOMMU_FAULT_READ_ONLY);
}

Test(iommu, fault_reserved_bits)
{
    const uint64_t iova = 0x1000000ull;
    cr_assert_eq(iopt_map(&E.pt[0], iova, DATA, 4 * K4, K4, true), IOPT_OK);
    const uint64_t two_m = 0x80000000ull;
    cr_assert_eq(iopt_map(&E.pt[0], two_m, 0x40000000ull, M2, M2, true), IOPT_OK);

    /* Bit 5 of a 4 KiB leaf. */
    uint64_t a = pte_addr(&E.pt[0], iova, 1);
    fake_guest_put64(&E.g, a, fake_guest_get64(&E.g, a) | (1ull << 5));
    xl_fault(0, iova, false, VS_REASON_IOMMU_FAULT_RESERVED_BITS);
    cr_expect_eq(E.m.fault_log[0].level, 1);

    /* Bit 7 at level 1 is reserved too (leaves there are always 4 KiB). */
    a = pte_addr(&E.pt[0], iova + K4, 1);
    fake_guest_put64(&E.g, a, fake_guest_get64(&E.g, a) | IOMMU_PTE_LEAF_MASK);
    xl_fault(0, iova + K4, false, VS_REASON_IOMMU_FAULT_RESERVED_BITS);

    /* Bit 52 of a leaf. */
    a = pte_addr(&E.pt[0], iova + 2 * K4, 1);
    fake_guest_put64(&E.g, a, fake_guest_get64(&E.g, a) | (1ull << 52));
    xl_fault(0, iova + 2 * K4, false, VS_REASON_IOMMU_FAULT_RESERVED_BITS);

    /* A 2 MiB leaf whose frame is not 2 MiB aligned. */
    a = pte_addr(&E.pt[0], two_m, 2);
    fake_guest_put64(&E.g, a, fake_guest_get64(&E.g, a) | (1ull << 12));
    xl_fault(0, two_m, false, VS_REASON_IOMMU_FAULT_RESERVED_BITS);
    cr_expect_eq(E.m.fault_log[3].level, 2);

    /* Bit 7 (a 1 GiB page) at level 3: not supported, reserved. */
    a = pte_addr(&E.pt[0], iova + 3 * K4, 3);
    fake_guest_put64(&E.g, a, fake_guest_get64(&E.g, a) | IOMMU_PTE_LEAF_MASK);
    xl_fault(0, iova + 3 * K4, true, VS_REASON_IOMMU_FAULT_RESERVED_BITS);
    cr_expect_eq(E.m.fault_log[4].level, 3);

    /* A non-present entry's other bits are ignored: still "unmapped". */
    a = pte_addr(&E.pt[0], iova + 3 * K4, 3);
    fake_guest_put64(&E.g, a, 0xfffffffffffffffeull);
    xl_fault(0, iova + 3 * K4, false, VS_REASON_IOMMU_FAULT_UNMAPPED);
}

Test(iommu, fault_pasid_without_root_and_out_of_range)
{
    xl_fault(5, 0x1000, false, VS_REASON_IOMMU_FAULT_NO_ROOT);
    xl_fault(IOMMU_PASIDS_MAX, 0x1000, true, VS_REASON_IOMMU_FAULT_PASID_RANGE);
    xl_fault(0xffffffffu, 0x1000, false, VS_REASON_IOMMU_FAULT_PASID_RANGE);
    cr_expect_eq(E.m.stats.total.faults, 3);
    cr_expect_eq(E.m.stats.pasid[5].faults, 1);
    cr_expect_eq(fake_guest_accesses(&E.g), 0);

    /* Roots are checked when set. */
    cr_expect_eq(iommu_set_root(&E.m, IOMMU_PASIDS_MAX, POOL), VS_REASON_IOMMU_FAULT_PASID_RANGE);
    cr_expect_eq(iommu_set_root(&E.m, 5, POOL + 8), VS_REASON_IOMMU_ROOT_INVALID);
    cr_expect_eq(iommu_set_root(&E.m, 5, 1ull << 52), VS_REASON_IOMMU_ROOT_INVALID);
    cr_expect_eq(E.m.root[5], 0);
    /* Removing an address space. */
    cr_assert_eq(iopt_map(&E.pt[0], 0x1000, DATA, K4, K4, true), IOPT_OK);
    xl_ok(0, 0x1000, false);
    cr_expect_eq(iommu_set_root(&E.m, 0, 0), VS_REASON_NONE);
    xl_fault(0, 0x1000, false, VS_REASON_IOMMU_FAULT_NO_ROOT);
}

Test(iommu, fault_iova_beyond_48_bits)
{
    cr_assert_eq(iopt_map(&E.pt[0], 0, DATA, K4, K4, true), IOPT_OK);
    xl_fault(0, 1ull << 48, false, VS_REASON_IOMMU_FAULT_IOVA_RANGE);
    xl_fault(0, 0xffff800000000000ull, false, VS_REASON_IOMMU_FAULT_IOVA_RANGE);
    cr_expect_eq(fake_guest_accesses(&E.g), 0);
    cr_expect_eq(iopt_map(&E.pt[0], (1ull << 48) - K4, DATA, 2 * K4, K4, true), IOPT_INVALID);
}

Test(iommu, fault_table_pointer_outside_guest_memory)
{
    const uint64_t iova = 0x3000ull;
    cr_assert_eq(iopt_map(&E.pt[0], iova, DATA, K4, K4, true), IOPT_OK);
    /* The level-3 entry points at a "table" beyond guest memory. */
    const uint64_t a = pte_addr(&E.pt[0], iova, 3);
    fake_guest_put64(&E.g, a, (G_BASE + G_SIZE + 0x10000) | TABLE_FLAGS_FOR_TEST);
    xl_fault(0, iova, false, VS_REASON_IOMMU_FAULT_WALK_RANGE);
    cr_expect_eq(E.m.fault_log[0].level, 2, "the level-2 table could not be read");
    const struct fake_guest_access *last = fake_guest_recent(&E.g, 0);
    cr_expect_eq(last->status, VS_DMA_OUT_OF_RANGE);
    cr_expect_eq(last->kind, VS_DMA_PT_READ);

    /* A root outside guest memory. */
    cr_assert_eq(iommu_set_root(&E.m, 7, 0x1000), VS_REASON_NONE);
    xl_fault(7, iova, false, VS_REASON_IOMMU_FAULT_WALK_RANGE);
    cr_expect_eq(E.m.fault_log[1].level, 4);

    /* A pointer to the top of the 52-bit physical space. */
    fake_guest_put64(&E.g, a, IOMMU_PTE_ADDR_MASK | TABLE_FLAGS_FOR_TEST);
    xl_fault(0, iova, true, VS_REASON_IOMMU_FAULT_WALK_RANGE);
}

Test(iommu, fault_log_keeps_first_n_and_counts_all)
{
    for (unsigned i = 0; i < IOMMU_FAULT_LOG_LEN + 5; i++) {
        struct iommu_result r;
        cr_assert_eq(xl(1, 0x100000ull + i * K4, i & 1, &r), IOMMU_FAULT);
    }
    cr_expect_eq(E.m.fault_logged, IOMMU_FAULT_LOG_LEN);
    cr_expect_eq(E.m.fault_count, IOMMU_FAULT_LOG_LEN + 5);
    for (unsigned i = 0; i < IOMMU_FAULT_LOG_LEN; i++) {
        cr_expect_eq(E.m.fault_log[i].iova, 0x100000ull + i * K4);
        cr_expect_eq(E.m.fault_log[i].pasid, 1);
        cr_expect_eq(E.m.fault_log[i].write, (bool)(i & 1));
        cr_expect_eq(E.m.fault_log[i].reason, VS_REASON_IOMMU_FAULT_UNMAPPED);
    }
    iommu_clear_faults(&E.m);
    cr_expect_eq(E.m.fault_logged, 0);
    cr_expect_eq(E.m.fault_count, 0);
    cr_expect_eq(E.m.stats.pasid[1].faults, IOMMU_FAULT_LOG_LEN + 5, "stats keep counting");
    xl_fault(1, 0x77000, false, VS_REASON_IOMMU_FAULT_UNMAPPED);
    cr_expect_eq(E.m.fault_logged, 1);
}

/* ======================================================================
 * Bypass
 * ====================================================================== */

Test(iommu, bypass_is_identity_without_memory_access)
{
    iommu_set_enabled(&E.m, false);
    fake_guest_reset_counters(&E.g);
    struct iommu_result r;
    /* Identity even for a PASID without a table, an unmapped IOVA, above 48 bits. */
    const uint64_t addrs[] = {0, 0x1234, 1ull << 50, UINT64_MAX};
    for (unsigned i = 0; i < 4; i++) {
        cr_assert_eq(iommu_translate(&E.m, NULL, 9, addrs[i], true, &r), IOMMU_OK);
        cr_expect_eq(r.pa, addrs[i]);
        cr_expect(r.bypass);
        cr_expect(r.writable);
        cr_expect_eq(r.walk_reads, 0);
        cr_expect_eq(r.page_size, 0);
    }
    cr_expect_eq(r.span, 1, "UINT64_MAX spans one byte");
    cr_assert_eq(iommu_translate(&E.m, NULL, 0, 0x1000, false, &r), IOMMU_OK);
    cr_expect_eq(r.span, 0ull - 0x1000);
    cr_expect_eq(fake_guest_accesses(&E.g), 0);
    cr_expect_eq(E.m.stats.bypassed, 5);
    cr_expect_eq(E.m.stats.total.lookups, 0);
    cr_expect_eq(E.m.fault_count, 0);

    iommu_set_enabled(&E.m, true);
    xl_fault(0, 0x1234, false, VS_REASON_IOMMU_FAULT_UNMAPPED);
}

/* ======================================================================
 * Analytic oracle: hit rate of uniformly random pages
 * ====================================================================== */

static uint64_t test_rng(uint64_t *s)
{
    /* splitmix64: independent of the kernel's own xorshift. */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Translate uniformly random addresses over w bytes of 4 KiB pages; after warm-up
 * return the measured IOTLB hit rate. Under the independent reference model every
 * replacement policy keeps `ways` of the w / (4096 * sets) pages of each set, so the
 * hit rate is min(1, entries * 4096 / w). */
static double random_hit_rate(uint32_t entries, uint32_t ways, enum iotlb_policy policy,
                              uint64_t w, uint64_t seed)
{
    env_setup_tlb(entries, ways, policy);
    const uint64_t iova = 0x1000000000ull; /* IOVA != PA */
    const uint64_t pages = w / K4;
    /* Back the pages with the same 1 MiB of frames repeatedly (only addresses matter). */
    for (uint64_t p = 0; p < pages; p++)
        cr_assert_eq(iopt_map(&E.pt[0], iova + p * K4, DATA + (p % 256) * K4, K4, K4, true),
                     IOPT_OK);
    uint64_t s = seed;
    const unsigned warmup = 20000, samples = 200000;
    uint64_t hits = 0;
    for (unsigned i = 0; i < warmup + samples; i++) {
        const uint64_t off = test_rng(&s) % w;
        struct iommu_result r;
        cr_assert_eq(xl(0, iova + off, false, &r), IOMMU_OK);
        cr_assert_eq(r.pa, DATA + ((off / K4) % 256) * K4 + (off % K4));
        if (i >= warmup && r.tlb_hit)
            hits++;
    }
    const struct iommu_counts *c = &E.m.stats.total;
    cr_assert_eq(c->lookups, warmup + samples);
    cr_assert_eq(c->hits + c->misses, c->lookups);
    cr_assert_eq(c->walks, c->misses);
    cr_assert_eq(c->walk_reads, 4 * c->walks);
    return (double)hits / samples;
}

static void expect_hit_rate(uint32_t entries, uint32_t ways, enum iotlb_policy policy,
                            uint64_t w)
{
    double expect = (double)entries * K4 / (double)w;
    if (expect > 1.0)
        expect = 1.0;
    const double got = random_hit_rate(entries, ways, policy, w, 0x5eed + entries + ways + w);
    cr_expect(got > expect - 0.05 && got < expect + 0.05,
              "E=%u ways=%u %s W=%llu KiB: hit rate %.4f, oracle %.4f", entries, ways,
              policy == IOTLB_LRU ? "lru" : "random", (unsigned long long)(w / 1024), got,
              expect);
}

Test(iommu, hit_rate_oracle_lru)
{
    expect_hit_rate(64, 4, IOTLB_LRU, 1ull << 20);   /* 0.25 */
    expect_hit_rate(64, 64, IOTLB_LRU, 1ull << 20);  /* fully associative */
    expect_hit_rate(64, 1, IOTLB_LRU, 1ull << 20);   /* direct mapped */
    expect_hit_rate(64, 8, IOTLB_LRU, 4ull << 20);   /* 0.0625 */
    expect_hit_rate(64, 4, IOTLB_LRU, 128ull << 10); /* fits: 1.0 */
    expect_hit_rate(256, 8, IOTLB_LRU, 1ull << 20);  /* exactly fits: 1.0 */
}

Test(iommu, hit_rate_oracle_random)
{
    expect_hit_rate(64, 4, IOTLB_RANDOM, 1ull << 20);
    expect_hit_rate(32, 32, IOTLB_RANDOM, 512ull << 10);
}

/* ======================================================================
 * Hostile tables: garbage never crashes, hangs, or walks more than 4 levels
 * ====================================================================== */

/* Translate 20000 random IOVAs (bits within iova_mask) through random tables. */
static void survive_garbage(uint64_t iova_mask)
{
    uint64_t s = 99;
    /* Random bytes everywhere; present entries point mostly inside the pool so the
     * walk gets deep sometimes. */
    for (uint64_t a = G_BASE; a < G_BASE + G_SIZE; a += 8) {
        uint64_t v = test_rng(&s);
        if ((v & 3) == 1)
            v = (v & 0x83u) | (POOL + (v % (POOL_SZ / K4)) * K4);
        fake_guest_put64(&E.g, a, v);
    }
    unsigned ok = 0, faults = 0;
    for (unsigned i = 0; i < 20000; i++) {
        const uint64_t iova = test_rng(&s) & iova_mask;
        struct iommu_result r;
        enum iommu_status st = xl(0, iova, test_rng(&s) & 1, &r);
        cr_assert_leq(r.walk_reads, 4);
        if (st == IOMMU_OK) {
            ok++;
            cr_assert_eq(r.fault, VS_REASON_NONE);
            cr_assert(r.page_size == K4 || r.page_size == M2);
        } else {
            faults++;
            cr_assert(r.fault >= VS_REASON_IOMMU_FAULT_PASID_RANGE &&
                      r.fault <= VS_REASON_IOMMU_FAULT_WALK_RANGE);
        }
    }
    cr_expect_eq(ok + faults, 20000);
    cr_expect_eq(E.m.fault_count, faults);
    cr_expect_eq(E.m.fault_logged, faults < IOMMU_FAULT_LOG_LEN ? faults : IOMMU_FAULT_LOG_LEN);
}

Test(iommu, garbage_tables_are_survived)
{
    survive_garbage((1ull << 48) - 1u);
}

/* Paging-structure caches keep table pointers that the guest may overwrite at any
 * time: walks that start from them must stay as bounded and clean as any other. A
 * valid table is mapped, then the guest keeps scribbling over its table pages while
 * the device translates. */
Test(iommu, scribbled_tables_under_paging_structure_caches)
{
    env_setup_full(16, 4, IOTLB_LRU, (struct psc_sizes){2, 4, 8});
    /* 32 MiB mapped across the boundary of two 1 GiB regions, 16 MiB unmapped after. */
    const uint64_t base = 0x3f000000ull, mapped = 32ull << 20, span = 48ull << 20;
    cr_assert_eq(iopt_map(&E.pt[0], base, 0x100000000ull, mapped, K4, true), IOPT_OK);
    uint64_t s = 7;
    unsigned ok = 0, faults = 0;
    for (unsigned i = 0; i < 20000; i++) {
        const uint64_t v = test_rng(&s);
        if ((v & 7) == 0) {
            /* Any word of any table page: a pointer into the pool or plain noise. */
            const uint64_t at = POOL + (test_rng(&s) % (POOL_SZ / 8)) * 8;
            const uint64_t w = test_rng(&s);
            fake_guest_put64(&E.g, at, (w & 1) ? (w & 0x83u) | (POOL + (w % (POOL_SZ / K4)) * K4) : w);
        }
        if ((v & 0x3f) == 1)
            iommu_invalidate_range(&E.m, 0, base + test_rng(&s) % span, K4);
        const uint64_t iova = base + test_rng(&s) % span;
        struct iommu_result r;
        const enum iommu_status st = xl(0, iova, (v >> 8) & 1, &r);
        cr_assert_leq(r.walk_reads, r.psc_hit_level ? r.psc_hit_level - 1u : 4u);
        if (st == IOMMU_OK) {
            ok++;
            cr_assert(r.page_size == K4 || r.page_size == M2);
        } else {
            faults++;
            cr_assert(r.fault >= VS_REASON_IOMMU_FAULT_PASID_RANGE &&
                      r.fault <= VS_REASON_IOMMU_FAULT_WALK_RANGE);
        }
    }
    cr_expect_eq(E.m.fault_count, faults);
    cr_expect_gt(ok, 0);
    cr_expect_gt(faults, 0);
    for (unsigned l = 2; l <= 4; l++)
        cr_expect_gt(E.m.stats.psc[iommu_psc_slot(l)].hits, 0, "level %u's cache took part", l);
}

/* ======================================================================
 * Paging-structure caches (iommu.h, "Paging-structure caches")
 * ====================================================================== */

/* Regions that share ever fewer upper-level entries with A: B shares A's level-4 and
 * level-3 entries (same 1 GiB), C only the level-4 entry (same 512 GiB), D none. */
#define PSC_A 0x40000000ull
#define PSC_B (PSC_A + M2)
#define PSC_C (PSC_A + (1ull << 30))
#define PSC_D (PSC_A + (1ull << 39))

static void psc_setup(struct psc_sizes psc)
{
    /* No IOTLB: every translation walks, so the walk alone is under test. */
    env_setup_full(0, 0, IOTLB_LRU, psc);
}

/* Map two 4 KiB pages at each of A, B, C, D in pasid's table. */
static void psc_map_regions(uint32_t pasid)
{
    const uint64_t at[] = {PSC_A, PSC_B, PSC_C, PSC_D};
    for (unsigned i = 0; i < 4; i++)
        cr_assert_eq(iopt_map(&E.pt[pasid], at[i], DATA + i * 2 * K4, 2 * K4, K4, true), IOPT_OK);
}

/* Translate (must succeed) and return the page-table reads it did; checks that they
 * were exactly the entries of levels walk_reads..1, in that order, and that the
 * counters agree. */
static unsigned reads_of(uint32_t pasid, uint64_t iova, bool write)
{
    const uint64_t before = fake_guest_accesses(&E.g);
    const uint64_t total_before = E.m.stats.total.walk_reads;
    struct iommu_result r;
    cr_assert_eq(xl(pasid, iova, write, &r), IOMMU_OK, "iova 0x%llx: %s",
                 (unsigned long long)iova, vs_reason_name(r.fault));
    const unsigned n = r.walk_reads;
    cr_assert_eq(fake_guest_accesses(&E.g) - before, n, "walk_reads counts the reads done");
    cr_assert_eq(E.m.stats.total.walk_reads - total_before, n);
    for (unsigned k = 0; k < n; k++) {
        /* The k-th most recent read is of level k + 1 (4 KiB pages: the leaf last). */
        const struct fake_guest_access *a = fake_guest_recent(&E.g, k);
        cr_assert_eq(a->addr, pte_addr(&E.pt[pasid], iova, k + 1), "read of level %u", k + 1);
        cr_assert_eq(a->kind, VS_DMA_PT_READ);
    }
    cr_assert_eq(r.psc_hit_level, n == 4 ? 0 : n + 1, "the walk started below the hit");
    return n;
}

static const struct iommu_psc_counts *psc_stats(unsigned level)
{
    return &E.m.stats.psc[iommu_psc_slot(level)];
}

Test(iommu_psc, hits_skip_exactly_the_cached_levels)
{
    psc_setup((struct psc_sizes){4, 4, 4});
    psc_map_regions(0);
    cr_expect_eq(reads_of(0, PSC_A, false), 4, "cold: the whole walk");
    cr_expect_eq(reads_of(0, PSC_A + K4, false), 1, "level-2 hit: only the leaf");
    cr_expect_eq(reads_of(0, PSC_B, false), 2, "level-3 hit: levels 2 and 1");
    cr_expect_eq(reads_of(0, PSC_C, false), 3, "level-4 hit: levels 3, 2, 1");
    cr_expect_eq(reads_of(0, PSC_D, false), 4, "nothing shared: the whole walk");
    cr_expect_eq(reads_of(0, PSC_D + K4 + 7, true), 1);
    cr_expect_eq(xl_ok(0, PSC_C + K4 + 3, false), DATA + 4 * K4 + K4 + 3);

    /* Probed from level 2 up, stopping at the first hit. */
    cr_expect_eq(psc_stats(2)->hits, 3);   /* A + K4, D + K4, C + K4 */
    cr_expect_eq(psc_stats(2)->misses, 4); /* A, B, C, D */
    cr_expect_eq(psc_stats(3)->hits, 1);   /* B */
    cr_expect_eq(psc_stats(3)->misses, 3); /* A, C, D */
    cr_expect_eq(psc_stats(4)->hits, 1);   /* C */
    cr_expect_eq(psc_stats(4)->misses, 2); /* A, D */
    cr_expect_eq(psc_stats(2)->inserts, 4);
    cr_expect_eq(psc_stats(3)->inserts, 3);
    cr_expect_eq(psc_stats(4)->inserts, 2);
    cr_expect_eq(E.m.stats.total.walks, 7);
    cr_expect_eq(E.m.stats.total.walk_reads, 4 + 1 + 2 + 3 + 4 + 1 + 1);
}

Test(iommu_psc, each_level_alone)
{
    /* One cache at a time; the reads of A, A + 4 KiB, B, C, D in that order. */
    static const struct {
        struct psc_sizes sizes;
        unsigned reads[5];
    } cases[] = {
        {{0, 0, 8}, {4, 1, 4, 4, 4}}, /* level 2: only the same 2 MiB hits */
        {{0, 8, 0}, {4, 2, 2, 4, 4}}, /* level 3: the same 1 GiB reads two levels */
        {{8, 0, 0}, {4, 3, 3, 3, 4}}, /* level 4: the same 512 GiB reads three */
    };
    const uint64_t at[5] = {PSC_A, PSC_A + K4, PSC_B, PSC_C, PSC_D};
    for (unsigned c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        psc_setup(cases[c].sizes);
        psc_map_regions(0);
        for (unsigned i = 0; i < 5; i++)
            cr_expect_eq(reads_of(0, at[i], false), cases[c].reads[i], "case %u, address %u", c, i);
        unsigned probed = 0;
        for (unsigned l = 2; l <= 4; l++) {
            if (E.m.psc[iommu_psc_slot(l)].entries == 0)
                probed += psc_stats(l)->hits + psc_stats(l)->misses;
        }
        cr_expect_eq(probed, 0, "absent caches are not probed");
    }
}

Test(iommu_psc, zero_entries_is_todays_walk)
{
    psc_setup((struct psc_sizes){0, 0, 0});
    psc_map_regions(0);
    for (unsigned i = 0; i < 3; i++)
        cr_expect_eq(reads_of(0, PSC_A + (i & 1) * K4, false), 4);
    for (unsigned l = 2; l <= 4; l++) {
        const struct iommu_psc_counts *c = psc_stats(l);
        cr_expect_eq(c->hits + c->misses + c->inserts + c->evictions, 0, "level %u", l);
    }
}

Test(iommu_psc, two_mib_leaf_is_not_a_pde_cache_entry)
{
    psc_setup((struct psc_sizes){4, 4, 4});
    const uint64_t pa = 0x100000000ull;
    cr_assert_eq(iopt_map(&E.pt[0], PSC_A, pa, 2 * M2, M2, true), IOPT_OK);
    struct iommu_result r;
    cr_assert_eq(xl(0, PSC_A + 5, false, &r), IOMMU_OK);
    cr_expect_eq(r.walk_reads, 3, "levels 4, 3 and the 2 MiB leaf");
    cr_expect_eq(psc_stats(2)->inserts, 0, "a leaf belongs to the IOTLB");
    cr_expect_eq(psc_stats(3)->inserts, 1);
    cr_expect_eq(psc_stats(4)->inserts, 1);
    /* The next 2 MiB page: level 2 misses, level 3 hits, the leaf is the one read. */
    cr_assert_eq(xl(0, PSC_A + M2 + 9, false, &r), IOMMU_OK);
    cr_expect_eq(r.pa, pa + M2 + 9);
    cr_expect_eq(r.page_size, M2);
    cr_expect_eq(r.walk_reads, 1);
    cr_expect_eq(r.psc_hit_level, 3);
    cr_expect_eq(fake_guest_recent(&E.g, 0)->addr, pte_addr(&E.pt[0], PSC_A + M2, 2));
    cr_expect_eq(psc_stats(2)->misses, 2);
}

Test(iommu_psc, faults_are_never_cached)
{
    psc_setup((struct psc_sizes){4, 4, 4});
    cr_assert_eq(iopt_map(&E.pt[0], PSC_A, DATA, K4, K4, false), IOPT_OK);
    struct iommu_result r;
    /* The leaf of A + K4 is not present: four reads, then the fault; twice. */
    for (unsigned i = 0; i < 2; i++) {
        cr_assert_eq(xl(0, PSC_A + K4, false, &r), IOMMU_FAULT);
        cr_expect_eq(r.fault, VS_REASON_IOMMU_FAULT_UNMAPPED);
        cr_expect_eq(r.walk_reads, 4);
    }
    /* A write to the read-only page: the walk succeeds, the access faults. */
    cr_assert_eq(xl(0, PSC_A, true, &r), IOMMU_FAULT);
    cr_expect_eq(r.fault, VS_REASON_IOMMU_FAULT_READ_ONLY);
    cr_expect_eq(r.walk_reads, 4);
    for (unsigned l = 2; l <= 4; l++)
        cr_expect_eq(psc_stats(l)->inserts, 0, "level %u: nothing cached by a fault", l);

    /* A read succeeds and fills the caches; the write still faults, now after one read. */
    cr_expect_eq(reads_of(0, PSC_A, false), 4);
    cr_assert_eq(xl(0, PSC_A, true, &r), IOMMU_FAULT);
    cr_expect_eq(r.fault, VS_REASON_IOMMU_FAULT_READ_ONLY);
    cr_expect_eq(r.walk_reads, 1);
    for (unsigned l = 2; l <= 4; l++)
        cr_expect_eq(psc_stats(l)->inserts, 1, "level %u", l);
}

Test(iommu_psc, stale_and_hostile_tables_fault_cleanly)
{
    psc_setup((struct psc_sizes){4, 4, 4});
    psc_map_regions(0);
    cr_expect_eq(reads_of(0, PSC_A, false), 4);
    /* The driver writes reserved bits into A's leaf table: the cached level-2 entry
     * leads straight to it, and the walk faults on the one read it does. */
    const uint64_t leaf = pte_addr(&E.pt[0], PSC_A, 1);
    fake_guest_put64(&E.g, leaf, fake_guest_get64(&E.g, leaf) | (1ull << 9));
    xl_fault(0, PSC_A, false, VS_REASON_IOMMU_FAULT_RESERVED_BITS);
    cr_expect_eq(E.m.fault_log[0].level, 1);
    cr_expect_eq(E.m.stats.total.walk_reads, 5);

    /* It points A's level-2 entry outside guest memory: until it invalidates, the
     * cache keeps the old table (as hardware may); after, the walk reads the new
     * pointer and faults on the read it cannot do, caching nothing. */
    const uint64_t pde = pte_addr(&E.pt[0], PSC_A, 2);
    fake_guest_put64(&E.g, pde, (G_BASE + G_SIZE) | TABLE_FLAGS_FOR_TEST);
    fake_guest_put64(&E.g, leaf, fake_guest_get64(&E.g, leaf) & ~(1ull << 9));
    struct iommu_result r;
    cr_assert_eq(xl(0, PSC_A, false, &r), IOMMU_OK);
    cr_expect_eq(r.walk_reads, 1);
    cr_expect_eq(fake_guest_recent(&E.g, 0)->addr, leaf, "stale: the old table, as cached");
    iommu_invalidate_range(&E.m, 0, PSC_A, K4);
    const uint64_t inserts = psc_stats(2)->inserts + psc_stats(3)->inserts + psc_stats(4)->inserts;
    xl_fault(0, PSC_A, false, VS_REASON_IOMMU_FAULT_WALK_RANGE);
    cr_expect_eq(E.m.fault_log[1].level, 1);
    cr_expect_eq(psc_stats(2)->inserts + psc_stats(3)->inserts + psc_stats(4)->inserts, inserts);
    xl_fault(0, PSC_A, false, VS_REASON_IOMMU_FAULT_WALK_RANGE);
    cr_expect_eq(fake_guest_recent(&E.g, 3)->addr, E.pt[0].root + 8u * iommu_pte_index(PSC_A, 4),
                 "the faulting walk was not cached: the next one starts at the root");
}

Test(iommu_psc, invalidate_all_pasid_and_root_change)
{
    psc_setup((struct psc_sizes){4, 4, 4});
    psc_map_regions(0);
    psc_map_regions(1);
    for (uint32_t p = 0; p < 2; p++) {
        reads_of(p, PSC_A, false);
        reads_of(p, PSC_B, false);
    }
    cr_expect_eq(reads_of(0, PSC_A, false), 1);
    cr_expect_eq(reads_of(1, PSC_A, false), 1);

    /* PASID 1's entries go (two of level 2, one each of levels 3 and 4); 0's stay. */
    cr_expect_eq(iommu_invalidate_pasid(&E.m, 1), 0, "no IOTLB entries to drop");
    cr_expect_eq(psc_stats(2)->entries_invalidated, 2);
    cr_expect_eq(psc_stats(3)->entries_invalidated, 1);
    cr_expect_eq(psc_stats(4)->entries_invalidated, 1);
    cr_expect_eq(reads_of(0, PSC_B, false), 1);
    cr_expect_eq(reads_of(1, PSC_B, false), 4);

    /* A new root for PASID 0 (the same table: still a context change). */
    cr_assert_eq(iommu_set_root(&E.m, 0, E.pt[0].root), VS_REASON_NONE);
    cr_expect_eq(reads_of(0, PSC_B, false), 4);
    cr_expect_eq(reads_of(1, PSC_B + K4, false), 1, "PASID 1 kept its entries");

    iommu_invalidate_all(&E.m);
    cr_expect_eq(reads_of(0, PSC_B, false), 4);
    cr_expect_eq(reads_of(1, PSC_B, false), 4);

    /* Turning translation off and on is a context change too. */
    iommu_set_enabled(&E.m, false);
    iommu_set_enabled(&E.m, true);
    cr_expect_eq(reads_of(1, PSC_B, false), 4);
}

Test(iommu_psc, invalidate_range_drops_the_entries_covering_it)
{
    psc_setup((struct psc_sizes){4, 4, 4});
    psc_map_regions(0);
    psc_map_regions(1);
    reads_of(0, PSC_A, false);
    reads_of(0, PSC_B, false);
    reads_of(1, PSC_A, false);

    /* Nothing: an empty range, another PASID's range elsewhere. */
    iommu_invalidate_range(&E.m, 0, PSC_A, 0);
    iommu_invalidate_range(&E.m, 2, 0, UINT64_MAX);
    cr_expect_eq(psc_stats(2)->entries_invalidated + psc_stats(3)->entries_invalidated +
                     psc_stats(4)->entries_invalidated, 0);

    /* One byte of A: A's level-2 entry and the level-3 and level-4 entries above it
     * (they cover it); B's level-2 entry and PASID 1's stay. */
    iommu_invalidate_range(&E.m, 0, PSC_A + 5, 1);
    cr_expect_eq(psc_stats(2)->entries_invalidated, 1);
    cr_expect_eq(psc_stats(3)->entries_invalidated, 1);
    cr_expect_eq(psc_stats(4)->entries_invalidated, 1);
    cr_expect_eq(reads_of(0, PSC_B + K4, false), 1);
    cr_expect_eq(reads_of(1, PSC_A + K4, false), 1);
    cr_expect_eq(reads_of(0, PSC_A + K4, false), 4);

    /* Two bytes across the 2 MiB boundary between A and B drop both level-2 entries. */
    iommu_invalidate_range(&E.m, 0, PSC_B - 1, 2);
    cr_expect_eq(psc_stats(2)->entries_invalidated, 3);
    cr_expect_eq(reads_of(0, PSC_A, false), 4);
    cr_expect_eq(reads_of(0, PSC_B, false), 2);

    /* A range in C touches neither A's nor B's level-2 or level-3 entries, only the
     * level-4 entry they share with C. */
    iommu_invalidate_range(&E.m, 0, PSC_C, K4);
    cr_expect_eq(psc_stats(2)->entries_invalidated, 3);
    cr_expect_eq(psc_stats(3)->entries_invalidated, 2);
    cr_expect_eq(psc_stats(4)->entries_invalidated, 3);
    cr_expect_eq(reads_of(0, PSC_B + K4, false), 1);
    cr_expect_eq(reads_of(0, PSC_C, false), 4);
}

Test(iommu_psc, one_entry_and_lru_in_a_full_cache)
{
    /* Level 2 only; regions R(k) = A + k * 2 MiB, each its own level-2 entry. */
#define R(k) (PSC_A + (uint64_t)(k) * M2)
    psc_setup((struct psc_sizes){0, 0, 1});
    for (unsigned k = 0; k < 6; k++)
        cr_assert_eq(iopt_map(&E.pt[0], R(k), DATA + k * 2 * K4, 2 * K4, K4, true), IOPT_OK);
    cr_expect_eq(reads_of(0, R(0), false), 4);
    cr_expect_eq(reads_of(0, R(0) + K4, false), 1);
    cr_expect_eq(reads_of(0, R(1), false), 4, "one entry: R(1) replaces R(0)");
    cr_expect_eq(reads_of(0, R(0), false), 4);
    cr_expect_eq(psc_stats(2)->evictions, 2);

    psc_setup((struct psc_sizes){0, 0, 4});
    for (unsigned k = 0; k < 6; k++)
        cr_assert_eq(iopt_map(&E.pt[0], R(k), DATA + k * 2 * K4, 2 * K4, K4, true), IOPT_OK);
    for (unsigned k = 0; k < 4; k++)
        cr_expect_eq(reads_of(0, R(k), false), 4);
    cr_expect_eq(psc_stats(2)->evictions, 0, "four entries fill the cache without a victim");
    cr_expect_eq(reads_of(0, R(0) + K4, false), 1); /* R(1) is now the least recent */
    cr_expect_eq(reads_of(0, R(4), false), 4);
    cr_expect_eq(psc_stats(2)->evictions, 1);
    cr_expect_eq(reads_of(0, R(0), false), 1);
    cr_expect_eq(reads_of(0, R(2), false), 1);
    cr_expect_eq(reads_of(0, R(3), false), 1);
    cr_expect_eq(reads_of(0, R(4), false), 1);
    cr_expect_eq(reads_of(0, R(1), false), 4, "R(1) was the victim");
    cr_expect_eq(reads_of(0, R(0), false), 4, "and R(0), least recent after it, went for R(1)");
    cr_expect_eq(psc_stats(2)->evictions, 3);
    cr_expect_eq(psc_stats(2)->inserts, 7);
#undef R
}

Test(iommu_psc, config_bounds)
{
    struct iommu_config c = {.iotlb = {.entries = 64, .ways = 4}};
    for (unsigned l = 2; l <= 4; l++) {
        c.psc_entries[iommu_psc_slot(l)] = IOMMU_PSC_ENTRIES_MAX;
        cr_expect_null(iommu_check_config(&c));
        c.psc_entries[iommu_psc_slot(l)] = IOMMU_PSC_ENTRIES_MAX + 1;
        cr_expect_not_null(iommu_check_config(&c), "level %u", l);
        c.psc_entries[iommu_psc_slot(l)] = 0;
    }
    /* A full cache of the largest size keeps every entry: 256 regions of 2 MiB. */
    psc_setup((struct psc_sizes){0, 0, IOMMU_PSC_ENTRIES_MAX});
    const uint64_t base = 0x4000000000ull; /* 256 GiB: the regions span one 512 MiB */
    for (unsigned k = 0; k < IOMMU_PSC_ENTRIES_MAX; k++)
        cr_assert_eq(iopt_map(&E.pt[0], base + k * M2, DATA, K4, K4, true), IOPT_OK);
    for (unsigned k = 0; k < IOMMU_PSC_ENTRIES_MAX; k++)
        reads_of(0, base + k * M2, false);
    for (unsigned k = 0; k < IOMMU_PSC_ENTRIES_MAX; k++)
        cr_expect_eq(reads_of(0, base + k * M2, false), 1);
    cr_expect_eq(psc_stats(2)->evictions, 0);
}

Test(iommu_psc, write_needs_a_writable_cached_path)
{
    psc_setup((struct psc_sizes){4, 4, 4});
    psc_map_regions(0);
    const uint64_t pde = pte_addr(&E.pt[0], PSC_A, 2);
    fake_guest_put64(&E.g, pde, fake_guest_get64(&E.g, pde) & ~IOMMU_PTE_WRITABLE_MASK);
    struct iommu_result r;
    cr_assert_eq(xl(0, PSC_A, false, &r), IOMMU_OK);
    cr_expect_not(r.writable);
    /* The level-2 entry is cached read-only: a write cannot use it, the level-3 entry
     * serves, and the walk re-reads levels 2 and 1 and faults. */
    cr_assert_eq(xl(0, PSC_A, true, &r), IOMMU_FAULT);
    cr_expect_eq(r.fault, VS_REASON_IOMMU_FAULT_READ_ONLY);
    cr_expect_eq(r.walk_reads, 2);
    cr_expect_eq(r.psc_hit_level, 3);
    /* The driver grants write access (no invalidation needed for an upgrade). */
    fake_guest_put64(&E.g, pde, fake_guest_get64(&E.g, pde) | IOMMU_PTE_WRITABLE_MASK);
    cr_expect_eq(reads_of(0, PSC_A, true), 2);
    cr_expect_eq(reads_of(0, PSC_A + K4, true), 1, "the entry was refreshed as writable");
    cr_expect_eq(reads_of(0, PSC_A + K4, false), 1);
}

Test(iommu_psc, caches_and_iotlb_together)
{
    /* With the IOTLB a hit reads nothing; a miss walks from the deepest cached level. */
    env_setup_full(4, 4, IOTLB_LRU, (struct psc_sizes){2, 4, 8});
    psc_map_regions(0);
    cr_expect_eq(reads_of(0, PSC_A, false), 4);
    struct iommu_result r;
    cr_assert_eq(xl(0, PSC_A + 8, false, &r), IOMMU_OK);
    cr_expect(r.tlb_hit);
    cr_expect_eq(r.walk_reads, 0);
    cr_expect_eq(r.psc_hit_level, 0);
    cr_expect_eq(reads_of(0, PSC_A + K4, false), 1);
    cr_expect_eq(psc_stats(2)->hits + psc_stats(2)->misses, E.m.stats.total.walks,
                 "every walk probes the level-2 cache");
}

/* ======================================================================
 * IOTLB: the PASID in the set index
 * ====================================================================== */

Test(iotlb, pasid_spreads_the_set_index)
{
    tlb_init(8, 1, IOTLB_LRU, 0); /* 8 sets: 3 index bits */
    cr_expect_eq(iotlb_set_index(&E.t, 0, 5), 5);
    cr_expect_eq(iotlb_set_index(&E.t, 1, 0), 4, "PASID bits reversed into the index");
    cr_expect_eq(iotlb_set_index(&E.t, 2, 0), 2);
    cr_expect_eq(iotlb_set_index(&E.t, 3, 0), 6);
    cr_expect_eq(iotlb_set_index(&E.t, 1, 5), 1);
    cr_expect_eq(iotlb_set_index(&E.t, 8, 0), 4, "bits above the width are folded in");
    cr_expect_eq(iotlb_set_index(&E.t, 9, 0), 0);
    tlb_init(4, 4, IOTLB_LRU, 0); /* one set */
    cr_expect_eq(iotlb_set_index(&E.t, 63, 12345), 0);
}

Test(iommu, identical_layouts_in_two_pasids_share_the_iotlb)
{
    /* Direct mapped, 8 sets; PASIDs 0 and 1 map the same four IOVA pages. Indexed by
     * page number alone both would use sets 0..3 and evict each other on every access;
     * with the PASID in the index they use disjoint sets and all 8 pages stay. */
    env_setup_tlb(8, 1, IOTLB_LRU);
    for (uint32_t p = 0; p < 2; p++)
        cr_assert_eq(iopt_map(&E.pt[p], 0, DATA + p * 4 * K4, 4 * K4, K4, true), IOPT_OK);
    for (unsigned round = 0; round < 3; round++) {
        for (uint64_t v = 0; v < 4; v++) {
            for (uint32_t p = 0; p < 2; p++) {
                struct iommu_result r;
                cr_assert_eq(xl(p, v * K4 + 1, false, &r), IOMMU_OK);
                cr_expect_eq(r.pa, DATA + (p * 4 + v) * K4 + 1);
                cr_expect_eq(r.tlb_hit, round > 0, "round %u page %llu pasid %u", round,
                             (unsigned long long)v, p);
            }
        }
    }
    cr_expect_eq(E.m.tlb.stats.evictions, 0);
    /* Capacity still binds: a third identical PASID needs 4 more entries of 8. */
    cr_assert_eq(iopt_map(&E.pt[2], 0, DATA, 4 * K4, K4, true), IOPT_OK);
    for (uint64_t v = 0; v < 4; v++)
        xl_ok(2, v * K4, false);
    cr_expect_eq(E.m.tlb.stats.evictions, 4);
}

/* ======================================================================
 * Driver side: iopt
 * ====================================================================== */

Test(iopt, argument_checks)
{
    struct iopt *pt = &E.pt[0];
    cr_expect_eq(iopt_map(pt, 0x1001, DATA, K4, K4, true), IOPT_INVALID);
    cr_expect_eq(iopt_map(pt, 0x1000, DATA + 1, K4, K4, true), IOPT_INVALID);
    cr_expect_eq(iopt_map(pt, 0x1000, DATA, K4 + 1, K4, true), IOPT_INVALID);
    cr_expect_eq(iopt_map(pt, 0x1000, DATA, 0, K4, true), IOPT_INVALID);
    cr_expect_eq(iopt_map(pt, 0x1000, DATA, K4, 8192, true), IOPT_INVALID);
    cr_expect_eq(iopt_map(pt, K4, 0, M2, M2, true), IOPT_INVALID);
    cr_expect_eq(iopt_map(pt, 0, 1ull << 52, K4, K4, true), IOPT_INVALID);
    cr_expect_eq(iopt_unmap(pt, 0x1000, 0), IOPT_INVALID);
    cr_expect_eq(iopt_unmap(pt, 0x1800, K4), IOPT_INVALID);
    cr_expect_eq(iopt_pool_pages_left(&E.pool), POOL_SZ / K4 - 3);
    cr_expect_eq(E.pt[0].tables, 1);
}

Test(iopt, overlapping_map_is_busy_and_changes_nothing)
{
    struct iopt *pt = &E.pt[0];
    cr_assert_eq(iopt_map(pt, 0x10000, DATA, 4 * K4, K4, true), IOPT_OK);
    cr_expect_eq(iopt_map(pt, 0xe000, DATA + 0x80000, 3 * K4, K4, false), IOPT_BUSY);
    cr_expect_not(iopt_resolve(pt, 0xe000, NULL, NULL, NULL), "nothing of the busy map stayed");
    /* A 2 MiB page over live 4 KiB pages is busy; over an emptied table it is fine. */
    cr_expect_eq(iopt_map(pt, 0, 0x40000000ull, M2, M2, true), IOPT_BUSY);
    cr_assert_eq(iopt_unmap(pt, 0x10000, 4 * K4), IOPT_OK);
    cr_assert_eq(iopt_map(pt, 0, 0x40000000ull, M2, M2, true), IOPT_OK);
    /* 4 KiB inside a 2 MiB page is busy too. */
    cr_expect_eq(iopt_map(pt, 0x5000, DATA, K4, K4, true), IOPT_BUSY);
    cr_expect_eq(xl_ok(0, 0x10005, true), 0x40010005ull);
}

Test(iopt, unmap_skips_holes_and_refuses_to_cut_2m)
{
    struct iopt *pt = &E.pt[0];
    cr_assert_eq(iopt_map(pt, 0x200000000ull, 0x80000000ull, 2 * M2, M2, true), IOPT_OK);
    cr_assert_eq(iopt_map(pt, 0x300000000ull, DATA, K4, K4, true), IOPT_OK);
    cr_expect_eq(iopt_unmap(pt, 0x200000000ull + K4, K4), IOPT_INVALID);
    cr_expect(iopt_resolve(pt, 0x200000000ull, NULL, NULL, NULL));
    /* One call across 64 GiB, mostly holes: quick, and both kinds are removed. */
    cr_expect_eq(iopt_unmap(pt, 0x200000000ull, 0x1000000000ull), IOPT_OK);
    cr_expect_not(iopt_resolve(pt, 0x200000000ull + M2, NULL, NULL, NULL));
    cr_expect_not(iopt_resolve(pt, 0x300000000ull, NULL, NULL, NULL));
    cr_expect_eq(iopt_unmap(pt, 0, 1ull << 48), IOPT_OK, "whole space, empty");
}

Test(iopt, pool_exhaustion_rolls_back)
{
    struct iopt_pool small;
    struct iopt pt;
    /* Root, level 3, level 2: the fourth table (level 1) is one too many. */
    iopt_pool_init(&small, DATA + 0x100000 + 1, 3 * K4 + K4 - 1); /* rounded inward */
    cr_assert_eq(iopt_pool_pages_left(&small), 3);
    cr_assert_eq(iopt_init(&pt, E.g.mem, G_BASE, G_SIZE, &small), IOPT_OK);
    cr_expect_eq(iopt_map(&pt, 0x1000, DATA, K4, K4, true), IOPT_NO_MEMORY);
    cr_expect_not(iopt_resolve(&pt, 0x1000, NULL, NULL, NULL));
    /* A 2 MiB page needs no level-1 table and fits (reusing the tables). */
    cr_expect_eq(iopt_map(&pt, 0, 0, M2, M2, true), IOPT_OK);
    cr_expect_eq(pt.tables, 3);
    /* Mid-range exhaustion: the first 2 MiB page fits, the second (new L2) does not. */
    cr_expect_eq(iopt_map(&pt, 0x40000000ull - M2, 0, 2 * M2, M2, true), IOPT_NO_MEMORY);
    cr_expect_not(iopt_resolve(&pt, 0x40000000ull - M2, NULL, NULL, NULL), "rolled back");

    /* A pool outside guest memory is refused. */
    iopt_pool_init(&small, G_BASE + G_SIZE, 4 * K4);
    cr_expect_eq(iopt_init(&pt, E.g.mem, G_BASE, G_SIZE, &small), IOPT_INVALID);
}

Test(iopt, corrupt_table_pointer_is_detected)
{
    struct iopt *pt = &E.pt[0];
    cr_assert_eq(iopt_map(pt, 0x1000, DATA, K4, K4, true), IOPT_OK);
    const uint64_t a = pte_addr(pt, 0x1000, 2);
    fake_guest_put64(&E.g, a, 0x7000000000ull | TABLE_FLAGS_FOR_TEST);
    cr_expect_eq(iopt_map(pt, 0x2000, DATA, K4, K4, true), IOPT_CORRUPT);
    cr_expect_eq(iopt_unmap(pt, 0, M2), IOPT_CORRUPT);
    cr_expect_not(iopt_resolve(pt, 0x1000, NULL, NULL, NULL));
}

Test(iopt, entries_have_the_documented_layout)
{
    struct iopt *pt = &E.pt[0];
    cr_assert_eq(iopt_map(pt, 0x8000000000ull + 0x40000000ull + 0x200000ull + 0x3000ull,
                          DATA + 0x5000, K4, K4, false), IOPT_OK);
    const uint64_t iova = 0x8040203000ull;
    cr_expect_eq(iommu_pte_index(iova, 4), 1);
    cr_expect_eq(iommu_pte_index(iova, 3), 1);
    cr_expect_eq(iommu_pte_index(iova, 2), 1);
    cr_expect_eq(iommu_pte_index(iova, 1), 3);
    uint64_t e4 = fake_guest_get64(&E.g, pt->root + 8);
    cr_expect_eq(e4 & ~IOMMU_PTE_ADDR_MASK, TABLE_FLAGS_FOR_TEST);
    /* Little-endian: the low byte holds present and writable. */
    cr_expect_eq(fake_guest_ptr(&E.g, pt->root + 8, 1)[0] & 3, 3);
    uint64_t leaf = fake_guest_get64(&E.g, pte_addr(pt, iova, 1));
    cr_expect_eq(leaf, (DATA + 0x5000) | IOMMU_PTE_PRESENT_MASK, "read-only 4 KiB leaf");
    cr_assert_eq(iopt_map(pt, 0x600000, 0x80000000ull, M2, M2, true), IOPT_OK);
    leaf = fake_guest_get64(&E.g, pte_addr(pt, 0x600000, 2));
    cr_expect_eq(leaf, 0x80000000ull | IOMMU_PTE_PRESENT_MASK | IOMMU_PTE_WRITABLE_MASK |
                       IOMMU_PTE_LEAF_MASK);
}
